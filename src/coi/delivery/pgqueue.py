"""The relay queue in PostgreSQL: one queue for every `coi serve` process on the database.

Invariants: tables `relay_messages` and `relay_recipients` (store migration 2). Every
write is one transaction, committed (synchronous_commit) before the method returns, so a
submission is answered 250 only once its queue entry is durable. Each process works the
whole queue: `claim` takes due recipients with `FOR UPDATE SKIP LOCKED` (two claims never
take one row) and marks them with this handle's token and a lease (`next_attempt` moved
to the lease's end), then commits; no lock is held while sending. A live worker renews
its lease while a send lasts; a worker killed mid-send leaves a claim that is due again
when its lease ends, so another process retries it (the remote server may then get the
message twice, as with any MTA that dies between the remote's 250 and its own commit;
two live workers never send one recipient). `done` deletes, `defer` releases the claim
with the next retry time. Times are the workers' clocks (keep them in sync, NTP).

The queries run on the store's own loop and pool (coi.store.postgres.store).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coi.delivery.queue import QueuedMessage, Recipient, RelayQueue
from coi.store.postgres.store import PostgresStore

log = logging.getLogger("coi.relay")

LEASE = 120.0  # seconds a claim lasts; a working relay renews it every LEASE / 3
CLAIM_BATCH = 20  # recipients one claim takes, so several workers share a long queue

_RECIPIENT_COLUMNS = "message_id, id, rcpt, attempts, next_attempt, last_error"
_CLAIMED_COLUMNS = "r.message_id, r.id, r.rcpt, r.attempts, r.next_attempt, r.last_error"


class PgQueue:
    """`coi.delivery.queue.Queue` on the PostgreSQL store's database."""

    def __init__(self, store: PostgresStore, lease: float = LEASE) -> None:
        self.store = store
        self.lease = lease
        # names this handle's claims (the logs and `coi queue list` show it)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def close(self) -> None:
        """The store owns the connections; it is closed with the store."""

    def _call(self, sql: str, *args: Any) -> Any:
        """Runs one statement on the store's loop and returns its rows (sync callers)."""
        return self.store._call(self.store._pool.fetch(sql, *args))

    # -- writes ----------------------------------------------------------------

    async def _enqueue(
        self,
        sender: str,
        recipients: Sequence[tuple[str, int, float, str]],
        raw: bytes,
        created: float,
    ) -> int:
        async with self.store._pool.acquire() as conn, conn.transaction():
            message_id = int(
                await conn.fetchval(
                    "INSERT INTO relay_messages (sender, raw, created) VALUES ($1, $2, $3)"
                    " RETURNING id",
                    sender,
                    raw,
                    created,
                )
            )
            await conn.executemany(
                "INSERT INTO relay_recipients (message_id, rcpt, attempts, next_attempt,"
                " last_error) VALUES ($1, $2, $3, $4, $5)",
                [(message_id, *r) for r in recipients],
            )
            return message_id

    def enqueue(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int:
        now = time.time()
        job = self._enqueue(sender, [(r, 0, now, "") for r in rcpts], raw, now)
        result: int = self.store._call(job)
        return result

    async def enqueue_async(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int:
        now = time.time()
        job = self._enqueue(sender, [(r, 0, now, "") for r in rcpts], raw, now)
        result: int = await self.store._await(job)
        return result

    def claim(self, now: float) -> list[QueuedMessage]:
        rows = self._call(
            "WITH due AS ("
            "  SELECT id FROM relay_recipients WHERE next_attempt <= $1"
            "  ORDER BY next_attempt, id LIMIT $4 FOR UPDATE SKIP LOCKED"
            ") UPDATE relay_recipients r SET next_attempt = $2, claimed_by = $3"
            f" FROM due WHERE r.id = due.id RETURNING {_CLAIMED_COLUMNS}",
            now,
            now + self.lease,
            self.token,
            CLAIM_BATCH,
        )
        return self._messages(rows)

    def renew(self, recipient_ids: Sequence[int]) -> None:
        if recipient_ids:
            self._call(
                "UPDATE relay_recipients SET next_attempt = $1"
                " WHERE id = ANY($2::bigint[]) AND claimed_by = $3",
                time.time() + self.lease,
                list(recipient_ids),
                self.token,
            )

    def done(self, recipient_ids: Sequence[int]) -> None:
        """Removes recipients (relayed, or bounced); a message without recipients goes too."""

        async def job() -> None:
            async with self.store._pool.acquire() as conn, conn.transaction():
                gone = await conn.fetch(
                    "DELETE FROM relay_recipients WHERE id = ANY($1::bigint[])"
                    " RETURNING message_id",
                    list(recipient_ids),
                )
                await conn.execute(
                    "DELETE FROM relay_messages m WHERE m.id = ANY($1::bigint[]) AND NOT EXISTS"
                    " (SELECT 1 FROM relay_recipients r WHERE r.message_id = m.id)",
                    sorted({row[0] for row in gone}),
                )

        self.store._call(job())

    def defer(self, recipient_ids: Sequence[int], error: str, next_attempt: float) -> None:
        self._call(
            "UPDATE relay_recipients SET attempts = attempts + 1, next_attempt = $1,"
            " last_error = $2, claimed_by = '' WHERE id = ANY($3::bigint[])",
            next_attempt,
            error[:500],
            list(recipient_ids),
        )

    def flush(self) -> int:
        """Makes every recipient not being sent due now; returns how many. (A claim is
        left alone: making it due would let a second worker send it too.)"""
        rows = self._call(
            "UPDATE relay_recipients SET next_attempt = 0 WHERE claimed_by = '' RETURNING id"
        )
        return len(rows)

    def delete(self, message_id: int) -> bool:
        rows = self._call("DELETE FROM relay_messages WHERE id = $1 RETURNING id", message_id)
        return bool(rows)

    # -- reads -----------------------------------------------------------------

    def count(self) -> int:
        return int(self._call("SELECT count(*) FROM relay_messages")[0][0])

    def _messages(self, rows: Sequence[Any]) -> list[QueuedMessage]:
        by_message: dict[int, list[Recipient]] = {}
        for row in sorted(rows, key=lambda r: (r[0], r[1])):
            by_message.setdefault(int(row[0]), []).append(
                Recipient(int(row[1]), row[2], int(row[3]), float(row[4]), row[5])
            )
        if not by_message:
            return []
        heads = self._call(
            "SELECT id, sender, created, octet_length(raw) FROM relay_messages"
            " WHERE id = ANY($1::bigint[])",
            list(by_message),
        )
        head = {int(h[0]): h for h in heads}
        return [
            QueuedMessage(mid, head[mid][1], float(head[mid][2]), int(head[mid][3]), (*rcpts,))
            for mid, rcpts in by_message.items()
            if mid in head
        ]

    def raw(self, message_id: int) -> bytes | None:
        rows = self._call("SELECT raw FROM relay_messages WHERE id = $1", message_id)
        return bytes(rows[0][0]) if rows else None

    def next_due(self) -> float | None:
        rows = self._call("SELECT min(next_attempt) FROM relay_recipients")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- moving a process's SQLite queue in -------------------------------------

    def import_sqlite(self, path: Path) -> int:
        """Moves the messages of a SQLite queue (`queue.sqlite3` of a process that ran before
        on SQLite, or before the queue moved into PostgreSQL) into this queue, with their
        attempts and retry times; returns how many. Each is committed here before it is
        deleted there: a crash between the two sends it twice, never not at all."""
        if not path.exists():
            return 0
        old = RelayQueue(path)
        moved = 0
        try:
            for item in old.list():
                raw = old.raw(item.id)
                if raw is None:
                    continue
                recipients = [
                    (r.rcpt, r.attempts, r.next_attempt, r.last_error) for r in item.recipients
                ]
                self.store._call(self._enqueue(item.sender, recipients, raw, item.created))
                old.delete(item.id)
                moved += 1
        finally:
            old.close()
        if moved:
            log.info("moved %d queued message(s) from %s into PostgreSQL", moved, path)
        return moved

    def list(self, due_before: float | None = None) -> list[QueuedMessage]:
        rows = self._call(
            f"SELECT {_RECIPIENT_COLUMNS} FROM relay_recipients"
            " WHERE next_attempt <= $1 ORDER BY message_id, id",
            float("inf") if due_before is None else due_before,
        )
        return self._messages(rows)
