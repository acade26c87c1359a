"""Shared helpers: run bytes through the framer (and parser)."""

from __future__ import annotations

from coi.imap.wire.commands import Command, parse_command
from coi.imap.wire.framing import CommandFramer, CommandReady, FramerEvent


def events(data: bytes, **limits: int) -> list[FramerEvent]:
    framer = CommandFramer(**limits)
    framer.feed(data)
    out: list[FramerEvent] = []
    while (ev := framer.next_event()) is not None:
        out.append(ev)
    return out


def ready(data: bytes) -> CommandReady:
    """The single CommandReady framed from ``data`` + CRLF."""
    got = [e for e in events(data + b"\r\n") if isinstance(e, CommandReady)]
    assert len(got) == 1, got
    return got[0]


def parse(data: bytes) -> Command:
    return parse_command(ready(data))
