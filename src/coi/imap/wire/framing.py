"""Sans-IO splitting of the client byte stream into complete IMAP commands.

The framer only knows about lines and literals (RFC 3501 §2.2, §4.3,
RFC 7888, RFC 3516 ``~{N}``); it never interprets command syntax and never
raises, so a hostile peer can at worst produce error events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_LF = 0x0A
_CR = 0x0D
_RBRACE = 0x7D
_PLUS = 0x2B
_MAX_MARKER = 24  # "{" + 20 digits (number64, RFC 7888 §8) + "+}" and slack
_COMPACT_AT = 64 * 1024

# RFC 3501 §9: tag = 1*<any ASTRING-CHAR except "+">
_NOT_TAG = frozenset(b'(){ %*"\\+') | frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0x100))


def extract_tag(line: bytes) -> str | None:
    """Best-effort tag of a command line, for error replies; None if unreadable."""
    end = line.find(b" ")
    head = line if end < 0 else line[:end]
    if not head or any(b in _NOT_TAG for b in head):
        return None
    return head.decode("ascii")


@dataclass(frozen=True, slots=True)
class CommandReady:
    """One complete command.

    ``lines[i]`` (for i < len(literals)) ends with the literal announcement
    (``{N}``, ``{N+}``, ``~{N}``) whose payload is ``literals[i]``; the text
    after the literal continues in ``lines[i + 1]``. Line terminators are
    stripped. So ``len(lines) == len(literals) + 1`` always.
    """

    lines: tuple[bytes, ...]
    literals: tuple[bytes, ...] = ()

    @property
    def tag(self) -> str | None:
        return extract_tag(self.lines[0]) if self.lines else None


@dataclass(frozen=True, slots=True)
class ContinuationNeeded:
    """A synchronizing literal was announced: send ``+ Ready for literal data``.

    The server may instead refuse the command without reading the literal
    (RFC 3501 §7.5: tagged BAD/NO instead of "+"); it then calls
    ``CommandFramer.abort_command()`` so the framer stops waiting for it.
    ``tag`` is the command's tag (best effort) for such an early reply.
    """

    size: int
    tag: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FramingError:
    """The current command was dropped.

    ``too_big``: answer ``tag NO [TOOBIG]`` / BAD [TOOBIG] (RFC 4469, RFC 7888 §5).
    ``fatal``: a non-synchronizing literal over the limit was announced; RFC 7888 §4
    lets the server send ``* BYE`` and close. If the server carries on anyway the
    framer discards the announced octets and resyncs after them.
    """

    tag: str | None
    message: str
    too_big: bool = False
    fatal: bool = False


FramerEvent = CommandReady | ContinuationNeeded | FramingError


def _literal_marker(line: bytes) -> tuple[int, bool] | None:
    """Return ``(size, synchronizing)`` if the line ends with ``{N}``/``{N+}``."""
    if not line or line[-1] != _RBRACE:
        return None
    start = line.rfind(b"{", max(0, len(line) - _MAX_MARKER))
    if start < 0:
        return None
    inner = line[start + 1 : -1]
    sync = True
    if inner and inner[-1] == _PLUS:
        sync = False
        inner = inner[:-1]
    if not inner or not inner.isdigit() or len(inner) > 20:
        return None
    return int(inner), sync


class CommandFramer:
    """Accumulates bytes and yields complete commands, one event at a time."""

    def __init__(
        self,
        max_line: int = 64 * 1024,
        max_literal: int = 64 * 1024 * 1024,
        max_command: int = 80 * 1024 * 1024,
        max_literals: int = 1000,
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_command = max_command
        # a command is framed and parsed in one go: a million tiny literals within
        # max_command would hold the event loop for seconds (issue 16)
        self.max_literals = max_literals
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed data
        self._scan = 0  # where the next newline search starts (avoids rescans)
        self._lines: list[bytes] = []
        self._lits: list[bytes] = []
        self._size = 0
        self._lit_size: int | None = None
        self._skip_line = False  # discarding up to the next line end
        self._discard = 0  # octets of a rejected literal still to drop

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def in_command(self) -> bool:
        """True while part of a command (e.g. before a literal) is buffered."""
        return bool(self._lines)

    def abort_command(self) -> None:
        """Forget a half-received command whose sync literal the server refused.

        Only valid right after ``ContinuationNeeded`` was answered with a
        tagged NO/BAD instead of "+": the client then does not send the literal.
        """
        self._reset_command()

    def partial_lines(self) -> tuple[bytes, ...]:
        """Lines of the command received so far (lets a server pre-check it)."""
        return tuple(self._lines)

    def _reset_command(self) -> None:
        self._lines = []
        self._lits = []
        self._size = 0
        self._lit_size = None

    def _current_tag(self, line: bytes) -> str | None:
        return extract_tag(self._lines[0] if self._lines else line)

    def _compact(self) -> None:
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = self._scan = 0
        elif self._pos > _COMPACT_AT and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0

    def _skip(self) -> bool:
        """Drop pending discards; True when done, False if more bytes are needed."""
        buf = self._buf
        if self._discard:
            n = min(self._discard, len(buf) - self._pos)
            self._pos += n
            self._discard -= n
            self._scan = self._pos
            if self._discard:
                self._compact()
                return False
        if self._skip_line:
            nl = buf.find(b"\n", self._pos)
            if nl < 0:
                self._pos = self._scan = len(buf)
                self._compact()
                return False
            self._pos = self._scan = nl + 1
            self._skip_line = False
        return True

    def _find_line(self) -> tuple[int, int] | None:
        """Locate the next line: ``(end_without_terminator, next_pos)``."""
        buf = self._buf
        nl = buf.find(b"\n", max(self._scan, self._pos))
        if nl < 0:
            self._scan = len(buf)
            return None
        end = nl
        if end > self._pos and buf[end - 1] == _CR:
            end -= 1
        return end, nl + 1

    def next_event(self) -> FramerEvent | None:
        """Return the next event, or None when more bytes are needed."""
        try:
            return self._next_event()
        finally:
            self._compact()

    def _next_event(self) -> FramerEvent | None:
        buf = self._buf
        while True:
            if not self._skip():
                return None
            if self._lit_size is not None:
                n = self._lit_size
                if len(buf) - self._pos < n:
                    return None
                self._lits.append(bytes(buf[self._pos : self._pos + n]))
                self._pos += n
                self._scan = self._pos
                self._lit_size = None
                continue
            found = self._find_line()
            if found is None:
                if len(buf) - self._pos > self.max_line:
                    head = bytes(buf[self._pos : self._pos + 64])
                    # A tag cut off by the 64-octet window is no tag at all.
                    tag = self._current_tag(head if b" " in head else b"")
                    self._reset_command()
                    self._pos = self._scan = len(buf)
                    self._skip_line = True
                    return FramingError(tag, "line too long")
                return None
            end, nxt = found
            line = bytes(buf[self._pos : end])
            self._pos = self._scan = nxt
            tag = self._current_tag(line)
            marker = _literal_marker(line)
            if len(line) > self.max_line:
                self._reset_command()
                if marker is not None and not marker[1]:
                    self._discard = marker[0]
                    return FramingError(tag, "line too long", fatal=True)
                return FramingError(tag, "line too long")
            self._size += len(line) + 2
            if self._size > self.max_command:
                self._reset_command()
                if marker is not None and not marker[1]:
                    self._discard = marker[0]
                    return FramingError(tag, "command too long", too_big=True, fatal=True)
                return FramingError(tag, "command too long", too_big=True)
            self._lines.append(line)
            if marker is None:
                ready = CommandReady(tuple(self._lines), tuple(self._lits))
                self._reset_command()
                return ready
            size, sync = marker
            if len(self._lines) > self.max_literals:
                self._reset_command()
                if sync:
                    return FramingError(tag, "too many literals in one command", too_big=True)
                self._discard = size
                return FramingError(
                    tag, "too many literals in one command", too_big=True, fatal=True
                )
            if size > self.max_literal or self._size + size > self.max_command:
                self._reset_command()
                if sync:
                    # The client waits for "+" which never comes; the tagged
                    # NO/BAD ends the command (RFC 3501 §7.5).
                    return FramingError(tag, "literal too big", too_big=True)
                self._discard = size
                return FramingError(tag, "literal too big", too_big=True, fatal=True)
            self._size += size
            self._lit_size = size
            if sync:
                return ContinuationNeeded(size, tag)

    def take_line(self) -> bytes | None:
        """Raw mode: next line without terminator (IDLE ``DONE``, SASL responses).

        A line longer than ``max_line`` is truncated to ``max_line`` octets and
        its remainder discarded, so the caller sees garbage rather than the
        buffer growing without bound.
        """
        try:
            if not self._skip():
                return None
            found = self._find_line()
            buf = self._buf
            if found is None:
                if len(buf) - self._pos > self.max_line:
                    line = bytes(buf[self._pos : self._pos + self.max_line])
                    self._pos = self._scan = len(buf)
                    self._skip_line = True
                    return line
                return None
            end, nxt = found
            line = bytes(buf[self._pos : end])
            self._pos = self._scan = nxt
            return line[: self.max_line]
        finally:
            self._compact()
