"""What only the SQLite backend promises: its query plans. Behaviour shared by every
backend is in tests/contract (run there on SQLite too)."""

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
