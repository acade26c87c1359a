"""Append-only numbered schema migrations of the PostgreSQL store. Never edit a released
step; add a new one.

The schema follows the SQLite one (coi.store.sqlite.migrations) with these differences:
- names that are compared or ordered byte by byte (mailbox names, METADATA entry names)
  are `COLLATE "C"`, whatever the database's collation, so ordering and the range scans
  of METADATA depth match SQLite's;
- message bodies (`bodies.raw`) live in a table of their own, apart from the per-body
  index and search data (`blobs`), so small reads never touch large attachments;
- body ids come from a sequence, which never hands out a number twice (RFC 8474 §5.1:
  an EMAILID must never name other content);
- SEARCH text narrowing uses pg_trgm GIN indexes on the folded header lines and on the
  text of the search data (`search_text`), so `LIKE '%needle%'` is an index lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy
from coi.store.sqlite.migrations import SchemaTooNew

__all__ = ["MIGRATIONS", "SchemaTooNew", "migrate"]

MIGRATIONS: tuple[str, ...] = (
    # 1: the whole schema of SQLite's steps 1-8
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL DEFAULT ''
    );
    INSERT INTO meta (key, value)
        VALUES ('objectid_key', replace(gen_random_uuid()::text, '-', '')),
               ('uidvalidity', '0');
    CREATE TABLE users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        address text NOT NULL UNIQUE,
        password_hash text NOT NULL DEFAULT '',
        created bigint NOT NULL DEFAULT 0,
        quota bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE aliases (
        address text PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE
    );
    CREATE INDEX aliases_user ON aliases (user_id);
    CREATE TABLE mailboxes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text COLLATE "C" NOT NULL,
        uidvalidity bigint NOT NULL,
        uidnext bigint NOT NULL DEFAULT 1,
        highestmodseq bigint NOT NULL DEFAULT 1,
        special_use text NOT NULL DEFAULT '',
        keywords text NOT NULL DEFAULT '',
        recent_floor bigint NOT NULL DEFAULT 0,
        noselect boolean NOT NULL DEFAULT false,
        UNIQUE (user_id, name)
    );
    CREATE TABLE subscriptions (
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE SEQUENCE blob_ids;
    CREATE TABLE blobs (
        id bigint PRIMARY KEY,
        meta bytea NOT NULL,
        search bytea NOT NULL,
        refs integer NOT NULL DEFAULT 1
    );
    CREATE TABLE bodies (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        raw bytea NOT NULL
    );
    CREATE TABLE search_text (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        header text,
        body text NOT NULL
    );
    CREATE INDEX search_text_header ON search_text USING gin (header gin_trgm_ops);
    CREATE INDEX search_text_body ON search_text USING gin (body gin_trgm_ops);
    CREATE TABLE previews (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        text text NOT NULL
    );
    CREATE TABLE messages (
        mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        blob_id bigint NOT NULL REFERENCES blobs (id),
        flags integer NOT NULL DEFAULT 0,
        keywords text NOT NULL DEFAULT '',
        modseq bigint NOT NULL,
        size bigint NOT NULL,
        internaldate bigint NOT NULL,
        tz_minutes integer NOT NULL DEFAULT 0,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE flags & 1 = 0;
    CREATE INDEX messages_blob ON messages (blob_id);
    CREATE TABLE expunged (
        mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        modseq bigint NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
    CREATE TABLE metadata (
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        mailbox_id bigint NOT NULL DEFAULT 0,
        name text COLLATE "C" NOT NULL,
        value bytea NOT NULL DEFAULT '',
        PRIMARY KEY (user_id, mailbox_id, name)
    );
    """,
    # 2: the relay queue (coi.delivery.pgqueue), shared by every process. A recipient being
    # sent is claimed: `claimed_by` names the worker, `next_attempt` is its lease's end.
    """
    CREATE TABLE relay_messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sender text NOT NULL DEFAULT '',
        raw bytea NOT NULL,
        created double precision NOT NULL DEFAULT 0
    );
    CREATE TABLE relay_recipients (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint NOT NULL REFERENCES relay_messages (id) ON DELETE CASCADE,
        rcpt text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt double precision NOT NULL DEFAULT 0,
        last_error text NOT NULL DEFAULT '',
        claimed_by text NOT NULL DEFAULT ''
    );
    CREATE INDEX relay_recipients_due ON relay_recipients (next_attempt);
    CREATE INDEX relay_recipients_message ON relay_recipients (message_id);
    """,
    # 3: the \Recent floor that sessions of every process claim from (Store.take_recent),
    # apart from the mailbox row that every message write holds locked until its COMMIT: a
    # claim waits only for other claims, one short statement each. No foreign key (its
    # check would wait for the mailbox row too); ids are never reused, and the row goes
    # with its mailbox in `_delete_mailbox_rows`.
    """
    CREATE TABLE recent_floors (
        mailbox_id bigint PRIMARY KEY,
        floor bigint NOT NULL
    );
    """,
)

# Any number 64-bit constant: the advisory lock that serializes migrations when several
# `coi serve` processes start on one fresh database at once.
_MIGRATION_LOCK = 0x636F69_6D6967


async def migrate(
    conn: asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record],
) -> None:
    """Brings the schema to the newest version, one committed step at a time; refuses a
    schema written by a newer coi (SchemaTooNew), as the SQLite store does."""
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"
            )
            row = await conn.fetchrow("SELECT version FROM schema_version")
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"the store was written by a newer coi (schema {version}, this one knows"
                    f" {len(MIGRATIONS)}): upgrade coi, or restore a backup made by this version"
                )
            if version == len(MIGRATIONS):
                if row is None:
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                return
            if row is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            await conn.execute(MIGRATIONS[version])
            await conn.execute("UPDATE schema_version SET version = $1", version + 1)
