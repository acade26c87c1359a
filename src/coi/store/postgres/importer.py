"""`coi migrate`: moves an installation's SQLite store into an empty PostgreSQL database.

Everything is copied as it is, ids included: users, aliases, quotas, mailboxes with their
UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and \\Recent floor, subscriptions, messages with
their UIDs, flags, MODSEQs and INTERNALDATEs, expunge tombstones (so QRESYNC clients
resync incrementally, RFC 7162 §3.2.5), METADATA, previews and search data. The ObjectID
key and the body and mailbox ids come along too, so every EMAILID and MAILBOXID stays
what clients know (RFC 8474 §1: they must not change). Clients notice nothing.

One PostgreSQL transaction: the target gets all of it or nothing. Rows with no owner (an
entry of a user that no longer exists) are left behind: PostgreSQL's foreign keys would
refuse them, and nothing reads them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from coi.store.postgres.store import PostgresStore
from coi.store.sqlite.store import SqliteStore

_BATCH = 500  # rows per COPY (bodies can be large)


class MigrateError(Exception):
    """The migration cannot start (the target is not empty, the source is missing)."""


# (target table, its columns, the query on the SQLite store that gives them)
_TABLES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "users",
        ("id", "address", "password_hash", "created", "quota"),
        "SELECT id, address, password_hash, created, quota FROM users ORDER BY id",
    ),
    (
        "aliases",
        ("address", "user_id"),
        "SELECT address, user_id FROM aliases WHERE user_id IN (SELECT id FROM users)",
    ),
    (
        "mailboxes",
        (
            "id",
            "user_id",
            "name",
            "uidvalidity",
            "uidnext",
            "highestmodseq",
            "special_use",
            "keywords",
            "recent_floor",
            "noselect",
        ),
        "SELECT id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, keywords,"
        " recent_floor, noselect <> 0 FROM mailboxes WHERE user_id IN (SELECT id FROM users)"
        " ORDER BY id",
    ),
    (
        "subscriptions",
        ("user_id", "name"),
        "SELECT user_id, name FROM subscriptions WHERE user_id IN (SELECT id FROM users)",
    ),
    (
        "blobs",
        ("id", "meta", "search", "refs"),
        "SELECT id, meta, search, refs FROM blobs ORDER BY id",
    ),
    ("bodies", ("blob_id", "raw"), "SELECT id, raw FROM blobs ORDER BY id"),
    (
        "search_text",
        ("blob_id", "header"),
        "SELECT b.id, h.text FROM blobs b"
        " LEFT JOIN search_headers h ON h.blob_id = b.id ORDER BY b.id",
    ),
    ("previews", ("blob_id", "text"), "SELECT blob_id, text FROM previews"),
    (
        "messages",
        (
            "mailbox_id",
            "uid",
            "blob_id",
            "flags",
            "keywords",
            "modseq",
            "size",
            "internaldate",
            "tz_minutes",
        ),
        "SELECT m.mailbox_id, m.uid, m.blob_id, m.flags, m.keywords, m.modseq, m.size,"
        " m.internaldate, m.tz_minutes FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
        " JOIN users u ON u.id = b.user_id ORDER BY m.mailbox_id, m.uid",
    ),
    (
        "expunged",
        ("mailbox_id", "uid", "modseq"),
        "SELECT mailbox_id, uid, modseq FROM expunged"
        " WHERE mailbox_id IN (SELECT id FROM mailboxes)",
    ),
    (
        "metadata",
        ("user_id", "mailbox_id", "name", "value"),
        "SELECT user_id, mailbox_id, name, value FROM metadata"
        " WHERE user_id IN (SELECT id FROM users)"
        " AND (mailbox_id = 0 OR mailbox_id IN (SELECT id FROM mailboxes))",
    ),
)


def _rows(conn: sqlite3.Connection, table: str, query: str) -> Iterator[list[tuple[Any, ...]]]:
    cursor = conn.execute(query)
    while batch := cursor.fetchmany(_BATCH):
        if table == "search_text":  # text cannot hold NUL: such headers are always checked
            batch = [(i, h if h and "\x00" not in h else None) for i, h in batch]
        elif table == "mailboxes":
            batch = [(*row[:-1], bool(row[-1])) for row in batch]
        elif table == "metadata":
            batch = [(u, m, n, bytes(v)) for u, m, n, v in batch]
        elif table == "previews":  # text cannot hold NUL
            batch = [(i, t.replace("\x00", "")) for i, t in batch]
        yield [tuple(row) for row in batch]


async def copy_sqlite_to_postgres(
    sqlite_path: Path, dsn: str, progress: Callable[[str], None] = lambda _: None
) -> dict[str, int]:
    """Copies the store in `sqlite_path` into the empty database `dsn`; rows per table.
    The caller keeps `coi serve` off the SQLite store meanwhile (its data-dir lock)."""
    if not sqlite_path.exists():
        raise MigrateError(f"no store at {sqlite_path}")
    SqliteStore(sqlite_path).close()  # brings the source schema up to date
    PostgresStore(dsn, min_size=1, max_size=1, listen=False).close()  # creates the schema
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    target = await asyncpg.connect(dsn)
    counts: dict[str, int] = {}
    try:
        if await target.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            raise MigrateError("the PostgreSQL database already holds users: give an empty one")
        async with target.transaction():
            for table, columns, query in _TABLES:
                counts[table] = 0
                for batch in _rows(source, table, query):
                    await target.copy_records_to_table(table, records=batch, columns=columns)
                    counts[table] += len(batch)
                progress(f"{table}: {counts[table]} rows")
            await _counters(source, target)
    finally:
        await target.close()
        source.close()
    return counts


async def _counters(source: sqlite3.Connection, target: asyncpg.Connection[Any]) -> None:
    """The ObjectID key, the last UIDVALIDITY handed out, the next body id and the id
    sequences: nothing the target hands out later may repeat what the source did."""
    meta = dict(source.execute("SELECT key, value FROM meta").fetchall())
    await target.execute(
        "UPDATE meta SET value = $1 WHERE key = 'objectid_key'", str(meta["objectid_key"])
    )
    await target.execute(
        "UPDATE meta SET value = $1 WHERE key = 'uidvalidity'", str(meta.get("uidvalidity", 0))
    )
    top_blob = int(source.execute("SELECT coalesce(max(id), 0) FROM blobs").fetchone()[0])
    next_blob = max(int(meta.get("next_blob_id", 1)), top_blob + 1)
    await target.execute("SELECT setval('blob_ids', $1, false)", next_blob)
    for table in ("users", "mailboxes"):
        await _follow(target, table, source.execute(f"SELECT max(id) FROM {table}").fetchone())


async def _follow(target: asyncpg.Connection[Any], table: str, top: Sequence[Any]) -> None:
    """Moves an identity column's sequence past the ids copied in."""
    if top[0] is not None:
        await target.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1)", int(top[0])
        )
