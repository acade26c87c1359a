"""CommandFramer: line/literal splitting, limits, resync, raw lines."""

from __future__ import annotations

import pytest

from coi.imap.wire.framing import (
    CommandFramer,
    CommandReady,
    ContinuationNeeded,
    FramerEvent,
    FramingError,
)

from .helpers import events

STREAM = (
    b"a1 NOOP\r\n"
    b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n"
    b"a2 APPEND x {3+}\r\nabc\r\n"
    b"a3 APPEND x ~{4}\r\n\x00\r\n\xff\r\n"
    b"a4 noop\n"
    b"a5 SELECT \xc3\xa4\r\n"
)


def _one_at_a_time(data: bytes) -> list[FramerEvent]:
    framer = CommandFramer()
    out: list[FramerEvent] = []
    for i in range(len(data)):
        framer.feed(data[i : i + 1])
        while (ev := framer.next_event()) is not None:
            out.append(ev)
    return out


def test_whole_stream() -> None:
    assert events(STREAM) == [
        CommandReady((b"a1 NOOP",)),
        ContinuationNeeded(11),
        ContinuationNeeded(7),
        CommandReady((b"A001 LOGIN {11}", b" {7}", b""), (b"FRED FOOBAR", b"fat man")),
        CommandReady((b"a2 APPEND x {3+}", b""), (b"abc",)),
        ContinuationNeeded(4),
        CommandReady((b"a3 APPEND x ~{4}", b""), (b"\x00\r\n\xff",)),
        CommandReady((b"a4 noop",)),
        CommandReady((b"a5 SELECT \xc3\xa4",)),
    ]


def test_byte_at_a_time_matches() -> None:
    assert _one_at_a_time(STREAM) == events(STREAM)


def test_continuation_only_for_sync_literals() -> None:
    evs = events(b"a LOGIN {1+}\r\nx {1}\r\ny\r\n")
    assert [e for e in evs if isinstance(e, ContinuationNeeded)] == [ContinuationNeeded(1)]


def test_incomplete_returns_none() -> None:
    framer = CommandFramer()
    framer.feed(b"a NOOP")
    assert framer.next_event() is None
    framer.feed(b"\r")
    assert framer.next_event() is None
    framer.feed(b"\n")
    assert framer.next_event() == CommandReady((b"a NOOP",))
    assert framer.next_event() is None
    assert not framer.in_command


def test_literal_waits_for_payload() -> None:
    framer = CommandFramer()
    framer.feed(b"a LOGIN {5}\r\nab")
    assert framer.next_event() == ContinuationNeeded(5)
    assert framer.in_command
    assert framer.next_event() is None
    framer.feed(b"cde x\r\n")
    assert framer.next_event() == CommandReady((b"a LOGIN {5}", b" x"), (b"abcde",))


def test_ready_tag() -> None:
    assert CommandReady((b"A1 NOOP",)).tag == "A1"
    assert CommandReady((b"+A1 NOOP",)).tag is None
    assert CommandReady((b"",)).tag is None


def test_too_long_line_complete() -> None:
    evs = events(b"a1 " + b"x" * 100 + b"\r\na2 NOOP\r\n", max_line=50)
    assert evs == [FramingError("a1", "line too long"), CommandReady((b"a2 NOOP",))]


def test_too_long_line_incomplete_resyncs() -> None:
    framer = CommandFramer(max_line=50)
    framer.feed(b"a1 " + b"x" * 100)
    ev = framer.next_event()
    assert isinstance(ev, FramingError) and ev.tag == "a1" and not ev.fatal
    framer.feed(b"y" * 1000)
    assert framer.next_event() is None
    framer.feed(b"zz\r\na2 NOOP\r\n")
    assert framer.next_event() == CommandReady((b"a2 NOOP",))


def test_sync_literal_too_big_is_not_fatal() -> None:
    evs = events(b"a1 APPEND x {100}\r\na2 NOOP\r\n", max_literal=10)
    assert evs == [
        FramingError("a1", "literal too big", too_big=True, fatal=False),
        CommandReady((b"a2 NOOP",)),
    ]


def test_nonsync_literal_too_big_is_fatal_and_discarded() -> None:
    evs = events(b"a1 APPEND x {12+}\r\n0123456789\r\na2 NOOP\r\n", max_literal=10)
    assert evs == [
        FramingError("a1", "literal too big", too_big=True, fatal=True),
        CommandReady((b"a2 NOOP",)),
    ]


def test_second_literal_too_big_reports_first_tag() -> None:
    evs = events(b"t7 LOGIN {2}\r\nab {50}\r\n", max_literal=10)
    assert evs == [ContinuationNeeded(2), FramingError("t7", "literal too big", too_big=True)]


def test_command_size_limit() -> None:
    data = b"a APPEND x {8}\r\n12345678 {8}\r\n"
    evs = events(data, max_command=30)
    assert isinstance(evs[-1], FramingError) and evs[-1].too_big


def test_literal_count_limit() -> None:
    """Issue 16: a command of very many tiny literals is refused at the limit, so framing
    and parsing one command stays cheap; the limit itself is accepted."""
    at_limit = b"a ID (" + b"{1+}\r\nx " * 3 + b"NIL)\r\n"
    assert isinstance(events(at_limit, max_literals=3)[-1], CommandReady)
    over = b"a ID (" + b"{1+}\r\nx " * 4 + b"NIL)\r\n"
    evs = events(over, max_literals=3)
    assert evs[0] == FramingError("a", "too many literals in one command", too_big=True, fatal=True)
    sync = b"b ID ({1}\r\nx {1}\r\n"
    assert events(sync, max_literals=1) == [
        ContinuationNeeded(1),
        FramingError("b", "too many literals in one command", too_big=True),
    ]


def test_not_a_literal_marker() -> None:
    assert events(b'a LOGIN "{x}"\r\n') == [CommandReady((b'a LOGIN "{x}"',))]
    assert events(b"a X {}\r\n") == [CommandReady((b"a X {}",))]


def test_take_line_raw_mode() -> None:
    framer = CommandFramer()
    framer.feed(b"a IDLE\r\nDO")
    assert framer.next_event() == CommandReady((b"a IDLE",))
    assert framer.take_line() is None
    framer.feed(b"NE\r\nb NOOP\n")
    assert framer.take_line() == b"DONE"
    assert framer.next_event() == CommandReady((b"b NOOP",))
    framer.feed(b"AGZvbwBiYXI=\n")
    assert framer.take_line() == b"AGZvbwBiYXI="


def test_take_line_truncates_overlong() -> None:
    framer = CommandFramer(max_line=8)
    framer.feed(b"0123456789abcdef")
    assert framer.take_line() == b"01234567"
    framer.feed(b"rest\r\nDONE\r\n")
    assert framer.take_line() == b"DONE"


def test_large_literal_buffer_compaction() -> None:
    payload = bytes(range(256)) * 1024
    data = b"a APPEND x {%d+}\r\n" % len(payload) + payload + b"\r\n"
    framer = CommandFramer()
    for i in range(0, len(data), 4096):
        framer.feed(data[i : i + 4096])
    ev = framer.next_event()
    assert isinstance(ev, CommandReady) and ev.literals == (payload,)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_chunked_feeding(n: int) -> None:
    framer = CommandFramer()
    out: list[FramerEvent] = []
    for i in range(0, len(STREAM), n):
        framer.feed(STREAM[i : i + n])
        while (ev := framer.next_event()) is not None:
            out.append(ev)
    assert out == events(STREAM)


def test_abort_command_after_refused_literal() -> None:
    framer = CommandFramer()
    framer.feed(b"A044 BLURDYBLOOP {102856}\r\n")
    ev = framer.next_event()
    assert ev == ContinuationNeeded(102856) and isinstance(ev, ContinuationNeeded)
    assert ev.tag == "A044"
    assert framer.partial_lines() == (b"A044 BLURDYBLOOP {102856}",)
    framer.abort_command()  # server answered "A044 BAD No such command"
    framer.feed(b"A045 NOOP\r\n")
    assert framer.next_event() == CommandReady((b"A045 NOOP",))


def test_too_long_tag_is_not_reported() -> None:
    framer = CommandFramer(max_line=100)
    framer.feed(b"x" * 200)
    assert framer.next_event() == FramingError(None, "line too long")
