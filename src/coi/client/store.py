"""The client's local store: one SQLite file per profile.

The server is the source of truth; this store is a cache that a sync can always
rebuild, plus what only this device knows (which messages were shown, outgoing
messages not yet confirmed).  Invariants:

* A message is one row per account and Message-ID, wherever it lies on the
  server; ``location`` rows say in which folders (a move is an expunge in one folder
  and a new UID in another, and must not make a second message).
* Rows are ordered by arrival: ``arrived`` (the server's INTERNALDATE, whole seconds,
  or the send time cut to the second for our own), never by the Date header alone:
  Delta Chat shifts its Date into the past.  Within one second the Date header, then
  ``seq`` (local insertion order, which follows UID order per folder) break the tie,
  and a message never sorts before one it references (``parent``), whichever folder
  brought which first.
* Every write is a transaction committed before the caller goes on
  (``synchronous=FULL``), so a crash leaves the store as of the last finished step.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coi.client.profile import AccountSettings, Endpoint, FilterMode, ProfileError, Security

_SCHEMA = """
CREATE TABLE account (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    imap_host TEXT NOT NULL,
    imap_port INTEGER NOT NULL,
    smtp_host TEXT NOT NULL,
    smtp_port INTEGER NOT NULL,
    security TEXT NOT NULL,
    accept_invalid_cert INTEGER NOT NULL DEFAULT 0,
    filter TEXT NOT NULL DEFAULT 'none',
    read_receipts INTEGER NOT NULL DEFAULT 0,
    server_kind TEXT NOT NULL DEFAULT '',
    mailbox_root TEXT NOT NULL DEFAULT 'COI',
    last_sync REAL NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE folder (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    uidnext INTEGER NOT NULL DEFAULT 0,
    highestmodseq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
) STRICT;
CREATE TABLE chat (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    peer TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    request INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, key)
) STRICT;
CREATE TABLE contact (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    accepted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, addr)
) STRICT;
CREATE TABLE message (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    chat_id INTEGER REFERENCES chat(id) ON DELETE SET NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL DEFAULT '',
    sender_name TEXT NOT NULL DEFAULT '',
    outgoing INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    is_email INTEGER NOT NULL DEFAULT 0,
    visible INTEGER NOT NULL DEFAULT 1,
    arrived REAL NOT NULL,
    seq INTEGER NOT NULL,
    date_header REAL NOT NULL DEFAULT 0,
    in_reply_to TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'received',
    error TEXT NOT NULL DEFAULT '',
    receipt_to TEXT NOT NULL DEFAULT '',
    shown INTEGER NOT NULL DEFAULT 0,
    mdn_sent INTEGER NOT NULL DEFAULT 0,
    edited INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    on_server INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL DEFAULT x'',
    UNIQUE (account_id, message_id)
) STRICT;
CREATE INDEX message_chat ON message (chat_id, arrived, date_header, seq);
CREATE INDEX message_target ON message (account_id, target);
CREATE TABLE location (
    folder_id INTEGER NOT NULL REFERENCES folder(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    flags TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (folder_id, uid)
) STRICT;
CREATE INDEX location_message ON location (message);
CREATE TABLE attachment (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL
) STRICT;
CREATE TABLE edit (
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    by_message TEXT NOT NULL,
    text TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL,
    PRIMARY KEY (message, by_message)
) STRICT;
CREATE TABLE reaction (
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    sender TEXT NOT NULL COLLATE NOCASE,
    emoji TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (message, sender)
) STRICT;
CREATE TABLE parent (
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    mid TEXT NOT NULL,
    PRIMARY KEY (mid, message)
) STRICT;
CREATE TABLE waiting (
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    PRIMARY KEY (target, message)
) STRICT;
CREATE TABLE receipt (
    message INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    reader TEXT NOT NULL COLLATE NOCASE,
    at REAL NOT NULL,
    PRIMARY KEY (message, reader)
) STRICT;
"""

# Autocrypt (client part 2): peers' keys and preferences, the account's "encrypt only" setting,
# and per message whether it came encrypted and signed by the sender's known key.
_AUTOCRYPT = """
ALTER TABLE account ADD COLUMN encrypt_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
CREATE TABLE peer (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    last_seen REAL NOT NULL DEFAULT 0,
    autocrypt_timestamp REAL NOT NULL DEFAULT 0,
    public BLOB NOT NULL DEFAULT x'',
    prefer_encrypt INTEGER NOT NULL DEFAULT 0,
    gossip_timestamp REAL NOT NULL DEFAULT 0,
    gossip_key BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (account_id, addr)
) STRICT;
"""

# Groups: who is in each group chat, as the latest group message (or our own change) says.
_MEMBERS = """
CREATE TABLE member (
    chat_id INTEGER NOT NULL REFERENCES chat(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (chat_id, addr)
) STRICT;
"""

# Profiles, pins (client part 3): what we and our contacts show of themselves, which version
# of our profile each contact got, a pending profile request, and pinned messages.
_PROFILES = """
CREATE TABLE profile_card (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    avatar TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL DEFAULT 0,
    storage_uidvalidity INTEGER NOT NULL DEFAULT 0,
    storage_uid INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, addr)
) STRICT;
CREATE TABLE profile_sent (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    version INTEGER NOT NULL DEFAULT 0,
    request INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, addr)
) STRICT;
CREATE TABLE pin (
    message INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,
    chat_id INTEGER REFERENCES chat(id) ON DELETE CASCADE,
    until REAL NOT NULL DEFAULT 0,
    at REAL NOT NULL DEFAULT 0,
    unpinned INTEGER NOT NULL DEFAULT 0
) STRICT;
"""

# Contacts (client part 3): the <root>/Contacts folder, one row per contact storage message
# (coi.client.contacts); "hashes" and "emails" are space separated.
_CONTACTS = """
CREATE TABLE stored_contact (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    addr TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    blocked INTEGER NOT NULL DEFAULT 0,
    hashes TEXT NOT NULL DEFAULT '',
    emails TEXT NOT NULL DEFAULT '',
    date REAL NOT NULL DEFAULT 0,
    raw BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (account_id, uid)
) STRICT;
"""

# Groups we left or were removed from (coi.client.groups): no more sending there.
_GROUPS = """
CREATE TABLE group_left (
    chat_id INTEGER PRIMARY KEY REFERENCES chat(id) ON DELETE CASCADE
) STRICT;
-- what our next message to a group carries: 'request' (grouprequested), 'info' (groupinfo)
CREATE TABLE group_pending (
    chat_id INTEGER NOT NULL REFERENCES chat(id) ON DELETE CASCADE,
    what TEXT NOT NULL,
    PRIMARY KEY (chat_id, what)
) STRICT;
"""

# Group storage messages in <root>/Contacts (coi.client.storage): the one stored for each
# group (its UID, to replace it), the Date of what was last applied or stored, and
# whether this device changed the group since (stored at the next sync).
_GROUP_STORAGE = """
CREATE TABLE group_storage (
    chat_id INTEGER PRIMARY KEY REFERENCES chat(id) ON DELETE CASCADE,
    uidvalidity INTEGER NOT NULL DEFAULT 0,
    uid INTEGER NOT NULL DEFAULT 0,
    date REAL NOT NULL DEFAULT 0,
    dirty INTEGER NOT NULL DEFAULT 0
) STRICT;
"""

# Muted chats (coi.client.notify), by chat key so that a setting synced from a contact
# or group storage message can arrive before its chat: muted until ``until`` (0: until
# unmuted); ``changed`` is when the setting was made (the newer one wins); a row with
# muted=0 remembers an unmute.
_MUTE = """
CREATE TABLE mute (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    muted INTEGER NOT NULL DEFAULT 0,
    until REAL NOT NULL DEFAULT 0,
    changed REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, key)
) STRICT;
"""

# A group's description and avatar (coi.client.groups): from the latest groupinfo part or
# group storage message; ``avatar`` is the image's path under the account's files.
_GROUP_DETAILS = """
CREATE TABLE group_details (
    chat_id INTEGER PRIMARY KEY REFERENCES chat(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    avatar TEXT NOT NULL DEFAULT ''
) STRICT;
"""

# Categories (coi-client-spec: Contact Storage Message Body ``p-category``, User Profile
# Storage Message): each stored contact's categories (comma separated), our profile's
# variants per category (the default stays in profile_card), and which variant (its
# categories, '' for the default) each contact last got.
_CATEGORIES = """
ALTER TABLE stored_contact ADD COLUMN categories TEXT NOT NULL DEFAULT '';
CREATE TABLE profile_variant (
    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    categories TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    avatar TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, categories)
) STRICT;
ALTER TABLE profile_sent ADD COLUMN variant TEXT NOT NULL DEFAULT '';
"""

# When each member left a group (their groupleft, or their removal): the Date of the
# latest, so that a re-add by a message answering an older one is ignored
# (coi-client-spec: Processing Group Participants Changes).
_MEMBER_LEFT = """
CREATE TABLE member_left (
    chat_id INTEGER NOT NULL REFERENCES chat(id) ON DELETE CASCADE,
    addr TEXT NOT NULL COLLATE NOCASE,
    at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, addr)
) STRICT;
"""

_MIGRATIONS = (
    _SCHEMA, _AUTOCRYPT, _MEMBERS, _PROFILES, _CONTACTS, _GROUPS, _GROUP_STORAGE, _MUTE,
    _GROUP_DETAILS, _CATEGORIES, _MEMBER_LEFT,
)  # fmt: skip
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    settings: AccountSettings
    server_kind: str  # "coi", "plain" or "" (never connected)
    mailbox_root: str
    last_sync: float

    @property
    def address(self) -> str:
        return self.settings.address


@dataclass(frozen=True, slots=True)
class Folder:
    id: int
    account_id: int
    name: str
    role: str  # inbox, chats, sent
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    account_id: int
    key: str
    peer: str
    name: str
    request: bool
    unread: int = 0
    last_text: str = ""
    last_arrived: float = 0.0
    muted_until: float | None = None  # None: not muted; 0: until unmuted (coi.client.notify)

    @property
    def title(self) -> str:
        """What to call the chat: its name, its peer, or a placeholder for a group without
        a name here (its name is in a message this device cannot decrypt, or a mail to
        several people had no subject)."""
        return self.name or self.peer or "(unnamed group)"

    def muted(self, now: float | None = None) -> bool:
        """Muted now (a mute with a time ends then)."""
        if self.muted_until is None:
            return False
        return self.muted_until == 0 or self.muted_until > (time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    filename: str
    content_type: str
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as a chat shows it (the latest version after edits)."""

    id: int
    account_id: int
    chat_id: int | None
    message_id: str
    kind: str
    sender: str
    sender_name: str
    outgoing: bool
    text: str
    subject: str
    is_email: bool
    visible: bool
    arrived: float
    in_reply_to: str
    target: str
    state: str
    error: str
    receipt_to: str
    shown: bool
    mdn_sent: bool
    edited: bool
    deleted: bool
    encrypted: bool = False
    verified: bool = False


_MESSAGE_COLUMNS = (
    "id, account_id, chat_id, message_id, kind, sender, sender_name, outgoing, text, subject,"
    " is_email, visible, arrived, in_reply_to, target, state, error, receipt_to, shown,"
    " mdn_sent, edited, deleted, encrypted, verified"
)


def _message(row: Sequence[object]) -> MessageRow:
    (id_, account, chat, mid, kind, sender, name, outgoing, text, subject, is_email, visible,
     arrived, irt, target, state, error, receipt_to, shown, mdn, edited, deleted, encrypted,
     verified) = row  # fmt: skip
    return MessageRow(
        int(id_),  # type: ignore[call-overload]
        int(account),  # type: ignore[call-overload]
        None if chat is None else int(chat),  # type: ignore[call-overload]
        str(mid), str(kind), str(sender), str(name), bool(outgoing), str(text), str(subject),
        bool(is_email), bool(visible), float(arrived),  # type: ignore[arg-type]
        str(irt), str(target), str(state), str(error), str(receipt_to), bool(shown), bool(mdn),
        bool(edited), bool(deleted), bool(encrypted), bool(verified),
    )  # fmt: skip


class LocalStore:
    """Synchronous SQLite access; each public method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=10000")
        self._depth = 0
        self._migrate()
        self._seq = int(self.db.execute("SELECT coalesce(max(seq), 0) FROM message").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Numbered, append-only migrations, each in its own transaction."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ProfileError(
                f"{self.path} was written by a newer coi (schema {version}); upgrade coi"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            # executescript commits first, so the script is its own transaction
            self.db.executescript(
                f"BEGIN IMMEDIATE; {script} PRAGMA user_version={number}; COMMIT;"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; nested, a savepoint that a failure rolls back alone."""
        if self.db.in_transaction:
            self._depth += 1
            name = f"sp{self._depth}"
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            finally:
                self._depth -= 1
            self.db.execute(f"RELEASE {name}")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- accounts ---------------------------------------------------------------------

    def add_account(self, s: AccountSettings) -> Account:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO account (address, name, imap_host, imap_port, smtp_host, smtp_port,"
                " security, accept_invalid_cert, filter, read_receipts, encrypt_only)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.address, s.name, s.imap.host, s.imap.port, s.smtp.host, s.smtp.port,
                 s.security.value, int(s.accept_invalid_cert), s.filter.value,
                 int(s.read_receipts), int(s.encrypt_only)),
            )  # fmt: skip
        account = self.account_by_id(int(cur.lastrowid or 0))
        assert account is not None
        return account

    def update_account_settings(self, account_id: int, s: AccountSettings) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE account SET name=?, imap_host=?, imap_port=?, smtp_host=?, smtp_port=?,"
                " security=?, accept_invalid_cert=?, filter=?, read_receipts=?, encrypt_only=?"
                " WHERE id=?",
                (s.name, s.imap.host, s.imap.port, s.smtp.host, s.smtp.port, s.security.value,
                 int(s.accept_invalid_cert), s.filter.value, int(s.read_receipts),
                 int(s.encrypt_only), account_id),
            )  # fmt: skip

    def set_server_kind(self, account_id: int, kind: str, mailbox_root: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE account SET server_kind=?, mailbox_root=? WHERE id=?",
                (kind, mailbox_root, account_id),
            )

    def mark_synced(self, account_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE account SET last_sync=? WHERE id=?", (time.time(), account_id))

    _ACCOUNT_SELECT = (
        "SELECT id, address, name, imap_host, imap_port, smtp_host, smtp_port, security,"
        " accept_invalid_cert, filter, read_receipts, server_kind, mailbox_root, last_sync,"
        " encrypt_only FROM account"
    )

    @staticmethod
    def _account(row: Sequence[object]) -> Account:
        (id_, address, name, ihost, iport, shost, sport, security, invalid, filt, receipts,
         kind, root, last, encrypt_only) = row  # fmt: skip
        settings = AccountSettings(
            address=str(address),
            imap=Endpoint(str(ihost), int(iport)),  # type: ignore[call-overload]
            smtp=Endpoint(str(shost), int(sport)),  # type: ignore[call-overload]
            security=Security(str(security)),
            accept_invalid_cert=bool(invalid),
            filter=FilterMode(str(filt)),
            name=str(name),
            read_receipts=bool(receipts),
            encrypt_only=bool(encrypt_only),
        )
        return Account(int(id_), settings, str(kind), str(root), float(last))  # type: ignore[call-overload, arg-type]

    def accounts(self) -> list[Account]:
        rows = self.db.execute(self._ACCOUNT_SELECT + " ORDER BY id").fetchall()
        return [self._account(r) for r in rows]

    def account_by_id(self, account_id: int) -> Account | None:
        row = self.db.execute(self._ACCOUNT_SELECT + " WHERE id=?", (account_id,)).fetchone()
        return None if row is None else self._account(row)

    def account_by_address(self, address: str) -> Account | None:
        row = self.db.execute(self._ACCOUNT_SELECT + " WHERE address=?", (address,)).fetchone()
        return None if row is None else self._account(row)

    def remove_account(self, account_id: int) -> list[str]:
        """Removes the account and everything synced for it; returns its files to delete."""
        with self.transaction() as db:
            paths = [
                str(r[0])
                for r in db.execute(
                    "SELECT a.path FROM attachment a JOIN message m ON m.id = a.message"
                    " WHERE m.account_id=?",
                    (account_id,),
                )
            ]
            db.execute("DELETE FROM account WHERE id=?", (account_id,))
        return paths

    # -- folders ----------------------------------------------------------------------

    def folder(self, account_id: int, name: str, role: str) -> Folder:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO folder (account_id, name, role) VALUES (?, ?, ?)"
                " ON CONFLICT (account_id, name) DO UPDATE SET role=excluded.role",
                (account_id, name, role),
            )
            row = db.execute(
                "SELECT id, account_id, name, role, uidvalidity, uidnext, highestmodseq"
                " FROM folder WHERE account_id=? AND name=?",
                (account_id, name),
            ).fetchone()
        return Folder(*row)

    def folders(self, account_id: int) -> list[Folder]:
        rows = self.db.execute(
            "SELECT id, account_id, name, role, uidvalidity, uidnext, highestmodseq"
            " FROM folder WHERE account_id=? ORDER BY id",
            (account_id,),
        ).fetchall()
        return [Folder(*r) for r in rows]

    def reset_folder(self, folder_id: int, uidvalidity: int) -> None:
        """UIDVALIDITY changed: every UID we knew is void (RFC 3501 §2.3.1.1)."""
        with self.transaction() as db:
            db.execute("DELETE FROM location WHERE folder_id=?", (folder_id,))
            db.execute(
                "UPDATE folder SET uidvalidity=?, uidnext=0, highestmodseq=0 WHERE id=?",
                (uidvalidity, folder_id),
            )

    def save_folder_state(self, folder_id: int, uidnext: int, highestmodseq: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE folder SET uidnext=?, highestmodseq=? WHERE id=?",
                (uidnext, highestmodseq, folder_id),
            )

    def folder_uids(self, folder_id: int) -> dict[int, str]:
        """UID -> flags (space separated) of every message we know in the folder."""
        return {
            int(uid): str(flags)
            for uid, flags in self.db.execute(
                "SELECT uid, flags FROM location WHERE folder_id=?", (folder_id,)
            )
        }

    def set_flags(self, folder_id: int, changes: Iterable[tuple[int, str, int]]) -> list[int]:
        """(uid, flags, modseq) for known UIDs; returns the message ids that changed."""
        changed: list[int] = []
        with self.transaction() as db:
            for uid, flags, modseq in changes:
                row = db.execute(
                    "UPDATE location SET flags=?, modseq=? WHERE folder_id=? AND uid=?"
                    " AND flags != ? RETURNING message",
                    (flags, modseq, folder_id, uid, flags),
                ).fetchone()
                if row is not None:
                    changed.append(int(row[0]))
        return changed

    def remove_uids(self, folder_id: int, uids: Iterable[int]) -> int:
        """Forgets UIDs expunged from the folder; returns how many we knew."""
        with self.transaction() as db:
            cur = db.executemany(
                "DELETE FROM location WHERE folder_id=? AND uid=?",
                [(folder_id, uid) for uid in uids],
            )
            return cur.rowcount

    def max_uid(self, folder_id: int) -> int:
        row = self.db.execute(
            "SELECT coalesce(max(uid), 0) FROM location WHERE folder_id=?", (folder_id,)
        ).fetchone()
        return int(row[0])

    def add_location(self, message: int, folder_id: int, uid: int, flags: str, modseq: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO location (folder_id, uid, message, flags, modseq)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (folder_id, uid) DO UPDATE"
                " SET message=excluded.message, flags=excluded.flags, modseq=excluded.modseq",
                (folder_id, uid, message, flags, modseq),
            )
            db.execute("UPDATE message SET on_server=1 WHERE id=?", (message,))

    def locations(self, message: int) -> list[tuple[Folder, int, str]]:
        rows = self.db.execute(
            "SELECT f.id, f.account_id, f.name, f.role, f.uidvalidity, f.uidnext,"
            " f.highestmodseq, l.uid, l.flags FROM location l JOIN folder f ON f.id = l.folder_id"
            " WHERE l.message=? ORDER BY f.id",
            (message,),
        ).fetchall()
        return [(Folder(*r[:7]), int(r[7]), str(r[8])) for r in rows]

    def orphans(self, account_id: int) -> list[int]:
        """Messages that were on the server and are on it no more (expunged elsewhere)."""
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT m.id FROM message m WHERE m.account_id=? AND m.on_server=1"
                " AND NOT EXISTS (SELECT 1 FROM location l WHERE l.message = m.id)",
                (account_id,),
            )
        ]

    # -- messages ---------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def message_by_mid(self, account_id: int, message_id: str) -> MessageRow | None:
        row = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE account_id=? AND message_id=?",
            (account_id, message_id),
        ).fetchone()
        return None if row is None else _message(row)

    def message(self, message: int) -> MessageRow | None:
        row = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id=?", (message,)
        ).fetchone()
        return None if row is None else _message(row)

    def raw(self, message: int) -> bytes:
        row = self.db.execute("SELECT raw FROM message WHERE id=?", (message,)).fetchone()
        return b"" if row is None else bytes(row[0])

    def messages(self, chat_id: int, limit: int | None = None) -> list[MessageRow]:
        """The visible messages of a chat in arrival order (the last ``limit``)."""
        query = (
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE chat_id=? AND visible=1"
            " ORDER BY arrived DESC, date_header DESC, seq DESC"
        )
        params: tuple[object, ...] = (chat_id,)
        if limit is not None:
            query += " LIMIT ?"
            params += (limit,)
        rows = self.db.execute(query, params).fetchall()
        return [_message(r) for r in reversed(rows)]

    def messages_first(self, chat_id: int) -> MessageRow | None:
        row = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE chat_id=? AND visible=1"
            " ORDER BY arrived, date_header, seq LIMIT 1",
            (chat_id,),
        ).fetchone()
        return None if row is None else _message(row)

    def attachments(self, message: int) -> list[AttachmentRow]:
        rows = self.db.execute(
            "SELECT filename, content_type, size, path FROM attachment WHERE message=? ORDER BY id",
            (message,),
        ).fetchall()
        return [AttachmentRow(str(a), str(b), int(c), str(d)) for a, b, c, d in rows]

    def reactions(self, message: int) -> list[tuple[str, str]]:
        return [
            (str(s), str(e))
            for s, e in self.db.execute(
                "SELECT sender, emoji FROM reaction WHERE message=? ORDER BY at, sender",
                (message,),
            )
        ]

    def receipts(self, message: int) -> list[str]:
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT reader FROM receipt WHERE message=? ORDER BY reader", (message,)
            )
        ]

    def edit_ids(self, message: int) -> list[tuple[str, float]]:
        """Message-IDs of the versions of ``message`` (the original first), by arrival."""
        return [
            (str(m), float(at))
            for m, at in self.db.execute(
                "SELECT by_message, at FROM edit WHERE message=? ORDER BY at, rowid", (message,)
            )
        ]

    def history(self, message: int) -> list[tuple[str, bool]]:
        """Earlier versions and edits in arrival order: (text, deleted)."""
        return [
            (str(t), bool(d))
            for t, d in self.db.execute(
                "SELECT text, deleted FROM edit WHERE message=? ORDER BY at, rowid", (message,)
            )
        ]

    # -- chats ------------------------------------------------------------------------

    def chat_for(self, account_id: int, key: str, peer: str, name: str, request: bool) -> int:
        """The chat for ``key``, made on first use (a request when ``request``)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id FROM chat WHERE account_id=? AND key=?", (account_id, key)
            ).fetchone()
            if row is not None:
                if name:
                    db.execute("UPDATE chat SET name=? WHERE id=? AND name=''", (name, int(row[0])))
                return int(row[0])
            cur = db.execute(
                "INSERT INTO chat (account_id, key, peer, name, request) VALUES (?, ?, ?, ?, ?)",
                (account_id, key, peer, name, int(request)),
            )
            return int(cur.lastrowid or 0)

    _CHAT_SELECT = (
        "SELECT c.id, c.account_id, c.key, c.peer, c.name, c.request,"
        " (SELECT count(*) FROM message m WHERE m.chat_id = c.id AND m.visible=1"
        "  AND m.outgoing=0 AND m.shown=0),"
        " coalesce((SELECT m.text FROM message m WHERE m.chat_id = c.id AND m.visible=1"
        "  ORDER BY m.arrived DESC, m.date_header DESC, m.seq DESC LIMIT 1), ''),"
        " coalesce((SELECT max(m.arrived) FROM message m WHERE m.chat_id = c.id"
        "  AND m.visible=1), 0),"
        " (SELECT mu.until FROM mute mu WHERE mu.account_id = c.account_id AND mu.key = c.key"
        "  AND mu.muted=1)"
        " FROM chat c"
    )

    @staticmethod
    def _chat(r: Sequence[object]) -> Chat:
        return Chat(
            int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), bool(r[5]),  # type: ignore[call-overload]
            int(r[6]), str(r[7]), float(r[8]),  # type: ignore[call-overload, arg-type]
            None if r[9] is None else float(r[9]),  # type: ignore[arg-type]
        )  # fmt: skip

    def chats(self, account_id: int | None = None) -> list[Chat]:
        """Chats with at least one visible message, the most recent first."""
        where = " WHERE EXISTS (SELECT 1 FROM message m WHERE m.chat_id = c.id AND m.visible=1)"
        params: tuple[object, ...] = ()
        if account_id is not None:
            where += " AND c.account_id=?"
            params = (account_id,)
        rows = self.db.execute(
            f"SELECT * FROM ({self._CHAT_SELECT}{where}) ORDER BY 9 DESC, 1 DESC", params
        ).fetchall()
        return [self._chat(r) for r in rows]

    def chat(self, chat_id: int) -> Chat | None:
        row = self.db.execute(self._CHAT_SELECT + " WHERE c.id=?", (chat_id,)).fetchone()
        return None if row is None else self._chat(row)

    def chat_by_peer(self, account_id: int, peer: str) -> Chat | None:
        row = self.db.execute(
            self._CHAT_SELECT + " WHERE c.account_id=? AND c.key=?",
            (account_id, f"contact:{peer.lower()}"),
        ).fetchone()
        return None if row is None else self._chat(row)

    def find_chats_by_name(self, name: str) -> list[Chat]:
        rows = self.db.execute(
            self._CHAT_SELECT + " WHERE c.name = ? COLLATE NOCASE OR c.peer = ? COLLATE NOCASE",
            (name, name),
        ).fetchall()
        return [self._chat(r) for r in rows]

    def accept_chat(self, chat_id: int) -> None:
        with self.transaction() as db:
            row = db.execute(
                "UPDATE chat SET request=0 WHERE id=? RETURNING account_id, peer", (chat_id,)
            ).fetchone()
            if row is not None and row[1]:
                db.execute(
                    "INSERT INTO contact (account_id, addr, accepted) VALUES (?, ?, 1)"
                    " ON CONFLICT DO UPDATE SET accepted=1",
                    (int(row[0]), str(row[1])),
                )

    def members(self, chat_id: int) -> list[str]:
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT addr FROM member WHERE chat_id=? ORDER BY addr", (chat_id,)
            )
        ]

    def set_members(self, chat_id: int, addrs: Iterable[str]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM member WHERE chat_id=?", (chat_id,))
            db.executemany(
                "INSERT OR IGNORE INTO member (chat_id, addr) VALUES (?, ?)",
                [(chat_id, a.lower()) for a in addrs],
            )

    # -- contacts ---------------------------------------------------------------------

    def is_known(self, account_id: int, addr: str) -> bool:
        row = self.db.execute(
            "SELECT accepted FROM contact WHERE account_id=? AND addr=?", (account_id, addr)
        ).fetchone()
        return row is not None and bool(row[0])

    def interrupted_sends(self) -> list[int]:
        """Messages left 'sending' by a process that died mid-send."""
        return [int(r[0]) for r in self.db.execute("SELECT id FROM message WHERE state='sending'")]

    def unshown(self, chat_id: int) -> list[MessageRow]:
        rows = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE chat_id=? AND visible=1"
            " AND outgoing=0 AND shown=0 ORDER BY arrived, date_header, seq",
            (chat_id,),
        ).fetchall()
        return [_message(r) for r in rows]

    def mark_shown(self, message: int, mdn_sent: bool = False) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE message SET shown=1, mdn_sent=max(mdn_sent, ?) WHERE id=?",
                (int(mdn_sent), message),
            )

    def remember_contact(self, account_id: int, addr: str, name: str, accepted: bool) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO contact (account_id, addr, name, accepted) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET name=CASE WHEN excluded.name != ''"
                " THEN excluded.name ELSE name END, accepted=max(accepted, excluded.accepted)",
                (account_id, addr, name, int(accepted)),
            )
