"""FETCH attributes (RFC 3501 §6.4.5, §9; RFC 3516 BINARY; RFC 7162 MODSEQ; RFC 8970
PREVIEW)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ._reader import LPAREN, RPAREN, SP, Reader

SectionText = Literal["", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]

_ATOM_SAFE = re.compile(r'[^(){ %*"\\\]\x00-\x1f\x7f-\U0010ffff]+\Z')


def _field_wire(name: str) -> str:
    # Header names are atoms in practice; quote anything else (RFC 3501 §9 astring).
    if _ATOM_SAFE.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Section:
    """A body section spec ``[1.2.HEADER.FIELDS (From)]``; empty means the whole message."""

    part: tuple[int, ...] = ()
    text: SectionText = ""
    fields: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        out = ".".join(str(p) for p in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
        if self.fields:
            out += " (" + " ".join(_field_wire(f) for f in self.fields) + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """One fetch-att; ``BODY.PEEK``/``BINARY.PEEK`` become ``BODY``/``BINARY`` + ``peek``;
    ``PREVIEW (LAZY)`` is ``PREVIEW`` + ``lazy`` (RFC 8970 §4.1)."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False

    def response_name(self) -> str:
        """The item name echoed in the FETCH response (RFC 3501 §7.4.2).

        ``.PEEK`` is never echoed and a partial echoes only its origin octet.
        """
        if self.section is None:
            return self.name
        out = f"{self.name}[{self.section}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out


_SIMPLE = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "RFC822.SIZE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",  # RFC 7162 §3.1.4.1
        "EMAILID",  # RFC 8474 §5.3
        "THREADID",  # RFC 8474 §5.3
    }
)

# RFC 3501 §6.4.5 macros
MACROS: dict[str, tuple[FetchAttr, ...]] = {
    "FAST": (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"), FetchAttr("RFC822.SIZE")),
    "ALL": (
        FetchAttr("FLAGS"),
        FetchAttr("INTERNALDATE"),
        FetchAttr("RFC822.SIZE"),
        FetchAttr("ENVELOPE"),
    ),
    "FULL": (
        FetchAttr("FLAGS"),
        FetchAttr("INTERNALDATE"),
        FetchAttr("RFC822.SIZE"),
        FetchAttr("ENVELOPE"),
        FetchAttr("BODY"),
    ),
}

_NAME = re.compile(rb"[A-Za-z0-9.]+")


def _section_part(r: Reader) -> list[int]:
    # RFC 3501 §9: section-part = nz-number *("." nz-number)
    parts = [r.nz_number(what="section part")]
    while r.peek() == 0x2E and 0x30 <= r.peek_at(1) <= 0x39:
        r.pos += 1
        parts.append(r.nz_number(what="section part"))
    return parts


def _header_list(r: Reader) -> tuple[str, ...]:
    # RFC 3501 §9: header-list = "(" header-fld-name *(SP header-fld-name) ")"
    r.expect(LPAREN)
    names = [r.astring().decode("utf-8", "surrogateescape")]
    while r.accept(SP):
        names.append(r.astring().decode("utf-8", "surrogateescape"))
    r.expect(RPAREN)
    for n in names:
        if not n or any(c <= " " or c == ":" or c > "~" for c in n):
            r.fail("invalid header field name")
    return tuple(names)


def parse_section(r: Reader, binary: bool) -> Section:
    """Parse ``"[" [section-spec] "]"`` (or section-binary for BINARY)."""
    r.expect(0x5B)
    if r.accept(0x5D):
        return Section()
    part: list[int] = []
    text: SectionText = ""
    fields: tuple[str, ...] = ()
    if 0x30 <= r.peek() <= 0x39:
        part = _section_part(r)
        if binary or not r.accept(0x2E):
            r.expect(0x5D)
            return Section(tuple(part))
    if binary:
        r.fail("invalid binary section")
    word = r.atom_upper("section text")
    if word == "HEADER" or word == "TEXT":
        text = word  # type: ignore[assignment]
    elif word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        text = word  # type: ignore[assignment]
        r.sp()
        fields = _header_list(r)
    elif word == "MIME" and part:
        text = "MIME"
    else:
        r.fail(f"invalid section {word}")
    r.expect(0x5D)
    return Section(tuple(part), text, fields)


def _partial(r: Reader) -> tuple[int, int] | None:
    # RFC 3501 §9: "<" number "." nz-number ">"
    if not r.accept(0x3C):
        return None
    start = r.number(what="partial origin")
    r.expect(0x2E)
    length = r.nz_number(what="partial length")
    r.expect(0x3E)
    return (start, length)


def parse_fetch_att(r: Reader) -> FetchAttr:
    """Parse one fetch-att (not a macro)."""
    tok = r.match(_NAME)
    if tok is None:
        r.fail("expected fetch attribute" if not r.at_end() else "missing fetch attribute")
    name = tok.decode("ascii").upper()
    has_section = r.peek() == 0x5B
    if name in ("BODY", "BODY.PEEK"):
        if not has_section:
            if name == "BODY.PEEK":
                r.fail("BODY.PEEK needs a section")
            return FetchAttr("BODY")
        section = parse_section(r, binary=False)
        return FetchAttr("BODY", section, _partial(r), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 §4.2
        if not has_section:
            r.fail(f"{name} needs a section")
        section = parse_section(r, binary=True)
        if name == "BINARY.SIZE":
            return FetchAttr("BINARY.SIZE", section)
        return FetchAttr("BINARY", section, _partial(r), peek=name == "BINARY.PEEK")
    if name == "PREVIEW" and not has_section:
        return _preview(r)
    if has_section or name not in _SIMPLE:
        r.fail(f"unknown fetch attribute {name}")
    return FetchAttr(name)


def _preview(r: Reader) -> FetchAttr:
    # RFC 8970 §6: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"], preview-mod = "LAZY"
    # `FETCH 1 PREVIEW (CHANGEDSINCE 5)`: a parenthesis not opening "LAZY" starts the
    # fetch modifiers (RFC 4466), not preview modifiers
    save = r.pos
    if not r.accept_sp_before(LPAREN):
        return FetchAttr("PREVIEW")
    if not r.accept_word(b"LAZY"):
        r.pos = save
        return FetchAttr("PREVIEW")
    while r.accept(SP):
        if r.atom_upper("preview modifier") != "LAZY":
            r.fail("unknown PREVIEW modifier")
    r.expect(RPAREN)
    return FetchAttr("PREVIEW", lazy=True)


# Parsed fetch-att lists by the rest of the command line they start (clients repeat the
# same few item lists: one parse each); bounded, cleared when full. FetchAttr is frozen.
_PARSED: dict[bytes, tuple[tuple[FetchAttr, ...], int]] = {}
_PARSED_MAX = 1024


def parse_fetch_atts(r: Reader) -> tuple[FetchAttr, ...]:
    """``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``."""
    rest = r.rest_of_last_line()
    if rest is None:  # literals follow: parse as it comes
        return _parse_fetch_atts(r)
    hit = _PARSED.get(rest)
    if hit is not None:
        r.pos += hit[1]
        return hit[0]
    start = r.pos
    atts = _parse_fetch_atts(r)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[rest] = (atts, r.pos - start)
    return atts


def _parse_fetch_atts(r: Reader) -> tuple[FetchAttr, ...]:
    if r.accept(LPAREN):
        atts = [parse_fetch_att(r)]
        while r.accept(SP):
            atts.append(parse_fetch_att(r))
        r.expect(RPAREN)
        return tuple(atts)
    save = r.pos
    tok = r.match(_NAME)
    if tok is not None:
        macro = MACROS.get(tok.decode("ascii").upper())
        if macro is not None and r.peek() in (SP, -1):
            return macro
    r.pos = save
    return (parse_fetch_att(r),)
