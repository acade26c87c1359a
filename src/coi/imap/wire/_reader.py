"""Token reader over a framed command (internal to the wire package).

All scanning uses anchored regexes with disjoint character classes, so
matching is linear in the input (no backtracking blow-ups).
"""

from __future__ import annotations

import re
from typing import NoReturn

from .errors import ParseError
from .framing import CommandReady

# RFC 3501 §9 character classes. CTL = %x00-1F / %x7F; CHAR = %x01-7F.
_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+')
_ASTRING = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+')  # ATOM-CHAR / "]"
_LIST_CHARS = re.compile(rb'[^(){ "\\\x00-\x1f\x7f-\xff]+')  # + list-wildcards
_TAG = re.compile(rb'[^(){ %*"\\+\x00-\x1f\x7f-\xff]+')
_DIGITS = re.compile(rb"[0-9]+")
# Quoted content: TEXT-CHAR except quoted-specials, or a quoted pair. 8-bit
# octets are tolerated (RFC 6855 UTF8=ACCEPT clients send them).
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")

SP = 0x20
LPAREN = 0x28
RPAREN = 0x29
DQUOTE = 0x22
LBRACE = 0x7B
TILDE = 0x7E

MAX_NUMBER = 0xFFFFFFFF  # RFC 3501 §9 number
MAX_NUMBER64 = 0x7FFFFFFFFFFFFFFF  # RFC 7162 §7 mod-sequence-value (63 bits)


class Reader:
    """Cursor over ``CommandReady.lines`` with literals spliced in place."""

    __slots__ = ("_i", "_line", "_lines", "_lits", "pos", "tag", "utf8_names")

    def __init__(self, ready: CommandReady, *, utf8_names: bool = False) -> None:
        self.utf8_names = utf8_names  # IMAP4rev2 enabled: names are UTF-8 (RFC 9051 §5.1)
        self._lines = ready.lines
        self._lits = ready.literals
        self._i = 0
        self._line = ready.lines[0] if ready.lines else b""
        self.pos = 0
        self.tag: str | None = None

    # -- basics ------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise ParseError(self.tag, message)

    def at_end(self) -> bool:
        return self._i == len(self._lines) - 1 and self.pos >= len(self._line)

    def at_line_end(self) -> bool:
        return self.pos >= len(self._line)

    def rest_of_last_line(self) -> bytes | None:
        """What is left of the command when no literal follows, else None."""
        if self._i != len(self._lines) - 1:
            return None
        return self._line[self.pos :]

    def peek(self) -> int:
        """Next octet, or -1 at the end of the command."""
        return self._line[self.pos] if self.pos < len(self._line) else -1

    def peek_is(self, text: bytes) -> bool:
        return self._line.startswith(text, self.pos)

    def expect_end(self) -> None:
        if not self.at_end():
            self.fail("unexpected trailing characters")

    def sp(self) -> None:
        if self.peek() != SP:
            self.fail("expected SP" if not self.at_end() else "missing argument")
        self.pos += 1

    def accept(self, ch: int) -> bool:
        if self.peek() == ch:
            self.pos += 1
            return True
        return False

    def expect(self, ch: int) -> None:
        if not self.accept(ch):
            self.fail(f"expected {chr(ch)!r}")

    def accept_sp_before(self, ch: int) -> bool:
        """Consume ``SP ch`` if present (for optional parenthesized parts)."""
        line = self._line
        p = self.pos
        if p + 1 < len(line) and line[p] == SP and line[p + 1] == ch:
            self.pos = p + 2
            return True
        return False

    # -- tokens ------------------------------------------------------------

    def peek_at(self, offset: int) -> int:
        """Octet ``offset`` positions ahead on the current line, or -1."""
        p = self.pos + offset
        return self._line[p] if p < len(self._line) else -1

    def match(self, rx: re.Pattern[bytes]) -> bytes | None:
        """Consume and return an anchored match of ``rx`` at the cursor."""
        return self._match(rx)

    def _match(self, rx: re.Pattern[bytes]) -> bytes | None:
        m = rx.match(self._line, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def read_tag(self) -> str:
        tok = self._match(_TAG)
        if tok is None or (self.peek() not in (SP, -1)):
            raise ParseError(None, "invalid tag")
        self.tag = tok.decode("ascii")
        return self.tag

    def atom(self, what: str = "atom") -> bytes:
        tok = self._match(_ATOM)
        if tok is None:
            self.fail(f"expected {what}" if not self.at_end() else f"missing {what}")
        return tok

    def atom_upper(self, what: str = "atom") -> str:
        return self.atom(what).decode("ascii").upper()

    def astring_chars(self) -> bytes | None:
        return self._match(_ASTRING)

    def number(self, maximum: int = MAX_NUMBER, what: str = "number") -> int:
        tok = self._match(_DIGITS)
        if tok is None:
            self.fail(f"expected {what}")
        if len(tok) > 20 or int(tok) > maximum:
            self.fail(f"{what} out of range")
        return int(tok)

    def nz_number(self, maximum: int = MAX_NUMBER, what: str = "number") -> int:
        value = self.number(maximum, what)
        if value == 0:
            self.fail(f"{what} must not be zero")
        return value

    def quoted(self) -> bytes:
        m = _QUOTED.match(self._line, self.pos)
        if m is None:
            self.fail("malformed quoted string")
        self.pos = m.end()
        body = m.group(1)
        if b"\\" in body:
            body = _UNESCAPE.sub(rb"\1", body)
        return body

    def is_literal_start(self) -> bool:
        ch = self.peek()
        return ch == LBRACE or (ch == TILDE and self.peek_is(b"~{"))

    def literal(self, allow8: bool = False) -> bytes:
        """Consume ``{N}``/``{N+}``/``~{N}`` (which ends the line) and its payload."""
        m = _LITERAL.match(self._line, self.pos)
        if m is None or self._i >= len(self._lits):
            self.fail("malformed literal")
        if m.group(1) and not allow8:
            self.fail("literal8 not allowed here")
        data = self._lits[self._i]
        if len(data) != int(m.group(2)):
            self.fail("literal length mismatch")
        if not m.group(1) and b"\x00" in data:
            # RFC 3501 §4.3: literals cannot contain NUL (only literal8 can).
            self.fail("NUL in literal")
        self._i += 1
        self._line = self._lines[self._i]
        self.pos = 0
        return data

    def string(self, allow8: bool = False) -> bytes:
        if self.peek() == DQUOTE:
            return self.quoted()
        if self.is_literal_start():
            return self.literal(allow8)
        self.fail("expected string" if not self.at_end() else "missing string")

    def astring(self, allow8: bool = False) -> bytes:
        if self.peek() == DQUOTE:
            return self.quoted()
        if self.is_literal_start():
            return self.literal(allow8)
        tok = self._match(_ASTRING)
        if tok is None:
            self.fail("expected astring" if not self.at_end() else "missing argument")
        return tok

    def nstring(self, allow8: bool = False) -> bytes | None:
        if self.is_nil():
            return None
        return self.string(allow8)

    def list_mailbox(self) -> bytes:
        """RFC 3501 §9 list-mailbox: 1*list-char / string."""
        if self.peek() == DQUOTE:
            return self.quoted()
        if self.is_literal_start():
            return self.literal()
        tok = self._match(_LIST_CHARS)
        if tok is None:
            self.fail("expected mailbox pattern" if not self.at_end() else "missing argument")
        return tok

    def accept_word(self, word: bytes) -> bool:
        """Consume the atom ``word`` (uppercase, matched case-insensitively) if next."""
        save = self.pos
        tok = self._match(_ATOM)
        if tok is not None and tok.upper() == word:
            return True
        self.pos = save
        return False

    def is_nil(self) -> bool:
        """Consume NIL (case-insensitive) if it is the next whole atom."""
        save = self.pos
        tok = self._match(_ATOM)
        if tok is not None and tok.upper() == b"NIL":
            return True
        self.pos = save
        return False
