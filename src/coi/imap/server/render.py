"""Response pieces shared by every session, rendered once and kept (issue 18): the same
few flag sets recur on most messages of every mailbox, so their text is cached by the
stored values, not rebuilt per message or per command."""

from __future__ import annotations

import time

from coi.imap.wire.encode import flag_list
from coi.store.model import stored_flags

# `(FLAGS ...)` text by (system bits, keyword text as stored, \Recent): shared by every
# session, as most messages carry one of a handful of flag sets; bounded, cleared when full
_FLAG_TEXT: dict[tuple[int, str, bool], bytes] = {}
_FLAG_TEXT_MAX = 4096


def flag_text(bits: int, keywords: str, recent: bool) -> bytes:
    """The parenthesized flag list of a stored flag set, from the shared cache."""
    key = (bits, keywords, recent)
    text = _FLAG_TEXT.get(key)
    if text is None:
        names = stored_flags(bits, keywords).names()
        if recent:
            names.append("\\Recent")
        if len(_FLAG_TEXT) >= _FLAG_TEXT_MAX:
            _FLAG_TEXT.clear()
        text = _FLAG_TEXT[key] = flag_list(names)
    return text


_MONTHS = (
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Oct",
    b"Nov",
    b"Dec",
)


def internal_date_text(timestamp: int, tz_minutes: int) -> bytes:
    """`encode.internal_date` of a stored INTERNALDATE (seconds, zone offset in minutes),
    without building a datetime and a timezone per message."""
    t = time.gmtime(timestamp + tz_minutes * 60)
    sign = b"-" if tz_minutes < 0 else b"+"
    minutes = abs(tz_minutes)
    return b'"%2d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        sign,
        minutes // 60,
        minutes % 60,
    )
