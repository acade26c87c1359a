"""What is special to the PostgreSQL store: events cross processes (LISTEN/NOTIFY), the
schema version check, and large events split to fit NOTIFY (tests/pg.py's cluster)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from tests.contract.helpers import message, user_with_inbox

from coi.store.errors import StoreError
from coi.store.events import (
    ChangesMissed,
    Event,
    FlagsChanged,
    MailboxCreated,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
)
from coi.store.model import DELETED, SEEN, Flags

pytest.importorskip("asyncpg")

from coi.store.postgres import store as postgres_store
from coi.store.postgres.migrations import SchemaTooNew
from coi.store.postgres.notify import REMOTE, decode, encode, own_write, token_prefix
from coi.store.postgres.store import PostgresStore


async def _until(seen: list[Event], count: int) -> None:
    for _ in range(200):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"saw {seen}")


async def test_events_of_one_process_reach_the_other_in_commit_order(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = pair
    seen: list[Event] = []
    second.events.watch_all(seen.append)
    own: list[Event] = []
    first.events.watch_all(own.append)
    user, inbox = await user_with_inbox(first)
    await _until(seen, 3)
    assert [type(e) for e in seen] == [MailboxCreated] * 3
    seen.clear()
    own.clear()
    origin = object()
    _, uids = await first.append(inbox.id, [message("a"), message("b")], origin)
    assert isinstance(own[-1], MessagesAdded) and own[-1].origin is origin  # before return
    await first.store_flags(inbox.id, uids, "add", Flags(SEEN | DELETED), origin=origin)
    await first.expunge(inbox.id, [1])
    await first.set_metadata(user.id, 0, [("/private/x", b"1")])
    await _until(seen, 4)
    added, flagged, expunged, changed = seen
    assert isinstance(added, MessagesAdded) and added.uids == (1, 2)
    assert added.origin is REMOTE and added.user_id == user.id
    assert isinstance(flagged, FlagsChanged) and flagged.origin is REMOTE
    assert [(u, f.bits) for u, f, _ in flagged.changes] == [
        (1, SEEN | DELETED),
        (2, SEEN | DELETED),
    ]
    assert flagged.previous == (Flags(), Flags())
    assert isinstance(expunged, MessagesExpunged) and expunged.uids == (1,)
    assert expunged.modseq > flagged.changes[0][2] > added.modseq
    assert isinstance(changed, MetadataChanged) and changed.entries == ("/private/x",)
    # and the other way round; nobody hears its own writes twice
    count = len(own)
    await second.append(inbox.id, [message("c")])
    await _until(own, count + 1)
    await asyncio.sleep(0.1)
    assert len(own) == count + 1 and own[-1].origin is REMOTE
    assert len([e for e in seen if isinstance(e, MessagesAdded)]) == 2


async def test_an_append_tells_the_other_process_the_new_flags(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """The other process learns the flags of an APPEND's or a COPY's messages from its
    notification (no read of the rows), and when they would not fit a notification it is
    told the UIDs only."""
    first, second = pair
    seen: list[Event] = []
    second.events.watch_all(lambda e: seen.append(e) if isinstance(e, MessagesAdded) else None)
    user, inbox = await user_with_inbox(first)
    box = await first.create_mailbox(user.id, "Box")
    await first.append(inbox.id, [message("a", flags=("\\Seen", "$Chat")), message("b")])
    many = [f"$k{i:04d}" + "x" * 40 for i in range(100)]  # about 5 KB of keywords
    await first.append(inbox.id, [message("c", flags=tuple(many))])
    await first.copy(inbox.id, [1, 2], box.id)
    await first.copy(inbox.id, [3], box.id)
    await _until(seen, 4)
    small, large, copied, copied_large = seen
    assert small.flags == (Flags(SEEN, ("$Chat",)), Flags())
    assert large.uids == (3,) and large.flags is None  # the rows are read instead
    assert copied.mailbox_id == box.id and copied.flags == small.flags
    assert copied_large.uids == (3,) and copied_large.flags is None


async def test_interleaved_writers_are_seen_in_one_order_by_both(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """A process publishes its own and the other's events in commit order: a selected
    mailbox's UID list, grown from MessagesAdded, never misses one."""
    first, second = pair
    _, inbox = await user_with_inbox(first)
    heard: dict[str, list[int]] = {"first": [], "second": []}

    def listener(name: str) -> Callable[[Event], None]:
        def hear(event: Event) -> None:
            if isinstance(event, MessagesAdded):
                heard[name].extend(event.uids)

        return hear

    first.events.watch_mailbox(inbox.id, listener("first"))
    second.events.watch_mailbox(inbox.id, listener("second"))

    async def appends(store: PostgresStore) -> None:
        for i in range(15):
            await store.append(inbox.id, [message(f"m{i}")])

    await asyncio.gather(appends(first), appends(second))
    for _ in range(200):
        if len(heard["first"]) == len(heard["second"]) == 30:
            break
        await asyncio.sleep(0.025)
    assert heard["first"] == list(range(1, 31))
    assert heard["second"] == list(range(1, 31))

    def queues() -> list[object]:
        return [first._user_turns, second._user_turns, first._home_turns, second._home_turns]

    # none kept when idle: a write's result reaches its caller just before the store's own
    # thread leaves the write's queue, so give that thread a moment

    for _ in range(200):
        if queues() == [{}] * 4:
            break
        await asyncio.sleep(0.01)
    assert queues() == [{}] * 4


async def test_a_write_next_in_its_mailbox_does_not_wait_for_its_notification(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """While the first process's LISTEN connection hears nothing (its thread held), its
    writes that nothing can precede are published and answered at once: those to a
    mailbox nobody watches, and those whose MODSEQ follows the last one published of a
    watched mailbox. A write after the other process's (not heard yet) waits for it, so
    the watcher still gets every UID in order."""
    first, second = pair
    user, inbox = await user_with_inbox(first)
    box = await first.create_mailbox(user.id, "Box")
    added: list[Event] = []
    first.events.watch_mailbox(
        inbox.id, lambda e: added.append(e) if isinstance(e, MessagesAdded) else None
    )
    deaf = threading.Event()

    def hold_the_listener() -> None:
        deaf.clear()
        first._loop.call_soon_threadsafe(deaf.wait, 30)

    async def waits(write: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(write)
        await asyncio.sleep(0.3)
        assert not task.done()  # its place in the commit order is not known yet
        deaf.set()
        return await task

    hold_the_listener()
    try:
        await asyncio.wait_for(first.append(box.id, [message("a")]), 10)  # nobody watches
        # the first write in a watched mailbox: which MODSEQ came before is not known
        await waits(first.append(inbox.id, [message("b")]))
        hold_the_listener()
        await asyncio.wait_for(first.append(inbox.id, [message("c")]), 10)
        await asyncio.wait_for(first.store_flags(inbox.id, [1], "add", Flags(SEEN)), 10)
        await asyncio.wait_for(first.expunge(inbox.id, [2]), 10)
        await second.append(inbox.id, [message("d")])  # the first process hears it late
        await waits(first.append(inbox.id, [message("e")]))
    finally:
        deaf.set()
    await _until(added, 4)
    assert [uid for e in added if isinstance(e, MessagesAdded) for uid in e.uids] == [1, 2, 3, 4]
    assert first._awaiting == {}


async def test_a_large_store_reaches_the_other_process_whole_and_in_order(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """A STORE whose event is larger than one notification (coi_store_flags splits it)
    arrives whole at the other process, between the writes before and after it, and its
    writer reports it to its own process in the same place."""
    first, second = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message(str(n)) for n in range(400)])
    seen: list[Event] = []
    own: list[Event] = []
    second.events.watch_mailbox(inbox.id, seen.append)
    first.events.watch_mailbox(inbox.id, own.append)
    names = tuple(f"$keyword-{n:03d}-{'x' * 40}" for n in range(8))
    uids = list(range(1, 401))
    changed, _, _ = await first.store_flags(inbox.id, uids, "add", Flags(SEEN, names))
    await first.expunge(inbox.id, [])  # nothing: no event
    await first.store_flags(inbox.id, [5], "remove", Flags(SEEN))
    for _ in range(400):  # until the last STORE's event came
        if any(isinstance(e, FlagsChanged) and len(e.changes) == 1 for e in seen):
            break
        await asyncio.sleep(0.025)
    flagged = [e for e in seen if isinstance(e, FlagsChanged)]
    # (the append's event may still have been on its way when `second` started watching)
    assert seen[seen.index(flagged[0]) :] == flagged and len(flagged[-1].changes) == 1
    big = [change for e in flagged[:-1] for change in e.changes]
    assert len(flagged) > 2 and big == changed  # split in pieces, every change once
    assert all(e.previous == (Flags(),) * len(e.changes) for e in flagged[:-1])
    assert flagged[-1].changes == ((5, Flags(0, names), changed[0][2] + 1),)
    assert [len(e.changes) for e in own if isinstance(e, FlagsChanged)] == [400, 1]


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group of STOREs sent as one statement, in order."""
    sizes: list[int] = []
    merge = postgres_store._merge_flag_changes

    def counted(calls: list[Any]) -> tuple[Any, ...]:
        sizes.append(len(calls))
        return merge(calls)

    monkeypatch.setattr(postgres_store, "_merge_flag_changes", counted)
    return sizes


async def test_stores_of_one_mailbox_waiting_together_are_one_statement(
    pair: tuple[PostgresStore, PostgresStore], groups: list[int]
) -> None:
    """STOREs of one mailbox that wait for their turn together go to PostgreSQL as one
    statement (a group commit: coi_store_flags_many); each still gets its own result,
    MODSEQ and event, in one order for both processes, and UNCHANGEDSINCE fails only
    its own STORE. Nothing is left waiting once they are answered."""
    first, second = pair
    user, inbox = await user_with_inbox(first)
    _, uids = await first.append(inbox.id, [message(str(n)) for n in range(10)])
    now = await first.read_mailbox(user.id, "INBOX")
    assert now is not None
    start = now.highestmodseq
    seen: list[Event] = []
    own: list[Event] = []
    second.events.watch_mailbox(inbox.id, seen.append)
    first.events.watch_mailbox(inbox.id, own.append)
    results = await asyncio.gather(
        *(first.store_flags(inbox.id, [uid], "add", Flags(0, (f"$k{uid}",))) for uid in uids),
        first.store_flags(inbox.id, uids, "remove", Flags(0, ("$k3",))),
        first.store_flags(inbox.id, [1], "add", Flags(DELETED), unchangedsince=start),
        first.store_flags(inbox.id, [2], "add", Flags(SEEN)),
    )
    assert max(groups) > 1 and sum(groups) == 13
    # a queue, not a lock: the STOREs taken along leave nothing waiting for a turn
    await asyncio.sleep(0)
    assert not first._home_tasks and not first._pending and first._home_turns == {}
    *singles, removed, conditional, seen_two = results
    modseqs = [result.changed[0][2] for result in singles]
    assert [result.changed for result in singles] == [
        [(uid, Flags(0, (f"$k{uid}",)), modseq)] for uid, modseq in zip(uids, modseqs, strict=True)
    ]
    # (before $k3 was set it changes nothing)
    assert not removed.changed or removed.changed == [(3, Flags(), removed.changed[0][2])]
    assert not removed.changed or removed.changed[0][2] > modseqs[2]
    changes, failed, _ = conditional
    assert (failed, changes) == ([1], []) or (changes[0][2] < modseqs[0] and not failed)
    assert seen_two.changed[0][:2] == (2, Flags(SEEN, ("$k2",)))
    every = sorted(m for result in results for _, _, m in result.changed)
    assert every == list(range(start + 1, start + 1 + len(every)))  # one MODSEQ each
    for _ in range(200):
        if len(seen) >= len(every):
            break
        await asyncio.sleep(0.025)
    flagged = [e for e in seen if isinstance(e, FlagsChanged)]
    assert [e.changes[0][2] for e in flagged] == every  # the other process: in commit order
    assert [e.changes for e in own] == [e.changes for e in flagged]


async def test_a_store_refused_in_a_group_fails_alone(
    pair: tuple[PostgresStore, PostgresStore], groups: list[int]
) -> None:
    """A group commit that PostgreSQL refuses (here one STORE's keyword holds a NUL,
    which IMAP's parser never lets through) is run again call by call: the others
    are stored, the bad one gets the error."""
    first, _ = pair
    _, inbox = await user_with_inbox(first)
    _, uids = await first.append(inbox.id, [message(str(n)) for n in range(6)])
    keywords = [("$bad\x00",) if uid == 4 else (f"$k{uid}",) for uid in uids]
    results = await asyncio.gather(
        *(
            first.store_flags(inbox.id, [uid], "add", Flags(0, names))
            for uid, names in zip(uids, keywords, strict=True)
        ),
        return_exceptions=True,
    )
    assert max(groups) > 2  # the group, then each alone
    for uid, result in zip(uids, results, strict=True):
        if uid == 4:
            assert isinstance(result, StoreError)
        else:
            assert not isinstance(result, BaseException)
            assert result[0][0][:2] == (uid, Flags(0, (f"$k{uid}",)))
    rows = first.rows(inbox.id, uids)
    assert rows[4].flags == Flags() and rows[5].flags == Flags(0, ("$k5",))


async def test_a_group_whose_rows_are_lost_after_commit_is_not_written_again(
    pair: tuple[PostgresStore, PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a group's statement committed but its rows cannot be used (here: building one
    STORE's result fails), every STORE of it gets the error, none waits forever, none is
    written twice, and later writes are not held back."""
    first, _ = pair
    _, inbox = await user_with_inbox(first)
    _, uids = await first.append(inbox.id, [message(str(n)) for n in range(6)])
    before = first.mailbox_by_id(inbox.id)
    assert before is not None
    real = postgres_store.stored_flags

    def fragile(bits: int, keywords: str) -> Flags:
        if "$boom" in keywords:
            raise RuntimeError("boom")
        return real(bits, keywords)

    monkeypatch.setattr(postgres_store, "stored_flags", fragile)
    keywords = ["$boom" if uid == 4 else f"$k{uid}" for uid in uids]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                first.store_flags(inbox.id, [uid], "add", Flags(0, (name,)))
                for uid, name in zip(uids, keywords, strict=True)
            ),
            return_exceptions=True,
        ),
        30,
    )
    assert any(isinstance(r, RuntimeError) for r in results)
    after = first.mailbox_by_id(inbox.id)
    assert after is not None and after.highestmodseq == before.highestmodseq + len(uids)
    monkeypatch.setattr(postgres_store, "stored_flags", real)
    rows = first.rows(inbox.id, uids)
    assert [rows[uid].flags.keywords for uid in uids] == [(name,) for name in keywords]
    changed, _, _ = await asyncio.wait_for(first.store_flags(inbox.id, [1], "add", Flags(SEEN)), 30)
    assert changed[0][2] == after.highestmodseq + 1


async def test_a_large_expunge_reaches_the_other_process_whole(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """An EXPUNGE of 800 UIDs that are no range (coi_expunge notifies them in pieces)."""
    first, second = pair
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message(str(n)) for n in range(1600)])
    odd = list(range(1, 1601, 2))
    await first.store_flags(inbox.id, odd, "add", Flags(DELETED))
    seen: list[Event] = []
    second.events.watch_mailbox(inbox.id, seen.append)
    assert await first.expunge(inbox.id, [*odd, 2]) == odd  # 2 is not \Deleted
    gone: list[int] = []
    for _ in range(400):
        gone = [uid for e in seen if isinstance(e, MessagesExpunged) for uid in e.uids]
        if len(gone) >= len(odd):
            break
        await asyncio.sleep(0.025)
    pieces = [e for e in seen if isinstance(e, MessagesExpunged)]
    assert gone == odd and len(pieces) > 1 and len({e.modseq for e in pieces}) == 1
    assert list(second.uids(inbox.id)) == list(range(2, 1601, 2))


def test_large_events_are_split_under_the_notify_limit() -> None:
    uids = tuple(range(1, 40000, 2))  # no ranges to compress
    payloads = encode("t", 7, [MessagesAdded(1, 2, uids, 9)])
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    decoded = [decode(p) for p in payloads]
    assert [last for _, _, last, _ in decoded] == [False] * (len(payloads) - 1) + [True]
    got = [uid for *_, event in decoded if isinstance(event, MessagesAdded) for uid in event.uids]
    assert tuple(got) == uids
    flags = FlagsChanged(1, 2, tuple((u, Flags(SEEN, ("$chat",)), 5) for u in uids[:3000]))
    pieces = encode("t", 8, [flags])
    assert len(pieces) > 1 and all(len(p.encode()) < 8000 for p in pieces)


def test_own_notifications_are_told_without_parsing_their_bodies() -> None:
    """A process's own payloads (those of its token) give only the write id and whether
    it is the last piece; another token's are not taken for its own."""
    token = "0123456789abcdef"
    pieces = encode(token, 8, [FlagsChanged(1, 2, ((5, Flags(SEEN, ("$chat",)), 6),))])
    pieces += encode(token, 9, [MessagesAdded(1, 2, tuple(range(1, 40000, 2)), 9)])
    assert [own_write(p, token_prefix(token)) for p in pieces] == [
        (w, last) for _, w, last, _ in map(decode, pieces)
    ]
    assert own_write(encode("fedcba9876543210", 8, [])[0], token_prefix(token)) is None
    assert own_write(encode(token + "0", 8, [])[0], token_prefix(token)) is None


async def test_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    store.close()
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("UPDATE schema_version SET version = version + 1")
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match="newer coi"):
        PostgresStore(postgres_dsn)


async def test_migration_10_counts_the_messages_stored_before(postgres_dsn: str) -> None:
    """A database from before migration 10 gets each mailbox's STATUS counts and sum of
    sizes from the messages it holds, and the triggers keep them from then on."""
    import asyncpg

    store = PostgresStore(postgres_dsn)
    try:
        user, inbox = await user_with_inbox(store)
        stored = [message("one", "x" * 500), message("two", "y" * 70, flags=("\\Seen",))]
        await store.append(inbox.id, stored)
    finally:
        store.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:  # back to schema 9 (undoing what 10, 11 and 14 made; 12 and 13 run again as they are)
        await conn.execute(
            "DROP INDEX messages_deleted; DROP FUNCTION coi_store_flags_lazy;"
            " DROP TRIGGER messages_counts_added ON messages;"
            " DROP TRIGGER messages_counts_removed ON messages;"
            " DROP TRIGGER messages_counts_changed ON messages;"
            " DROP FUNCTION coi_counts_of(); DROP FUNCTION coi_counts_changed();"
            " ALTER TABLE mailboxes DROP COLUMN size_sum, DROP COLUMN message_count,"
            " DROP COLUMN unseen_count, DROP COLUMN deleted_count;"
            " UPDATE schema_version SET version = 9"
        )
    finally:
        await conn.close()
    store = PostgresStore(postgres_dsn)
    try:
        total = sum(len(m.raw) for m in stored)
        assert await store.read_usage(user.id, 1 << 20) == (1 << 20, total)
        status = store.status(inbox)
        assert (status.messages, status.unseen, status.deleted, status.size) == (2, 1, 0, total)
        await store.append(inbox.id, [message("three", "z")])
        await store.store_flags(inbox.id, [1], "add", Flags(DELETED))
        assert store.storage_used(user.id) == total + len(message("three", "z").raw)
        status = store.status(inbox)
        assert (status.messages, status.unseen, status.deleted) == (3, 2, 1)
    finally:
        store.close()


async def test_bodies_are_stored_without_compression(postgres_dsn: str) -> None:
    """Migrations 6 and 7: a large body and its search data go out of line as they are (no
    pglz at APPEND, nor at FETCH or a SEARCH scan)."""
    import asyncpg

    store = PostgresStore(postgres_dsn)
    try:
        _, inbox = await user_with_inbox(store)
        big = message("big", "compressible text\r\n" * 20_000)
        await store.append(inbox.id, [big])
    finally:
        store.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch("SELECT pg_column_compression(raw), octet_length(raw) FROM bodies")
        search = await conn.fetch("SELECT pg_column_compression(search) FROM blobs")
    finally:
        await conn.close()
    assert [tuple(row) for row in rows] == [(None, len(big.raw))]
    assert [tuple(row) for row in search] == [(None,)] and len(big.search) > 100_000


async def test_warm_up_opens_the_home_pool_before_the_first_command(postgres_dsn: str) -> None:
    """`coi serve` warms the store before it listens: the home loop's pool is open with
    its first connections (each has learnt APPEND's and STORE's parameter types), and
    writes on it work as before."""
    store = PostgresStore(postgres_dsn, min_size=2)
    try:
        assert store._home_pool is None  # opened on first use otherwise
        await store.warm_up()
        pool = store._home_pool
        assert pool is not None and pool.size >= 2
        await store.warm_up()  # once is enough; again is harmless
        assert store._home_pool is pool
        _, inbox = await user_with_inbox(store)
        _, uids = await store.append(inbox.id, [message()])
        assert uids == [1] and pool.size >= 2
    finally:
        store.close()


async def test_a_handle_that_does_not_listen_still_notifies(postgres_dsn: str) -> None:
    """`coi user` and other commands open the store without listening; a running server
    still hears of their changes (and the command's own writes report after COMMIT)."""
    server = PostgresStore(postgres_dsn)
    command = PostgresStore(postgres_dsn, listen=False)
    try:
        seen: list[Event] = []
        server.events.watch_all(seen.append)
        own: list[Event] = []
        command.events.watch_all(own.append)
        user, inbox = await user_with_inbox(command)
        assert len(own) == 3  # published before add_user returned
        await command.append(inbox.id, [message()])
        await _until(seen, 4)
        assert isinstance(seen[-1], MessagesAdded) and seen[-1].user_id == user.id
    finally:
        command.close()
        server.close()


async def test_a_lost_listen_connection_comes_back(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """The LISTEN connection is killed (a server restart would do it): writes go on and
    are reported; once it is back its listeners are told they may have missed changes
    (`ChangesMissed`), and the other process's events arrive again."""
    import asyncpg

    first, second = pair
    _, inbox = await user_with_inbox(first)
    seen: list[Event] = []
    first.events.watch_mailbox(inbox.id, seen.append)
    listener = first._listener
    assert listener is not None
    admin = await asyncpg.connect(first.dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
    finally:
        await admin.close()
    for _ in range(200):  # lost, then back on a new connection
        if first._listener is not None and first._listener is not listener:
            break
        await asyncio.sleep(0.025)
    assert first._listener is not None and first._listener is not listener
    await _until(seen, 1)
    assert seen == [ChangesMissed()]
    await first.append(inbox.id, [message("own")])  # reported, through the new listener
    assert [e.uids for e in seen if isinstance(e, MessagesAdded)] == [(1,)]
    await second.append(inbox.id, [message("theirs")])
    await _until(seen, 3)
    assert isinstance(seen[2], MessagesAdded) and seen[2].uids == (2,)
    assert seen[2].origin is REMOTE


async def _function_calls(dsn: str, names: tuple[str, ...]) -> dict[str, int]:
    """Calls of the store's PL/pgSQL functions counted by PostgreSQL (`track_functions`),
    once the session that made them has reported them (at its end). The first name is
    called in every case, in the same session as the others."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(250):
            rows = await conn.fetch(
                "SELECT funcname, calls FROM pg_stat_user_functions WHERE funcname = ANY ($1)",
                list(names),
            )
            calls = {name: 0 for name in names} | {row[0]: row[1] for row in rows}
            if calls[names[0]]:
                return calls
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            await asyncio.sleep(0.02)
        raise AssertionError(f"no calls of {names[0]} reported")
    finally:
        await conn.close()


@pytest.mark.parametrize("fsync", ["always", "optimized"])
async def test_flag_changes_wait_for_their_wal_flush_only_under_always(
    postgres_dsn: str, fsync: str
) -> None:
    """README, Durability: under `fsync = optimized` a STORE commits without waiting for
    its WAL flush (`coi_store_flags_lazy`, migration 11), a new message still waits; under
    `always` every write does. The results and events are the same either way."""
    import asyncpg

    admin = await asyncpg.connect(postgres_dsn)
    try:  # the store's sessions count their function calls
        await admin.execute(
            f"ALTER DATABASE {postgres_dsn.rsplit('/', 1)[1]} SET track_functions = 'pl'"
        )
    finally:
        await admin.close()
    store = PostgresStore(postgres_dsn, fsync=fsync)
    try:
        _, inbox = await user_with_inbox(store)
        seen: list[Event] = []
        store.events.watch_mailbox(inbox.id, seen.append)
        _, uids = await store.append(inbox.id, [message("a"), message("b")])
        changed, failed, _ = await store.store_flags(inbox.id, uids, "add", Flags(SEEN | DELETED))
        assert [(uid, f.bits) for uid, f, _ in changed] == [(1, 9), (2, 9)] and failed == []
        assert isinstance(seen[-1], FlagsChanged) and len(seen[-1].changes) == 2
        await store.claim_recent(inbox.id, 2)
        status = store.status(inbox)
        assert (status.messages, status.unseen, status.deleted) == (2, 0, 2)
        _, [late] = await store.append(inbox.id, [replace(message("c"), preview=None)])
        blob_id = (await store.read_rows(inbox.id, [late]))[late].blob_id
        await store.save_previews({blob_id: "a late preview"})
        assert store.previews([blob_id]) == {blob_id: "a late preview"}
    finally:
        store.close()
    calls = await _function_calls(postgres_dsn, ("coi_store_flags_many", "coi_store_flags_lazy"))
    lazy = 1 if fsync == "optimized" else 0
    assert calls == {"coi_store_flags_many": 1, "coi_store_flags_lazy": lazy}


async def test_the_lazy_store_commits_without_its_wal_flush(postgres_dsn: str) -> None:
    """`coi_store_flags_lazy` leaves `synchronous_commit` off for the rest of its
    transaction, its SET clause (`plan_cache_mode`) notwithstanding, as `coi_take_recent`
    does (migration 8)."""
    import asyncpg

    store = PostgresStore(postgres_dsn)
    try:
        _, inbox = await user_with_inbox(store)
        await store.append(inbox.id, [message()])
    finally:
        store.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for function, expected in (("many", "on"), ("lazy", "off")):
            async with conn.transaction():
                await conn.fetch(
                    f"SELECT * FROM coi_store_flags_{function}($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    inbox.id, [1], [1], ["add"], [SEEN], [""], [None], "t", [1],
                )  # fmt: skip
                assert await conn.fetchval("SHOW synchronous_commit") == expected
        async with conn.transaction():
            await conn.fetchval("SELECT coi_take_recent($1, 1)", inbox.id)
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
    finally:
        await conn.close()


def test_an_unknown_fsync_policy_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(ValueError, match="use always or optimized"):
        PostgresStore(postgres_dsn, fsync="sometimes")


async def test_the_store_functions_plan_their_statements_once(postgres_dsn: str) -> None:
    """Migration 11: every function of the schema keeps one plan per statement (custom
    plans made anew at each call cost a fifth of a STORE); migration 15: with index scans
    that mark dead index entries (a bitmap scan does not)."""
    import asyncpg

    PostgresStore(postgres_dsn).close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT proname, proconfig FROM pg_proc WHERE proname LIKE 'coi\\_%'"
        )
    finally:
        await conn.close()
    settings = {row[0]: row[1] for row in rows}
    assert len(settings) >= 10
    assert settings == {
        name: ["plan_cache_mode=force_generic_plan", "enable_bitmapscan=off"]
        for name in settings
    }


async def test_small_bodies_are_kept_in_their_row(postgres_dsn: str) -> None:
    """Migration 12: a body of a few KB is read from its row, not from TOAST chunks; a
    large one still goes out of line."""
    import asyncpg

    store = PostgresStore(postgres_dsn)
    try:
        _, inbox = await user_with_inbox(store)
        small, large = message("small", "x" * 6000), message("large", "y" * 20_000)
        await store.append(inbox.id, [small, large])
        assert (await store.blobs([1, 2]))[1][0] == small.raw
    finally:
        store.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        toast = await conn.fetchval(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'bodies'"
        )
        out_of_line = await conn.fetchval(f"SELECT count(DISTINCT chunk_id) FROM {toast}")
        lengths = await conn.fetch("SELECT octet_length(raw) FROM bodies ORDER BY blob_id")
    finally:
        await conn.close()
    assert out_of_line == 1  # the large one
    assert [row[0] for row in lengths] == [len(small.raw), len(large.raw)]
