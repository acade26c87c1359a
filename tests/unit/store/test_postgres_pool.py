"""The store's connection pool (store/postgres/pool.py): a connection goes back at once
and is reused; one a block left in doubt is closed, never handed out again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("asyncpg")

import asyncpg

from coi.store.postgres.pool import ConnectionPool


@contextlib.asynccontextmanager
async def _opened(dsn: str, *, min_size: int, max_size: int) -> AsyncIterator[ConnectionPool]:
    pool = await ConnectionPool(dsn, min_size=min_size, max_size=max_size).open()
    try:
        yield pool
    finally:
        await pool.close()


async def _backend(pool: ConnectionPool) -> int:
    return int(await pool.fetchval("SELECT pg_backend_pid()"))


async def test_a_connection_is_back_without_an_iteration_and_reused(postgres_dsn: str) -> None:
    async with _opened(postgres_dsn, min_size=1, max_size=3) as pool:
        assert pool.size == 1
        first = await _backend(pool)
        loop = asyncio.get_running_loop()
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1

        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            loop.call_soon(tick)  # runs at the next iteration of the loop
        assert ticks == 0  # given back in this iteration: no task of its own
        assert await _backend(pool) == first and pool.size == 1


async def test_an_error_the_server_answered_keeps_the_connection(postgres_dsn: str) -> None:
    async with _opened(postgres_dsn, min_size=1, max_size=1) as pool:
        first = await _backend(pool)
        with pytest.raises(asyncpg.UndefinedTableError):
            await pool.fetch("SELECT * FROM no_such_table")
        with pytest.raises(LookupError):
            async with pool.acquire():
                raise LookupError("the caller's own error")
        assert await _backend(pool) == first


async def test_a_cancelled_query_closes_its_connection(postgres_dsn: str) -> None:
    """A query cancelled under way may still run: its connection is not reused."""
    async with _opened(postgres_dsn, min_size=1, max_size=1) as pool:
        first = await _backend(pool)
        task = asyncio.create_task(pool.fetch("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.size == 0
        assert await _backend(pool) != first  # a new connection


async def test_a_transaction_left_open_closes_its_connection(postgres_dsn: str) -> None:
    async with _opened(postgres_dsn, min_size=1, max_size=1) as pool:
        first = await _backend(pool)
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
        assert await _backend(pool) != first


async def test_callers_wait_for_a_free_connection_in_turn(postgres_dsn: str) -> None:
    async with _opened(postgres_dsn, min_size=0, max_size=2) as pool:
        order: list[int] = []

        async def one(k: int) -> None:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")
                order.append(k)

        await asyncio.gather(*(one(k) for k in range(6)))
        assert sorted(order) == list(range(6)) and pool.size == 2
        # a waiter cancelled in the queue does not take a turn from the others
        async with pool.acquire(), pool.acquire():
            waiting = asyncio.create_task(pool.fetchval("SELECT 1"))
            after = asyncio.create_task(pool.fetchval("SELECT 2"))
            await asyncio.sleep(0.05)
            waiting.cancel()
        assert await after == 2


async def test_a_closed_pool_refuses_and_closes_what_comes_back(postgres_dsn: str) -> None:
    pool = await ConnectionPool(postgres_dsn, min_size=2, max_size=2).open()
    async with pool.acquire() as conn:
        closing = asyncio.create_task(pool.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the connection in use
        await conn.fetchval("SELECT 1")  # which still works
    await closing
    assert conn.is_closed() and pool.size == 0
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchval("SELECT 1")


async def test_a_failed_connect_leaves_the_place_free(postgres_dsn: str) -> None:
    pool = ConnectionPool(postgres_dsn + "_missing", min_size=0, max_size=1)
    await pool.open()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await pool.fetchval("SELECT 1")
    assert pool.size == 0
    await pool.close()


async def test_connections_the_server_closed_are_not_handed_out(postgres_dsn: str) -> None:
    """A database restart (here: its backends terminated) leaves idle connections dead:
    the next callers get new ones, not an error each."""
    pool = await ConnectionPool(postgres_dsn, min_size=3, max_size=3).open()
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await asyncio.sleep(0.2)  # the loop reads each connection's end
        assert [await pool.fetchval("SELECT 1") for _ in range(4)] == [1, 1, 1, 1]
    finally:
        await admin.close()
        await pool.close()


async def test_a_waiter_a_newcomer_overtook_stays_first_in_line(postgres_dsn: str) -> None:
    order: list[str] = []
    async with _opened(postgres_dsn, min_size=1, max_size=1) as pool:

        async def user(name: str) -> None:
            async with pool.acquire():
                order.append(name)

        async with pool.acquire():
            first = asyncio.create_task(user("first"))
            await asyncio.sleep(0.02)
            second = asyncio.create_task(user("second"))
            await asyncio.sleep(0.02)
        # given back and "first" woken; a newcomer takes the connection before it runs
        async with pool.acquire():
            order.append("newcomer")
            await asyncio.sleep(0.02)
        await asyncio.gather(first, second)
        assert order == ["newcomer", "first", "second"]
