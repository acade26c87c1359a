from datetime import UTC, datetime
from pathlib import Path

import pytest

from coi.store.errors import MailboxExists, NoSuchMailbox, UserExists
from coi.store.events import Event, FlagsChanged, MessagesAdded, MessagesExpunged
from coi.store.model import DELETED, SEEN, Flags, NewMessage
from coi.store.sqlite.store import SqliteStore


def _msg(body: bytes = b"Subject: hi\r\n\r\nhello\r\n", flags: Flags | None = None) -> NewMessage:
    flags = flags or Flags()
    return NewMessage(body, b"meta", b"search", flags, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SqliteStore(tmp_path / "coi.sqlite3")
    yield s
    s.close()


async def test_user_and_default_mailboxes(store: SqliteStore) -> None:
    user = await store.add_user("Alice@Example.org", "hash", [("Sent", "\\Sent")])
    assert user.address == "alice@example.org"
    names = [m.name for m in store.list_mailboxes(user.id)]
    assert names == ["INBOX", "Sent"]
    assert store.subscriptions(user.id) == {"INBOX", "Sent"}
    with pytest.raises(UserExists):
        await store.add_user("alice@example.org", "x", [])


async def test_append_assigns_increasing_uids_and_publishes(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    seen: list[Event] = []
    store.events.watch_mailbox(inbox.id, seen.append)
    validity, uids = await store.append(inbox.id, [_msg(), _msg()])
    assert validity == inbox.uidvalidity
    assert uids == [1, 2]
    assert isinstance(seen[0], MessagesAdded) and seen[0].uids == (1, 2)
    assert list(store.uids(inbox.id)) == [1, 2]
    rows = store.rows(inbox.id, [1, 2])
    assert rows[1].size == len(_msg().raw)
    assert rows[1].internaldate == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    blob = store.blob(rows[1].blob_id)
    assert blob is not None and blob[0] == _msg().raw


async def test_flags_copy_move_expunge(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [("Trash", "\\Trash")])
    inbox = store.get_mailbox(user.id, "INBOX")
    trash = store.get_mailbox(user.id, "Trash")
    assert inbox and trash
    await store.append(inbox.id, [_msg(), _msg(), _msg()])
    seen: list[Event] = []
    store.events.watch_mailbox(inbox.id, seen.append)
    changed, failed = await store.store_flags(inbox.id, [1, 2], "add", Flags(SEEN, ("$Chat",)))
    assert [c[0] for c in changed] == [1, 2] and failed == []
    assert isinstance(seen[-1], FlagsChanged)
    assert store.rows(inbox.id, [1])[1].flags == Flags(SEEN, ("$Chat",))
    refreshed = store.get_mailbox(user.id, "INBOX")
    assert refreshed and refreshed.keywords == ("$Chat",)
    # UNCHANGEDSINCE rejects messages changed later
    modseq = changed[0][2]
    _, failed = await store.store_flags(inbox.id, [1, 3], "add", Flags(DELETED), modseq - 1)
    assert failed == [1]
    _, mapping = await store.copy(inbox.id, [1, 2], trash.id)
    assert mapping == [(1, 1), (2, 2)]
    _, mapping = await store.copy(inbox.id, [2], trash.id, move=True)
    assert mapping == [(2, 3)]
    assert list(store.uids(inbox.id)) == [1, 3]
    expunged = await store.expunge(inbox.id)
    assert expunged == [3]
    assert isinstance(seen[-1], MessagesExpunged) and seen[-1].uids == (3,)
    assert list(store.uids(inbox.id)) == [1]
    # the shared blob survives while a copy references it
    trash_rows = store.rows(trash.id, [1, 2, 3])
    assert store.blob(trash_rows[2].blob_id) is not None


async def test_mailbox_create_rename_delete(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [])
    await store.create_mailbox(user.id, "a/b/c")
    assert [m.name for m in store.list_mailboxes(user.id)] == ["INBOX", "a", "a/b", "a/b/c"]
    with pytest.raises(MailboxExists):
        await store.create_mailbox(user.id, "a/b")
    old = store.get_mailbox(user.id, "a/b")
    await store.rename_mailbox(user.id, "a", "z")
    assert [m.name for m in store.list_mailboxes(user.id)] == ["INBOX", "z", "z/b", "z/b/c"]
    renamed = store.get_mailbox(user.id, "z/b")
    assert old and renamed and renamed.uidvalidity == old.uidvalidity
    await store.delete_mailbox(user.id, "z/b/c")
    with pytest.raises(NoSuchMailbox):
        await store.delete_mailbox(user.id, "z/b/c")
    recreated = await store.create_mailbox(user.id, "z/b/c")
    assert recreated.uidvalidity > renamed.uidvalidity


async def test_rename_inbox_moves_messages(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox
    await store.append(inbox.id, [_msg(), _msg()])
    await store.rename_mailbox(user.id, "INBOX", "old-inbox")
    moved = store.get_mailbox(user.id, "old-inbox")
    assert moved and list(store.uids(moved.id)) == [1, 2]
    assert list(store.uids(inbox.id)) == []


async def test_users_are_isolated(store: SqliteStore) -> None:
    a = await store.add_user("a@x.org", "h", [])
    b = await store.add_user("b@x.org", "h", [])
    await store.create_mailbox(a.id, "secret")
    assert store.get_mailbox(b.id, "secret") is None
    assert [m.name for m in store.list_mailboxes(b.id)] == ["INBOX"]


async def test_data_survives_reopen(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "db")
    user = await s.add_user("a@x.org", "h", [])
    inbox = s.get_mailbox(user.id, "INBOX")
    assert inbox
    await s.append(inbox.id, [_msg()])
    s.close()
    s2 = SqliteStore(tmp_path / "db")
    try:
        assert list(s2.uids(inbox.id)) == [1]
    finally:
        s2.close()


async def test_changed_and_vanished_since_use_indexes(store: SqliteStore) -> None:
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [_msg(), _msg(), _msg()])  # MODSEQ 2
    await store.store_flags(inbox.id, [2, 3], "add", Flags(DELETED))  # 3
    await store.expunge(inbox.id, [3])  # 4
    assert [r.uid for r in store.changed_since(inbox.id, 2)] == [2]
    assert [r.uid for r in store.changed_since(inbox.id, 1)] == [1, 2]
    assert store.vanished_since(inbox.id, 3) == [3]
    assert store.vanished_since(inbox.id, 4) == []
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


def test_migration_7_starts_body_ids_above_the_existing_ones(tmp_path: Path) -> None:
    import sqlite3

    from coi.store.sqlite.migrations import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT")
    conn.execute("INSERT INTO schema_version VALUES (6)")
    for script in MIGRATIONS[:6]:
        conn.executescript(script)
    conn.execute("INSERT INTO blobs (id, raw, meta, search) VALUES (41, x'', x'', x'')")
    migrate(conn)
    assert conn.execute("SELECT value FROM meta WHERE key = 'next_blob_id'").fetchone() == ("42",)
    assert (
        len(conn.execute("SELECT value FROM meta WHERE key = 'objectid_key'").fetchone()[0]) == 32
    )
    conn.close()
