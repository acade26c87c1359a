"""The PostgreSQL store's row cache through real stores: two handles on one database are
two `coi serve` processes; what one changes, the other's cached reads show once the
change's event has arrived (tests/pg.py's cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.contract.helpers import message, user_with_inbox

from coi.store.events import Event, EventBus, FlagsChanged, MessagesExpunged
from coi.store.model import DELETED, SEEN, Flags

pytest.importorskip("asyncpg")

import asyncpg

from coi.store.postgres.store import PostgresStore


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("not reached")


async def _behind_its_back(dsn: str, sql: str, *args: object) -> None:
    """A change no event announces: only a cached read still shows the old value."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_rows_read_once_are_served_from_memory(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, _ = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message("a"), message("b"), message("c")])
    before = await first.read_rows(inbox.id, [1, 2])
    await _behind_its_back(
        first.dsn, "UPDATE messages SET size = 1 WHERE mailbox_id = $1", inbox.id
    )
    again = await first.read_rows(inbox.id, [1, 2, 3])  # 1 and 2 cached, 3 read
    assert again[1] == before[1] and again[2] == before[2] and again[3].size == 1
    assert list(again) == [1, 2, 3]
    tuples = await first.read_row_tuples(inbox.id, [3, 1])
    assert [t[0] for t in tuples] == [1, 3] and tuples[0][4] == before[1].size
    assert first.rows(inbox.id, [1])[1].size == 1  # the synchronous reads go to the database


async def test_a_flag_change_elsewhere_reaches_the_cached_rows_with_its_event(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message("a"), message("b")])
    seen: list[Event] = []
    first.events.watch_mailbox(inbox.id, seen.append)
    cached = await first.read_rows(inbox.id, [1, 2])
    assert not cached[1].flags.bits & SEEN
    changed, _, _ = await second.store_flags(inbox.id, [1], "add", Flags(SEEN, ("$chat",)))
    await _until(lambda: any(isinstance(e, FlagsChanged) for e in seen))
    rows = await first.read_rows(inbox.id, [1, 2])
    assert rows[1].flags == Flags(SEEN, ("$chat",)) and rows[1].modseq == changed[0][2]
    assert rows[1].blob_id == cached[1].blob_id and rows[2] == cached[2]


async def test_a_read_after_our_own_store_shows_the_new_flags(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, _ = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message("a")])
    await first.read_rows(inbox.id, [1])
    changed, _, _ = await first.store_flags(inbox.id, [1], "add", Flags(DELETED))
    rows = await first.read_rows(inbox.id, [1])  # no waiting: published before the return
    assert rows[1].flags.bits & DELETED and rows[1].modseq == changed[0][2]


async def test_a_message_expunged_elsewhere_is_gone_once_its_event_came(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message("a"), message("b")])
    seen: list[Event] = []
    first.events.watch_mailbox(inbox.id, seen.append)
    assert set(await first.read_rows(inbox.id, [1, 2])) == {1, 2}
    await second.store_flags(inbox.id, [1], "add", Flags(DELETED))
    await second.expunge(inbox.id)
    await _until(lambda: any(isinstance(e, MessagesExpunged) for e in seen))
    assert set(await first.read_rows(inbox.id, [1, 2])) == {2}
    assert [t[0] for t in await first.read_row_tuples(inbox.id, [1, 2])] == [2]


async def test_a_deleted_mailbox_leaves_the_cache(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = pair
    user, _ = await user_with_inbox(first)
    box = await first.create_mailbox(user.id, "Old")
    await first.append(box.id, [message("a")])
    assert set(await first.read_rows(box.id, [1])) == {1}
    await second.delete_mailbox(user.id, "Old")
    await _until(lambda: not first._rows.watches(box.id))
    assert await first.read_rows(box.id, [1]) == {}


async def test_a_lost_listen_connection_drops_the_cache(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """Other processes' events of the gap are missed: nothing cached before it is served
    after it."""
    first, _ = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message("a")])
    await first.read_rows(inbox.id, [1])
    listener = first._listener
    assert listener is not None
    await _behind_its_back(first.dsn, "SELECT pg_terminate_backend($1)", listener.get_server_pid())
    # a change whose notification is missed (made while nobody listened, or so it is taken)
    await _behind_its_back(
        first.dsn, "UPDATE messages SET flags = $1 WHERE mailbox_id = $2", SEEN, inbox.id
    )
    await _until(lambda: first._listener is not None and first._listener is not listener)
    rows = await first.read_rows(inbox.id, [1])
    assert rows[1].flags.bits & SEEN


async def test_the_cache_follows_a_new_event_bus(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """The sharded store gives every shard one bus after opening it: the cache must hear
    the changes published there."""
    first, second = pair
    first.events = EventBus()
    seen: list[Event] = []
    first.events.watch_all(seen.append)
    _, inbox = await user_with_inbox(second)
    await second.append(inbox.id, [message("a")])
    await _until(lambda: len(seen) >= 4)
    await first.read_rows(inbox.id, [1])
    await second.store_flags(inbox.id, [1], "add", Flags(SEEN))
    await _until(lambda: any(isinstance(e, FlagsChanged) for e in seen))
    assert (await first.read_rows(inbox.id, [1]))[1].flags.bits & SEEN
