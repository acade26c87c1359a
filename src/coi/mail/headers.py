"""Byte-level header parsing shared by indexing, sections and search.

Everything here works on raw bytes and never raises: messages come from
the network and may be arbitrarily broken.  Values stay undecoded bytes
because IMAP ENVELOPE/BODYSTRUCTURE want them "as is" (RFC 3501 §7.4.2).
"""

from __future__ import annotations

import re

# RFC 5322 §2.2: a field is "name:" + value; continuation lines start with WSP.
# Names are any printable ASCII except ":" (we also reject whitespace so that a
# garbage line does not become a field).  Linear: anchored at line starts only.
_FIELD_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
# RFC 5322 §2.2.3: unfolding removes the CRLF (or bare LF) before the WSP.
_FOLD_RE = re.compile(rb"\r?\n(?=[ \t])")
_CRLF_RE = re.compile(rb"[\r\n]+")

Fields = list[tuple[bytes, bytes]]


def unfold(value: bytes) -> bytes:
    """Unfold a field value and trim surrounding whitespace (RFC 5322 §2.2.3)."""
    if b"\n" not in value:  # fast path: a single line, maybe with its CR
        return value.strip(b" \t\r")
    value = _FOLD_RE.sub(b"", value)
    if b"\r" in value or b"\n" in value:
        value = _CRLF_RE.sub(b"", value)
    return value.strip(b" \t")


def parse_fields(header: bytes) -> Fields:
    """Return (lower-case name, unfolded value) for every field, in order."""
    return [(m.group(1).lower(), unfold(m.group(2))) for m in _FIELD_RE.finditer(header)]


def first_fields(header: bytes, names: frozenset[bytes]) -> dict[bytes, bytes]:
    """First occurrence of each wanted field (IMAP uses the first, RFC 3501 §7.4.2).

    Only wanted fields are unfolded: chat messages carry big folded headers
    (Autocrypt keys) that FETCH never needs.
    """
    out: dict[bytes, bytes] = {}
    for m in _FIELD_RE.finditer(header):
        name = m.group(1).lower()
        if name in names and name not in out:
            out[name] = unfold(m.group(2))
    return out


def field_blocks(header: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header into (lower-case name, raw field bytes incl. folding and CRLF).

    Used by HEADER.FIELDS, which must return fields exactly as stored.  Lines
    that are not fields (garbage, the blank line) are dropped.
    """
    out: list[tuple[bytes, bytes]] = []
    for m in _FIELD_RE.finditer(header):
        end = m.end()
        if end < len(header) and header[end] == 0x0A:  # keep the line terminator
            end += 1
        out.append((m.group(1).lower(), header[m.start() : end]))
    return out


# --- MIME parameters (RFC 2045 §5.1, RFC 2183 §2) -------------------------------

_TOKEN = rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_CT_RE = re.compile(rb"[ \t]*(" + _TOKEN + rb")[ \t]*/[ \t]*(" + _TOKEN + rb")")
_DISP_RE = re.compile(rb"[ \t]*(" + _TOKEN + rb")")
# A parameter: ";" name "=" (quoted-string | token-ish).  Searched, not matched,
# so garbage between parameters is skipped (best effort).
_PARAM_RE = re.compile(
    rb';[ \t]*([^\s=;"]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"?|[^\s;"]*)',
    re.S,
)
_QP_ESC_RE = re.compile(rb"\\(.)", re.S)
MAX_PARAMS = 64

Params = list[tuple[bytes, bytes]]


def _params(value: bytes, pos: int) -> Params:
    out: Params = []
    for m in _PARAM_RE.finditer(value, pos):
        v = m.group(2)
        if v.startswith(b'"'):
            v = v[1:-1] if len(v) > 1 and v.endswith(b'"') else v[1:]
            v = _QP_ESC_RE.sub(rb"\1", v)
        out.append((m.group(1).lower(), v))
        if len(out) >= MAX_PARAMS:
            break
    return out


def content_type(value: bytes | None) -> tuple[str, str, Params] | None:
    """Parse Content-Type into (type, subtype, params); None when absent/invalid."""
    if value is None:
        return None
    m = _CT_RE.match(value)
    if m is None:
        return None
    return (
        m.group(1).decode("ascii").lower(),
        m.group(2).decode("ascii").lower(),
        _params(value, m.end()),
    )


def disposition(value: bytes | None) -> tuple[bytes, Params] | None:
    """Parse Content-Disposition (RFC 2183 §2) into (type, params)."""
    if value is None:
        return None
    m = _DISP_RE.match(value)
    if m is None:
        return None
    return m.group(1), _params(value, m.end())


def transfer_encoding(value: bytes | None) -> str:
    """Content-Transfer-Encoding mechanism, lower-case; "7bit" by default (RFC 2045 §6.1)."""
    if value is None:
        return "7bit"
    tok = value.split(b";", 1)[0].strip(b" \t").split(None, 1)
    if not tok:
        return "7bit"
    return tok[0].decode("latin-1").lower()


# --- Addresses (RFC 5322 §3.4) for the ENVELOPE (RFC 3501 §7.4.2) ---------------

_ATOK_RE = re.compile(
    rb"""
    (?P<ws>[ \t\r\n]+)
   |(?P<qs>"(?:[^"\\]|\\.)*"?)
   |(?P<cm>\()
   |(?P<dl>\[(?:[^\]\\]|\\.)*\]?)
   |(?P<sp>[<>@,;:.)\]\\])
   |(?P<at>[^ \t\r\n"()<>@,;:.\[\]\\]+)
    """,
    re.X | re.S,
)
_COMMENT_STOP_RE = re.compile(rb"[()\\]")

Token = tuple[str, bytes]
Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]
GROUP_END: Address = (None, None, None, None)
MAX_ADDRESSES = 1000


def _comment_end(value: bytes, pos: int) -> int:
    """Index after the comment opening at value[pos] (nested, may be unterminated)."""
    depth = 0
    i = pos
    n = len(value)
    while i < n:
        m = _COMMENT_STOP_RE.search(value, i)
        if m is None:
            return n
        c = value[m.start()]
        if c == 0x5C:  # backslash quotes the next byte
            i = m.start() + 2
            continue
        depth += 1 if c == 0x28 else -1
        i = m.start() + 1
        if depth == 0:
            return i
    return n


def _tokens(value: bytes) -> list[Token]:
    out: list[Token] = []
    pos = 0
    n = len(value)
    while pos < n:
        m = _ATOK_RE.match(value, pos)
        if m is None:  # cannot happen with the catch-all classes; stay safe
            pos += 1
            continue
        kind = m.lastgroup or "at"
        if kind == "cm":
            end = _comment_end(value, pos)
            out.append(("cm", value[pos:end]))
            pos = end
            continue
        out.append((kind, m.group(0)))
        pos = m.end()
    return out


def _unquote(tok: bytes) -> bytes:
    inner = tok[1:-1] if len(tok) > 1 and tok.endswith(b'"') else tok[1:]
    return _QP_ESC_RE.sub(rb"\1", inner)


def _phrase(toks: list[Token]) -> bytes | None:
    """Display name: words joined by single spaces, quoted strings unquoted."""
    parts: list[bytes] = []
    space = False
    for kind, text in toks:
        if kind == "ws" or kind == "cm":
            space = True
            continue
        if space and parts:
            parts.append(b" ")
        space = False
        parts.append(_unquote(text) if kind == "qs" else text)
    name = b"".join(parts).strip(b" ")
    return name or None


def _addr_spec(toks: list[Token]) -> tuple[bytes, bytes]:
    words = [t for t in toks if t[0] not in ("ws", "cm")]
    at = -1
    for i, (kind, text) in enumerate(words):
        if kind == "sp" and text == b"@":
            at = i
    if at < 0:
        return b"".join(t for _, t in words), b""
    local = b"".join(t for _, t in words[:at])
    domain = b"".join(t for _, t in words[at + 1 :])
    return local, domain


def _address(toks: list[Token]) -> Address | None:
    if not any(k not in ("ws", "cm") for k, _ in toks):
        return None
    lt = next((i for i, t in enumerate(toks) if t == ("sp", b"<")), -1)
    if lt < 0:
        local, domain = _addr_spec(toks)
        comment = next((t for k, t in toks if k == "cm"), None)
        name = comment[1:-1].strip(b" \t") if comment and comment.endswith(b")") else None
        return (name or None, None, local, domain)
    name = _phrase(toks[:lt])
    inner = toks[lt + 1 :]
    gt = next((i for i, t in enumerate(inner) if t == ("sp", b">")), len(inner))
    inner = inner[:gt]
    adl: bytes | None = None
    colon = next((i for i, t in enumerate(inner) if t == ("sp", b":")), -1)
    if colon >= 0:  # obsolete source route, RFC 5322 §4.4
        adl = b"".join(t for k, t in inner[:colon] if k not in ("ws", "cm")) or None
        inner = inner[colon + 1 :]
    local, domain = _addr_spec(inner)
    return (name, adl, local, domain)


# Fast path for the common `"Name" <a@b>`, `Name <a@b>` and `a@b` items; anything
# else (comments, groups, escapes, odd spacing) goes through the full tokenizer.
_ADDR_CH = rb"[^<>@\s\",;:()\[\]\\]+"
_SIMPLE_RE = re.compile(
    rb'[ \t]*(?:(?:"([^"\\\r\n]*)"|([!#-\'*+\-/-9=?A-Z^-~]+(?: [!#-\'*+\-/-9=?A-Z^-~]+)*))'
    rb"[ \t]*)?<(" + _ADDR_CH + rb")@(" + _ADDR_CH + rb")>[ \t]*(,|\Z)"
    rb"|[ \t]*(" + _ADDR_CH + rb")@(" + _ADDR_CH + rb")[ \t]*(,|\Z)"
)


def _simple_addresses(value: bytes) -> list[Address] | None:
    out: list[Address] = []
    pos = 0
    n = len(value)
    while pos < n:
        m = _SIMPLE_RE.match(value, pos)
        if m is None:
            return None
        if m.group(3) is not None:
            name = m.group(1) if m.group(1) is not None else m.group(2)
            out.append((name or None, None, m.group(3), m.group(4)))
        else:
            out.append((None, None, m.group(6), m.group(7)))
        pos = m.end()
        if len(out) >= MAX_ADDRESSES:
            break
    return out


def addresses(value: bytes | None) -> list[Address]:
    """Parse an address list into ENVELOPE address tuples, incl. group markers."""
    if value is None:
        return []
    simple = _simple_addresses(value)
    return simple if simple is not None else full_addresses(value)


def full_addresses(value: bytes) -> list[Address]:
    """The general RFC 5322 §3.4 parser behind :func:`addresses` (lenient)."""
    out: list[Address] = []
    cur: list[Token] = []
    in_group = False
    in_angle = False

    def flush() -> None:
        a = _address(cur)
        if a is not None:
            out.append(a)
        cur.clear()

    for tok in _tokens(value):
        kind, text = tok
        if kind == "sp":
            if text == b"<":
                in_angle = True
            elif text == b">":
                in_angle = False
            elif not in_angle:
                if text == b",":
                    flush()
                    continue
                if text == b":" and not in_group:
                    out.append((None, None, _phrase(cur) or b"", None))
                    cur.clear()
                    in_group = True
                    continue
                if text == b";" and in_group:
                    flush()
                    out.append(GROUP_END)
                    in_group = False
                    continue
        cur.append(tok)
        if len(out) >= MAX_ADDRESSES:
            break
    flush()
    if in_group:
        out.append(GROUP_END)
    return out
