"""Response pieces shared by every session, rendered once and kept (issue 18): the same
few flag sets recur on most messages of every mailbox, so their text is cached by the
stored values, not rebuilt per message or per command."""

from __future__ import annotations

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
