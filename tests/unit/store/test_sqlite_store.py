"""What only the SQLite backend promises: its query plans. Behaviour shared by every
backend is in tests/contract (run there on SQLite too)."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coi.store.model import DELETED, Flags, NewMessage
from coi.store.sqlite.store import SqliteStore


def _msg() -> NewMessage:
    return NewMessage(
        b"Subject: hi\r\n\r\nhello\r\n",
        b"meta",
        b"search",
        Flags(),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "coi.sqlite3")
    yield s
    s.close()


async def test_changed_and_vanished_since_use_indexes(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [_msg(), _msg(), _msg()])  # MODSEQ 2
    await store.store_flags(inbox.id, [2, 3], "add", Flags(DELETED))  # 3
    await store.expunge(inbox.id, [3])  # 4
    assert [r.uid for r in await store.changed_since(inbox.id, 2)] == [2]
    assert await store.vanished_since(inbox.id, 3) == [3]
    conn = store._read
    plans = [
        " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (1, 1)))
        for sql in (
            "SELECT uid FROM messages INDEXED BY messages_modseq"
            " WHERE mailbox_id = ? AND modseq > ?",
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
        )
    ]
    assert "messages_modseq" in plans[0]
    assert "expunged_modseq" in plans[1]


async def test_object_ids_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    """RFC 8474: MAILBOXID and EMAILID are the same after a restart; a body id (and so an
    EMAILID) is not given again after the body with the highest id is gone, also across
    a restart."""
    s = SqliteStore(tmp_path / "db")
    user = await s.add_user("a@x.org", "h", [])
    inbox = s.get_mailbox(user.id, "INBOX")
    assert inbox
    _, (uid,) = await s.append(inbox.id, [_msg()])
    blob = s.rows(inbox.id, [uid])[uid].blob_id
    ids = (s.mailboxid(inbox), s.emailid(blob))
    await s.store_flags(inbox.id, [uid], "add", Flags(DELETED))
    await s.expunge(inbox.id)
    s.close()
    s2 = SqliteStore(tmp_path / "db")
    try:
        assert (s2.mailboxid(inbox), s2.emailid(blob)) == ids
        _, (uid2,) = await s2.append(inbox.id, [_msg()])
        assert s2.rows(inbox.id, [uid2])[uid2].blob_id > blob
    finally:
        s2.close()
    other = SqliteStore(tmp_path / "other")  # another store: another key
    try:
        assert other.emailid(blob) != ids[1]
    finally:
        other.close()


async def test_migration_9_counts_the_messages_stored_before(tmp_path: Path) -> None:
    """A store from before migration 9 gets each mailbox's STATUS counts and sum of sizes
    from the messages it holds, and the triggers keep them from then on."""
    import sqlite3

    store = SqliteStore(tmp_path / "coi.db")
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [_msg(), _msg()])
    store.close()
    conn = sqlite3.connect(tmp_path / "coi.db", isolation_level=None)
    conn.executescript(  # back to schema 8 (undoing 9, 10 and 11)
        "DROP TABLE deleted_users; DROP INDEX messages_deleted;"
        " DROP TRIGGER messages_counts_added; DROP TRIGGER messages_counts_removed;"
        " DROP TRIGGER messages_counts_changed; ALTER TABLE mailboxes DROP COLUMN size_sum;"
        " ALTER TABLE mailboxes DROP COLUMN message_count;"
        " ALTER TABLE mailboxes DROP COLUMN unseen_count;"
        " ALTER TABLE mailboxes DROP COLUMN deleted_count; UPDATE schema_version SET version = 8;"
    )
    conn.close()
    store = SqliteStore(tmp_path / "coi.db")
    try:
        one = len(_msg().raw)
        assert await store.read_usage(user.id, 1 << 20) == (1 << 20, 2 * one)
        status = store.status(inbox)
        assert (status.messages, status.unseen, status.deleted, status.size) == (2, 2, 0, 2 * one)
        await store.expunge(inbox.id, None)  # nothing \\Deleted: nothing goes
        await store.append(inbox.id, [_msg()])
        await store.store_flags(inbox.id, [1], "add", Flags(DELETED))
        assert store.storage_used(user.id) == 3 * one
        status = store.status(inbox)
        assert (status.messages, status.unseen, status.deleted) == (3, 3, 1)
    finally:
        store.close()


def test_the_objectid_migration_starts_body_ids_above_the_existing_ones(tmp_path: Path) -> None:
    import sqlite3

    from coi.store.sqlite.migrations import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT")
    # a store from just before the OBJECTID step
    before = next(n for n, script in enumerate(MIGRATIONS) if "objectid_key" in script)
    conn.execute("INSERT INTO schema_version VALUES (?)", (before,))
    for script in MIGRATIONS[:before]:
        conn.executescript(script)
    conn.execute("INSERT INTO blobs (id, raw, meta, search) VALUES (41, x'', x'', x'')")
    migrate(conn)
    assert conn.execute("SELECT value FROM meta WHERE key = 'next_blob_id'").fetchone() == ("42",)
    assert (
        len(conn.execute("SELECT value FROM meta WHERE key = 'objectid_key'").fetchone()[0]) == 32
    )
    conn.close()


def _synchronous(conn: object) -> tuple[int, list[object]]:
    """A writer job reporting the synchronous level its batch commits with."""
    import sqlite3

    assert isinstance(conn, sqlite3.Connection)
    return conn.execute("PRAGMA synchronous").fetchone()[0], []


async def test_fsync_always_commits_every_job_with_fsync(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "coi.sqlite3")
    try:
        assert await s._writer.submit(_synchronous, lazy=True) == 2  # FULL
        assert not s._writer.unsynced
        user = await s.add_user("a@x.org", "h", [])
        inbox = s.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        await s.append(inbox.id, [_msg()])
        await s.store_flags(inbox.id, [1], "add", Flags(DELETED))
        assert not s._writer.unsynced
    finally:
        s.close()


async def test_fsync_optimized_defers_only_flag_changes(tmp_path: Path) -> None:
    """Flag changes are acknowledged before their fsync; a durable write (APPEND, EXPUNGE)
    is fsynced before its reply and covers the flag changes before it."""
    s = SqliteStore(tmp_path / "coi.sqlite3", fsync="optimized", fsync_delay=3600)
    try:
        assert await s._writer.submit(_synchronous) == 2  # FULL: not lazy
        assert await s._writer.submit(_synchronous, lazy=True) == 1  # NORMAL
        assert not s._writer.unsynced  # it wrote nothing: nothing to fsync
        user = await s.add_user("a@x.org", "h", [])
        inbox = s.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        await s.append(inbox.id, [_msg(), _msg()])
        assert not s._writer.unsynced
        await s.store_flags(inbox.id, [1], "add", Flags(DELETED))
        assert s._writer.unsynced  # acknowledged, not yet fsynced
        await s.expunge(inbox.id)  # durable: its fsync covers the flag change before it
        assert not s._writer.unsynced and s._writer.syncs == 0
    finally:
        s.close()


async def test_fsync_optimized_syncs_flag_changes_within_the_delay(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "coi.sqlite3", fsync="optimized", fsync_delay=0.05)
    try:
        user = await s.add_user("a@x.org", "h", [])
        inbox = s.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        await s.append(inbox.id, [_msg()])
        await s.store_flags(inbox.id, [1], "add", Flags(DELETED))
        for _ in range(1000):  # no new write comes: the writer fsyncs after the delay
            if s._writer.syncs:
                break
            await asyncio.sleep(0.01)
        assert s._writer.syncs == 1 and not s._writer.unsynced
    finally:
        s.close()


async def test_fsync_optimized_syncs_on_close(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "coi.sqlite3", fsync="optimized", fsync_delay=3600)
    user = await s.add_user("a@x.org", "h", [])
    inbox = s.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await s.append(inbox.id, [_msg()])
    await s.store_flags(inbox.id, [1], "add", Flags(DELETED))
    assert s._writer.unsynced
    s.close()
    assert not s._writer.unsynced and s._writer.syncs == 1


async def test_a_failing_job_alone_or_in_a_batch_undoes_only_itself(tmp_path: Path) -> None:
    """A batch of one job runs without a SAVEPOINT: its failure rolls the transaction
    back; in a larger batch only the failing job's SAVEPOINT is undone."""
    import sqlite3

    s = SqliteStore(tmp_path / "coi.sqlite3")

    def insert(key: str, fail: bool) -> object:
        def job(conn: sqlite3.Connection) -> tuple[None, list[object]]:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
            if fail:
                raise ValueError(key)
            return None, []

        return job

    try:
        with pytest.raises(ValueError):
            await s._writer.submit(insert("alone", True))  # type: ignore[arg-type]
        results = await asyncio.gather(
            *(
                s._writer.submit(insert(k, k == "b"))  # type: ignore[arg-type]
                for k in ("a", "b", "c")
            ),
            return_exceptions=True,
        )
        assert isinstance(results[1], ValueError) and results[0] is None and results[2] is None
        keys = {row[0] for row in s._read.execute("SELECT key FROM meta")}
        assert {"a", "c"} <= keys and not {"alone", "b"} & keys
    finally:
        s.close()
