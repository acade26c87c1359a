"""The storage interface every layer programs against (DESIGN.md: Scale-out).

The IMAP server, delivery, webpush and the CLI take a `Store` (or one of the smaller
Protocols below when they need only part of it), never a backend class: only the
composition root (`coi serve`, `coi.cli.common.open_store`, the tests' fixtures) names
`SqliteStore`, so a PostgreSQL backend slots in without touching the layers.

Shape rules, so that a networked database fits:
- Every write is a coroutine that returns once the change is durable (committed, and
  on SQLite fsynced; under `fsync = optimized` flag changes only committed, and fsynced
  within `fsync_delay`): a session answers OK only after its awaited write returns.
- Change events are published on `events` after the commit, in commit order.
- Reads that may wait are coroutines where every caller can already await them: the
  CONDSTORE/QRESYNC change lists, SELECT's first unseen message, SEARCH's text narrowing
  and search data (awaited once per batch), the rows FETCH, STORE and SEARCH read
  (`read_rows`, `read_row_tuples`: twins of the synchronous `rows`/`row_tuples` that
  event listeners use), FETCH's chunks of bodies (`blobs`), the alias listing, and the
  lookups of command handlers: a named mailbox (`read_mailbox`), the tree for LIST
  (`read_mailboxes`), STATUS (`read_mailbox_status`, `read_status`), the quota check
  (`read_usage`, with APPEND's and COPY's target: `read_target`) and a delivery's
  recipient (`read_recipient`), each one round trip
  where a networked store can make it one. On SQLite they never suspend, so a session's
  responses keep their order; on a networked store the caller's loop serves other
  sessions during the round trip.
- The other reads are synchronous for now, each for a reason: the selected mailbox's
  state (`uids`, `flag_rows`, `mailbox_by_id`) is built and updated inside event
  listeners, which must apply one event before the next arrives; FETCH's and SEARCH's
  per-message callbacks (`blob`, `meta`, `search_blob`) would pay an await per message,
  and their batch reads (`rows`, `row_tuples`, `metas`) feed synchronous helpers shared
  with NOTIFY's listener (bodies and their stored data never change, so a networked
  backend keeps them in a per-process cache); STATUS, LIST and mailbox lookups (`status`,
  `list_mailboxes`, `subscriptions`, `get_mailbox`) also answer NOTIFY from a listener
  and COI's synchronous hooks (commands await their twins); user, alias and
  COI-settings lookups (`get_user`, `alias_target`, `list_users`, `get_metadata`) run in
  delivery's synchronous recipient checks and the seen mover's listener. A networked backend
  serves these from a per-process cache kept fresh by the events, or they become
  coroutines together with their callers.
- Bulk reads return batches (dicts, lists, arrays, iterators over one chunked query),
  never one call per message.
- Every method names its user or its mailbox: nothing reaches another user's rows.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

from coi.store.events import EventBus
from coi.store.model import (
    FlagChanges,
    Flags,
    Mailbox,
    MailboxStatus,
    MessageRow,
    NewMessage,
    User,
)
from coi.store.sentcopies import SentCopies

FlagMode = Literal["set", "add", "remove"]
# (entry name, value) to set on the server (mailbox_id 0); a None value removes the entry
MetadataUpdate = Sequence[tuple[str, bytes | None]]


class EventSource(Protocol):
    """Where committed changes are announced (DESIGN.md: Change events)."""

    @property
    def events(self) -> EventBus: ...


class UserStore(Protocol):
    """Accounts and aliases: what authentication, delivery and `coi user`/`coi alias` use."""

    def get_user(self, address: str) -> User | None: ...

    async def read_user(self, address: str) -> User | None:
        """`get_user()` as a coroutine (LOGIN): a networked store serves other sessions
        during the round trip."""
        ...

    def list_users(self) -> list[User]: ...

    def alias_target(self, address: str) -> User | None:
        """The user an alias (an address, or "@domain" for a catch-all) delivers to."""
        ...

    async def list_aliases(self) -> list[tuple[str, str]]:
        """(alias, user address) pairs, by alias."""
        ...

    async def add_user(
        self, address: str, password_hash: str, mailboxes: Sequence[tuple[str, str]]
    ) -> User:
        """Creates the user with INBOX and the given (name, special-use) mailboxes, all
        subscribed; raises UserExists."""
        ...

    async def delete_user(self, address: str) -> None:
        """Removes the user with every mailbox, message, entry and alias; NoSuchUser."""
        ...

    async def set_alias(self, address: str, target: str | None) -> None:
        """Points ``address`` at the user ``target``; None removes the alias."""
        ...

    async def set_password(self, address: str, password_hash: str) -> None: ...


class QuotaStore(Protocol):
    """Storage quotas (coi.store.quota, RFC 9208 STORAGE)."""

    def quota_of(self, user_id: int) -> int:
        """The user's own limit in octets; 0: none of its own (the server's default)."""
        ...

    def storage_used(self, user_id: int) -> int:
        """Octets of all the user's messages: RFC822.SIZE summed over every mailbox."""
        ...

    async def read_usage(self, user_id: int, default: int) -> tuple[int, int]:
        """(limit, octets used) in one read, for the quota check of APPEND, COPY and
        GETQUOTA: the limit is the user's own or else `default`; usage is summed only
        when there is a limit (0 otherwise)."""
        ...

    async def read_recipient(
        self, address: str, default: int
    ) -> tuple[User, tuple[int, int]] | None:
        """`read_user` and `read_usage` in one read (a delivery's RCPT): the user whose
        address this is (aliases are not followed) and its (limit, octets used)."""
        ...

    async def set_quota(self, address: str, octets: int) -> None:
        """Sets the user's own limit (0: back to the default); NoSuchUser."""
        ...


class MailboxStore(Protocol):
    """A user's mailbox tree, subscriptions and per-mailbox counters."""

    def mailboxid(self, mailbox: Mailbox) -> str:
        """MAILBOXID (RFC 8474 §4): stable across renames, never reused."""
        ...

    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        """Every mailbox of the user, by name."""
        ...

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None: ...

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...

    def subscriptions(self, user_id: int) -> set[str]: ...

    def status(self, mailbox: Mailbox) -> MailboxStatus:
        """Counts for STATUS; \\Recent counts UIDs above `mailbox.recent_floor`."""
        ...

    async def read_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        """`get_mailbox()` as a coroutine, for command handlers that name a mailbox
        (SELECT, APPEND, COPY...): a networked store serves other sessions meanwhile."""
        ...

    async def read_target(
        self, user_id: int, name: str, default: int
    ) -> tuple[Mailbox | None, tuple[int, int]]:
        """`read_mailbox` and `read_usage` in one read: the mailbox an APPEND or a COPY
        adds to, and the user's (limit, octets used) for its quota check."""
        ...

    async def read_status(self, mailbox: Mailbox) -> MailboxStatus:
        """`status()` as a coroutine (LIST-STATUS, a STATUS that asks for RECENT)."""
        ...

    async def read_mailbox_status(
        self, user_id: int, name: str
    ) -> tuple[Mailbox, MailboxStatus] | None:
        """The named mailbox and its counts in one read, as of one moment (STATUS); \\Recent
        counts UIDs above the floor the store has recorded. None: no such mailbox."""
        ...

    async def read_mailboxes(self, user_id: int) -> tuple[list[Mailbox], set[str]]:
        """`list_mailboxes()` and `subscriptions()` in one read (LIST, LSUB)."""
        ...

    async def create_mailbox(
        self,
        user_id: int,
        name: str,
        special_use: str = "",
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> Mailbox:
        """Creates `name` and any missing superiors (RFC 3501 §6.3.3); `server_metadata`
        is set in the same transaction."""
        ...

    async def delete_mailbox(
        self,
        user_id: int,
        name: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Deletes `name` with its messages and METADATA entries (RFC 5464 §4.1); a name
        with inferiors becomes \\Noselect (RFC 3501 §6.3.4)."""
        ...

    async def rename_mailbox(
        self,
        user_id: int,
        old: str,
        new: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Renames `old` and its inferiors; renaming INBOX moves its messages (§6.3.5)."""
        ...

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None: ...

    def take_recent(self, mailbox_id: int, upto: int) -> int | None:
        """Raises the stored \\Recent floor to `upto` at once and returns the floor it had:
        the UIDs above that, up to `upto`, are the caller's session's alone, whichever
        process it is in (RFC 3501 §2.3.2). None on a store that one process serves: there
        the live floor in memory decides and `claim_recent` records it."""
        ...

    async def claim_recent(self, mailbox_id: int, floor: int) -> None:
        """Records that UIDs up to `floor` have been shown as \\Recent to some session."""
        ...


class MetadataStore(Protocol):
    """METADATA entries (RFC 5464); mailbox_id 0 addresses the user's server entries."""

    def get_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        """Entries named (or, with depth "1"/"infinity", below) `names`; case-insensitive."""
        ...

    async def read_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        """`get_metadata()` as a coroutine, for delivery's COI settings and Web Push's
        subscriptions: a networked store serves other sessions meanwhile."""
        ...

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
        """Sets (None: removes) entries all or nothing (RFC 5464 §4.3); MetadataTooMany."""
        ...


class MessageStore(Protocol):
    """Messages of one mailbox: UIDs, MODSEQ, flags, bodies and their stored indexes."""

    def emailid(self, blob_id: int) -> str:
        """EMAILID (RFC 8474 §5.1): one per stored body, shared by its copies."""
        ...

    def previews(self, blob_ids: Sequence[int]) -> dict[int, str]:
        """Stored PREVIEW texts (RFC 8970) of many bodies; those not kept are missing."""
        ...

    async def save_previews(self, previews: dict[int, str]) -> None:
        """Keeps previews computed late (bodies stored before previews were kept)."""
        ...

    def header_prefixes(self, blob_ids: Sequence[int], limit: int = 64 * 1024) -> dict[int, bytes]:
        """Each stored message's header (at most ``limit`` octets), never the whole message."""
        ...

    def uids(self, mailbox_id: int) -> array[int]:
        """Every UID, ascending (the selected state's sequence numbers)."""
        ...

    def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """Per-message metadata for the given UIDs (missing ones were expunged)."""
        ...

    def row_tuples(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
        """`rows()` as plain tuples (uid, flags, keywords, modseq, size, internaldate,
        tz_minutes, blob_id) ascending by UID, for loops over whole mailboxes."""
        ...

    async def read_rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """`rows()` as a coroutine, for command handlers (FETCH, STORE, SEARCH) that can
        await: a networked store serves other sessions during the round trip."""
        ...

    async def read_row_tuples(
        self, mailbox_id: int, uids: Sequence[int]
    ) -> Iterable[tuple[Any, ...]]:
        """`row_tuples()` as a coroutine (FETCH of row items)."""
        ...

    def flag_rows(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[int, int, str]]:
        """(uid, flag bits, keywords) of the given UIDs, ascending by UID."""
        ...

    async def changed_since(self, mailbox_id: int, modseq: int) -> list[MessageRow]:
        """Messages with a mod-sequence above `modseq` (RFC 7162 CHANGEDSINCE), by UID;
        the cost follows the number of changes, not the mailbox size."""
        ...

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged with a mod-sequence above `modseq`, ascending (RFC 7162 §3.2.5)."""
        ...

    async def first_unseen(self, mailbox_id: int) -> int | None:
        """The lowest UID without \\Seen."""
        ...

    def blob(self, blob_id: int) -> tuple[bytes, bytes] | None:
        """(raw bytes, serialized index) of one message body."""
        ...

    async def blobs(self, blob_ids: Sequence[int]) -> dict[int, tuple[bytes, bytes]]:
        """`blob()` of several bodies in one read (FETCH of bodies, a chunk at a time: the
        caller bounds the total size); those expunged meanwhile are missing."""
        ...

    def meta(self, blob_id: int) -> bytes | None:
        """The serialized index of one body, without its raw bytes."""
        ...

    def metas(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """Serialized indexes of many bodies at once, never the raw bytes."""
        ...

    def search_blob(self, blob_id: int) -> bytes | None:
        """The stored search data of one body."""
        ...

    async def search_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """Stored search data of several messages at once (uid -> bytes)."""
        ...

    async def text_matches(self, mailbox_id: int, needles: Sequence[tuple[str, str]]) -> set[int]:
        """A superset of the UIDs matching every (where, needle) SEARCH text key, where is
        "header", "body" or "text"; found by the store's indexes, not a scan in Python."""
        ...

    async def append(
        self, mailbox_id: int, messages: Sequence[NewMessage], origin: object | None = None
    ) -> tuple[int, list[int]]:
        """Stores the messages all or nothing; (uidvalidity, assigned UIDs) once durable."""
        ...

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
        ...

    async def copy(
        self,
        source_id: int,
        uids: Sequence[int],
        target_id: int,
        *,
        move: bool = False,
        origin: object | None = None,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copies (or moves) messages; (target uidvalidity, [(source uid, new uid)])."""
        ...

    async def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> list[int]:
        """Removes \\Deleted messages (only those among `uids` when given); their UIDs."""
        ...


class MailStore(MailboxStore, MessageStore, EventSource, Protocol):
    """Mailboxes, their messages and their change events: what a selected mailbox's state
    and delivery's block index need."""


class Store(
    UserStore, QuotaStore, MailboxStore, MetadataStore, MessageStore, EventSource, Protocol
):
    """Everything: what the IMAP server, delivery and the WebPush sender are given."""

    @property
    def sent_copies(self) -> SentCopies:
        """The server's own recent Sent copies, so a client's APPEND of one is not stored
        twice; kept in memory per process."""
        ...

    def database_bytes(self) -> int:
        """What the store takes on disk now (`coi_store_bytes` of --metrics)."""
        ...

    async def warm_up(self) -> None:
        """Opens, before the first command, what the caller's loop will use (a networked
        store's connections, ready for the common writes); nothing on a local store."""
        ...

    def close(self) -> None:
        """Stops the writer after pending writes and closes the connections."""
        ...
