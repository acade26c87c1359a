"""The embedded SQLite store.

Invariants: reads run on the event-loop thread on a read-only connection (WAL lets them
run beside the writer and they always see every committed write); every write goes
through the single `Writer` thread (group commit, fsync before the caller hears OK).
Every query names its user or mailbox: no statement reaches another user's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coi.store.errors import (
    MailboxExists,
    MailboxInUse,
    MetadataTooMany,
    NoSuchMailbox,
    NoSuchUser,
    UserExists,
)
from coi.store.events import (
    Event,
    EventBus,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
    UserGone,
)
from coi.store.model import (
    DELETED,
    SEEN,
    FlagChanges,
    Flags,
    Mailbox,
    MailboxStatus,
    MessageRow,
    NewMessage,
    User,
    stored_flags,
)
from coi.store.protocol import FlagMode, MetadataUpdate, Store
from coi.store.sentcopies import SentCopies
from coi.store.shared import children_pattern, emailid, mailboxid, status_of
from coi.store.sqlite.migrations import migrate
from coi.store.sqlite.writer import Writer

_MAILBOX_COLUMNS = (
    "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, keywords, recent_floor,"
    " noselect"
)
_ROW_COLUMNS = "uid, flags, keywords, modseq, size, internaldate, tz_minutes, blob_id"
_HEADER_END = re.compile(rb"\n\r?\n")
_CHUNK = 500  # parameters per IN (...) list, under SQLite's limit
DELETIONS_EVERY = 1.0  # seconds between looks for users deleted by another process
_MAX_SQL_NEEDLES = 16  # text keys narrowed in SQL; the rest are checked per message


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA case_sensitive_like=ON")  # mailbox names are case-sensitive
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


def _mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(
        id=row[0],
        user_id=row[1],
        name=row[2],
        uidvalidity=row[3],
        uidnext=row[4],
        highestmodseq=row[5],
        special_use=row[6],
        keywords=Flags.parse_keywords(row[7]),
        recent_floor=row[8],
        noselect=bool(row[9]),
    )


def _message_row(row: Sequence[Any]) -> MessageRow:
    return MessageRow(
        row[0],
        stored_flags(row[1], row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
    )


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _in(n: int) -> str:
    return ",".join("?" * n)


class SqliteStore:
    """The `coi.store.protocol.Store` of one data directory (the default backend)."""

    def __init__(self, path: Path, *, fsync: str = "always", fsync_delay: float = 1.0) -> None:
        """`fsync`: the policy of `Writer` (always, or optimized: flag changes made durable
        within `fsync_delay` seconds instead of before the reply)."""
        self.path = path
        self.events = EventBus()
        self.sent_copies = SentCopies()  # the server's own Sent copies, by Message-ID
        path.parent.mkdir(parents=True, exist_ok=True)
        setup = _connect(path, readonly=False)
        migrate(setup)
        key = setup.execute("SELECT value FROM meta WHERE key = 'objectid_key'").fetchone()[0]
        self._objectid_key = bytes.fromhex(key)
        setup.close()
        self._read = _connect(path, readonly=True)
        self._watching: asyncio.Task[None] | None = None  # `warm_up`
        self._writer = Writer(
            lambda: _connect(path, readonly=False),
            self.events.publish,
            fsync=fsync,
            sync_delay=fsync_delay,
            wal_path=path.with_name(path.name + "-wal"),
        )

    def database_bytes(self) -> int:
        """The database file with its write-ahead log and shared-memory index."""
        files = [self.path, *(self.path.with_name(self.path.name + e) for e in ("-wal", "-shm"))]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self) -> None:
        watching = self._watching
        if watching is not None and not watching.done():
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing runs
                watching.get_loop().call_soon_threadsafe(watching.cancel)
        self._writer.close()
        self._read.close()

    # -- object identifiers (RFC 8474) ----------------------------------------

    def mailboxid(self, mailbox: Mailbox) -> str:
        """MAILBOXID (RFC 8474 §4): from the UIDVALIDITY, which the server hands out once
        (strictly increasing over all users' mailboxes) and RENAME keeps, so the id is
        stable across renames, never used for another mailbox, and a mailbox re-created
        under the same name (a new UIDVALIDITY) gets a new one; RENAME INBOX creates the
        target mailbox (RFC 3501 §6.3.5), which gets its own."""
        return mailboxid(self._objectid_key, mailbox.uidvalidity)

    def emailid(self, blob_id: int) -> str:
        """EMAILID (RFC 8474 §5.1): one per stored body. COPY, MOVE and RENAME INBOX
        share the body (with INTERNALDATE and RFC822.SIZE copied), so the copy has the
        source's EMAILID, as §5.1 requires, and everything immutable on a message is the
        same for one EMAILID; each APPEND or delivery stores a new body, so a new id.
        Body ids are never reused (`next_blob_id`)."""
        return emailid(self._objectid_key, blob_id)

    # -- users ---------------------------------------------------------------

    def get_user(self, address: str) -> User | None:
        row = self._read.execute(
            "SELECT id, address, password_hash FROM users WHERE address = ?", (address.lower(),)
        ).fetchone()
        return User(*row) if row else None

    async def read_user(self, address: str) -> User | None:
        """`get_user()`: never suspends here (a local read)."""
        return self.get_user(address)

    def list_users(self) -> list[User]:
        rows = self._read.execute("SELECT id, address, password_hash FROM users ORDER BY address")
        return [User(*row) for row in rows]

    async def add_user(
        self, address: str, password_hash: str, mailboxes: Sequence[tuple[str, str]]
    ) -> User:
        """Creates the user with INBOX and the given (name, special-use) mailboxes, subscribed."""
        address = address.lower()

        def job(conn: sqlite3.Connection) -> tuple[User, list[Event]]:
            if conn.execute("SELECT 1 FROM users WHERE address = ?", (address,)).fetchone():
                raise UserExists(address)
            cur = conn.execute(
                "INSERT INTO users (address, password_hash, created) VALUES (?, ?, ?)",
                (address, password_hash, int(time.time())),
            )
            user_id = int(cur.lastrowid or 0)
            events: list[Event] = []
            for name, use in (("INBOX", ""), *mailboxes):
                mailbox_id = _insert_mailbox(conn, user_id, name, use)
                conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)", (user_id, name)
                )
                events.append(MailboxCreated(user_id, mailbox_id, name))
            return User(user_id, address, password_hash), events

        user: User = await self._writer.submit(job)
        return user

    async def delete_user(self, address: str) -> None:
        address = address.lower()

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            row = conn.execute("SELECT id FROM users WHERE address = ?", (address,)).fetchone()
            if row is None:
                raise NoSuchUser(address)
            user_id = row[0]
            boxes = conn.execute(
                "SELECT id, name FROM mailboxes WHERE user_id = ? ORDER BY id", (user_id,)
            ).fetchall()
            for mailbox_id, _ in boxes:
                _drop_mailbox_contents(conn, mailbox_id)
            conn.execute("DELETE FROM mailboxes WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM subscriptions WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM metadata WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM aliases WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            now = int(time.time())  # for a server in another process (`_watch_deletions`)
            conn.execute("INSERT INTO deleted_users (user_id, at) VALUES (?, ?)", (user_id, now))
            conn.execute("DELETE FROM deleted_users WHERE at < ?", (now - 86400,))
            # what kept a mailbox of the user (caches, NOTIFY, a session) lets it go
            events: list[Event] = [MailboxDeleted(user_id, id_, name) for id_, name in boxes]
            return None, [*events, UserGone(user_id)]

        await self._writer.submit(job)

    # -- quotas (RFC 9208 STORAGE) ----------------------------------------------------------

    def quota_of(self, user_id: int) -> int:
        """The user's own storage limit in octets; 0: none of its own."""
        row = self._read.execute("SELECT quota FROM users WHERE id = ?", (user_id,)).fetchone()
        return int(row[0]) if row else 0

    def storage_used(self, user_id: int) -> int:
        """Octets of all the user's messages (RFC822.SIZE summed over every mailbox)."""
        row = self._read.execute(
            "SELECT COALESCE(SUM(size_sum), 0) FROM mailboxes WHERE user_id = ?",  # migration 9
            (user_id,),
        ).fetchone()
        return int(row[0])

    async def read_usage(self, user_id: int, default: int) -> tuple[int, int]:
        """(limit, octets used): never suspends here (a local read)."""
        limit = self.quota_of(user_id) or default
        return limit, self.storage_used(user_id) if limit else 0

    async def warm_up(self) -> None:
        """Nothing to open (the file is open, and reads never wait). Starts watching for
        users another process deletes (`coi user del`): this process publishes their
        `UserGone`, so their sessions here end (a deletion made here is published twice,
        which ends nothing more)."""
        if self._watching is None:
            row = self._read.execute("SELECT max(id) FROM deleted_users").fetchone()
            self._watching = asyncio.get_running_loop().create_task(
                self._watch_deletions(row[0] or 0)
            )

    async def _watch_deletions(self, seen: int) -> None:
        while True:
            await asyncio.sleep(DELETIONS_EVERY)
            for row_id, user_id in self._read.execute(
                "SELECT id, user_id FROM deleted_users WHERE id > ? ORDER BY id", (seen,)
            ).fetchall():
                seen = row_id
                self.events.publish(UserGone(user_id))

    async def read_recipient(
        self, address: str, default: int
    ) -> tuple[User, tuple[int, int]] | None:
        """`get_user` and `read_usage`: local reads, never suspending."""
        user = self.get_user(address)
        return None if user is None else (user, await self.read_usage(user.id, default))

    async def set_quota(self, address: str, octets: int) -> None:
        address = address.lower()

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            cur = conn.execute("UPDATE users SET quota = ? WHERE address = ?", (octets, address))
            if cur.rowcount == 0:
                raise NoSuchUser(address)
            return None, []

        await self._writer.submit(job)

    # -- aliases (an address, or "@domain" for a catch-all, delivered to a user) ------------

    def alias_target(self, address: str) -> User | None:
        row = self._read.execute(
            "SELECT u.id, u.address, u.password_hash FROM aliases a JOIN users u"
            " ON u.id = a.user_id WHERE a.address = ?",
            (address.lower(),),
        ).fetchone()
        return User(*row) if row else None

    async def list_aliases(self) -> list[tuple[str, str]]:
        rows = self._read.execute(
            "SELECT a.address, u.address FROM aliases a JOIN users u ON u.id = a.user_id"
            " ORDER BY a.address"
        )
        return [(str(a), str(u)) for a, u in rows]

    async def set_alias(self, address: str, target: str | None) -> None:
        """Points ``address`` at the user ``target``; None removes the alias."""
        address = address.lower()

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            if target is None:
                if not conn.execute("DELETE FROM aliases WHERE address = ?", (address,)).rowcount:
                    raise NoSuchUser(address)
                return None, []
            if conn.execute("SELECT 1 FROM users WHERE address = ?", (address,)).fetchone():
                raise UserExists(address)  # a user's own address is no alias
            row = conn.execute(
                "SELECT id FROM users WHERE address = ?", (target.lower(),)
            ).fetchone()
            if row is None:
                raise NoSuchUser(target)
            conn.execute(
                "INSERT OR REPLACE INTO aliases (address, user_id) VALUES (?, ?)", (address, row[0])
            )
            return None, []

        await self._writer.submit(job)

    async def set_password(self, address: str, password_hash: str) -> None:
        address = address.lower()

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE address = ?", (password_hash, address)
            )
            if cur.rowcount == 0:
                raise NoSuchUser(address)
            return None, []

        await self._writer.submit(job)

    # -- mailboxes -------------------------------------------------------------

    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        rows = self._read.execute(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = ? ORDER BY name", (user_id,)
        )
        return [_mailbox(row) for row in rows]

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        row = self._read.execute(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = ? AND name = ?",
            (user_id, name),
        ).fetchone()
        return _mailbox(row) if row else None

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        row = self._read.execute(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        return _mailbox(row) if row else None

    def subscriptions(self, user_id: int) -> set[str]:
        rows = self._read.execute("SELECT name FROM subscriptions WHERE user_id = ?", (user_id,))
        return {row[0] for row in rows}

    async def read_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        """`get_mailbox()`: never suspends here (a local read)."""
        return self.get_mailbox(user_id, name)

    async def read_target(
        self, user_id: int, name: str, default: int
    ) -> tuple[Mailbox | None, tuple[int, int]]:
        """`get_mailbox()` and `read_usage`: local reads, never suspending."""
        return self.get_mailbox(user_id, name), await self.read_usage(user_id, default)

    async def read_mailboxes(self, user_id: int) -> tuple[list[Mailbox], set[str]]:
        """`list_mailboxes()` and `subscriptions()`: never suspends here."""
        return self.list_mailboxes(user_id), self.subscriptions(user_id)

    async def create_mailbox(
        self,
        user_id: int,
        name: str,
        special_use: str = "",
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> Mailbox:
        """Creates `name` and any missing superiors (RFC 3501 §6.3.3); `server_metadata` is
        set in the same transaction (COI: creating the Chats folder enables COI)."""

        def job(conn: sqlite3.Connection) -> tuple[Mailbox, list[Event]]:
            mailbox_id, events = _create_mailbox(conn, user_id, name, special_use)
            _drop_orphan_metadata(conn, user_id)
            events += _set_metadata(conn, user_id, 0, server_metadata, origin)
            row = conn.execute(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            return _mailbox(row), events

        mailbox: Mailbox = await self._writer.submit(job)
        return mailbox

    async def delete_mailbox(
        self,
        user_id: int,
        name: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Deletes `name` with its METADATA entries (RFC 5464 §4.1); `server_metadata` is
        set in the same transaction."""

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            mailbox_id = _find(conn, user_id, name)
            if mailbox_id is None:
                raise NoSuchMailbox(name)
            noselect = conn.execute(
                "SELECT noselect FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()[0]
            has_children = conn.execute(
                "SELECT 1 FROM mailboxes WHERE user_id = ? AND name LIKE ? ESCAPE '\\' LIMIT 1",
                (user_id, children_pattern(name)),
            ).fetchone()
            if has_children and noselect:
                raise MailboxInUse(name)
            _drop_mailbox_contents(conn, mailbox_id)
            # RFC 5464 §4.1: a mailbox re-created under this name must not inherit entries
            conn.execute(
                "DELETE FROM metadata WHERE user_id = ? AND mailbox_id = ?", (user_id, mailbox_id)
            )
            if has_children:  # RFC 3501 §6.3.4: inferiors stay; the name becomes \Noselect
                conn.execute("UPDATE mailboxes SET noselect = 1 WHERE id = ?", (mailbox_id,))
            else:
                conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
                _prune_placeholders(conn, user_id)
                _drop_orphan_metadata(conn, user_id)
            events: list[Event] = [MailboxDeleted(user_id, mailbox_id, name)]
            events += _set_metadata(conn, user_id, 0, server_metadata, origin)
            return None, events

        await self._writer.submit(job)

    async def rename_mailbox(
        self,
        user_id: int,
        old: str,
        new: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Renames `old` and its inferiors; renaming INBOX moves its messages instead (§6.3.5).

        METADATA entries follow the mailbox (they are keyed by mailbox id); renaming INBOX
        copies INBOX's entries to the new mailbox (RFC 5464 §4.1). `server_metadata` is set
        in the same transaction."""

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            source = _find(conn, user_id, old)
            if source is None:
                raise NoSuchMailbox(old)
            if _find(conn, user_id, new) is not None:
                raise MailboxExists(new)
            events: list[Event] = []
            parts = new.split("/")
            for depth in range(1, len(parts)):
                superior = "/".join(parts[:depth])
                if superior and _find(conn, user_id, superior) is None:
                    sid = _insert_mailbox(conn, user_id, superior, "")
                    events.append(MailboxCreated(user_id, sid, superior))
            if old == "INBOX":
                target = _insert_mailbox(conn, user_id, new, "")
                events.append(MailboxCreated(user_id, target, new))
                uids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (source,)
                    )
                ]
                _copy_rows(conn, source, uids, target)
                modseq = _expunge_rows(conn, source, uids)
                events.append(MessagesAdded(user_id, target, tuple(range(1, len(uids) + 1)), 1))
                if uids:
                    events.append(MessagesExpunged(user_id, source, tuple(uids), modseq))
                conn.execute(
                    "INSERT INTO metadata (user_id, mailbox_id, name, value)"
                    " SELECT user_id, ?, name, value FROM metadata"
                    " WHERE user_id = ? AND mailbox_id = ?",
                    (target, user_id, source),
                )
                events += _set_metadata(conn, user_id, 0, server_metadata, origin)
                return None, events
            renamed = [(source, old)]
            renamed += conn.execute(
                "SELECT id, name FROM mailboxes WHERE user_id = ? AND name LIKE ? ESCAPE '\\'",
                (user_id, children_pattern(old)),
            ).fetchall()
            for mailbox_id, name in renamed:
                new_name = new + name[len(old) :]
                conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new_name, mailbox_id))
                if conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name)
                ).rowcount:
                    conn.execute(
                        "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                        (user_id, new_name),
                    )
                events.append(MailboxRenamed(user_id, mailbox_id, name, new_name))
            _prune_placeholders(conn, user_id)
            _drop_orphan_metadata(conn, user_id)
            events += _set_metadata(conn, user_id, 0, server_metadata, origin)
            return None, events

        await self._writer.submit(job)

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            if subscribed:
                conn.execute(
                    "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                    (user_id, name),
                )
            else:
                conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name)
                )
            return None, [SubscriptionChanged(user_id, name, subscribed)]

        await self._writer.submit(job)

    def take_recent(self, mailbox_id: int, upto: int) -> int | None:
        return None  # one process serves a SQLite store: its live floor decides

    async def claim_recent(self, mailbox_id: int, floor: int) -> None:
        """Records that UIDs up to `floor` have been shown as \\Recent to some session."""

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            conn.execute(
                "UPDATE mailboxes SET recent_floor = max(recent_floor, ?) WHERE id = ?",
                (floor, mailbox_id),
            )
            return None, []

        await self._writer.submit(job, lazy=True)

    def status(self, mailbox: Mailbox) -> MailboxStatus:
        # the counts the mailbox row keeps (migration 9); \Recent by the primary key
        row = self._read.execute(
            "SELECT message_count, unseen_count, size_sum, (SELECT count(*) FROM messages"
            " WHERE mailbox_id = mailboxes.id AND uid > ?), deleted_count"
            " FROM mailboxes WHERE id = ?",
            (mailbox.recent_floor, mailbox.id),
        ).fetchone()
        return status_of(mailbox, row)

    async def read_status(self, mailbox: Mailbox) -> MailboxStatus:
        """`status()`: never suspends here (a local read)."""
        return self.status(mailbox)

    async def read_mailbox_status(
        self, user_id: int, name: str
    ) -> tuple[Mailbox, MailboxStatus] | None:
        """`get_mailbox()` then `status()`: two local reads, as the synchronous pair."""
        mailbox = self.get_mailbox(user_id, name)
        return None if mailbox is None else (mailbox, self.status(mailbox))

    # -- metadata (RFC 5464) ---------------------------------------------------

    async def read_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        return self.get_metadata(user_id, mailbox_id, names, depth)

    def get_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        """Entries named (or, with depth "1"/"infinity", below) `names` (RFC 5464 §4.2.2).

        `mailbox_id` 0 addresses server entries; names are case-insensitive."""
        out: dict[str, bytes] = {}
        for name in names:
            name = name.lower()
            if depth == "0":
                rows = self._read.execute(
                    "SELECT name, value FROM metadata"
                    " WHERE user_id = ? AND mailbox_id = ? AND name = ?",
                    (user_id, mailbox_id, name),
                )
            else:  # "/" is 0x2F and "0" 0x30: a range scan of the primary key
                rows = self._read.execute(
                    "SELECT name, value FROM metadata WHERE user_id = ? AND mailbox_id = ?"
                    " AND (name = ? OR (name > ? AND name < ?))",
                    (user_id, mailbox_id, name, name + "/", name + "0"),
                )
            for entry, value in rows:
                if depth == "1" and "/" in entry[len(name) + 1 :]:
                    continue
                out[entry] = bytes(value)
        return out

    async def set_metadata(
        self,
        user_id: int,
        mailbox_id: int,
        entries: MetadataUpdate,
        *,
        max_entries: int | None = None,
        ensure_mailboxes: Sequence[tuple[str, bool]] = (),
        origin: object | None = None,
    ) -> None:
        """Sets (None: removes) entries all or nothing (RFC 5464 §4.3).

        Raises MetadataTooMany when new entries would take the user past `max_entries`.
        `ensure_mailboxes` lists (name, subscribe) mailboxes created in the same
        transaction when missing (COI: enabling COI creates its folders)."""

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            if (
                mailbox_id
                and not conn.execute(
                    "SELECT 1 FROM mailboxes WHERE id = ? AND user_id = ?", (mailbox_id, user_id)
                ).fetchone()
            ):
                raise NoSuchMailbox(str(mailbox_id))
            before = _metadata_count(conn, user_id)
            events: list[Event] = []
            for name, subscribe in ensure_mailboxes:
                if _find_selectable(conn, user_id, name) is None:
                    events += _create_mailbox(conn, user_id, name, "")[1]
                if (
                    subscribe
                    and conn.execute(
                        "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                        (user_id, name),
                    ).rowcount
                ):
                    events.append(SubscriptionChanged(user_id, name, True))
            events += _set_metadata(conn, user_id, mailbox_id, entries, origin)
            after = _metadata_count(conn, user_id)
            if max_entries is not None and after > before and after > max_entries:
                raise MetadataTooMany(str(max_entries))
            return None, events

        await self._writer.submit(job)

    # -- messages --------------------------------------------------------------

    def uids(self, mailbox_id: int) -> array[int]:
        rows = self._read.execute(
            "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
        )
        return array("I", (row[0] for row in rows))

    def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """Per-message metadata for the given UIDs (missing ones were expunged)."""
        return {row[0]: _message_row(row) for row in self.row_tuples(mailbox_id, uids)}

    def row_tuples(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
        """The rows of `rows()` as plain tuples (uid, flags, keywords, modseq, size,
        internaldate, tz_minutes, blob_id), ascending by UID: for loops over whole
        mailboxes, where building an object per message is most of the cost."""
        return self._select(_ROW_COLUMNS, mailbox_id, uids)

    async def read_rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """`rows()`: never suspends here (a local read)."""
        return {row[0]: _message_row(row) for row in self.row_tuples(mailbox_id, uids)}

    async def read_row_tuples(
        self, mailbox_id: int, uids: Sequence[int]
    ) -> Iterable[tuple[Any, ...]]:
        """`row_tuples()`: never suspends here (a local read)."""
        return self._select(_ROW_COLUMNS, mailbox_id, uids)

    def flag_rows(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[int, int, str]]:
        """(uid, flag bits, keywords) of the given UIDs, ascending by UID."""
        return self._select("uid, flags, keywords", mailbox_id, uids)

    def _select(self, columns: str, mailbox_id: int, uids: Sequence[int]) -> Iterator[Any]:
        if not uids:
            return iter(())
        # a range (contiguous UIDs, the usual `FETCH a:b`) or a dense large set: one
        # BETWEEN statement, prepared once, instead of an IN list per length; a range is
        # the cursor itself, no generator step per row
        span = uids[-1] - uids[0] + 1
        if span == len(uids) or (len(uids) > _CHUNK and span < 4 * len(uids)):
            rows: Iterator[Any] = self._read.execute(
                f"SELECT {columns} FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?"
                " ORDER BY uid",
                (mailbox_id, uids[0], uids[-1]),
            )
            wanted = set(uids)
            if len(wanted) == span:  # every UID in the range is wanted
                return rows
            return (row for row in rows if row[0] in wanted)
        return self._select_chunks(columns, mailbox_id, uids)

    def _select_chunks(self, columns: str, mailbox_id: int, uids: Sequence[int]) -> Iterator[Any]:
        for chunk in _chunks(uids):
            yield from self._read.execute(
                f"SELECT {columns} FROM messages"
                f" WHERE mailbox_id = ? AND uid IN ({_in(len(chunk))}) ORDER BY uid",
                (mailbox_id, *chunk),
            )

    async def changed_since(self, mailbox_id: int, modseq: int) -> list[MessageRow]:
        """Messages whose mod-sequence is above `modseq` (RFC 7162 CHANGEDSINCE), by UID.

        Runs on the `messages_modseq` index: cost follows the number of changes, not the
        mailbox size."""
        rows = self._read.execute(
            f"SELECT {_ROW_COLUMNS} FROM messages INDEXED BY messages_modseq"
            " WHERE mailbox_id = ? AND modseq > ?",
            (mailbox_id, modseq),
        )
        return sorted((_message_row(row) for row in rows), key=lambda r: r.uid)

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged with a mod-sequence above `modseq` (tombstones), ascending."""
        rows = self._read.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
            (mailbox_id, modseq),
        )
        return sorted(row[0] for row in rows)

    async def first_unseen(self, mailbox_id: int) -> int | None:
        row = self._read.execute(
            "SELECT uid FROM messages WHERE mailbox_id = ? AND flags & ? = 0 ORDER BY uid LIMIT 1",
            (mailbox_id, SEEN),
        ).fetchone()
        return int(row[0]) if row else None

    def blob(self, blob_id: int) -> tuple[bytes, bytes] | None:
        """(raw bytes, serialized index) of one message body."""
        row = self._read.execute("SELECT raw, meta FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return (row[0], row[1]) if row else None

    async def blobs(self, blob_ids: Sequence[int]) -> dict[int, tuple[bytes, bytes]]:
        """(raw bytes, serialized index) of several bodies, one query per 500 (never
        suspends here)."""
        out: dict[int, tuple[bytes, bytes]] = {}
        for chunk in _chunks(sorted(set(blob_ids))):
            rows = self._read.execute(
                f"SELECT id, raw, meta FROM blobs WHERE id IN ({_in(len(chunk))})", tuple(chunk)
            )
            out.update((row[0], (row[1], row[2])) for row in rows)
        return out

    def meta(self, blob_id: int) -> bytes | None:
        row = self._read.execute("SELECT meta FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return row[0] if row else None

    def metas(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """Serialized indexes of many bodies at once (SORT), never the raw bytes."""
        out: dict[int, bytes] = {}
        for chunk in _chunks(sorted(set(blob_ids))):
            rows = self._read.execute(
                f"SELECT id, meta FROM blobs WHERE id IN ({_in(len(chunk))})", tuple(chunk)
            )
            out.update(rows)  # (id, meta) pairs
        return out

    def previews(self, blob_ids: Sequence[int]) -> dict[int, str]:
        """Stored PREVIEW texts (RFC 8970) of many bodies at once; bodies stored before
        previews were kept, and not asked for since, are missing."""
        out: dict[int, str] = {}
        for chunk in _chunks(sorted(set(blob_ids))):
            rows = self._read.execute(
                f"SELECT blob_id, text FROM previews WHERE blob_id IN ({_in(len(chunk))})",
                tuple(chunk),
            )
            out.update(rows)
        return out

    async def save_previews(self, previews: dict[int, str]) -> None:
        """Keeps previews computed late (for bodies stored before previews were kept)."""

        def job(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            conn.executemany(
                "INSERT OR IGNORE INTO previews (blob_id, text)"
                " SELECT id, ? FROM blobs WHERE id = ?",
                [(text, blob_id) for blob_id, text in previews.items()],
            )
            return None, []

        await self._writer.submit(job, lazy=True)

    def header_prefixes(self, blob_ids: Sequence[int], limit: int = 64 * 1024) -> dict[int, bytes]:
        """The header of each stored message (at most `limit` octets of it), read
        incrementally: never the whole message (THREAD REFERENCES, RFC 5256)."""
        out: dict[int, bytes] = {}
        for blob_id in sorted(set(blob_ids)):
            try:
                with self._read.blobopen("blobs", "raw", blob_id, readonly=True) as blob:
                    data = blob.read(limit)
            except sqlite3.OperationalError:  # expunged meanwhile
                continue
            end = _HEADER_END.search(data)
            out[blob_id] = data if end is None else data[: end.start() + 1]
        return out

    async def search_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """Stored search data of several messages at once (uid -> bytes)."""
        out: dict[int, bytes] = {}
        for chunk in _chunks(uids):
            rows = self._read.execute(
                "SELECT m.uid, b.search FROM messages AS m JOIN blobs AS b ON b.id = m.blob_id"
                f" WHERE m.mailbox_id = ? AND m.uid IN ({_in(len(chunk))})",
                (mailbox_id, *chunk),
            )
            out.update(rows)
        return out

    async def text_matches(self, mailbox_id: int, needles: Sequence[tuple[str, str]]) -> set[int]:
        """UIDs that may match SEARCH text keys: every (where, needle) is found in the folded
        header lines (where "header"), in the stored search data, whose strings marshal
        keeps as UTF-8 (where "body"), or in either ("text"). Bodies stored before header
        lines were kept are always included. A superset: the caller checks each one."""
        header, stored = "instr(h.text, ?) > 0", "instr(b.search, ?) > 0"
        tests: list[str] = []
        args: list[str | bytes] = []
        # Any subset of the needles gives a superset, so only the longest few (the most
        # selective) go into SQL: a SEARCH with a thousand text keys (RFC 3501 §6.4.4 sets
        # no limit) must not become an expression deeper than SQLite allows (1000).
        distinct = sorted(set(needles), key=lambda n: (-len(n[1]), n))[:_MAX_SQL_NEEDLES]
        for where, needle in distinct:
            utf8 = needle.encode("utf-8", "surrogatepass")
            if where == "header":
                tests.append(header)
                args.append(needle)
            elif where == "body":
                tests.append(stored)
                args.append(utf8)
            else:
                tests.append(f"({header} OR {stored})")
                args += [needle, utf8]
        body = any(where != "header" for where, _ in distinct)
        rows = self._read.execute(
            "SELECT m.uid FROM messages AS m LEFT JOIN search_headers AS h ON h.blob_id = m.blob_id"
            + (" JOIN blobs AS b ON b.id = m.blob_id" if body else "")
            + f" WHERE m.mailbox_id = ? AND (h.text IS NULL OR ({' AND '.join(tests)}))",
            (mailbox_id, *args),
        )
        return {row[0] for row in rows}

    def search_blob(self, blob_id: int) -> bytes | None:
        row = self._read.execute("SELECT search FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return row[0] if row else None

    async def append(
        self, mailbox_id: int, messages: Sequence[NewMessage], origin: object | None = None
    ) -> tuple[int, list[int]]:
        """Stores the messages; returns (uidvalidity, assigned UIDs) once durable."""

        def job(conn: sqlite3.Connection) -> tuple[tuple[int, list[int]], list[Event]]:
            row = conn.execute(
                "SELECT user_id, uidvalidity, uidnext, highestmodseq, keywords FROM mailboxes"
                " WHERE id = ?",
                (mailbox_id,),
            ).fetchone()
            if row is None:
                raise NoSuchMailbox(str(mailbox_id))
            user_id, uidvalidity, uid, modseq, known = row
            modseq += 1
            keywords = set(Flags.parse_keywords(known))
            uids: list[int] = []
            blob_id = _next_blob_id(conn)
            for message in messages:
                cur = conn.execute(
                    "INSERT INTO blobs (id, raw, meta, search, refs) VALUES (?, ?, ?, ?, 1)",
                    (blob_id, message.raw, message.meta, message.search),
                )
                blob_id += 1
                if message.header_text:
                    conn.execute(
                        "INSERT INTO search_headers (blob_id, text) VALUES (?, ?)",
                        (cur.lastrowid, message.header_text),
                    )
                if message.preview is not None:
                    conn.execute(
                        "INSERT INTO previews (blob_id, text) VALUES (?, ?)",
                        (cur.lastrowid, message.preview),
                    )
                stamp = message.internaldate
                offset = stamp.utcoffset()
                conn.execute(
                    "INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,"
                    " internaldate, tz_minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        mailbox_id,
                        uid,
                        cur.lastrowid,
                        message.flags.bits,
                        message.flags.keywords_text(),
                        modseq,
                        len(message.raw) if message.size is None else message.size,
                        int(stamp.timestamp()),
                        int(offset.total_seconds() // 60) if offset else 0,
                    ),
                )
                keywords.update(message.flags.keywords)
                uids.append(uid)
                uid += 1
            conn.execute(
                "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, keywords = ? WHERE id = ?",
                (uid, modseq, " ".join(sorted(keywords)), mailbox_id),
            )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_blob_id'", (str(blob_id),))
            event = MessagesAdded(
                user_id, mailbox_id, tuple(uids), modseq, origin, tuple(m.flags for m in messages)
            )
            return (uidvalidity, uids), [event]

        result: tuple[int, list[int]] = await self._writer.submit(job)
        return result

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Flags,
        unchangedsince: int | None = None,
        origin: object | None = None,
    ) -> FlagChanges:
        """Changes flags; what was changed, failed UNCHANGEDSINCE and left as it was."""

        def job(conn: sqlite3.Connection) -> tuple[FlagChanges, list[Event]]:
            row = conn.execute(
                "SELECT user_id, highestmodseq, keywords FROM mailboxes WHERE id = ?",
                (mailbox_id,),
            ).fetchone()
            if row is None:
                raise NoSuchMailbox(str(mailbox_id))
            user_id, modseq, known = row
            modseq += 1
            changed: list[tuple[int, Flags, int]] = []
            before: dict[int, Flags] = {}
            failed: list[int] = []
            unchanged: list[tuple[int, Flags, int]] = []
            for chunk in _chunks(list(uids)):
                current = conn.execute(
                    f"SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?"
                    f" AND uid IN ({_in(len(chunk))})",
                    (mailbox_id, *chunk),
                ).fetchall()
                for uid, bits, keywords, old_modseq in current:
                    old = Flags(bits, Flags.parse_keywords(keywords))
                    if unchangedsince is not None and old_modseq > unchangedsince:
                        failed.append(uid)
                        unchanged.append((uid, old, old_modseq))
                        continue
                    new = (
                        flags
                        if mode == "set"
                        else old.union(flags)
                        if mode == "add"
                        else old.difference(flags)
                    )
                    if new == old:
                        unchanged.append((uid, old, old_modseq))
                        continue
                    conn.execute(
                        "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
                        " WHERE mailbox_id = ? AND uid = ?",
                        (new.bits, new.keywords_text(), modseq, mailbox_id, uid),
                    )
                    changed.append((uid, new, modseq))
                    before[uid] = old
            unchanged.sort()
            if not changed:
                return FlagChanges(changed, sorted(failed), unchanged), []
            all_keywords = set(Flags.parse_keywords(known))
            if mode != "remove" and not all_keywords.issuperset(flags.keywords):
                all_keywords.update(flags.keywords)
                conn.execute(
                    "UPDATE mailboxes SET keywords = ? WHERE id = ?",
                    (" ".join(sorted(all_keywords)), mailbox_id),
                )
            conn.execute(
                "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id)
            )
            changed.sort()
            return FlagChanges(changed, sorted(failed), unchanged), [
                FlagsChanged(
                    user_id,
                    mailbox_id,
                    tuple(changed),
                    origin,
                    tuple(before[uid] for uid, _, _ in changed),
                )
            ]

        result: FlagChanges = await self._writer.submit(job, lazy=True)
        return result

    async def copy(
        self,
        source_id: int,
        uids: Sequence[int],
        target_id: int,
        *,
        move: bool = False,
        origin: object | None = None,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copies (or moves) messages; returns (target uidvalidity, [(source uid, new uid)])."""

        def job(
            conn: sqlite3.Connection,
        ) -> tuple[tuple[int, list[tuple[int, int]]], list[Event]]:
            mapping = _copy_rows(conn, source_id, list(uids), target_id)
            target = conn.execute(
                "SELECT user_id, uidvalidity, highestmodseq FROM mailboxes WHERE id = ?",
                (target_id,),
            ).fetchone()
            events: list[Event] = []
            if mapping:
                events.append(
                    MessagesAdded(
                        target[0], target_id, tuple(n for _, n in mapping), target[2], origin
                    )
                )
            if move and mapping:
                moved = [old for old, _ in mapping]
                modseq = _expunge_rows(conn, source_id, moved)
                events.append(MessagesExpunged(target[0], source_id, tuple(moved), modseq, origin))
            return (target[1], mapping), events

        result: tuple[int, list[tuple[int, int]]] = await self._writer.submit(job)
        return result

    async def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> list[int]:
        """Removes \\Deleted messages (only those among `uids` when given)."""

        def job(conn: sqlite3.Connection) -> tuple[list[int], list[Event]]:
            row = conn.execute(
                "SELECT user_id FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NoSuchMailbox(str(mailbox_id))
            deleted = [
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM messages INDEXED BY messages_deleted"  # migration 10
                    f" WHERE mailbox_id = ? AND flags & {DELETED} = {DELETED} ORDER BY uid",
                    (mailbox_id,),
                )
            ]
            if uids is not None:
                allowed = set(uids)
                deleted = [uid for uid in deleted if uid in allowed]
            if not deleted:
                return [], []
            modseq = _expunge_rows(conn, mailbox_id, deleted)
            return deleted, [MessagesExpunged(row[0], mailbox_id, tuple(deleted), modseq, origin)]

        result: list[int] = await self._writer.submit(job)
        return result


if TYPE_CHECKING:  # mypy proves here that the backend implements the whole interface

    def _implements(store: SqliteStore) -> Store:
        return store


# -- helpers that run on the writer thread -----------------------------------------


def _find(conn: sqlite3.Connection, user_id: int, name: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)
    ).fetchone()
    return int(row[0]) if row else None


def _find_selectable(conn: sqlite3.Connection, user_id: int, name: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM mailboxes WHERE user_id = ? AND name = ? AND noselect = 0", (user_id, name)
    ).fetchone()
    return int(row[0]) if row else None


def _create_mailbox(
    conn: sqlite3.Connection, user_id: int, name: str, special_use: str
) -> tuple[int, list[Event]]:
    existing = _find(conn, user_id, name)
    if existing is not None:
        if not conn.execute("SELECT noselect FROM mailboxes WHERE id = ?", (existing,)).fetchone()[
            0
        ]:
            raise MailboxExists(name)
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (existing,))
    events: list[Event] = []
    parts = name.split("/")
    for depth in range(1, len(parts)):
        superior = "/".join(parts[:depth])
        if superior and _find(conn, user_id, superior) is None:
            sid = _insert_mailbox(conn, user_id, superior, "")
            events.append(MailboxCreated(user_id, sid, superior))
    mailbox_id = _insert_mailbox(conn, user_id, name, special_use)
    events.append(MailboxCreated(user_id, mailbox_id, name))
    return mailbox_id, events


def _metadata_count(conn: sqlite3.Connection, user_id: int) -> int:
    return int(
        conn.execute("SELECT count(*) FROM metadata WHERE user_id = ?", (user_id,)).fetchone()[0]
    )


def _set_metadata(
    conn: sqlite3.Connection,
    user_id: int,
    mailbox_id: int,
    entries: MetadataUpdate,
    origin: object | None,
) -> list[Event]:
    """Applies the entries; one MetadataChanged event naming those that really changed."""
    changed: set[str] = set()
    for name, value in entries:
        name = name.lower()
        row = conn.execute(
            "SELECT value FROM metadata WHERE user_id = ? AND mailbox_id = ? AND name = ?",
            (user_id, mailbox_id, name),
        ).fetchone()
        if value is None:
            if row is not None:
                conn.execute(
                    "DELETE FROM metadata WHERE user_id = ? AND mailbox_id = ? AND name = ?",
                    (user_id, mailbox_id, name),
                )
                changed.add(name)
        elif row is None:
            conn.execute(
                "INSERT INTO metadata (user_id, mailbox_id, name, value) VALUES (?, ?, ?, ?)",
                (user_id, mailbox_id, name, value),
            )
            changed.add(name)
        elif bytes(row[0]) != value:
            conn.execute(
                "UPDATE metadata SET value = ? WHERE user_id = ? AND mailbox_id = ? AND name = ?",
                (value, user_id, mailbox_id, name),
            )
            changed.add(name)
    if not changed:
        return []
    return [MetadataChanged(user_id, mailbox_id, tuple(sorted(changed)), origin)]


def _drop_orphan_metadata(conn: sqlite3.Connection, user_id: int) -> None:
    """Entries of mailboxes that no longer exist (pruned \\Noselect names) go too."""
    conn.execute(
        "DELETE FROM metadata WHERE user_id = ? AND mailbox_id <> 0"
        " AND mailbox_id NOT IN (SELECT id FROM mailboxes WHERE user_id = ?)",
        (user_id, user_id),
    )


def _next_uidvalidity(conn: sqlite3.Connection) -> int:
    """Strictly increasing across the server, so a re-created name never reuses one."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    last = int(row[0]) if row else 0
    value = max(int(time.time()), last + 1) & 0xFFFFFFFF
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(value),),
    )
    return value


def _next_blob_id(conn: sqlite3.Connection) -> int:
    """The id for the next body: above every id ever given (kept in `meta`, as SQLite
    would reuse the highest rowid after its row is deleted), so an EMAILID derived from
    it never names other content (RFC 8474 §5.1)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'next_blob_id'").fetchone()
    top = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM blobs").fetchone()[0]
    return max(int(row[0]) if row else 1, int(top))


def _insert_mailbox(conn: sqlite3.Connection, user_id: int, name: str, special_use: str) -> int:
    cur = conn.execute(
        "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
        (user_id, name, _next_uidvalidity(conn), special_use),
    )
    return int(cur.lastrowid or 0)


def _copy_rows(
    conn: sqlite3.Connection, source_id: int, uids: list[int], target_id: int
) -> list[tuple[int, int]]:
    target = conn.execute(
        "SELECT uidnext, highestmodseq, keywords FROM mailboxes WHERE id = ?", (target_id,)
    ).fetchone()
    if target is None:
        raise NoSuchMailbox(str(target_id))
    uid, modseq, known = target
    modseq += 1
    keywords = set(Flags.parse_keywords(known))
    mapping: list[tuple[int, int]] = []
    for chunk in _chunks(uids):
        rows = conn.execute(
            f"SELECT uid, blob_id, flags, keywords, size, internaldate, tz_minutes FROM messages"
            f" WHERE mailbox_id = ? AND uid IN ({_in(len(chunk))}) ORDER BY uid",
            (source_id, *chunk),
        ).fetchall()
        for old_uid, blob_id, bits, kw, size, internaldate, tz in rows:
            conn.execute(
                "INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,"
                " internaldate, tz_minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (target_id, uid, blob_id, bits, kw, modseq, size, internaldate, tz),
            )
            conn.execute("UPDATE blobs SET refs = refs + 1 WHERE id = ?", (blob_id,))
            keywords.update(Flags.parse_keywords(kw))
            mapping.append((old_uid, uid))
            uid += 1
    conn.execute(
        "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, keywords = ? WHERE id = ?",
        (uid, modseq, " ".join(sorted(keywords)), target_id),
    )
    return mapping


def _expunge_rows(conn: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> int:
    modseq = (
        int(
            conn.execute(
                "SELECT highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()[0]
        )
        + 1
    )
    for chunk in _chunks(uids):
        marks = _in(len(chunk))
        blob_ids = [
            r[0]
            for r in conn.execute(
                f"SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *chunk),
            )
        ]
        conn.execute(
            f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})", (mailbox_id, *chunk)
        )
        conn.executemany(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
            [(mailbox_id, uid, modseq) for uid in chunk],
        )
        _release_blobs(conn, blob_ids)
    conn.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
    return modseq


def _release_blobs(conn: sqlite3.Connection, blob_ids: list[int]) -> None:
    for blob_id in blob_ids:
        conn.execute("UPDATE blobs SET refs = refs - 1 WHERE id = ?", (blob_id,))
    conn.executemany(
        "DELETE FROM blobs WHERE id = ? AND refs <= 0", [(blob_id,) for blob_id in blob_ids]
    )


def _prune_placeholders(conn: sqlite3.Connection, user_id: int) -> None:
    """\\Noselect names exist only for their inferiors; without any they go away."""
    while conn.execute(
        "DELETE FROM mailboxes AS m WHERE m.user_id = ? AND m.noselect = 1 AND NOT EXISTS ("
        " SELECT 1 FROM mailboxes AS c WHERE c.user_id = m.user_id"
        " AND substr(c.name, 1, length(m.name) + 1) = m.name || '/')",
        (user_id,),
    ).rowcount:
        pass


def _drop_mailbox_contents(conn: sqlite3.Connection, mailbox_id: int) -> None:
    blob_ids = [
        r[0]
        for r in conn.execute("SELECT blob_id FROM messages WHERE mailbox_id = ?", (mailbox_id,))
    ]
    conn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
    conn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
    _release_blobs(conn, blob_ids)
