"""Storage model types shared by every backend. No IMAP syntax lives here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

# The stores' durability policies (README: Durability), like Dovecot's `mail_fsync`.
FSYNC_POLICIES = ("always", "optimized")

# System flags are kept as a bit mask: cheap to store, compare and format.
SEEN = 1
ANSWERED = 2
FLAGGED = 4
DELETED = 8
DRAFT = 16

SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": SEEN,
    "\\Answered": ANSWERED,
    "\\Flagged": FLAGGED,
    "\\Deleted": DELETED,
    "\\Draft": DRAFT,
}
SYSTEM_FLAG_NAMES: tuple[tuple[int, str], ...] = tuple(
    sorted((bit, name) for name, bit in SYSTEM_FLAGS.items())
)


@dataclass(frozen=True, slots=True)
class Flags:
    """The permanent flags of one message: system bits plus keywords (sorted, unique)."""

    bits: int = 0
    keywords: tuple[str, ...] = ()

    @classmethod
    def from_names(cls, names: tuple[str, ...] | list[str]) -> Flags:
        bits = 0
        keywords: set[str] = set()
        for name in names:
            bit = SYSTEM_FLAGS.get(name)
            if bit is not None:
                bits |= bit
            elif not name.startswith("\\"):
                keywords.add(name)
        return cls(bits, tuple(sorted(keywords)))

    def names(self) -> list[str]:
        out = [name for bit, name in SYSTEM_FLAG_NAMES if self.bits & bit]
        out.extend(self.keywords)
        return out

    def union(self, other: Flags) -> Flags:
        return Flags(self.bits | other.bits, _merge(self.keywords, other.keywords))

    def difference(self, other: Flags) -> Flags:
        drop = set(other.keywords)
        return Flags(self.bits & ~other.bits, tuple(k for k in self.keywords if k not in drop))

    def keywords_text(self) -> str:
        return " ".join(self.keywords)

    @staticmethod
    def parse_keywords(text: str) -> tuple[str, ...]:
        return tuple(text.split()) if text else ()


# Flag sets as stored (bits, keyword text), shared: most messages carry one of a handful.
_STORED: dict[tuple[int, str], Flags] = {}
_STORED_MAX = 4096


def stored_flags(bits: int, keywords: str) -> Flags:
    key = (bits, keywords)
    flags = _STORED.get(key)
    if flags is None:
        if len(_STORED) >= _STORED_MAX:
            _STORED.clear()
        flags = _STORED[key] = Flags(bits, Flags.parse_keywords(keywords))
    return flags


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not b:
        return a
    return tuple(sorted(set(a) | set(b)))


@dataclass(frozen=True, slots=True)
class User:
    id: int
    address: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    user_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str  # e.g. "\\Sent"; "" for none
    keywords: tuple[str, ...]  # every keyword ever used here, for FLAGS / PERMANENTFLAGS
    recent_floor: int  # highest UID some session has already seen as \Recent
    noselect: bool  # a name kept only because it has inferiors (RFC 3501 §6.3.4)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store: raw bytes plus what mail indexing computed once at arrival."""

    raw: bytes
    meta: bytes  # serialized coi.mail MessageIndex
    search: bytes  # serialized coi.mail SearchData
    flags: Flags
    internaldate: datetime  # timezone-aware
    # folded "name: value" lines of the header, for SEARCH to narrow header keys in SQL
    header_text: str = ""
    # RFC822.SIZE when it is not len(raw): the octets BODY[] returns (a message holding
    # NUL is served converted, RFC 3516 §6; see coi.mail.index.served_form)
    size: int | None = None
    # PREVIEW (RFC 8970) text, computed at arrival; None: not computed
    preview: str | None = None


@dataclass(slots=True)
class MessageRow:
    """One message's metadata as read. Not frozen (a frozen dataclass costs four times as
    much to build, and FETCH 1:* builds one per message); treat it as read-only and use
    `dataclasses.replace` for a changed copy."""

    uid: int
    flags: Flags
    modseq: int
    size: int
    internal_ts: int  # INTERNALDATE as seconds since the epoch ...
    tz_minutes: int  # ... and its zone: a datetime is built only when asked for
    blob_id: int

    @property
    def internaldate(self) -> datetime:
        return stored_datetime(self.internal_ts, self.tz_minutes)


class FlagChanges(NamedTuple):
    """What a STORE found under its mailbox's lock, each as (uid, flags, modseq): the rows
    it changed, the UIDs that failed UNCHANGEDSINCE (RFC 7162 §3.1.3), and every row it
    found but left as it was (those failed too). A STORE reports these, not a later read:
    a row read afterwards may come from a cache that has not yet heard of another
    process's expunge or change (docs/scale-out.md). A UID in none of them is gone."""

    changed: list[tuple[int, Flags, int]]
    failed: list[int]
    unchanged: list[tuple[int, Flags, int]]


def stored_datetime(timestamp: int, tz_minutes: int) -> datetime:
    zone = UTC if tz_minutes == 0 else timezone(timedelta(minutes=tz_minutes))
    return datetime.fromtimestamp(timestamp, zone)


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    messages: int
    unseen: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    size: int
    recent: int
    deleted: int = 0  # messages with \\Deleted (RFC 9051 §6.3.11 STATUS DELETED)
