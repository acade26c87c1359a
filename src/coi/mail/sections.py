"""Cut ``BODY[section]`` / ``BINARY[section]`` data out of the raw bytes.

All slicing uses the offsets recorded by :func:`coi.mail.index.index_message`,
so a FETCH never parses MIME again (RFC 3501 §6.4.5).
"""

from __future__ import annotations

import binascii
import re

from coi.mail import headers as H
from coi.mail.index import MessageIndex, Part

_TEXTS = ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


def _message_of(index: MessageIndex, part: tuple[int, ...]) -> Part | None:
    """The message that HEADER/TEXT of ``part`` refer to (itself or encapsulated)."""
    if not part:
        return index.root
    p = index.part(part)
    if p is None or not p.is_message:
        return None
    return p.children[0]


def section_bytes(
    raw: bytes,
    index: MessageIndex,
    part: tuple[int, ...],
    text: str,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """Bytes of ``BODY[<part>.<text>]``; None when the section does not exist.

    ``text`` is one of "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    (case-insensitive).  HEADER/TEXT on a part that is not message/rfc822 and
    MIME on the top level give None (RFC 3501 §6.4.5 defines them only there).
    """
    text = text.upper()
    if text not in _TEXTS:
        return None
    if text == "":
        if not part:
            return raw
        p = index.part(part)
        return None if p is None else raw[p.body_start : p.body_end]
    if text == "MIME":
        if not part:
            return None
        p = index.part(part)
        return None if p is None else raw[p.header_start : p.body_start]
    m = _message_of(index, part)
    if m is None:
        return None
    if text == "TEXT":
        return raw[m.body_start : m.body_end]
    header = raw[m.header_start : m.body_start]
    if text == "HEADER":
        return header
    return header_fields(header, fields, exclude=text == "HEADER.FIELDS.NOT")


def header_fields(header: bytes, fields: tuple[str, ...], exclude: bool) -> bytes:
    """Keep (or with ``exclude`` drop) the named fields, folding intact.

    Names compare case-insensitively; the result ends with the blank line
    (RFC 3501 §6.4.5: "the delimiting blank line ... is included").
    """
    wanted = {f.lower().encode("ascii", "replace") for f in fields}
    out = [block for name, block in H.field_blocks(header) if (name in wanted) != exclude]
    out = [b if b.endswith(b"\n") else b + b"\r\n" for b in out]
    out.append(b"\r\n")
    return b"".join(out)


_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]+")


def _b64(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 §6.8: ignore characters outside the alphabet)."""
    data = _B64_JUNK_RE.sub(b"", data)
    rem = len(data) % 4
    if rem == 1:
        data = data[:-1]
    elif rem:
        data += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # pragma: no cover - input is sanitized above
        return b""


_QP_LINE_RE = re.compile(rb"[^\n]+\n?|\n")
_QP_ESCAPE_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_octet(match: re.Match[bytes]) -> bytes:
    return bytes((int(match.group(1), 16),))


def decode_quoted_printable(data: bytes) -> bytes:
    """Quoted-printable decoding by RFC 2045 §6.7.

    Trailing whitespace on a line is deleted (rule 3: transports may add or drop it); a
    line that then ends in `=` is a soft line break (rule 5, also when `=` was followed by
    whitespace); every hard line break decodes to CRLF (rule 4, RFC 3516 §6); `=XX`
    decodes in either case (the robust reading the RFC allows); any other `=` is kept as
    it is (§6.7 note 2)."""
    out: list[bytes] = []
    for match in _QP_LINE_RE.finditer(data):
        line = match.group()
        hard = line.endswith(b"\n")
        if hard:
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            line = line[:-1]
            hard = False
        if b"=" in line:
            line = _QP_ESCAPE_RE.sub(_qp_octet, line)
        out.append(line)
        if hard:
            out.append(b"\r\n")
    return b"".join(out)


def decode_body(data: bytes, encoding: str) -> bytes | None:
    """Undo a content-transfer-encoding; None for unknown ones (RFC 3516 UNKNOWN-CTE)."""
    if encoding in ("7bit", "8bit", "binary"):
        return data
    if encoding == "base64":
        return _b64(data)
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    return None


def decoded_part(raw: bytes, index: MessageIndex, part: tuple[int, ...]) -> bytes | None:
    """Body of ``part`` with its transfer encoding removed, for ``BINARY[part]``.

    ``()`` returns the whole message unchanged (RFC 3516 §4.2: BINARY[] has
    no encoding to remove).  None when the part does not exist or uses an
    unknown encoding; the server must distinguish via :meth:`MessageIndex.part`.
    """
    if not part:
        return raw
    p = index.part(part)
    if p is None:
        return None
    data = raw[p.body_start : p.body_end]
    if p.is_multipart or p.is_message:
        return data
    return decode_body(data, p.encoding)
