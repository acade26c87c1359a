"""Fuzz target: the IMAP server's reading of a client byte stream (RFC 3501 §2.2, §9).

The stream goes through ``CommandFramer`` with the limits the server sets before and after
login (coi.imap.server.connection), whole and again cut into pieces, and each framed command
through ``parse_command``, as the connection does. After IDLE and AUTHENTICATE lines are read
raw with ``take_line``, as the server does.

Invariants: only ``ParseError`` (BAD, or NO for ``BadCharset``) escapes the parser, with the
command's tag or none; the framer never raises and its events do not depend on how the stream
was cut; buffered bytes stay within the command limit; a parsed command carries the framed
tag, and its mailbox names and sequence sets re-render to text that parses to the same value.
"""

from __future__ import annotations

import dataclasses
import zlib

from coi.config import ServerConfig
from coi.imap.wire import encode
from coi.imap.wire.commands import Authenticate, Command, Idle, Select, parse_command
from coi.imap.wire.errors import ParseError
from coi.imap.wire.framing import CommandFramer, CommandReady, ContinuationNeeded, FramingError
from coi.imap.wire.mutf7 import InvalidName
from coi.imap.wire.sequence import SequenceSet, parse_sequence_set

from ._common import bounded, chunks

_CONFIG = ServerConfig()
_MAILBOX_FIELDS = frozenset(("mailbox", "old", "new"))

Outcome = tuple[object, ...]


def _framer(logged_in: bool) -> CommandFramer:
    """A framer with the limits coi.imap.server.connection sets in that state."""
    framer = CommandFramer()
    if not logged_in:  # RFC 7888 §4: small literals and commands before login
        command = _CONFIG.prelogin_command_max
        framer.max_command = command
        framer.max_line = min(_CONFIG.max_line, command)
        framer.max_literal = min(_CONFIG.max_literal, _CONFIG.prelogin_literal_max, command)
    else:
        framer.max_line = _CONFIG.max_line
        framer.max_literal = _CONFIG.max_literal
    return framer


def _reparse(text: bytes) -> Command:
    return parse_command(CommandReady((b"t " + text,)))


def _check_value(name: str, value: object) -> None:
    """Re-renders what a parsed command holds and checks that it parses back the same."""
    if isinstance(value, SequenceSet):
        again = parse_sequence_set(str(value))
        assert again == value, (value, again)
    elif name in _MAILBOX_FIELDS and isinstance(value, str) and not isinstance(value, InvalidName):
        wire = encode.mailbox(value)  # as the server writes it (LIST, STATUS, ...)
        again = _reparse(b"SELECT " + wire)
        assert isinstance(again, Select) and again.mailbox == value, (value, wire, again)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _check_value(field.name, getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            _check_value(name, item)


def _command(ready: CommandReady) -> Outcome:
    assert len(ready.lines) == len(ready.literals) + 1, ready
    try:
        cmd = parse_command(ready)
    except ParseError as exc:  # BadCharset too
        assert exc.tag is None or exc.tag == ready.tag, (exc, ready.tag)
        assert isinstance(exc.message, str) and exc.message, exc
        return ("bad", type(exc).__name__, exc.tag)
    assert ready.tag and cmd.tag == ready.tag, (cmd, ready.tag)
    assert cmd.name.isupper(), cmd
    repr(cmd)  # logged with --protocol-trace
    _check_value("", cmd)
    return ("command", cmd)


class _Session:
    """Feeds a framer like the server's read loop; records what the server would do."""

    def __init__(self, logged_in: bool, parsed: dict[CommandReady, Outcome]) -> None:
        self.framer = _framer(logged_in)
        self.parsed = parsed  # shared by both sessions of one input: each command parsed once
        self.outcomes: list[Outcome] = []
        self.raw_mode: str | None = None  # "idle" or "sasl": lines read with take_line
        self.closed = False

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        framer = self.framer
        framer.feed(data)
        while not self.closed:
            if self.raw_mode is not None:
                line = framer.take_line()
                if line is None:
                    break
                assert len(line) <= framer.max_line
                self.outcomes.append((self.raw_mode, line))
                if self.raw_mode == "sasl" or line.upper() == b"DONE":
                    self.raw_mode = None
                continue
            event = framer.next_event()
            if event is None:
                break
            if isinstance(event, ContinuationNeeded):
                assert 0 <= event.size <= framer.max_literal, event
                self.outcomes.append(("continue", event.size))
            elif isinstance(event, FramingError):
                self.outcomes.append(("framing", event))
                self.closed = event.fatal  # the server sends BYE and closes
            else:
                assert isinstance(event, CommandReady)
                size = sum(len(x) + 2 for x in event.lines) + sum(map(len, event.literals))
                assert size <= framer.max_command + 2, size
                outcome = self.parsed.get(event)
                if outcome is None:
                    outcome = self.parsed[event] = _command(event)
                self.outcomes.append(outcome)
                cmd = outcome[1]
                if isinstance(cmd, Idle):
                    self.raw_mode = "idle"
                elif isinstance(cmd, Authenticate) and cmd.initial_response is None:
                    self.raw_mode = "sasl"
        pending = len(framer._buf) - framer._pos
        assert pending <= framer.max_command + len(data), pending  # no unbounded buffering


@bounded
def check(data: bytes) -> None:
    """Frames and parses ``data`` as a client stream, before or after login."""
    crc = zlib.crc32(data)
    logged_in = bool(crc & 1)
    parsed: dict[CommandReady, Outcome] = {}
    whole = _Session(logged_in, parsed)
    whole.feed(data)
    cut = _Session(logged_in, parsed)
    for piece in chunks(data, 1 + (crc >> 1) % 512):
        cut.feed(piece)
    assert whole.outcomes == cut.outcomes, "framing depends on how the stream was cut"
