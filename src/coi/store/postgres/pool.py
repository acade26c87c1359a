"""The store's connection pools: a few asyncpg connections for one event loop.

asyncpg's own `Pool` hands a connection back in a task of its own (`asyncio.shield`
around its release), so every query made through it costs the caller one more iteration
of its event loop after the answer is in. On a worker serving a hundred sessions an
iteration can take milliseconds, and a STORE made several of them (docs/scale-out.md,
"Measured"). Here a connection goes back at once: the store leaves no session state
behind (no SET, no LISTEN on pooled connections, transactions are ended by their
writers), so there is nothing to reset, and a connection that may be in doubt (a query
cancelled or broken under way, a transaction left open) is closed instead of reused."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

# a block that ended with one of these may have left a query under way
_IN_DOUBT = (TimeoutError, asyncpg.InterfaceError, OSError)


class ConnectionPool:
    """Up to `max_size` connections to `dsn`, `min_size` of them opened by `open()`;
    `init` runs once on each new connection. Used from one event loop only."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        init: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max(1, max_size)
        self._init = init
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._opening = 0  # connections being opened (they count against max_size)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def open(self) -> ConnectionPool:
        """Opens `min_size` connections (all or none)."""
        self._opening += self._min_size
        try:
            opened = await asyncio.gather(
                *(self._connect() for _ in range(self._min_size)), return_exceptions=True
            )
        finally:
            self._opening -= self._min_size
        failed = [c for c in opened if isinstance(c, BaseException)]
        good = [c for c in opened if not isinstance(c, BaseException)]
        if failed:
            for conn in good:
                conn.terminate()
            raise failed[0]
        self._idle += good
        return self

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._idle) + len(self._busy) + self._opening

    async def _connect(self) -> Connection:
        conn: Connection = await asyncpg.connect(self.dsn)
        try:
            if self._init is not None:
                await self._init(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A connection for the block; back to the pool (or closed) when it ends."""
        conn = await self._take()
        reuse = True
        try:
            yield conn
        except BaseException as exc:
            # an error the server answered (or one of the block's own) leaves the
            # connection in step; a cancelled, timed-out or broken exchange may not
            reuse = isinstance(exc, Exception) and not isinstance(exc, _IN_DOUBT)
            raise
        finally:
            self._give_back(conn, reuse)

    async def _take(self) -> Connection:
        waited = False
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    self._busy.add(conn)
                    return conn
            if len(self._busy) + self._opening < self._max_size:
                self._opening += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._wake()  # the place is free again
                    raise
                finally:
                    self._opening -= 1
                if self._closed:
                    conn.terminate()
                    self._wake()
                    continue
                self._busy.add(conn)
                return conn
            waiter = asyncio.get_running_loop().create_future()
            if waited:  # woken, but a newcomer took the connection: still first in line
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            waited = True
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._wake()  # it was woken: the turn goes to the next one
                raise

    def _give_back(self, conn: Connection, reuse: bool) -> None:
        self._busy.discard(conn)
        if reuse and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._idle.append(conn)
        else:
            conn.terminate()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return await conn.execute(sql, *args)

    async def close(self, timeout: float = 30.0) -> None:
        """Closes the idle connections, then each busy one when it comes back; those
        still busy after `timeout` seconds are terminated."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # it finds the pool closed
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while self._busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        self.terminate()

    def terminate(self) -> None:
        """Closes every connection at once (writes under way fail)."""
        self._closed = True
        for conn in [*self._idle, *self._busy]:
            conn.terminate()
        self._idle.clear()
        self._busy.clear()
