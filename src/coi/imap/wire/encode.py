"""Helpers that build response fragments as bytes (RFC 3501 §4, §9)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from . import mutf7

_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+\Z')
_QUOTED_SAFE = re.compile(rb"[^\r\n\x00\x80-\xff]*\Z")
_MAX_QUOTED = 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.upper(): i + 1 for i, m in enumerate(_MONTHS)}
_DATE_TIME = re.compile(
    r" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})\Z"
)


def _b(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else s


def quoted(s: str | bytes) -> bytes:
    """Quoted string with ``\\`` and ``"`` escaped; caller ensures no CR/LF/NUL."""
    data = _b(s)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(b: bytes) -> bytes:
    """Synchronizing literal as sent by a server: ``{N}\\r\\n`` + data."""
    return b"{%d}\r\n" % len(b) + b


def string(b: bytes) -> bytes:
    """Quoted when safe (7-bit, no CR/LF/NUL, short), else a literal."""
    if len(b) <= _MAX_QUOTED and _QUOTED_SAFE.match(b):
        return quoted(b)
    return literal(b)


def nstring(b: bytes | None) -> bytes:
    return b"NIL" if b is None else string(b)


def astring(s: str) -> bytes:
    """Atom when the text is a valid atom other than NIL, else a string."""
    data = s.encode("utf-8")
    if _ATOM.match(data) and data.upper() != b"NIL":
        return data
    return string(data)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """Mailbox name: mUTF-7 (RFC 3501 §5.1.3), or with `utf8` the name itself in UTF-8
    (RFC 9051 §5.1, IMAP4rev2 enabled); INBOX canonicalized."""
    if name.upper() == "INBOX":
        return b"INBOX"
    wire = name.encode("utf-8", "surrogateescape") if utf8 else mutf7.encode(name).encode("ascii")
    if _ATOM.match(wire) and wire.upper() != b"NIL":
        return wire
    return quoted(wire)


_FLAG_ORDER = {
    "\\answered": 0,
    "\\flagged": 1,
    "\\deleted": 2,
    "\\seen": 3,
    "\\draft": 4,
    "\\recent": 5,
}


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen kw)`` with system flags first then keywords, deterministic order."""
    uniq = set(flags)
    ordered = sorted(uniq, key=lambda f: (_FLAG_ORDER.get(f.lower(), 6), f))
    return b"(" + " ".join(ordered).encode("utf-8") + b")"


def internal_date(dt: datetime.datetime) -> bytes:
    """RFC 3501 §9 date-time, e.g. ``"17-Jul-1996 02:44:25 -0700"``; naive means UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    off = dt.utcoffset() or datetime.timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (
        f'"{dt.day:2d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} '
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )
    return text.encode("ascii")


def parse_internal_date(s: str) -> datetime.datetime:
    """Parse the (unquoted) RFC 3501 date-time; raise ValueError if malformed."""
    m = _DATE_TIME.match(s)
    if m is None:
        raise ValueError(f"invalid date-time {s!r}")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    month = _MONTH_NUM.get(mon.upper())
    if month is None:
        raise ValueError(f"invalid month {mon!r}")
    if int(zm) >= 60:
        raise ValueError("invalid zone")
    offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
    if sign == "-":
        offset = -offset
    return datetime.datetime(
        int(year),
        month,
        int(day),
        int(hh),
        int(mm),
        int(ss),
        tzinfo=datetime.timezone(offset),
    )
