"""Browser sessions of ``coi web``, kept in SQLite so a restart logs no one out.

The cookie holds a random token; the table holds only its SHA-256, so a copy of the
database does not let anyone in.  Each session has its own CSRF token, which every
state-changing request must echo in a header (docs/web.md: Security).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

IDLE_SECONDS = 30 * 24 * 3600  # a session unused for 30 days ends
_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    token_hash TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS session_address ON session(address);
CREATE TABLE IF NOT EXISTS push_subscription (
    token_hash TEXT PRIMARY KEY REFERENCES session(token_hash) ON DELETE CASCADE,
    address TEXT NOT NULL,
    subscription_id TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    address: str
    csrf: str
    created: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None)
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(self, address: str) -> tuple[str, Session]:
        """A new session; returns the cookie's token (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(_hash(token), address, secrets.token_urlsafe(24), now)
        self._db.execute(
            "INSERT INTO session VALUES (?, ?, ?, ?, ?)",
            (session.token_hash, address, session.csrf, now, now),
        )
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of ``token``; touching it keeps it alive."""
        now = time.time()
        token_hash = _hash(token)
        row = self._db.execute(
            "SELECT address, csrf, created, seen FROM session WHERE token_hash=?", (token_hash,)
        ).fetchone()
        if row is None:
            return None
        address, csrf, created, seen = row
        if now - seen > IDLE_SECONDS:
            self.end(token_hash)
            return None
        if now - seen > 60:  # write at most once a minute per session
            self._db.execute("UPDATE session SET seen=? WHERE token_hash=?", (now, token_hash))
        return Session(token_hash, address, csrf, created)

    def end(self, token_hash: str) -> None:
        self._db.execute("DELETE FROM session WHERE token_hash=?", (token_hash,))

    def expire(self) -> int:
        cur = self._db.execute("DELETE FROM session WHERE seen < ?", (time.time() - IDLE_SECONDS,))
        return cur.rowcount

    def set_push(self, session: Session, subscription_id: str | None) -> None:
        """The push subscription this browser session registered (None: removed)."""
        if subscription_id is None:
            self._db.execute(
                "DELETE FROM push_subscription WHERE token_hash=?", (session.token_hash,)
            )
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO push_subscription VALUES (?, ?, ?)",
                (session.token_hash, session.address, subscription_id),
            )

    def push_of(self, session: Session) -> str | None:
        row = self._db.execute(
            "SELECT subscription_id FROM push_subscription WHERE token_hash=?",
            (session.token_hash,),
        ).fetchone()
        return str(row[0]) if row else None
