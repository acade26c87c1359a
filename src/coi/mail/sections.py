"""Cut ``BODY[section]`` / ``BINARY[section]`` data out of the raw bytes.

All slicing uses the offsets recorded by :func:`coi.mail.index.index_message`,
so a FETCH never parses MIME again (RFC 3501 §6.4.5).
"""

from __future__ import annotations

import re

from coi.mail import headers as H
from coi.mail.cte import base64_lines, decode_body, decode_quoted_printable
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
        if p is None:
            return None
        if p.nul:  # RFC 3516 §6: as BODYSTRUCTURE describes it, base64
            return served_base64(raw, p)
        return raw[p.body_start : p.body_end]
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


# A regex finding the fields of one HEADER.FIELDS list, by the list (clients repeat a few);
# bounded, cleared when full
_NAMED: dict[tuple[str, ...], re.Pattern[bytes]] = {}
_FIELD_NAME = re.compile(rb"[!-9;-~]+")


def _named_fields(fields: tuple[str, ...]) -> re.Pattern[bytes]:
    """Each field named in `fields` (ASCII case-insensitive, as `H.field_blocks` compares
    lower-cased names), with its folded lines and its line end: `H.field_blocks`' block."""
    pattern = _NAMED.get(fields)
    if pattern is None:
        names = {f.lower().encode("ascii", "replace") for f in fields}
        # a name outside RFC 5322's field-name characters names no field
        alternatives = b"|".join(re.escape(n) for n in sorted(names) if _FIELD_NAME.fullmatch(n))
        alternatives = alternatives or rb"(?!)"
        pattern = re.compile(
            rb"^(?:" + alternatives + rb")[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*\n?", re.M | re.I
        )
        if len(_NAMED) >= 256:
            _NAMED.clear()
        _NAMED[fields] = pattern
    return pattern


def header_fields(header: bytes, fields: tuple[str, ...], exclude: bool) -> bytes:
    """Keep (or with ``exclude`` drop) the named fields, folding intact.

    Names compare case-insensitively; the result ends with the blank line
    (RFC 3501 §6.4.5: "the delimiting blank line ... is included").
    """
    if exclude:
        wanted = {f.lower().encode("ascii", "replace") for f in fields}
        out = [block for name, block in H.field_blocks(header) if name not in wanted]
    else:  # only the named fields are looked for, not every field split out
        out = [m.group() for m in _named_fields(fields).finditer(header)]
    out = [b if b.endswith(b"\n") else b + b"\r\n" for b in out]
    out.append(b"\r\n")
    return b"".join(out)


def served_base64(raw: bytes, p: Part) -> bytes:
    """BODY[n] of a part whose body holds NUL (`Part.nul`): its content (decoded by its
    transfer encoding, or as stored when that is unknown) in base64 lines (RFC 3516 §6)."""
    data = raw[p.body_start : p.body_end]
    return base64_lines(decode_body(data, p.encoding) or data)


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


__all__ = [
    "decode_body",
    "decode_quoted_printable",
    "decoded_part",
    "header_fields",
    "section_bytes",
    "served_base64",
]
