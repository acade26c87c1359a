"""Decoded header and body text for IMAP SEARCH (RFC 3501 §6.4.4).

Computed once at delivery so that SEARCH is a substring match over stored
strings; both sides go through :func:`fold_for_search`.
"""

from __future__ import annotations

import email.header
import html
import marshal
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from coi.mail import headers as H
from coi.mail.index import MessageIndex, Part
from coi.mail.sections import decode_body

_FORMAT = 2  # 2: values stored folded (fold_for_search), so SEARCH folds only the key
MAX_TEXT = 4 * 1024 * 1024  # characters of body text kept per message


@dataclass(frozen=True, slots=True)
class SearchData:
    """What SEARCH HEADER/FROM/SUBJECT/BODY/TEXT match against, already folded with
    `fold_for_search` (done once at delivery, not at every SEARCH)."""

    headers: tuple[tuple[str, str], ...]
    text: str


def fold_for_search(s: str) -> str:
    """Case folding for stored data and queries alike (NFC, then Unicode casefold)."""
    return unicodedata.normalize("NFC", s).casefold()


def _text(data: bytes, charset: str = "utf-8") -> str:
    """Decode bytes leniently; unknown or wrong charsets fall back to UTF-8, then Latin-1."""
    cs = charset.strip().lower()
    if cs in ("", "us-ascii", "ascii"):
        cs = "utf-8"  # 8-bit bytes labelled ASCII are usually UTF-8
    for c in (cs, "utf-8"):
        try:
            return data.decode(c)
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    return data.decode("latin-1")


def decode_words(value: bytes) -> str:
    """Decode RFC 2047 encoded words in a raw header value; never raises."""
    s = _text(value)
    if "=?" not in s:
        return s
    try:
        chunks = email.header.decode_header(s)
    except Exception:
        return s
    out: list[str] = []
    for data, charset in chunks:
        if isinstance(data, str):
            out.append(data)
        elif charset is None:
            out.append(data.decode("raw-unicode-escape", "replace"))
        else:
            out.append(_text(data, charset))
    return "".join(out)


_TAG_RE = re.compile(r"<[^>]*>")
_STYLE_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)


def _strip_html(s: str) -> str:
    return html.unescape(_TAG_RE.sub(" ", _STYLE_RE.sub(" ", s)))


def _text_parts(p: Part) -> Iterator[Part]:
    if p.children:
        for c in p.children:
            yield from _text_parts(c)
    elif p.content_type.startswith("text/"):
        yield p


def search_data(raw: bytes, index: MessageIndex) -> SearchData:
    """Decoded top-level header fields and the text of all text/* parts."""
    root = index.root
    fields = H.parse_fields(raw[root.header_start : root.body_start])
    headers = tuple(
        (n.decode("latin-1").lower(), fold_for_search(decode_words(v))) for n, v in fields
    )
    envelope = tuple(
        (envelope_field(name), fold_for_search(_envelope_text(v)))
        for n, v in fields
        if (name := n.decode("latin-1").lower()) in ADDRESS_FIELDS
    )
    texts: list[str] = []
    size = 0
    for p in _text_parts(root):
        data = decode_body(raw[p.body_start : p.body_end], p.encoding)
        if data is None:
            data = raw[p.body_start : p.body_end]
        t = _text(data, p.param("charset") or "utf-8")
        if p.content_type == "text/html":
            t = _strip_html(t)
        texts.append(t)
        size += len(t)
        if size >= MAX_TEXT:
            break
    return SearchData(
        headers=headers + envelope, text=fold_for_search("\n".join(texts)[:MAX_TEXT])
    )


def header_text(d: SearchData) -> str:
    """The folded header fields as "name: value" lines: every header key's needle that
    matches a message is a substring of this text (SEARCH narrows with it in SQL)."""
    return "\n".join(f"{name}: {value}" for name, value in d.headers)


ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc"})


def envelope_field(field: str) -> str:
    """The name SEARCH data keeps an address field's ENVELOPE form under: with a space in
    it, no header field can have it (RFC 5322 §3.6.8)."""
    return field + " (envelope)"


def _envelope_text(value: bytes) -> str:
    """The addresses of one field as ENVELOPE sees them (RFC 3501 §7.4.2): each as
    `display name <mailbox@host>` (or `mailbox@host`), names decoded (RFC 2047), comments,
    quoting and spacing of the raw field gone; what SEARCH FROM/TO/CC/BCC match."""
    out: list[str] = []
    for name, _adl, mailbox, host in H.addresses(value):
        if mailbox is None or host is None:  # group start or end: its name is no address
            continue
        spec = _text(mailbox) + "@" + _text(host) if host else _text(mailbox)
        out.append(f"{decode_words(name)} <{spec}>" if name else spec)
    return ", ".join(out)


def dump_search(d: SearchData) -> bytes:
    """Serialize with marshal (fast, plain data)."""
    return marshal.dumps((_FORMAT, d.headers, d.text))


def load_search(b: bytes) -> SearchData:
    """Inverse of :func:`dump_search`."""
    fmt, headers, text = marshal.loads(b)
    if fmt == 1:  # stored before values were folded at delivery
        headers = tuple((n.lower(), fold_for_search(v)) for n, v in headers)
        text = fold_for_search(text)
    elif fmt != _FORMAT:
        raise ValueError(f"unknown search data format {fmt!r}")
    return SearchData(headers=headers, text=text)
