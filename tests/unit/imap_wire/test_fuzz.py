"""Hypothesis: arbitrary input never escapes the framer/parser except as ParseError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coi.imap.wire.commands import parse_command
from coi.imap.wire.errors import ParseError
from coi.imap.wire.framing import CommandFramer, CommandReady

_WORDS = [
    b"a1 ",
    b"UID ",
    b"FETCH ",
    b"SEARCH ",
    b"STORE ",
    b"LIST ",
    b"SELECT ",
    b"APPEND ",
    b"LOGIN ",
    b"BODY[",
    b"HEADER.FIELDS (",
    b"1:*",
    b"(",
    b")",
    b" ",
    b'"',
    b"\\",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1}\r\n",
    b"\r\n",
    b"\n",
    b"&",
    b"-",
    b"NIL",
    b"\xff",
    b"\x00",
]


def _run(chunks: list[bytes]) -> None:
    framer = CommandFramer(max_line=200, max_literal=50, max_command=500)
    for chunk in chunks:
        framer.feed(chunk)
        while (ev := framer.next_event()) is not None:
            if isinstance(ev, CommandReady):
                try:
                    parse_command(ev)
                except ParseError:
                    pass
        framer.take_line()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes(chunks: list[bytes]) -> None:
    _run(chunks)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_WORDS) | st.binary(max_size=4), max_size=40))
def test_imap_shaped_noise(chunks: list[bytes]) -> None:
    _run([b"".join(chunks)])
    _run(chunks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS) | st.binary(max_size=3), max_size=30))
def test_command_prefixes(chunks: list[bytes]) -> None:
    # Start with a valid tag and a known command to get deeper into parsers.
    for verb in (b"a FETCH 1 ", b"a UID SEARCH ", b"a LIST ", b"a STORE 1 ", b"a SELECT x "):
        _run([verb + b"".join(chunks) + b"\r\n"])
