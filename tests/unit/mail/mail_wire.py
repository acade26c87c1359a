"""Tiny IMAP response-data parser used to check that our output is well-formed."""

from __future__ import annotations

import re

Value = bytes | int | None | list["Value"]

_ATOM_RE = re.compile(rb"NIL|[0-9]+")


def parse(data: bytes) -> Value:
    """Parse one parenthesized list / string / number; raise ValueError if malformed."""
    value, pos = _value(data, 0)
    if pos != len(data):
        raise ValueError(f"trailing data at {pos}: {data[pos : pos + 20]!r}")
    return value


def _value(data: bytes, pos: int) -> tuple[Value, int]:
    if pos >= len(data):
        raise ValueError("unexpected end")
    c = data[pos : pos + 1]
    if c == b"(":
        items: list[Value] = []
        pos += 1
        while True:
            if data[pos : pos + 1] == b")":
                return items, pos + 1
            if items:
                if data[pos : pos + 1] == b" ":
                    pos += 1
                elif data[pos - 1 : pos] != b")":  # lists may abut: ((..)(..))
                    raise ValueError(f"missing space at {pos}")
            v, pos = _value(data, pos)
            items.append(v)
    if c == b'"':
        out = bytearray()
        pos += 1
        while True:
            ch = data[pos : pos + 1]
            if not ch or ch in b"\r\n":
                raise ValueError("bad quoted string")
            if ch == b"\\":
                esc = data[pos + 1 : pos + 2]
                if esc not in (b'"', b"\\"):
                    raise ValueError("bad escape")
                out += esc
                pos += 2
                continue
            if ch == b'"':
                return bytes(out), pos + 1
            if ch[0] > 0x7F or ch == b"\0":
                raise ValueError("8-bit in quoted string")
            out += ch
            pos += 1
    if c == b"{":
        end = data.index(b"}\r\n", pos)
        n = int(data[pos + 1 : end])
        start = end + 3
        if start + n > len(data):
            raise ValueError("short literal")
        return data[start : start + n], start + n
    m = _ATOM_RE.match(data, pos)
    if m is None:
        raise ValueError(f"unexpected {data[pos : pos + 20]!r} at {pos}")
    tok = m.group(0)
    return (None if tok == b"NIL" else int(tok)), m.end()


def check_body(v: Value, extended: bool) -> None:
    """Validate the shape of a BODY / BODYSTRUCTURE value (RFC 3501 §9 "body")."""
    assert isinstance(v, list) and v
    if isinstance(v[0], list):  # multipart
        i = 0
        while i < len(v) and isinstance(v[i], list):
            check_body(v[i], extended)
            i += 1
        assert isinstance(v[i], bytes)  # subtype
        rest = v[i + 1 :]
        assert len(rest) == (4 if extended else 0), rest
        return
    assert isinstance(v[0], bytes) and isinstance(v[1], bytes)
    assert v[2] is None or (isinstance(v[2], list) and len(v[2]) % 2 == 0)
    assert isinstance(v[5], bytes)  # encoding
    assert isinstance(v[6], int)  # octets
    n = 7
    if v[0].upper() == b"MESSAGE" and v[1].upper() == b"RFC822":
        assert isinstance(v[7], list) and len(v[7]) == 10  # envelope
        check_body(v[8], extended)
        assert isinstance(v[9], int)
        n = 10
    elif v[0].upper() == b"TEXT":
        assert isinstance(v[7], int)
        n = 8
    assert len(v) == n + (4 if extended else 0), v
