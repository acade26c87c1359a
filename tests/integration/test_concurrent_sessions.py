"""Several sessions on one mailbox see each other's changes under RFC 3501 §7.4.1 / §2.3.2."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests.conftest import LineClient, RunningServer, open_other_store, serving
from tests.contract.helpers import message

from coi.store.model import ANSWERED, DELETED, FLAGGED, Flags, Mailbox
from coi.store.protocol import Store

MESSAGE = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


async def _client(server: RunningServer, user: str = "alice@example.org") -> LineClient:
    client = await LineClient.connect(server)
    await client.login(user)
    return client


async def _append(client: LineClient, tag: str = "ap") -> list[bytes]:
    await client.send(f"{tag} APPEND INBOX {{{len(MESSAGE)}+}}\r\n".encode() + MESSAGE + b"\r\n")
    return await client.until_tagged(tag)


async def test_new_messages_reach_every_session_recent_only_once(
    imap_server: RunningServer,
) -> None:
    first, second, writer = [await _client(imap_server) for _ in range(3)]
    assert (await first.command("s1 SELECT INBOX"))[-1].startswith(b"s1 OK [READ-WRITE]")
    assert (await second.command("s2 SELECT INBOX"))[-1].startswith(b"s2 OK")
    assert (await _append(writer))[-1].startswith(b"ap OK [APPENDUID ")
    got_first = await first.command("n1 NOOP")
    got_second = await second.command("n2 NOOP")
    assert got_first[:2] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"]
    assert got_second[:2] == [b"* 1 EXISTS\r\n", b"* 0 RECENT\r\n"]
    # a session selecting later sees it as not recent any more
    third = await _client(imap_server)
    lines = await third.command("s3 SELECT INBOX")
    assert b"* 0 RECENT\r\n" in lines
    for c in (first, second, writer, third):
        await c.close()


async def test_expunge_is_not_sent_during_fetch_but_after_noop(imap_server: RunningServer) -> None:
    writer = await _client(imap_server)
    await _append(writer, "a1")
    await _append(writer, "a2")
    one, two = await _client(imap_server), await _client(imap_server)
    await one.command("s1 SELECT INBOX")
    await two.command("s2 SELECT INBOX")
    lines = await one.command("st STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert lines == [b"st OK STORE completed\r\n"] or lines[-1].startswith(b"st OK")
    lines = await one.command("ex EXPUNGE")
    assert lines[0] == b"* 1 EXPUNGE\r\n" and lines[-1].startswith(b"ex OK")
    # the other session must keep its numbering during FETCH (RFC 3501 §7.4.1)
    lines = await two.command("f1 FETCH 2 (UID)")
    assert not any(b"EXPUNGE" in line for line in lines)
    assert lines[0].startswith(b"* 2 FETCH (")
    # ... and hears about it at the next command that allows it
    lines = await two.command("n1 NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines
    lines = await two.command("f2 FETCH 1 (UID)")
    assert lines[0] == b"* 1 FETCH (UID 2)\r\n"
    for c in (writer, one, two):
        await c.close()


async def test_flag_changes_are_announced_to_other_sessions(imap_server: RunningServer) -> None:
    writer = await _client(imap_server)
    await _append(writer)
    one, two = await _client(imap_server), await _client(imap_server)
    await one.command("s1 SELECT INBOX")
    await two.command("s2 SELECT INBOX")
    await one.command("st STORE 1 +FLAGS (\\Flagged)")
    lines = await two.command("n NOOP")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Flagged") and b"UID 1" in lines[0]
    for c in (writer, one, two):
        await c.close()


async def test_idle_wakes_on_delivery(imap_server: RunningServer) -> None:
    idler, writer = await _client(imap_server), await _client(imap_server)
    await idler.command("s SELECT INBOX")
    await idler.send("i IDLE\r\n")
    assert (await idler.line()).startswith(b"+ ")
    await _append(writer)
    assert await idler.line(timeout=5) == b"* 1 EXISTS\r\n"
    assert await idler.line(timeout=5) == b"* 1 RECENT\r\n"
    await idler.send("DONE\r\n")
    assert (await idler.line()).startswith(b"i OK")
    for c in (idler, writer):
        await c.close()


async def test_users_never_see_each_other(imap_server: RunningServer) -> None:
    alice, bob = await _client(imap_server), await _client(imap_server, "bob@example.org")
    await alice.command("c CREATE private/diary")
    await _append(alice)
    lines = await bob.command('l LIST "" "*"')
    assert not any(b"private" in line for line in lines)
    assert (await bob.command("s SELECT private/diary"))[-1].startswith(b"s NO")
    assert (await bob.command("st STATUS INBOX (MESSAGES)"))[
        0
    ] == b"* STATUS INBOX (MESSAGES 0)\r\n"
    for c in (alice, bob):
        await c.close()


async def test_many_concurrent_appenders_get_distinct_uids(imap_server: RunningServer) -> None:
    clients = [await _client(imap_server) for _ in range(8)]

    async def burst(client: LineClient, n: int) -> list[bytes]:
        out = []
        for i in range(10):
            out.append((await _append(client, f"t{n}x{i}"))[-1])
        return out

    results = await asyncio.gather(*(burst(c, n) for n, c in enumerate(clients)))
    uids = [line.split()[4].rstrip(b"]") for lines in results for line in lines]
    assert len(uids) == 80 and len(set(uids)) == 80
    for c in clients:
        await c.close()


class _HeldEvents:
    """Holds back the store's change events, as when the loop has not yet run the writer's
    report of a commit that readers already see (the window between COMMIT and the events'
    publication, long on a loaded machine)."""

    def __init__(self, server: RunningServer) -> None:
        if not hasattr(server.store, "_writer"):  # the SQLite writer's hook; not PostgreSQL's
            pytest.skip("holds events back in the SQLite writer only")
        self.writer = server.store._writer
        self.publish = self.writer._publish
        self.events: list[object] = []
        self.writer._publish = self.events.append  # type: ignore[assignment]

    def release(self, count: int | None = None) -> None:
        """Publishes the first `count` held events (all by default), in commit order."""
        count = len(self.events) if count is None else count
        for event in self.events[:count]:
            self.publish(event)  # type: ignore[arg-type]
        del self.events[:count]

    def stop(self) -> None:
        self.release()
        self.writer._publish = self.publish


async def test_flags_never_go_back_to_a_state_older_than_a_fetch_showed(
    imap_server: RunningServer,
) -> None:
    """A FETCH that reads a committed row whose change event has not come yet shows the new
    flags and MODSEQ; a later FETCH of FLAGS must not show the older flags again (the flags
    kept for the mailbox lag that event), nor the event bring an older MODSEQ (RFC 7162
    §3.1.3, RFC 3501 §7.4.2: a client's view of a message only moves forward)."""
    writer = await _client(imap_server)
    await _append(writer)
    one = await _client(imap_server)
    await one.command("s SELECT INBOX (CONDSTORE)")
    assert (await one.command("f0 FETCH 1 (FLAGS)"))[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    held = _HeldEvents(imap_server)
    try:
        (_, _, answered), *_ = (
            await store.store_flags(inbox.id, [1], "add", Flags(ANSWERED), origin=writer)
        )[0]
        (_, _, flagged), *_ = (
            await store.store_flags(inbox.id, [1], "add", Flags(FLAGGED), origin=writer)
        )[0]
        assert len(held.events) == 2
        lines = await one.command("f1 FETCH 1 (FLAGS MODSEQ)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent) MODSEQ (%d))\r\n" % (
            flagged
        )
        lines = await one.command("f2 FETCH 1 (FLAGS)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
        held.release(1)  # the event of the first change: older than what was shown
        lines = await one.command("n1 NOOP")
        for line in lines[:-1]:
            assert b"MODSEQ (%d)" % answered not in line, line
            assert b"\\Flagged" in line, line
        lines = await one.command("f3 FETCH 1 (FLAGS)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
        held.release()
        lines = await one.command("n2 NOOP")
        assert lines[:-1] in (
            [],
            [b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent) UID 1 MODSEQ (%d))\r\n" % flagged],
        )
    finally:
        held.stop()
    for c in (writer, one):
        await c.close()


async def test_a_pending_update_older_than_flags_another_session_was_shown_is_not_sent(
    imap_server: RunningServer,
) -> None:
    """Session two has the first change pending; session one is shown a newer one from its
    row before that change's event: two's FETCH FLAGS (from the shared flags, now the
    newer state) must not be followed by the older pending update."""
    writer = await _client(imap_server)
    await _append(writer)
    one, two = await _client(imap_server), await _client(imap_server)
    await one.command("s SELECT INBOX (CONDSTORE)")
    await two.command("s EXAMINE INBOX")
    await two.command("f0 FETCH 1 (FLAGS)")
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await store.store_flags(inbox.id, [1], "add", Flags(ANSWERED), origin=writer)  # published
    held = _HeldEvents(imap_server)
    try:
        await store.store_flags(inbox.id, [1], "add", Flags(FLAGGED), origin=writer)
        lines = await one.command("f1 FETCH 1 (FLAGS MODSEQ)")
        assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent) MODSEQ")
        lines = await two.command("f2 FETCH 1 (FLAGS)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged))\r\n"
        for line in lines[1:-1]:
            assert b"\\Flagged" in line, line
    finally:
        held.stop()
    lines = await two.command("n NOOP")
    for line in lines[:-1]:
        assert b"\\Flagged" in line, line
    for c in (writer, one, two):
        await c.close()


async def test_flags_first_read_ahead_of_events_are_not_taken_back_by_an_older_event(
    imap_server: RunningServer,
) -> None:
    """The mailbox's flags read for the first FETCH FLAGS may already hold changes whose
    events have not come: the older of those events must not bring older flags back."""
    writer = await _client(imap_server)
    await _append(writer)
    one = await _client(imap_server)
    await one.command("s SELECT INBOX")
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    held = _HeldEvents(imap_server)
    try:
        await store.store_flags(inbox.id, [1], "add", Flags(ANSWERED), origin=writer)
        await store.store_flags(inbox.id, [1], "add", Flags(FLAGGED), origin=writer)
        lines = await one.command("f1 FETCH 1 (FLAGS)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
        held.release(1)
        lines = await one.command("n1 NOOP")
        for line in lines[:-1]:
            assert b"\\Flagged" in line, line
        lines = await one.command("f2 FETCH 1 (FLAGS)")
        assert lines[0] == b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
    finally:
        held.stop()
    for c in (writer, one):
        await c.close()


async def test_store_announces_a_keyword_another_session_set_before_showing_it(
    imap_server: RunningServer,
) -> None:
    """STORE's FETCH responses read the committed rows, which may carry a keyword another
    session just set and whose event has not come: `* FLAGS` must announce it first
    (RFC 3501 §7.2.6)."""
    writer = await _client(imap_server)
    await _append(writer)
    one = await _client(imap_server)
    await one.command("s SELECT INBOX")
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    held = _HeldEvents(imap_server)
    try:
        await store.store_flags(inbox.id, [1], "add", Flags(0, ("Fresh",)), origin=writer)
        lines = await one.command("st STORE 1 +FLAGS (\\Seen)")
        assert lines[0].startswith(b"* FLAGS (") and b"Fresh" in lines[0], lines
        assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"Fresh" in lines[1], lines
        assert lines[2] == b"* 1 FETCH (FLAGS (\\Seen \\Recent Fresh))\r\n", lines
    finally:
        held.stop()
    for c in (writer, one):
        await c.close()


async def test_first_fetch_flags_announces_a_keyword_read_ahead_of_its_event(
    imap_server: RunningServer,
) -> None:
    """The mailbox's flags, read for the first FETCH FLAGS, may carry a keyword whose event
    has not come: `* FLAGS` must announce it before the FETCH (RFC 3501 §7.2.6)."""
    writer = await _client(imap_server)
    await _append(writer)
    one = await _client(imap_server)
    await one.command("s SELECT INBOX")
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    held = _HeldEvents(imap_server)
    try:
        await store.store_flags(inbox.id, [1], "add", Flags(0, ("Fresh",)), origin=writer)
        lines = await one.command("f FETCH 1 (FLAGS)")
        assert lines[0].startswith(b"* FLAGS (") and b"Fresh" in lines[0], lines
        assert lines[2] == b"* 1 FETCH (FLAGS (\\Recent Fresh))\r\n", lines
    finally:
        held.stop()
    for c in (writer, one):
        await c.close()


async def _expunge_unannounced(server: RunningServer, mailbox_id: int, uids: list[int]) -> None:
    """Removes messages with no event: as another process's expunge before its event came."""
    dsn = getattr(server.store, "dsn", None)
    if dsn is None:
        with contextlib.closing(sqlite3.connect(server.store.path)) as conn, conn:  # type: ignore[attr-defined]
            marks = ",".join("?" * len(uids))
            conn.execute(
                f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *uids),
            )
        return
    asyncpg = pytest.importorskip("asyncpg")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2)", mailbox_id, uids
        )
    finally:
        await conn.close()


async def test_a_store_reports_no_message_expunged_elsewhere_but_not_yet_announced(
    imap_server: RunningServer,
) -> None:
    """STORE reports the rows it found under the mailbox's lock: messages another process
    expunged, whose event has not come yet, get no FETCH (their sequence numbers stay until
    the EXPUNGE is announced, RFC 3501 §7.4.1), never flags from before the expunge (the
    rows a FETCH just read are cached on PostgreSQL)."""
    writer = await _client(imap_server)
    await _append(writer, "a1")
    await _append(writer, "a2")
    one = await _client(imap_server)
    await one.command("s SELECT INBOX")
    await one.command("d STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    lines = await one.command("f FETCH 1:2 (FLAGS ENVELOPE)")  # rows read, and cached
    assert [b"\\Deleted" in line for line in lines] == [True, True, False]
    store = imap_server.store
    user = store.get_user("alice@example.org")
    assert user is not None
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await _expunge_unannounced(imap_server, inbox.id, [1])
    lines = await one.command("u STORE 1:2 -FLAGS (\\Deleted)")
    assert lines == [b"* 2 FETCH (FLAGS (\\Recent))\r\n", b"u OK STORE completed\r\n"]
    lines = await one.command("n NOOP")  # the expunge is never announced here: no event
    assert lines == [b"n OK NOOP completed\r\n"]


@pytest.fixture
async def postgres_imap_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningServer]:
    """A test server on PostgreSQL whatever COI_TEST_STORE says."""
    monkeypatch.setenv("COI_TEST_STORE", "postgres")
    async with serving(tmp_path) as running:
        yield running


async def _selected_with(
    server: RunningServer, count: int
) -> tuple[LineClient, LineClient, Mailbox]:
    """A session that appended `count` messages to alice's INBOX, another that has it
    selected, and the mailbox."""
    writer = await _client(server)
    for n in range(count):
        await _append(writer, f"a{n}")
    one = await _client(server)
    await one.command("s SELECT INBOX")
    user = server.store.get_user("alice@example.org")
    assert user is not None
    inbox = server.store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    return writer, one, inbox


async def _listen_held_down(store: Store, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Cuts the store's LISTEN connection and keeps it down, known to be (its reconnects
    fail), until the returned event is set."""
    asyncpg = pytest.importorskip("asyncpg")
    back = threading.Event()
    listen = store._listen  # type: ignore[attr-defined]

    async def held() -> None:
        if not back.is_set():
            raise OSError("held by the test")
        await listen()

    monkeypatch.setattr(store, "_listen", held)
    admin = await asyncpg.connect(store.dsn)  # type: ignore[attr-defined]
    try:
        pid = store._listener.get_server_pid()  # type: ignore[attr-defined]
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    for _ in range(400):
        if store._listener is None:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.025)
    assert store._listener is None  # type: ignore[attr-defined]
    return back


async def _listen_back(store: Store, back: threading.Event) -> None:
    back.set()
    for _ in range(400):
        if store._listener is not None:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.025)
    raise AssertionError("LISTEN did not come back")


async def _while_listen_is_cut(
    server: RunningServer, changes: Callable[[Store], Awaitable[None]]
) -> None:
    """Cuts the store's LISTEN connection with its thread held (the cut is seen only
    when freed), and makes `changes` meanwhile from another process's store: their
    events never reach this one."""
    asyncpg = pytest.importorskip("asyncpg")
    store = server.store
    deaf = threading.Event()
    store._loop.call_soon_threadsafe(deaf.wait, 30)  # type: ignore[attr-defined]
    other = open_other_store(server)
    try:
        admin = await asyncpg.connect(store.dsn)  # type: ignore[attr-defined]
        try:
            pid = store._listener.get_server_pid()  # type: ignore[attr-defined]
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            for _ in range(200):
                if not await admin.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid):
                    break
                await asyncio.sleep(0.025)
        finally:
            await admin.close()
        await changes(other)
    finally:
        deaf.set()
        other.close()


async def test_changes_made_while_the_listen_connection_was_down_reach_idle(
    postgres_imap_server: RunningServer,
) -> None:
    """PostgreSQL: this process's LISTEN connection is cut (a server restart, a network
    cut) and another process changes the selected mailbox before it is back; those
    events never come. Once it is back the mailbox is read again, and the session in
    IDLE gets the flag change, the expunge and the new message as the events would have
    brought them; a NOTIFY session (RFC 5465) gets the STATUS of the mailboxes it asked
    about."""
    imap_server = postgres_imap_server
    store = imap_server.store
    writer, one, inbox = await _selected_with(imap_server, 3)
    await one.send("i IDLE\r\n")
    assert (await one.line()).startswith(b"+ ")
    two = await _client(imap_server)
    assert await two.command("n NOTIFY SET (inboxes (MessageNew MessageExpunge))") == [
        b"n OK NOTIFY completed\r\n"
    ]

    async def changes(other: Store) -> None:
        await other.store_flags(inbox.id, [1], "add", Flags(FLAGGED))
        await other.store_flags(inbox.id, [2], "add", Flags(DELETED))
        assert await other.expunge(inbox.id, [2]) == [2]
        await other.append(inbox.id, [message("late")])

    listener = store._listener  # type: ignore[attr-defined]
    await _while_listen_is_cut(imap_server, changes)
    lines = []
    while not lines or not lines[-1].endswith(b"RECENT\r\n"):
        lines.append(await one.line())
    assert lines == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n",
        b"* 2 EXPUNGE\r\n",
        b"* 3 EXISTS\r\n",
        b"* 3 RECENT\r\n",
    ]
    assert store._listener is not None and store._listener is not listener  # type: ignore[attr-defined]
    statuses = [await two.line()]
    while not statuses[-1].startswith(b"* STATUS INBOX "):
        statuses.append(await two.line())
    assert statuses[-1] == b"* STATUS INBOX (MESSAGES 3 UIDNEXT 5 UIDVALIDITY %d)\r\n" % (
        inbox.uidvalidity
    )
    assert all(line.startswith(b"* STATUS ") for line in statuses)
    await one.send("DONE\r\n")
    assert (await one.until_tagged("i"))[-1].startswith(b"i OK")
    # a change after the gap comes as before, once
    await _append(writer, "a4")
    assert await one.command("n NOOP") == [
        b"* 4 EXISTS\r\n",
        b"* 4 RECENT\r\n",
        b"n OK NOOP completed\r\n",
    ]
    for client in (writer, one, two):
        await client.close()


async def test_mailbox_names_changed_while_the_listen_connection_was_down_reach_notify(
    postgres_imap_server: RunningServer,
) -> None:
    """PostgreSQL: mailboxes created, renamed and deleted and a subscription made by
    another process while this one's LISTEN connection was down reach a NOTIFY session
    (RFC 5465 §5.4, §5.5) once it is back: the LIST responses their events would have
    brought, a rename with OLDNAME (its inferiors move with it), read from the names."""
    imap_server = postgres_imap_server
    store = imap_server.store
    writer = await _client(imap_server)
    for name in ("Old/Child", "Doomed"):
        assert (await writer.command(f"c CREATE {name}"))[-1].startswith(b"c OK [MAILBOXID ")
    watcher = await _client(imap_server)
    assert await watcher.command("n NOTIFY SET (personal (MailboxName SubscriptionChange))") == [
        b"n OK NOTIFY completed\r\n"
    ]
    user = store.get_user("alice@example.org")
    assert user is not None

    async def changes(other: Store) -> None:
        await other.rename_mailbox(user.id, "Old", "New")
        await other.delete_mailbox(user.id, "Doomed")
        await other.create_mailbox(user.id, "Gap")
        await other.set_subscribed(user.id, "Gap", True)

    await _while_listen_is_cut(imap_server, changes)
    lines = [await watcher.line() for _ in range(3)]
    assert lines == [
        b'* LIST (\\HasChildren) "/" New ("OLDNAME" (Old))\r\n',
        b'* LIST (\\NonExistent) "/" Doomed\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" Gap\r\n',
    ]
    # nothing more: the subscription's LIST is the creation's
    assert await watcher.command("p NOOP") == [b"p OK NOOP completed\r\n"]
    # a change after the gap comes as before, once
    assert (await writer.command("c CREATE Later"))[-1].startswith(b"c OK [MAILBOXID ")
    assert await watcher.line() == b'* LIST (\\HasNoChildren) "/" Later\r\n'
    for client in (writer, watcher):
        await client.close()


async def test_metadata_changed_while_the_listen_connection_was_down_is_reported(
    postgres_imap_server: RunningServer,
) -> None:
    """PostgreSQL: METADATA entries set, changed and removed by another process while this
    one's LISTEN connection was down reach a session that ENABLEd METADATA (RFC 5464
    §4.4.2) and one with NOTIFY's metadata events (RFC 5465 §5.7, §5.8) once it is back:
    the entries whose values differ, as their events would have named them."""
    imap_server = postgres_imap_server
    store = imap_server.store
    writer = await _client(imap_server)
    for entries in ('"" (/private/doomed "a" /shared/kept "b")', 'INBOX (/private/x "1")'):
        assert (await writer.command(f"m SETMETADATA {entries}"))[-1] == (
            b"m OK SETMETADATA complete\r\n"
        )
    enabled, notified = await _client(imap_server), await _client(imap_server)
    assert (await enabled.command("e ENABLE METADATA"))[-1] == b"e OK ENABLE completed\r\n"
    assert await notified.command(
        "n NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))"
    ) == [b"n OK NOTIFY completed\r\n"]
    await enabled.send("i IDLE\r\n")
    assert (await enabled.line()).startswith(b"+ ")
    user = store.get_user("alice@example.org")
    inbox = store.get_mailbox(user.id, "INBOX") if user is not None else None
    assert user is not None and inbox is not None

    async def changes(other: Store) -> None:
        await other.set_metadata(user.id, 0, [("/private/doomed", None), ("/shared/new", b"c")])
        await other.set_metadata(user.id, inbox.id, [("/private/x", b"2")])
        await other.set_metadata(user.id, inbox.id, [("/private/x", b"1")])  # as it was

    await _while_listen_is_cut(imap_server, changes)
    expected = [b'* METADATA "" /private/doomed /shared/new\r\n']
    assert [await enabled.line()] == expected
    assert [await notified.line()] == expected
    await enabled.send("DONE\r\n")
    assert await enabled.until_tagged("i") == [b"i OK IDLE terminated\r\n"]
    assert await notified.command("p NOOP") == [b"p OK NOOP completed\r\n"]
    # a change after the gap comes as before, once
    assert (await writer.command('m SETMETADATA INBOX (/private/x "3")'))[-1].startswith(b"m OK")
    assert await enabled.command("p NOOP") == [
        b'* METADATA "INBOX" /private/x\r\n',
        b"p OK NOOP completed\r\n",
    ]
    assert await notified.line() == b'* METADATA "INBOX" /private/x\r\n'
    for client in (writer, enabled, notified):
        await client.close()


async def test_own_messages_after_others_added_unheard_keep_uids_ascending(
    postgres_imap_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL, with LISTEN down and known to be (its reconnects fail meanwhile):
    another process appends, then a session of this one. Its own message is published at
    once (no notification to wait for); the one added unheard below it is read and shown
    first, so the IDLE session sees both, in UID order, and nothing twice once LISTEN is
    back."""
    imap_server = postgres_imap_server
    store = imap_server.store
    writer, one, inbox = await _selected_with(imap_server, 2)
    back = await _listen_held_down(store, monkeypatch)
    await one.send("i IDLE\r\n")
    assert (await one.line()).startswith(b"+ ")
    other = open_other_store(imap_server)
    try:
        await other.append(inbox.id, [message("unheard")])  # UID 3
    finally:
        other.close()
    assert (await _append(writer, "a3"))[-1].startswith(
        b"a3 OK [APPENDUID %d 4]" % inbox.uidvalidity
    )
    lines = [await one.line() for _ in range(4)]  # the one read first, then its own
    assert lines == [b"* 3 EXISTS\r\n", b"* 3 RECENT\r\n", b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n"]
    await _listen_back(store, back)
    await one.send("DONE\r\n")
    done = await one.until_tagged("i")
    assert done[-1].startswith(b"i OK") and not any(b"EXISTS" in line for line in done)
    fetched = await one.command("f FETCH 1:* (UID)")
    assert fetched[:-1] == [b"* %d FETCH (UID %d)\r\n" % (n, n) for n in range(1, 5)]
    assert await one.command("n NOOP") == [b"n OK NOOP completed\r\n"]
    for client in (writer, one):
        await client.close()


async def test_changes_unheard_below_own_writes_of_the_gap_are_read_when_listen_is_back(
    postgres_imap_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL, LISTEN down: another process flags message 1 and expunges message 2,
    then a session of this one changes message 3, which raises the MODSEQ this process
    has applied above theirs. Once LISTEN is back, what changed from before their MODSEQs
    is read: the other session gets them."""
    imap_server = postgres_imap_server
    store = imap_server.store
    writer, one, inbox = await _selected_with(imap_server, 3)
    assert (await writer.command("s SELECT INBOX"))[-1].startswith(b"s OK")
    back = await _listen_held_down(store, monkeypatch)
    other = open_other_store(imap_server)
    try:
        await other.store_flags(inbox.id, [1], "add", Flags(FLAGGED))
        await other.store_flags(inbox.id, [2], "add", Flags(DELETED))
        assert await other.expunge(inbox.id, [2]) == [2]
    finally:
        other.close()
    assert (await writer.command("t UID STORE 3 +FLAGS.SILENT (\\Answered)"))[-1].startswith(
        b"t OK"
    )
    assert await one.command("n NOOP") == [
        b"* 3 FETCH (FLAGS (\\Answered \\Recent) UID 3)\r\n",
        b"n OK NOOP completed\r\n",
    ]
    await _listen_back(store, back)
    await one.send("i IDLE\r\n")
    lines = [await one.line() for _ in range(4)]
    assert lines[0].startswith(b"+ ")
    assert lines[1:] == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n",
        b"* 3 FETCH (FLAGS (\\Answered \\Recent) UID 3)\r\n",  # its own, read again: once more
        b"* 2 EXPUNGE\r\n",
    ]
    await one.send("DONE\r\n")
    assert (await one.until_tagged("i"))[-1].startswith(b"i OK")
    for client in (writer, one):
        await client.close()



FETCHED_UID = re.compile(rb"\* \d+ FETCH \(UID (\d+)")


def _select_facts(lines: list[bytes]) -> tuple[list[int], int]:
    """(every EXISTS count, UIDNEXT) of a SELECT response."""
    exists = [int(line.split()[1]) for line in lines if line.endswith(b" EXISTS\r\n")]
    [uidnext] = [int(m[1]) for line in lines if (m := re.search(rb"\[UIDNEXT (\d+)\]", line))]
    return exists, uidnext


async def test_select_is_one_snapshot_while_messages_arrive(imap_server: RunningServer) -> None:
    """A SELECT's EXISTS and UIDNEXT describe one moment while another session appends
    (RFC 3501 §2.3.1.1, §6.3.1): the messages it shows are below UIDNEXT, those announced
    later at or above it, and none is announced before its OK, below a UIDNEXT a client
    fetches from (Delta Chat then waited in IDLE for a message it had been shown)."""
    writer, reader = await _client(imap_server), await _client(imap_server)
    stop = asyncio.Event()

    async def append_until_stopped() -> int:
        count = 0
        while not stop.is_set():
            count += 1
            assert (await _append(writer, f"a{count}"))[-1].startswith(b"a%d OK" % count)
        return count

    appending = asyncio.create_task(append_until_stopped())
    try:
        for n in range(40):
            exists, uidnext = _select_facts(await reader.command(f"s{n} SELECT INBOX"))
            assert len(exists) == 1, exists
            await reader.command(f"n{n} NOOP")  # what arrived since
            lines = await reader.command(f"f{n} FETCH 1:* (UID)")
            uids = [int(m[1]) for line in lines if (m := FETCHED_UID.match(line))]
            assert all(uid < uidnext for uid in uids[: exists[0]]), (uidnext, exists, uids)
            assert all(uid >= uidnext for uid in uids[exists[0] :]), (uidnext, exists, uids)
    finally:
        stop.set()
        assert await appending > 0
    for c in (writer, reader):
        await c.close()


async def _deleted_while_logged_in(server: RunningServer, store: Store) -> None:
    """alice, in IDLE and between commands, is deleted through `store`: both her sessions
    are told BYE and closed; bob's goes on."""
    idle, waiting = await _client(server), await _client(server)
    bob = await _client(server, "bob@example.org")
    assert (await idle.command("s SELECT INBOX"))[-1].startswith(b"s OK")
    await idle.send("i IDLE\r\n")
    assert (await idle.line()).startswith(b"+ ")
    await store.delete_user("alice@example.org")
    for client in (idle, waiting):
        assert await client.line() == b"* BYE Account deleted\r\n"
        assert await client.reader.read() == b""  # closed
    assert await bob.command("n NOOP") == [b"n OK NOOP completed\r\n"]
    await bob.close()


async def test_a_deleted_users_sessions_end(imap_server: RunningServer) -> None:
    await _deleted_while_logged_in(imap_server, imap_server.store)


async def test_a_user_deleted_by_another_process_has_its_sessions_ended(
    imap_server: RunningServer,
) -> None:
    """`coi user del` in another process ends the user's sessions here: on PostgreSQL by
    its notification, on SQLite by the deletions the store looks for every second."""
    await imap_server.store.warm_up()  # as `coi serve` does
    other = open_other_store(imap_server)
    try:
        await _deleted_while_logged_in(imap_server, other)
    finally:
        other.close()
