"""Append-only numbered schema migrations. Never edit a released step; add a new one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: users, mailboxes, messages, blobs, subscriptions, expunge tombstones
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL DEFAULT ''
    ) STRICT;
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use TEXT NOT NULL DEFAULT '',
        keywords TEXT NOT NULL DEFAULT '',
        recent_floor INTEGER NOT NULL DEFAULT 0,
        noselect INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, name)
    ) STRICT;
    CREATE TABLE subscriptions (
        user_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE blobs (
        id INTEGER PRIMARY KEY,
        raw BLOB NOT NULL,
        meta BLOB NOT NULL,
        search BLOB NOT NULL,
        refs INTEGER NOT NULL DEFAULT 1
    ) STRICT;
    CREATE TABLE messages (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        blob_id INTEGER NOT NULL,
        flags INTEGER NOT NULL DEFAULT 0,
        keywords TEXT NOT NULL DEFAULT '',
        modseq INTEGER NOT NULL,
        size INTEGER NOT NULL,
        internaldate INTEGER NOT NULL,
        tz_minutes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (mailbox_id, uid)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) STRICT, WITHOUT ROWID;
    """,
    # 2: METADATA (RFC 5464) entries: server entries have mailbox_id 0; names are stored
    # lower-cased (entry names are case-insensitive) and keep their /private or /shared prefix
    """
    CREATE TABLE metadata (
        user_id INTEGER NOT NULL,
        mailbox_id INTEGER NOT NULL DEFAULT 0,
        name TEXT NOT NULL,
        value BLOB NOT NULL DEFAULT x'',
        PRIMARY KEY (user_id, mailbox_id, name)
    ) STRICT, WITHOUT ROWID;
    """,
    # 3: VANISHED (EARLIER) (RFC 7162) looks tombstones up by mod-sequence
    """
    CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
    """,
    # 4: folded header lines per body, for SEARCH FROM/SUBJECT/HEADER to narrow in SQL;
    # bodies stored before have no row here and are always looked at
    """
    CREATE TABLE search_headers (
        blob_id INTEGER PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        text TEXT NOT NULL
    ) STRICT;
    """,
    # 5: aliases: an address (or "@domain", a catch-all) delivered to a user
    """
    CREATE TABLE aliases (
        address TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX aliases_user ON aliases(user_id);
    """,
    # 6: a storage quota per user in octets (0: the server's default_quota)
    """
    ALTER TABLE users ADD COLUMN quota INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: PREVIEW (RFC 8970) text per body, computed at delivery; bodies stored before have
    # no row until a FETCH PREVIEW without LAZY computes it
    """
    CREATE TABLE previews (
        blob_id INTEGER PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        text TEXT NOT NULL
    ) STRICT;
    """,
    # 8: OBJECTID (RFC 8474): the key object identifiers are derived with, and the next
    # body id, so that an id is never used twice (SQLite reuses the highest rowid once its
    # row is deleted; an EMAILID must never name other content)
    """
    INSERT OR IGNORE INTO meta (key, value) VALUES ('objectid_key', lower(hex(randomblob(16))));
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'next_blob_id', CAST(coalesce(max(id), 0) + 1 AS TEXT) FROM blobs;
    """,
    # 9: each mailbox keeps its STATUS counts and the sum of its messages' RFC822.SIZE,
    # so STATUS reads one row instead of counting every message, and a user's quota usage
    # (read at every delivery, APPEND and COPY under a limit) sums the user's mailboxes
    # rather than every message; triggers keep them whichever statement adds, removes or
    # re-flags messages (a message's size never changes). Flag bits as coi.store.model's:
    # \Seen 1, \Deleted 8.
    """
    ALTER TABLE mailboxes ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN deleted_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN size_sum INTEGER NOT NULL DEFAULT 0;
    UPDATE mailboxes SET
        message_count = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id),
        unseen_count = (SELECT count(*) FROM messages
                        WHERE mailbox_id = mailboxes.id AND flags & 1 = 0),
        deleted_count = (SELECT count(*) FROM messages
                         WHERE mailbox_id = mailboxes.id AND flags & 8 != 0),
        size_sum = (SELECT coalesce(sum(size), 0) FROM messages
                    WHERE mailbox_id = mailboxes.id);
    CREATE TRIGGER messages_counts_added AFTER INSERT ON messages BEGIN
        UPDATE mailboxes SET message_count = message_count + 1,
            unseen_count = unseen_count + (NEW.flags & 1 = 0),
            deleted_count = deleted_count + (NEW.flags & 8 != 0),
            size_sum = size_sum + NEW.size
        WHERE id = NEW.mailbox_id;
    END;
    CREATE TRIGGER messages_counts_removed AFTER DELETE ON messages BEGIN
        UPDATE mailboxes SET message_count = message_count - 1,
            unseen_count = unseen_count - (OLD.flags & 1 = 0),
            deleted_count = deleted_count - (OLD.flags & 8 != 0),
            size_sum = size_sum - OLD.size
        WHERE id = OLD.mailbox_id;
    END;
    CREATE TRIGGER messages_counts_changed AFTER UPDATE OF flags ON messages
    WHEN (OLD.flags & 9) != (NEW.flags & 9) BEGIN
        UPDATE mailboxes SET
            unseen_count = unseen_count + (NEW.flags & 1 = 0) - (OLD.flags & 1 = 0),
            deleted_count = deleted_count + (NEW.flags & 8 != 0) - (OLD.flags & 8 != 0)
        WHERE id = NEW.mailbox_id;
    END;
    """,
    # 10: EXPUNGE finds the \Deleted messages (few at any time) by a partial index instead
    # of reading every row of the mailbox on the writer's thread. SQLite uses a partial
    # index only for a query that repeats its condition word for word: `flags & 8 = 8`.
    """
    CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE flags & 8 = 8;
    """,
    # 11: users deleted, in order, so that `coi serve` hears of a deletion another process
    # made (`coi user del`) and ends the user's sessions (SqliteStore.warm_up); a day's
    # rows are kept, older ones go at the next deletion.
    """
    CREATE TABLE deleted_users (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        at INTEGER NOT NULL
    ) STRICT;
    """,
)


class SchemaTooNew(RuntimeError):
    """A newer coi wrote this database; this one must not run on it (or downgrade it)."""


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the newest version, one committed step at a time."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"the store was written by a newer coi (schema {version}, this one knows"
            f" {len(MIGRATIONS)}): upgrade coi, or restore a backup made by this version"
        )
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript runs in autocommit mode: the script itself holds the transaction.
        conn.executescript(
            f"BEGIN IMMEDIATE;{script};UPDATE schema_version SET version = {number};COMMIT;"
        )
