"""SEARCH key tree and parser (RFC 3501 §6.4.4, RFC 7162 MODSEQ, RFC 5182 ``$``)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from ._reader import DQUOTE, LPAREN, MAX_NUMBER64, RPAREN, SP, Reader
from .sequence import SequenceSet, parse_sequence_set


@dataclass(frozen=True, slots=True)
class AllKey:
    """ALL: matches every message."""


@dataclass(frozen=True, slots=True)
class AndKey:
    """Implicit conjunction: a key list or a parenthesized group."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class OrKey:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class NotKey:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A flag test; ``present=False`` for the UN* forms."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class NewKey:
    """NEW = RECENT and not SEEN (kept separate so the server can optimise)."""


@dataclass(frozen=True, slots=True)
class OldKey:
    """OLD = not RECENT."""


@dataclass(frozen=True, slots=True)
class RecentKey:
    pass


@dataclass(frozen=True, slots=True)
class DateKey:
    """Date comparisons ignore time and timezone (RFC 3501 §6.4.4)."""

    field: Literal["internal", "sent"]
    op: Literal["before", "on", "since"]
    day: datetime.date


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """Substring match in a header; ``field`` is lowercase. Empty value = header exists.
    ``envelope``: the FROM/TO/CC/BCC keys, which match addresses as ENVELOPE has them
    (RFC 3501 §6.4.4), where HEADER matches the field's text."""

    field: str
    value: str
    envelope: bool = False


@dataclass(frozen=True, slots=True)
class BodyKey:
    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    value: str


@dataclass(frozen=True, slots=True)
class SizeKey:
    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """Message sequence numbers; ``sequence.saved`` means ``$`` (RFC 5182)."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class UidKey:
    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """MODSEQ >= modseq (RFC 7162 §3.1.5); the optional entry name/type is dropped."""

    modseq: int


@dataclass(frozen=True, slots=True)
class ObjectIdKey:
    """EMAILID or THREADID equal to an ObjectID (RFC 8474 §6; ObjectIDs are case-sensitive)."""

    kind: Literal["EMAILID", "THREADID"]
    objectid: str


SearchKey = (
    AllKey
    | AndKey
    | OrKey
    | NotKey
    | FlagKey
    | NewKey
    | OldKey
    | RecentKey
    | DateKey
    | HeaderKey
    | BodyKey
    | TextKey
    | SizeKey
    | SequenceKey
    | UidKey
    | ModSeqKey
    | ObjectIdKey
)


def leaves(key: SearchKey) -> Iterator[SearchKey]:
    """Every criterion of a key tree, under AND, OR and NOT alike."""
    if isinstance(key, AndKey):
        for k in key.keys:
            yield from leaves(k)
    elif isinstance(key, OrKey):
        yield from leaves(key.left)
        yield from leaves(key.right)
    elif isinstance(key, NotKey):
        yield from leaves(key.key)
    else:
        yield key


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\Z")
_DATE_TOKEN = re.compile(rb"[0-9A-Za-z-]+")
_SEQ = re.compile(rb"[0-9*:,$]+")
_MAX_DEPTH = 64
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")  # RFC 8474 §7

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = frozenset({"FROM", "TO", "CC", "BCC", "SUBJECT"})
_DATE_KEYS: dict[str, tuple[Literal["internal", "sent"], Literal["before", "on", "since"]]] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}

Decoder = Callable[[bytes], str]


def parse_date(r: Reader) -> datetime.date:
    """RFC 3501 §9: date = date-text / DQUOTE date-text DQUOTE."""
    raw = r.quoted() if r.peek() == DQUOTE else r.match(_DATE_TOKEN)
    m = _DATE.match(raw or b"")
    if m is None or m.group(2).upper().decode("ascii") not in _MONTHS:
        r.fail("invalid date")
    try:
        return datetime.date(
            int(m.group(3)), _MONTHS[m.group(2).upper().decode("ascii")], int(m.group(1))
        )
    except ValueError:
        r.fail("invalid date")


def sequence_set(r: Reader) -> SequenceSet:
    tok = r.match(_SEQ)
    if tok is None:
        r.fail("expected sequence set" if not r.at_end() else "missing sequence set")
    return parse_sequence_set(tok, r.tag)


def _key(r: Reader, dec: Decoder, depth: int) -> SearchKey:
    if depth > _MAX_DEPTH:
        r.fail("search key nested too deeply")
    ch = r.peek()
    if ch == LPAREN:
        r.pos += 1
        keys = [_key(r, dec, depth + 1)]
        while r.accept(SP):
            keys.append(_key(r, dec, depth + 1))
        r.expect(RPAREN)
        return keys[0] if len(keys) == 1 else AndKey(tuple(keys))
    if 0x30 <= ch <= 0x39 or ch in (0x2A, 0x24):  # digit, "*", "$"
        return SequenceKey(sequence_set(r))
    word = r.atom_upper("search key")
    flag = _FLAG_KEYS.get(word)
    if flag is not None:
        return FlagKey(*flag)
    if word == "ALL":
        return AllKey()
    if word in _HEADER_KEYS:
        r.sp()
        field = word.lower()
        return HeaderKey(field, dec(r.astring()), field != "subject")
    if word in _DATE_KEYS:
        r.sp()
        fld, op = _DATE_KEYS[word]
        return DateKey(fld, op, parse_date(r))
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        kw = r.atom("keyword").decode("ascii")
        return FlagKey(kw, word == "KEYWORD")
    if word == "NEW":
        return NewKey()
    if word == "OLD":
        return OldKey()
    if word == "RECENT":
        return RecentKey()
    if word == "BODY":
        r.sp()
        return BodyKey(dec(r.astring()))
    if word == "TEXT":
        r.sp()
        return TextKey(dec(r.astring()))
    if word == "HEADER":
        r.sp()
        name = r.astring().decode("utf-8", "replace").lower()
        r.sp()
        return HeaderKey(name, dec(r.astring()))
    if word in ("LARGER", "SMALLER"):
        r.sp()
        # RFC 9051 §9: number64 (IMAP4rev2 allows 63-bit sizes, Appendix D)
        size = r.number(MAX_NUMBER64, what="size")
        return SizeKey("larger" if word == "LARGER" else "smaller", size)
    if word == "NOT":
        r.sp()
        return NotKey(_key(r, dec, depth + 1))
    if word == "OR":
        r.sp()
        left = _key(r, dec, depth + 1)
        r.sp()
        return OrKey(left, _key(r, dec, depth + 1))
    if word == "UID":
        r.sp()
        return UidKey(sequence_set(r))
    if word == "MODSEQ":
        # RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer
        r.sp()
        if r.peek() == DQUOTE:
            r.quoted()
            r.sp()
            if r.atom_upper("entry type") not in ("PRIV", "SHARED", "ALL"):
                r.fail("invalid MODSEQ entry type")
            r.sp()
        return ModSeqKey(r.number(MAX_NUMBER64, "mod-sequence"))
    if word in ("EMAILID", "THREADID"):  # RFC 8474 §6: "EMAILID" SP objectid
        r.sp()
        objectid = r.astring()  # a quoted one is accepted too
        if not _OBJECTID.fullmatch(objectid):
            r.fail("invalid objectid")
        return ObjectIdKey(word, objectid.decode("ascii"))  # type: ignore[arg-type]
    r.fail(f"unknown search key {word}")


def parse_search_keys(r: Reader, dec: Decoder) -> SearchKey:
    """Parse ``search-key *(SP search-key)`` up to the end of the command."""
    keys = [_key(r, dec, 0)]
    while r.accept(SP):
        keys.append(_key(r, dec, 0))
    r.expect_end()
    return keys[0] if len(keys) == 1 else AndKey(tuple(keys))
