"""What an IMAP4rev2 session (RFC 9051) sees of the stored ENVELOPE, BODY and
BODYSTRUCTURE.

The stored index (coi.mail.index) holds these in their IMAP4rev1 form, which rev1
sessions get byte for byte and which a rev1 session may share with rev2 ones. A rev2
session gets them rewritten here, at FETCH:

* UTF-8 text goes out as a quoted string (RFC 9051 §4.3.1: implementations MAY send
  UTF-8 text without NUL, CR or LF quoted; §9 QUOTED-CHAR takes UTF8-2/3/4); the rev1
  form had to send it as a literal. Text that is not valid UTF-8, or holds a control
  character that a quoted string cannot carry, stays a literal.
* Body parameters split or encoded per RFC 2231 (``name*0*``, ``name*=utf-8''...``) are
  decoded, joined and returned as the plain ``name`` (RFC 9051 §7.5.2 "body parameter
  parenthesized list" and "body disposition": servers SHOULD). The RFC's example says
  an encoded one is returned as ``foo*``; a ``foo*`` value is read by RFC 2231 §4 as
  ``charset'language'octets``, so the decoded UTF-8 value goes under the plain name, as
  the section's first sentence asks for ``baz``. Parameters that cannot be decoded (an
  unknown charset, a gap in the sections) are returned as stored.

Most messages need neither: their stored bytes are returned as they are.
"""

from __future__ import annotations

import re
from typing import Any

_Node = bytes | int | None | list[Any]

_TOKEN = re.compile(rb' *(?:(\()|(\))|(NIL)|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|(\d+))', re.DOTALL)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
# a stored literal, or a parameter name of RFC 2231 form (the stored names are quoted)
_NEEDS_WORK = re.compile(rb'\{\d+\}\r\n|\*(?:\d+\*?)?" ')
_CONTROL = re.compile(rb"[\x00\r\n]")
_SECTION = re.compile(rb"([^*]+)\*(?:(0|[1-9]\d{0,3})(\*)?)?\Z")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def envelope(stored: bytes) -> bytes:
    """The ENVELOPE of a rev2 session: its UTF-8 strings quoted."""
    if b"{" not in stored:
        return stored
    return _render(parse_stored(stored))


def body(stored: bytes) -> bytes:
    """BODY or BODYSTRUCTURE of a rev2 session: RFC 2231 parameters decoded, UTF-8
    strings quoted (also in the ENVELOPE of an attached message)."""
    if _NEEDS_WORK.search(stored) is None:
        return stored
    tree = parse_stored(stored)
    _decode_body(tree)
    return _render(tree)


def string(value: bytes) -> bytes:
    """A string as a rev2 session gets it: quoted when UTF-8 without NUL, CR or LF."""
    if _CONTROL.search(value) is None:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


# -- the stored form, read back --------------------------------------------------------


class _List(list[Any]):
    """A list read back, knowing which items followed the one before without a space: a
    multipart's parts and an address list's addresses (RFC 3501 §9 body-type-mpart =
    1*body SP media-subtype; env-from = "(" 1*address ")"), rendered as they were."""

    __slots__ = ("tight",)

    def __init__(self) -> None:
        super().__init__()
        self.tight: set[int] = set()


def parse_stored(data: bytes) -> _Node:
    """Our own stored IMAP data: lists, NIL, numbers, quoted strings, literals (also
    SORT's reader of an ENVELOPE with literals)."""
    stack: list[_List] = [_List()]
    pos = 0
    end = len(data)
    while pos < end:
        m = _TOKEN.match(data, pos)
        if m is None:
            raise ValueError(f"unexpected data at {pos} in stored IMAP data")
        if m.start(0) == pos and data[pos : pos + 1] != b" " and stack[-1]:
            stack[-1].tight.add(len(stack[-1]))
        pos = m.end()
        if m.group(1):
            stack.append(_List())
        elif m.group(2):
            done = stack.pop()
            stack[-1].append(done)
        elif m.group(3):
            stack[-1].append(None)
        elif m.group(4) is not None:
            text = m.group(4)
            stack[-1].append(_UNESCAPE.sub(rb"\1", text) if b"\\" in text else text)
        elif m.group(5) is not None:
            size = int(m.group(5))
            stack[-1].append(data[pos : pos + size])
            pos += size
        else:
            stack[-1].append(int(m.group(6)))
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("malformed stored IMAP data")
    node: _Node = stack[0][0]
    return node


def _render(node: _Node) -> bytes:
    if node is None:
        return b"NIL"
    if isinstance(node, int):
        return b"%d" % node
    if isinstance(node, bytes):
        return string(node)
    return b"(" + _render_items(node) + b")"


def _render_items(items: list[Any]) -> bytes:
    out = bytearray()
    tight = items.tight if isinstance(items, _List) else ()
    for i, item in enumerate(items):
        if i and i not in tight:
            out += b" "
        out += _render(item)
    return bytes(out)


# -- BODY / BODYSTRUCTURE ---------------------------------------------------------------


def _decode_body(node: _Node) -> None:
    """Decodes the parameter lists of a body (RFC 3501 §9 "body") in place."""
    if not isinstance(node, list) or not node:
        return
    if isinstance(node[0], list):  # body-type-mpart: parts, subtype, [params dsp ...]
        parts = 0
        while parts < len(node) and isinstance(node[parts], list):
            _decode_body(node[parts])
            parts += 1
        _decode_at(node, parts + 1)
        _decode_dsp(node, parts + 2)
        return
    # body-type-1part: type subtype params id desc enc octets, then per type
    _decode_at(node, 2)
    kind = node[0].upper() if isinstance(node[0], bytes) else b""
    if kind == b"MESSAGE" and len(node) > 9 and isinstance(node[7], list):
        _decode_body(node[8])  # envelope body lines, then md5 dsp
        _decode_dsp(node, 11)
    elif kind == b"TEXT":  # lines, then md5 dsp
        _decode_dsp(node, 9)
    else:  # md5 dsp
        _decode_dsp(node, 8)


def _decode_at(node: list[Any], at: int) -> None:
    if at < len(node) and isinstance(node[at], list):
        node[at] = decode_params(node[at])


def _decode_dsp(node: list[Any], at: int) -> None:
    """body-fld-dsp = "(" string SP body-fld-param ")" / nil"""
    if at < len(node) and isinstance(node[at], list) and len(node[at]) == 2:
        _decode_at(node[at], 1)


def decode_params(items: list[Any]) -> list[Any]:
    """A body-fld-param list (name, value, name, value ...) with the parameters that
    RFC 2231 splits (§3) or encodes (§4) decoded and joined under their plain name, in
    the place of their first section; a plain parameter of the same name is dropped for
    them. Names that cannot be decoded keep their sections as they are."""
    if len(items) % 2 or not all(isinstance(x, bytes) for x in items):
        return items
    pairs: list[tuple[bytes, bytes]] = list(zip(items[::2], items[1::2], strict=True))
    sections: dict[bytes, dict[int, tuple[bool, bytes]]] = {}
    broken: set[bytes] = set()
    for name, value in pairs:
        m = _SECTION.match(name)
        if m is None:
            continue
        base = m.group(1).upper()
        number = 0 if m.group(2) is None else int(m.group(2))
        encoded = m.group(2) is None or m.group(3) is not None
        if m.group(2) is None and base in sections:  # name* beside name*0: ambiguous
            broken.add(base)
        found = sections.setdefault(base, {})
        if number in found:
            broken.add(base)
        found[number] = (encoded, value)
    decoded: dict[bytes, bytes] = {}
    for base, found in sections.items():
        if base not in broken:
            joined = _join(found)
            if joined is not None:
                decoded[base] = joined
    if not decoded:
        return items
    out: list[Any] = []
    done: set[bytes] = set()
    for name, value in pairs:
        m = _SECTION.match(name)
        base = m.group(1).upper() if m is not None else name.upper()
        if base not in decoded:
            out += [name, value]
        elif base not in done:
            done.add(base)
            out += [base, decoded[base]]
    return out


def _join(found: dict[int, tuple[bool, bytes]]) -> bytes | None:
    """The value of one parameter's sections (RFC 2231 §3, §4.1), in UTF-8; None when it
    cannot be decoded."""
    if sorted(found) != list(range(len(found))):
        return None
    charset: str | None = None
    data = bytearray()
    for number in range(len(found)):
        encoded, value = found[number]
        if encoded:
            if number == 0:  # charset'language'octets (RFC 2231 §4)
                head = value.split(b"'", 2)
                if len(head) != 3:
                    return None
                charset = head[0].decode("ascii", "replace") or "us-ascii"
                value = head[2]
            if b"%" in value:
                value = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), value)
        data += value
    if charset is None:  # continuations only (§3): the value as it was sent
        return bytes(data)
    try:
        return bytes(data).decode(charset).encode("utf-8")
    except (LookupError, ValueError):  # unknown charset, bad octets, NUL in the name
        return None
