"""The durable relay queue: messages for other domains wait here until relayed or bounced.

`Queue` is what the relay worker and `coi queue` use; `RelayQueue` keeps it in SQLite
for one process, `coi.delivery.pgqueue.PgQueue` in PostgreSQL for many.

Invariants: the queue lives in its own SQLite database (`queue.sqlite3` in the data
directory, own migration list) so it never conflicts with the store's migrations. Every
write commits with synchronous=FULL before the method returns; a submission is only
answered 250 after `enqueue` returned. One connection, serialized by a lock; the async
wrappers run it off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coi.store.sqlite.migrations import SchemaTooNew

# Append-only: each entry is one migration, applied in order; PRAGMA user_version counts them.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        sender TEXT NOT NULL DEFAULT '',
        raw BLOB NOT NULL,
        created REAL NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE recipients (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        rcpt TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT ''
    ) STRICT;
    CREATE INDEX recipients_due ON recipients (next_attempt);
    CREATE INDEX recipients_message ON recipients (message_id);
    """,
)


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    rcpt: str
    attempts: int
    next_attempt: float
    last_error: str


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    sender: str
    created: float
    size: int
    recipients: tuple[Recipient, ...]


class Queue(Protocol):
    """The relay queue as the relay worker and `coi queue` see it, on either backend."""

    # seconds a claim lasts unless renewed; 0: claims are not recorded (one process only)
    lease: float

    def close(self) -> None: ...
    def enqueue(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int: ...
    async def enqueue_async(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int: ...
    def claim(self, now: float) -> list[QueuedMessage]:
        """The recipients due at `now`, each given to one caller only until it calls
        `done` or `defer`, or its lease ends (its process died)."""
        ...

    def renew(self, recipient_ids: Sequence[int]) -> None:
        """Extends this handle's claims on the recipients still claimed (a long send)."""
        ...

    def done(self, recipient_ids: Sequence[int]) -> None: ...
    def defer(self, recipient_ids: Sequence[int], error: str, next_attempt: float) -> None: ...
    def flush(self) -> int: ...
    def delete(self, message_id: int) -> bool: ...
    def count(self) -> int: ...
    def list(self, due_before: float | None = None) -> list[QueuedMessage]: ...
    def raw(self, message_id: int) -> bytes | None: ...
    def next_due(self) -> float | None: ...


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"the relay queue was written by a newer coi (schema {version}, this one knows"
            f" {len(MIGRATIONS)}): upgrade coi"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


class RelayQueue:
    """The queue in SQLite, worked by the one process that holds the data directory."""

    lease = 0.0  # one process: the relay's own bookkeeping keeps a message from two sends

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    # -- writes ----------------------------------------------------------------

    def enqueue(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int:
        now = time.time()

        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO messages (sender, raw, created) VALUES (?, ?, ?)", (sender, raw, now)
            )
            message_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO recipients (message_id, rcpt, next_attempt) VALUES (?, ?, ?)",
                [(message_id, rcpt, now) for rcpt in rcpts],
            )
            return message_id

        result: int = self._tx(job)
        return result

    async def enqueue_async(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int:
        return await asyncio.to_thread(self.enqueue, sender, rcpts, raw)

    def done(self, recipient_ids: Sequence[int]) -> None:
        """Removes recipients (relayed, or bounced); a message without recipients goes too."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM recipients WHERE id = ?", [(i,) for i in recipient_ids])
            conn.execute(
                "DELETE FROM messages WHERE NOT EXISTS"
                " (SELECT 1 FROM recipients WHERE recipients.message_id = messages.id)"
            )

        self._tx(job)

    def defer(self, recipient_ids: Sequence[int], error: str, next_attempt: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE recipients SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                [(next_attempt, error[:500], i) for i in recipient_ids],
            )

        self._tx(job)

    def flush(self) -> int:
        """Makes every recipient due now; returns how many."""

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute("UPDATE recipients SET next_attempt = 0").rowcount)

        result: int = self._tx(job)
        return result

    def delete(self, message_id: int) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM recipients WHERE message_id = ?", (message_id,))
            return bool(conn.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount)

        result: bool = self._tx(job)
        return result

    def claim(self, now: float) -> list[QueuedMessage]:
        return self.list(now)

    def renew(self, recipient_ids: Sequence[int]) -> None:
        pass

    # -- reads -----------------------------------------------------------------

    def count(self) -> int:
        """Messages waiting (for metrics: no rows loaded)."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def list(self, due_before: float | None = None) -> list[QueuedMessage]:
        with self._lock:
            if due_before is None:
                rows = self._conn.execute(
                    "SELECT r.message_id, r.id, r.rcpt, r.attempts, r.next_attempt, r.last_error"
                    " FROM recipients r ORDER BY r.message_id, r.id"
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT r.message_id, r.id, r.rcpt, r.attempts, r.next_attempt, r.last_error"
                    " FROM recipients r WHERE r.next_attempt <= ? ORDER BY r.message_id, r.id",
                    (due_before,),
                ).fetchall()
            by_message: dict[int, list[Recipient]] = {}
            for message_id, *rest in rows:
                by_message.setdefault(message_id, []).append(Recipient(*rest))
            out: list[QueuedMessage] = []
            for message_id, recipients in by_message.items():
                head = self._conn.execute(
                    "SELECT sender, created, length(raw) FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                if head is not None:
                    out.append(QueuedMessage(message_id, head[0], head[1], head[2], (*recipients,)))
            return out

    def raw(self, message_id: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT raw FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def next_due(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT min(next_attempt) FROM recipients").fetchone()
        return float(row[0]) if row and row[0] is not None else None
