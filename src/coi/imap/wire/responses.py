"""Sans-IO reading of server responses (RFC 3501 §7, §9) for the IMAP client.

``ResponseReader`` frames the byte stream into whole responses (a line plus any
literals it announces) and parses each into a typed value. Framing errors (a line
or literal over the limit) are fatal: the stream cannot be resynchronised, so the
reader stays broken and raises the same error again. A complete response whose
syntax is wrong raises a non-fatal ``ResponseParseError`` carrying the raw bytes;
the reader then carries on with the next response. Untagged responses we do not
know become ``Unknown`` instead of errors, so new server extensions never break a
client.

Value conventions (documented once, used everywhere): IMAP strings (quoted or
literal) are ``bytes``, atoms are ``str``, numbers are ``int``, NIL is ``None`` and
parenthesised lists are ``tuple``. ENVELOPE and BODYSTRUCTURE are such nested tuples.
Mailbox names are decoded from modified UTF-7 (RFC 3501 §5.1.3); a name that is not
canonical mUTF-7 (e.g. UTF-8 from a UTF8=ACCEPT server) is kept as sent.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal as TypingLiteral
from typing import NoReturn, cast

from . import mutf7
from .encode import parse_internal_date
from .errors import ResponseParseError

__all__ = [
    "AppendUid",
    "Capability",
    "Condition",
    "Continuation",
    "CopyUid",
    "ESearchData",
    "Enabled",
    "Exists",
    "Expunge",
    "FetchData",
    "Flags",
    "Id",
    "ListEntry",
    "MetadataChanged",
    "MetadataCode",
    "MetadataData",
    "Namespace",
    "NamespaceData",
    "Recent",
    "Response",
    "ResponseCode",
    "ResponseParseError",
    "ResponseReader",
    "SearchData",
    "SortData",
    "StatusData",
    "Tagged",
    "Unknown",
    "Vanished",
    "expand_uid_set",
    "normalise_section",
    "parse_response",
]

Value = int | bytes | str | None | tuple["Value", ...]

MAX_DEPTH = 64  # nesting of parenthesised lists (BODYSTRUCTURE of deep multiparts)
MAX_SET_EXPANSION = 10_000_000  # numbers one uid-set may expand to


# -- response codes (RFC 3501 §7.1) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppendUid:
    """``[APPENDUID uidvalidity uids]`` (RFC 4315 §3)."""

    uidvalidity: int
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyUid:
    """``[COPYUID uidvalidity src dst]`` (RFC 4315 §3); ``src[i]`` became ``dst[i]``."""

    uidvalidity: int
    source: tuple[int, ...]
    destination: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MetadataCode:
    """``[METADATA LONGENTRIES n | MAXSIZE n | TOOMANY | NOPRIVATE]`` (RFC 5464 §4.2.1, §4.3)."""

    kind: str
    number: int | None = None


CodeValue = (
    int | tuple[str, ...] | tuple[int, ...] | AppendUid | CopyUid | MetadataCode | str | None
)


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A bracketed response code; ``value`` is typed for the codes we know.

    CAPABILITY/PERMANENTFLAGS/BADCHARSET: ``tuple[str, ...]`` (capabilities upper case);
    UIDVALIDITY/UIDNEXT/UNSEEN/HIGHESTMODSEQ: ``int``; MODIFIED: ``tuple[int, ...]``;
    APPENDUID: ``AppendUid``; COPYUID: ``CopyUid``; METADATA: ``MetadataCode``;
    NOMODSEQ/CLOSED/READ-ONLY/...: ``None``; any other: the raw text or ``None``.
    """

    name: str
    value: CodeValue = None


# -- responses ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` (RFC 3501 §7.5)."""

    text: str


@dataclass(frozen=True, slots=True)
class Tagged:
    """Tagged completion (RFC 3501 §7.1)."""

    tag: str
    status: TypingLiteral["OK", "NO", "BAD"]
    code: ResponseCode | None
    text: str


@dataclass(frozen=True, slots=True)
class Condition:
    """Untagged status response (RFC 3501 §7.1): OK, NO, BAD, PREAUTH or BYE."""

    status: TypingLiteral["OK", "NO", "BAD", "BYE", "PREAUTH"]
    code: ResponseCode | None
    text: str


@dataclass(frozen=True, slots=True)
class Capability:
    """``* CAPABILITY`` (RFC 3501 §7.2.1); names upper case."""

    caps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Enabled:
    """``* ENABLED`` (RFC 5161 §3.2); names upper case."""

    caps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    n: int


@dataclass(frozen=True, slots=True)
class Recent:
    n: int


@dataclass(frozen=True, slots=True)
class Expunge:
    seq: int


@dataclass(frozen=True, slots=True)
class Flags:
    """``* FLAGS`` (RFC 3501 §7.2.6)."""

    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """``* LIST`` / ``* LSUB`` (RFC 3501 §7.2.2); ``extended`` holds RFC 5258 items raw."""

    flags: tuple[str, ...]
    delimiter: str | None
    name: str
    kind: str = "LIST"
    extended: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusData:
    """``* STATUS`` (RFC 3501 §7.2.4); item names upper case."""

    mailbox: str
    items: dict[str, int]


@dataclass(frozen=True, slots=True)
class SearchData:
    """``* SEARCH`` (RFC 3501 §7.2.5) with the RFC 7162 §3.1.5 ``(MODSEQ n)``."""

    numbers: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class SortData:
    """``* SORT`` (RFC 5256 §4)."""

    numbers: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class ESearchData:
    """``* ESEARCH`` (RFC 4731 §3.1).

    ``items``: MIN, MAX, COUNT, MODSEQ as ``int``; ALL as the sequence-set text (expand
    with ``all_numbers``, it may be huge); others as generic values.
    """

    tag: str | None
    uid: bool
    items: dict[str, Value]

    def all_numbers(self) -> tuple[int, ...]:
        value = self.items.get("ALL")
        return expand_uid_set(value) if isinstance(value, str) else ()


@dataclass(frozen=True, slots=True)
class MetadataData:
    """``* METADATA mailbox (entry value ...)`` (RFC 5464 §4.4.1); entry names as sent."""

    mailbox: str
    entries: dict[str, bytes | None]


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """Unsolicited ``* METADATA mailbox entry ...`` naming changed entries (RFC 5464 §4.4.2)."""

    mailbox: str
    entries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Vanished:
    """``* VANISHED [(EARLIER)] uids`` (RFC 7162 §3.2.10)."""

    earlier: bool
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Id:
    """``* ID`` (RFC 2971 §3.2); ``None`` for ``ID NIL``."""

    fields: dict[str, str | None] | None


@dataclass(frozen=True, slots=True)
class Namespace:
    prefix: str
    delimiter: str | None
    extensions: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceData:
    """``* NAMESPACE`` (RFC 2342 §5); each group ``None`` when NIL."""

    personal: tuple[Namespace, ...] | None
    other: tuple[Namespace, ...] | None
    shared: tuple[Namespace, ...] | None


@dataclass(frozen=True, slots=True)
class Unknown:
    """An untagged response we do not parse, kept raw (line terminators included)."""

    raw: bytes


_SECTION_SPACE = re.compile(r"\s+")


def normalise_section(section: str) -> str:
    """Upper case with single spaces, so ``header.fields (From  To)`` matches the reply."""
    return _SECTION_SPACE.sub(" ", section.strip()).upper().replace("( ", "(").replace(" )", ")")


@dataclass(frozen=True, slots=True)
class FetchData:
    """``* n FETCH (...)`` (RFC 3501 §7.4.2).

    Keys are upper case: ``UID``, ``FLAGS`` (tuple of str), ``MODSEQ`` (int),
    ``INTERNALDATE`` (datetime), ``RFC822.SIZE``, ``ENVELOPE``/``BODYSTRUCTURE``/``BODY``
    (nested tuples), ``BODY[<section>]``/``BINARY[<section>]``/``RFC822*`` (bytes or None),
    ``BINARY.SIZE[<section>]`` (int). A partial body's ``<origin>`` is removed from the
    key and kept in ``origins`` under that key.
    """

    seq: int
    items: dict[str, object]
    origins: dict[str, int] = field(default_factory=dict)

    def _int(self, key: str) -> int | None:
        value = self.items.get(key)
        return value if isinstance(value, int) else None

    @property
    def uid(self) -> int | None:
        return self._int("UID")

    @property
    def size(self) -> int | None:
        return self._int("RFC822.SIZE")

    @property
    def modseq(self) -> int | None:
        return self._int("MODSEQ")

    @property
    def flags(self) -> tuple[str, ...] | None:
        value = self.items.get("FLAGS")
        return value if isinstance(value, tuple) else None

    @property
    def internaldate(self) -> datetime.datetime | None:
        value = self.items.get("INTERNALDATE")
        return value if isinstance(value, datetime.datetime) else None

    def body(self, section: str = "") -> bytes:
        """The content of ``BODY[section]`` (or BINARY/RFC822 equivalents); NIL as ``b""``.

        Raises KeyError when the response holds no such item.
        """
        sec = normalise_section(section)
        keys = [f"BODY[{sec}]", f"BINARY[{sec}]"]
        keys += {"": ["RFC822"], "HEADER": ["RFC822.HEADER"], "TEXT": ["RFC822.TEXT"]}.get(sec, [])
        for key in keys:
            if key in self.items:
                value = self.items[key]
                return value if isinstance(value, bytes) else b""
        raise KeyError(keys[0])


Response = (
    Continuation
    | Tagged
    | Condition
    | Capability
    | Enabled
    | Exists
    | Recent
    | Expunge
    | Flags
    | ListEntry
    | StatusData
    | SearchData
    | SortData
    | ESearchData
    | MetadataData
    | MetadataChanged
    | Vanished
    | FetchData
    | Id
    | NamespaceData
    | Unknown
)


# -- framing -----------------------------------------------------------------------

_MARKER = re.compile(rb"~?\{([0-9]{1,20})\+?\}\r?\n\Z")
_COMPACT_AT = 64 * 1024


class ResponseReader:
    """Feed bytes, pull typed responses; bounded memory for lines and literals."""

    def __init__(self, max_line: int = 8 * 1024 * 1024, max_literal: int = 256 * 1024 * 1024):
        self.max_line = max_line
        self.max_literal = max_literal
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0
        self._parts: list[bytes] = []
        self._literal: int | None = None
        self._broken: ResponseParseError | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Octets received but not yet returned as responses (partial response included)."""
        return len(self._buf) - self._pos + sum(len(p) for p in self._parts)

    def next_response(self) -> Response | None:
        """The next complete response, or None when more bytes are needed.

        Raises ResponseParseError: ``fatal`` for framing errors (then forever),
        non-fatal for one malformed response (already consumed).
        """
        raw = self.next_raw()
        return None if raw is None else parse_response(raw)

    def next_raw(self) -> bytes | None:
        """The next complete response as raw bytes (line(s) and literals)."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._frame()
        except ResponseParseError as exc:
            self._broken = exc
            raise

    def _fatal(self, message: str) -> NoReturn:
        raise ResponseParseError(message, b"".join(self._parts)[:200], fatal=True)

    def _frame(self) -> bytes | None:
        buf = self._buf
        while True:
            if self._literal is not None:
                end = self._pos + self._literal
                if len(buf) < end:
                    return None
                self._parts.append(bytes(buf[self._pos : end]))
                self._pos = self._scan = end
                self._literal = None
            lf = buf.find(b"\n", self._scan)
            if lf < 0:
                if len(buf) - self._pos > self.max_line:
                    self._fatal(f"response line longer than {self.max_line} octets")
                self._scan = len(buf)
                return None
            line = bytes(buf[self._pos : lf + 1])
            if len(line) > self.max_line + 2:
                self._fatal(f"response line longer than {self.max_line} octets")
            self._pos = self._scan = lf + 1
            self._parts.append(line)
            m = _MARKER.search(line, max(0, len(line) - 28))
            if m is not None:
                size = int(m.group(1))
                if size > self.max_literal:
                    self._fatal(f"literal of {size} octets is over the limit {self.max_literal}")
                self._literal = size
                continue
            raw = b"".join(self._parts)
            self._parts.clear()
            if self._pos >= _COMPACT_AT and self._pos * 2 >= len(buf):
                del buf[: self._pos]
                self._scan -= self._pos
                self._pos = 0
            return raw


# -- parsing -----------------------------------------------------------------------

_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f]+')
_FLAG = re.compile(rb'\\?[^(){ %*"\\\]\x00-\x1f\x7f]+|\\\*')
_ASTRING = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f]+')
_LIST_NAME = re.compile(rb'[^(){ "\\\x00-\x1f\x7f]+')
_TAG = re.compile(rb'[^(){ %*"\\+\x00-\x1f\x7f]+')
_NUMBER = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r?\n")
_SECTION = re.compile(rb'([^\]"]|"(?:[^"\\\r\n]|\\.)*")*')
_UID_SET = re.compile(r"[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _mailbox_name(b: bytes) -> str:
    name = b.decode("utf-8", "surrogateescape")
    if name.upper() == "INBOX":
        return "INBOX"
    try:
        return mutf7.decode(name)
    except ValueError:
        return name


def expand_uid_set(text: str) -> tuple[int, ...]:
    """``1:3,7`` -> ``(1, 2, 3, 7)``; ranges may run downwards. No ``*`` allowed."""
    if not _UID_SET.fullmatch(text):
        raise ResponseParseError(f"invalid uid set {text[:40]!r}")
    out: list[int] = []
    for part in text.split(","):
        lo_s, _, hi_s = part.partition(":")
        lo = int(lo_s)
        hi = int(hi_s) if hi_s else lo
        if lo > hi:
            lo, hi = hi, lo
        if len(out) + hi - lo + 1 > MAX_SET_EXPANSION:
            raise ResponseParseError("uid set too large to expand")
        out.extend(range(lo, hi + 1))
    return tuple(out)


class _Cursor:
    """Position in one raw response; literals are read in place."""

    __slots__ = ("data", "depth", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0

    def fail(self, message: str) -> NoReturn:
        raise ResponseParseError(f"{message} at offset {self.pos}", self.data[:200])

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def accept(self, text: bytes) -> bool:
        if self.data.startswith(text, self.pos):
            self.pos += len(text)
            return True
        return False

    def accept_ci(self, word: bytes) -> bool:
        end = self.pos + len(word)
        if self.data[self.pos : end].upper() == word:
            self.pos = end
            return True
        return False

    def expect(self, text: bytes) -> None:
        if not self.accept(text):
            self.fail(f"expected {text.decode()!r}")

    def sp(self) -> None:
        self.expect(b" ")

    def expect_end(self) -> None:
        if not self.at_end():
            self.fail("unexpected data")

    def match(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.data, self.pos)
        if m is None or m.end() == self.pos:
            self.fail(f"expected {what}")
        self.pos = m.end()
        return m.group(0)

    def atom(self) -> str:
        return self.match(_ATOM, "atom").decode("ascii", "replace")

    def number(self) -> int:
        return int(self.match(_NUMBER, "number"))

    def rest(self) -> bytes:
        data = self.data[self.pos :]
        self.pos = len(self.data)
        return data

    def is_nil(self) -> bool:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL":
            nxt = self.data[self.pos + 3 : self.pos + 4]
            return nxt in (b"", b" ", b")", b"]")
        return False

    def at_string(self) -> bool:
        ch = self.peek()
        return ch in (0x22, 0x7B) or (ch == 0x7E and self.data[self.pos + 1 : self.pos + 2] == b"{")

    def string(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:  # "
            m = _QUOTED.match(self.data, self.pos)
            if m is None:
                self.fail("unterminated quoted string")
            self.pos = m.end()
            return _UNESCAPE.sub(rb"\1", m.group(1))
        if ch in (0x7B, 0x7E):  # { ~
            m = _LITERAL.match(self.data, self.pos)
            if m is None:
                self.fail("bad literal")
            size = int(m.group(2))
            start = m.end()
            if start + size > len(self.data):
                self.fail("literal runs past the response")
            self.pos = start + size
            return self.data[start : self.pos]
        self.fail("expected string")

    def nstring(self) -> bytes | None:
        if self.is_nil():
            self.pos += 3
            return None
        return self.string()

    def astring(self) -> bytes:
        if self.at_string():
            return self.string()
        return self.match(_ASTRING, "astring")

    def mailbox(self) -> str:
        if self.at_string():
            return _mailbox_name(self.string())
        return _mailbox_name(self.match(_LIST_NAME, "mailbox"))

    def value(self) -> Value:
        """Generic value: number, atom, string, NIL or parenthesised list."""
        ch = self.peek()
        if ch == 0x28:  # (
            return self.paren_list()
        if self.at_string():
            return self.string()
        if self.is_nil():
            self.pos += 3
            return None
        m = _FLAG.match(self.data, self.pos)
        if m is None:
            self.fail("expected a value")
        self.pos = m.end()
        word = m.group(0)
        if word.isdigit():
            return int(word)
        # an atom may carry a [section] (e.g. inside extension data): keep it whole
        if self.peek() == 0x5B:
            sec = _SECTION.match(self.data, self.pos + 1)
            end = sec.end() if sec else self.pos + 1
            if end < len(self.data) and self.data[end] == 0x5D:
                word += self.data[self.pos : end + 1]
                self.pos = end + 1
        return word.decode("utf-8", "replace")

    def paren_list(self) -> tuple[Value, ...]:
        self.expect(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail("lists nested too deeply")
        out: list[Value] = []
        while not self.accept(b")"):
            # RFC 3501 §9 body-type-mpart: "1*body SP media-subtype", parts unseparated
            if out and not (self.peek() == 0x28 and isinstance(out[-1], tuple)):
                self.sp()
            if self.at_end():
                self.fail("unterminated list")
            out.append(self.value())
        self.depth -= 1
        return tuple(out)

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(")
        out: list[str] = []
        while not self.accept(b")"):
            if out:
                self.sp()
            out.append(self.match(_FLAG, "flag").decode("utf-8", "replace"))
        return tuple(out)

    def numbers(self) -> tuple[int, ...]:
        out: list[int] = []
        while self.accept(b" "):
            if self.peek() == 0x28:
                self.pos -= 1
                break
            out.append(self.number())
        return tuple(out)

    def uid_set(self) -> tuple[int, ...]:
        m = re.compile(rb"[0-9:,]+").match(self.data, self.pos)
        if m is None:
            self.fail("expected uid set")
        self.pos = m.end()
        return expand_uid_set(m.group(0).decode("ascii"))


def parse_response(raw: bytes) -> Response:
    """Parse one framed response (as returned by ``ResponseReader.next_raw``)."""
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    cur = _Cursor(body)
    try:
        if cur.accept(b"+"):
            cur.accept(b" ")
            return Continuation(_text(cur.rest()))
        if cur.accept(b"* "):
            return _untagged(cur, raw)
        tag = cur.match(_TAG, "tag").decode("ascii", "replace")
        cur.sp()
        status = cur.atom().upper()
        if status not in ("OK", "NO", "BAD"):
            cur.fail(f"tagged response with status {status!r}")
        code, text = _resp_text(cur)
        return Tagged(tag, cast(TypingLiteral["OK", "NO", "BAD"], status), code, text)
    except ResponseParseError as exc:
        exc.raw = raw  # the whole response, so a caller can keep it as Unknown
        raise
    except (ValueError, OverflowError) as exc:
        raise ResponseParseError(str(exc), raw) from None


def _resp_text(cur: _Cursor) -> tuple[ResponseCode | None, str]:
    """RFC 3501 §9 resp-text: ``["[" resp-text-code "]" SP] text``; the space is optional."""
    if not cur.accept(b" "):
        return None, ""
    code = None
    if cur.peek() == 0x5B:  # [
        end = cur.data.find(b"]", cur.pos)
        if end < 0:
            cur.fail("unterminated response code")
        code = _code(cur.data[cur.pos + 1 : end])
        cur.pos = end + 1
        cur.accept(b" ")
    return code, _text(cur.rest())


_INT_CODES = frozenset({"UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ"})


def _code(inner: bytes) -> ResponseCode:
    name_b, _, arg = inner.partition(b" ")
    name = name_b.decode("ascii", "replace").upper()
    if not name:
        raise ResponseParseError("empty response code", inner)
    try:
        return ResponseCode(name, _code_value(name, arg))
    except (ResponseParseError, ValueError):
        # keep a malformed code readable rather than losing the whole response
        return ResponseCode(name, _text(arg) if arg else None)


def _code_value(name: str, arg: bytes) -> CodeValue:
    cur = _Cursor(arg)
    value: CodeValue
    if name == "CAPABILITY":
        return tuple(w.upper() for w in _text(arg).split())
    if name in _INT_CODES:
        value = cur.number()
    elif name in ("PERMANENTFLAGS", "BADCHARSET"):
        value = cur.flag_list() if arg else ()
    elif name == "MODIFIED":
        value = cur.uid_set()
    elif name == "APPENDUID":
        validity = cur.number()
        cur.sp()
        value = AppendUid(validity, cur.uid_set())
    elif name == "COPYUID":
        validity = cur.number()
        cur.sp()
        src = cur.uid_set()
        cur.sp()
        value = CopyUid(validity, src, cur.uid_set())
    elif name == "METADATA":
        kind = cur.atom().upper()
        number = None
        if cur.accept(b" "):
            number = cur.number()
        value = MetadataCode(kind, number)
    else:
        return _text(arg) if arg else None
    cur.expect_end()
    return value


_SIMPLE_NUMBERED: dict[str, Callable[[int], Response]] = {
    "EXISTS": Exists,
    "RECENT": Recent,
    "EXPUNGE": Expunge,
}


def _untagged(cur: _Cursor, raw: bytes) -> Response:
    if cur.peek() in range(0x30, 0x3A):
        n = cur.number()
        cur.sp()
        name = cur.atom().upper()
        if name in _SIMPLE_NUMBERED:
            cur.expect_end()
            return _SIMPLE_NUMBERED[name](n)
        if name == "FETCH":
            cur.sp()
            return _fetch(cur, n)
        return Unknown(raw)
    name = cur.atom().upper()
    if name in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
        code, text = _resp_text(cur)
        return Condition(name, code, text)  # type: ignore[arg-type]  # checked just above
    handler = _UNTAGGED.get(name)
    if handler is None:
        return Unknown(raw)
    result = handler(cur)
    cur.expect_end()
    return result


def _capability(cur: _Cursor) -> Capability:
    return Capability(tuple(w.upper() for w in _text(cur.rest()).split()))


def _enabled(cur: _Cursor) -> Enabled:
    return Enabled(tuple(w.upper() for w in _text(cur.rest()).split()))


def _flags(cur: _Cursor) -> Flags:
    cur.sp()
    return Flags(cur.flag_list())


def _delimiter(cur: _Cursor) -> str | None:
    if cur.is_nil():
        cur.pos += 3
        return None
    return _text(cur.string())


def _list(kind: str) -> Callable[[_Cursor], ListEntry]:
    def parse(cur: _Cursor) -> ListEntry:
        cur.sp()
        flags = cur.flag_list()
        cur.sp()
        delimiter = _delimiter(cur)
        cur.sp()
        name = cur.mailbox()
        extended: tuple[Value, ...] = ()
        if cur.accept(b" "):
            extended = cur.paren_list()  # RFC 5258 mbox-list-extended
        return ListEntry(flags, delimiter, name, kind, extended)

    return parse


def _status(cur: _Cursor) -> StatusData:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    cur.expect(b"(")
    items: dict[str, int] = {}
    while not cur.accept(b")"):
        if items:
            cur.sp()
        key = cur.atom().upper()
        cur.sp()
        items[key] = cur.number()
    return StatusData(mailbox, items)


def _search_modseq(cur: _Cursor) -> int | None:
    if cur.accept(b" ("):
        if not cur.accept_ci(b"MODSEQ "):
            cur.fail("expected MODSEQ")
        modseq = cur.number()
        cur.expect(b")")
        return modseq
    return None


def _search(cur: _Cursor) -> SearchData:
    numbers = cur.numbers()
    return SearchData(numbers, _search_modseq(cur))


def _sort(cur: _Cursor) -> SortData:
    numbers = cur.numbers()
    return SortData(numbers, _search_modseq(cur))


def _esearch(cur: _Cursor) -> ESearchData:
    tag: str | None = None
    uid = False
    items: dict[str, Value] = {}
    if cur.accept(b" ("):
        if not cur.accept_ci(b"TAG "):
            cur.fail("expected TAG")
        tag = _text(cur.string())
        cur.expect(b")")
    nxt = cur.data[cur.pos + 4 : cur.pos + 5]
    if cur.data[cur.pos : cur.pos + 4].upper() == b" UID" and nxt in (b"", b" "):
        cur.pos += 4
        uid = True
    while cur.accept(b" "):
        key = cur.atom().upper()
        cur.sp()
        if key == "ALL":
            value: Value = cur.match(re.compile(rb"[0-9:,]+"), "sequence set").decode()
        else:
            value = cur.value()
        items[key] = value
    return ESearchData(tag, uid, items)


def _metadata(cur: _Cursor) -> MetadataData | MetadataChanged:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    if cur.accept(b"("):
        entries: dict[str, bytes | None] = {}
        first = True
        while not cur.accept(b")"):
            if not first:
                cur.sp()
            first = False
            name = _text(cur.astring())
            cur.sp()
            entries[name] = cur.nstring()
        return MetadataData(mailbox, entries)
    names = [_text(cur.astring())]
    while cur.accept(b" "):
        names.append(_text(cur.astring()))
    return MetadataChanged(mailbox, tuple(names))


def _vanished(cur: _Cursor) -> Vanished:
    cur.sp()
    earlier = False
    if cur.accept(b"("):
        if not cur.accept_ci(b"EARLIER"):
            cur.fail("expected EARLIER")
        cur.expect(b")")
        cur.sp()
        earlier = True
    return Vanished(earlier, cur.uid_set())


def _id(cur: _Cursor) -> Id:
    cur.sp()
    if cur.is_nil():
        cur.pos += 3
        return Id(None)
    cur.expect(b"(")
    fields: dict[str, str | None] = {}
    first = True
    while not cur.accept(b")"):
        if not first:
            cur.sp()
        first = False
        key = _text(cur.string())
        cur.sp()
        value = cur.nstring()
        fields[key] = None if value is None else _text(value)
    return Id(fields)


def _namespace_group(cur: _Cursor) -> tuple[Namespace, ...] | None:
    if cur.is_nil():
        cur.pos += 3
        return None
    cur.expect(b"(")
    out: list[Namespace] = []
    while not cur.accept(b")"):
        cur.expect(b"(")
        prefix = _mailbox_name(cur.string())
        cur.sp()
        delimiter = _delimiter(cur)
        ext: list[Value] = []
        while cur.accept(b" "):
            ext.append(cur.value())
        cur.expect(b")")
        out.append(Namespace(prefix, delimiter, tuple(ext)))
    return tuple(out)


def _namespace(cur: _Cursor) -> NamespaceData:
    cur.sp()
    personal = _namespace_group(cur)
    cur.sp()
    other = _namespace_group(cur)
    cur.sp()
    shared = _namespace_group(cur)
    return NamespaceData(personal, other, shared)


_UNTAGGED: dict[str, Callable[[_Cursor], Response]] = {
    "CAPABILITY": _capability,
    "ENABLED": _enabled,
    "FLAGS": _flags,
    "LIST": _list("LIST"),
    "LSUB": _list("LSUB"),
    "STATUS": _status,
    "SEARCH": _search,
    "SORT": _sort,
    "ESEARCH": _esearch,
    "METADATA": _metadata,
    "VANISHED": _vanished,
    "ID": _id,
    "NAMESPACE": _namespace,
}


# -- FETCH (RFC 3501 §7.4.2) --------------------------------------------------------

_FETCH_NAME = re.compile(rb"[A-Za-z0-9.\-]+")
_ORIGIN = re.compile(rb"<([0-9]+)>")


def _fetch(cur: _Cursor, seq: int) -> FetchData:
    cur.expect(b"(")
    items: dict[str, object] = {}
    origins: dict[str, int] = {}
    first = True
    while not cur.accept(b")"):
        if not first:
            cur.sp()
        first = False
        name = cur.match(_FETCH_NAME, "fetch item").decode("ascii").upper()
        if cur.accept(b"["):
            m = _SECTION.match(cur.data, cur.pos)
            end = m.end() if m else cur.pos
            if end >= len(cur.data) or cur.data[end] != 0x5D:
                cur.fail("unterminated section")
            section = normalise_section(_text(cur.data[cur.pos : end]))
            cur.pos = end + 1
            name = f"{name}[{section}]"
            om = _ORIGIN.match(cur.data, cur.pos)
            if om is not None:
                origins[name] = int(om.group(1))
                cur.pos = om.end()
        cur.sp()
        items[name] = _fetch_value(cur, name)
    cur.expect_end()
    return FetchData(seq, items, origins)


def _fetch_value(cur: _Cursor, name: str) -> object:
    if name == "FLAGS":
        return cur.flag_list()
    if name in ("UID", "RFC822.SIZE") or name.startswith("BINARY.SIZE["):
        return cur.number()
    if name == "MODSEQ":  # RFC 7162 §3.1.4.1
        cur.expect(b"(")
        modseq = cur.number()
        cur.expect(b")")
        return modseq
    if name == "INTERNALDATE":
        text = _text(cur.string())
        try:
            return parse_internal_date(text)
        except ValueError as exc:
            cur.fail(str(exc))
    if "[" in name or name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
        return cur.nstring()
    return cur.value()
