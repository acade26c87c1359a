"""A small IMAP response parser for the stress checker: a response (its literals inlined as
`{n}\\r\\n` + n octets, as `Conn.read_response` returns it) into atoms, strings and lists.

Atoms and strings are both `bytes`; NIL is the atom b"NIL"; quoted strings and literals are
`Str` (a bytes subclass) so that NIL and "NIL" differ. An atom with `[...]` keeps its
bracketed part, spaces and parentheses included (`BODY[HEADER.FIELDS (FROM)]<0>`)."""

from __future__ import annotations

import re

_DIGITS = re.compile(rb"\{(\d+)\+?\}\r\n")
_ATOM_END = b" ()\r\n"


class Str(bytes):
    """A quoted string or a literal (not an atom)."""


class ParseError(Exception):
    pass


def parse_list(buf: bytes, pos: int) -> tuple[list[object], int]:
    """buf[pos] is "("; returns the list and the position after its ")"."""
    if buf[pos : pos + 1] != b"(":
        raise ParseError(f"expected ( at {pos}: {buf[pos : pos + 40]!r}")
    pos += 1
    out: list[object] = []
    n = len(buf)
    while pos < n:
        c = buf[pos]
        if c == 0x20:  # space
            pos += 1
        elif c == 0x29:  # )
            return out, pos + 1
        else:
            tok, pos = parse_token(buf, pos)
            out.append(tok)
    raise ParseError("unterminated list")


def parse_token(buf: bytes, pos: int) -> tuple[object, int]:
    c = buf[pos]
    if c == 0x28:  # (
        return parse_list(buf, pos)
    if c == 0x22:  # "
        out = bytearray()
        pos += 1
        while True:
            ch = buf[pos]
            if ch == 0x5C:  # backslash
                out.append(buf[pos + 1])
                pos += 2
            elif ch == 0x22:
                return Str(bytes(out)), pos + 1
            else:
                out.append(ch)
                pos += 1
    if c == 0x7B:  # {
        m = _DIGITS.match(buf, pos)
        if m is None:
            raise ParseError(f"bad literal at {pos}: {buf[pos : pos + 20]!r}")
        start = m.end()
        end = start + int(m.group(1))
        return Str(buf[start:end]), end
    start = pos
    n = len(buf)
    while pos < n:
        ch = buf[pos]
        if ch == 0x5B:  # [: up to the matching ]
            depth = 0
            while pos < n:
                if buf[pos] == 0x5B:
                    depth += 1
                elif buf[pos] == 0x5D:
                    depth -= 1
                    if depth == 0:
                        break
                pos += 1
            pos += 1
            continue
        if ch in _ATOM_END:
            break
        pos += 1
    if pos == start:
        raise ParseError(f"empty atom at {pos}: {buf[pos : pos + 20]!r}")
    return buf[start:pos], pos


def parse_fetch(buf: bytes, pos: int) -> dict[bytes, object]:
    """The attribute list of `* n FETCH (...)`, buf[pos] being its "("; keys upper-cased."""
    items, _ = parse_list(buf, pos)
    if len(items) % 2:
        raise ParseError("odd number of FETCH items")
    out: dict[bytes, object] = {}
    for i in range(0, len(items), 2):
        key = items[i]
        if not isinstance(key, bytes) or isinstance(key, Str):
            raise ParseError(f"FETCH item name is not an atom: {key!r}")
        out[key.upper()] = items[i + 1]
    return out


def parse_set(text: bytes | str) -> list[int]:
    """A UID or sequence set without "*" into its numbers, in the order given."""
    if isinstance(text, bytes):
        text = text.decode()
    out: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            step = 1 if b >= a else -1
            out.extend(range(a, b + step, step))
        elif part:
            out.append(int(part))
    return out


def make_set(numbers: list[int]) -> str:
    """Sorted numbers as a compact set ("1:3,7")."""
    nums = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(parts)
