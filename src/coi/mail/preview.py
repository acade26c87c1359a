"""Preview text of a message (RFC 8970), computed once when the message is stored.

RFC 8970 §3.3: the preview is plain text in UTF-8, without transfer encoding or markup,
at most 256 characters (200 recommended). It comes from the first text part a reader
would see: in a multipart/alternative the text/plain alternative, else text/html with
its markup removed; attachments (Content-Disposition: attachment, or a file name) are
skipped. Runs of whitespace become one space. An encrypted message, or one without any
readable text, has the empty preview (RFC 8970 §3.2: "no meaningful preview").
"""

from __future__ import annotations

import html
import re

from coi.mail import headers as H
from coi.mail.cte import decode_body
from coi.mail.index import MessageIndex, Part

MAX_CHARS = 200  # RFC 8970 §3.3: SHOULD 200, MUST NOT exceed 256
_SCAN_BYTES = 64 * 1024  # of a part's body: far more than 200 characters of text need
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: never shown
_TAG_RE = re.compile(r"</?[A-Za-z!?][^>]*>?")
_HIDDEN_RE = re.compile(r"<(script|style|head|title)\b.*?(?:</\1\s*>|\Z)", re.I | re.S)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)


def _is_attachment(raw: bytes, part: Part) -> bool:
    fields = H.first_fields(
        raw[part.header_start : part.body_start], frozenset((b"content-disposition",))
    )
    disp = H.disposition(fields.get(b"content-disposition"))
    if disp is not None and disp[0].lower() == b"attachment":
        return True
    return part.param("name") is not None


def _first_text(raw: bytes, part: Part) -> Part | None:
    """The part the preview is made from, depth first (RFC 2046 §5.1.4: the last
    alternative is the richest, so plain text is looked for before HTML there)."""
    if part.is_message:
        return None  # a forwarded message is not this message's text
    if part.is_multipart:
        subtype = part.content_type.partition("/")[2]
        if subtype == "encrypted":  # RFC 1847: nothing readable (RFC 8970 §3.2)
            return None
        children = part.children
        if subtype == "alternative":
            plain = [c for c in children if c.content_type == "text/plain"]
            children = (*plain, *(c for c in children if c not in plain))
        for child in children:
            found = _first_text(raw, child)
            if found is not None:
                return found
        return None
    if part.content_type in ("text/plain", "text/html") and not _is_attachment(raw, part):
        return part
    return None


def _decode(data: bytes, charset: str) -> str:
    """Text of the part: its charset, else UTF-8, else Latin-1 (never raises)."""
    cs = charset.strip().lower() or "utf-8"
    if cs in ("us-ascii", "ascii"):
        cs = "utf-8"  # 8-bit text labelled ASCII is usually UTF-8
    for name in (cs, "utf-8"):
        try:
            return data.decode(name)
        except UnicodeDecodeError as exc:
            if exc.start >= len(data) - 3:  # a character cut off at the end of the scan
                try:
                    return data[: exc.start].decode(name)
                except UnicodeDecodeError:
                    continue
        except (LookupError, ValueError):  # unknown, not a text codec, NUL in the name
            continue
    return data.decode("latin-1")


def html_to_text(text: str) -> str:
    """Readable text of HTML: hidden elements, comments and tags removed, entities
    decoded (whitespace is collapsed by the caller)."""
    text = _COMMENT_RE.sub(" ", _HIDDEN_RE.sub(" ", text))
    return html.unescape(_TAG_RE.sub(" ", text))


def collapse(text: str, limit: int = MAX_CHARS) -> str:
    """Whitespace runs as one space, trimmed, cut to `limit` characters; control
    characters dropped (the preview is one line of text/plain, RFC 8970 §3.3). Prefixes
    are tried first (2 and 8 times the limit): when one gives more than `limit`
    characters, the rest cannot change them (a whitespace run cut at its end is one space
    either way)."""
    for size in (2 * limit, 8 * limit):
        if len(text) <= size:
            break
        head = _one_line(text[:size]).lstrip()
        if len(head) > limit:
            return head[:limit].rstrip()
    return _one_line(text).strip()[:limit].rstrip()


def _one_line(text: str) -> str:
    # str.split() splits at the characters that `\s` matches; most text has no control
    # character left then, which isprintable() tells without a regular expression
    text = " ".join(text.split())
    return text if text.isprintable() else _CONTROL_RE.sub("", text)


def preview_text(raw: bytes, index: MessageIndex) -> str:
    """The preview of a stored message (RFC 8970 §3.3); "" when it has no readable text."""
    part = _first_text(raw, index.root)
    if part is None:
        return ""
    # enough encoded bytes for the first characters (base64 and quoted-printable grow
    # the text by at most 3x); cut at a line end so the decoders see whole lines
    end = min(part.body_end, part.body_start + 3 * _SCAN_BYTES)
    data = raw[part.body_start : end]
    if end < part.body_end:
        data = data[: data.rfind(b"\n") + 1] or data
    decoded = decode_body(data, part.encoding)
    if decoded is None:  # an unknown transfer encoding: no meaningful text
        return ""
    text = _decode(decoded[:_SCAN_BYTES], part.param("charset") or "utf-8")
    if part.content_type == "text/html":
        text = html_to_text(text)
    return collapse(text)
