"""The block DATA reader against a plain line-by-line reading of RFC 5321 §4.5.2."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coi.delivery.data import DataCollector, has_long_line, read_data

LINE_LIMIT = 1001  # aiosmtpd's line_length_limit, also its StreamReader limit


def reference(stream: bytes, size_limit: int, line_limit: int) -> tuple[bytes | int, bytes] | None:
    """(message or reply code, rest of the stream) read line by line; None without end line."""
    pos = 0
    lines: list[bytes] = []
    while True:
        i = stream.find(b"\r\n", pos)
        if i < 0:
            return None
        line = stream[pos : i + 2]
        pos = i + 2
        if line == b".\r\n":
            break
        lines.append(line)
    rest = stream[pos:]
    content = b"".join(line[1:] if line.startswith(b".") else line for line in lines)
    if size_limit and len(content) > size_limit:
        return 552, rest
    if any(len(line) > line_limit for line in lines):
        return 500, rest
    return content, rest


async def run_reader(
    stream: bytes, cuts: list[int], size_limit: int
) -> tuple[bytes | int, bytes] | None:
    """Feeds `stream` in pieces to a StreamReader like aiosmtpd's and reads DATA from it."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT)

    async def feeder() -> None:
        pos = 0
        for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
            if cut > pos:
                reader.feed_data(stream[pos:cut])
                pos = cut
            await asyncio.sleep(0)
        reader.feed_eof()

    task = asyncio.create_task(feeder())
    collector = DataCollector(size_limit, LINE_LIMIT)
    try:
        await read_data(reader, collector)
    except asyncio.IncompleteReadError:
        await task
        return None
    result = collector.result()
    rest = await reader.read()  # whatever followed the end line, up to EOF
    await task
    code = int(result[:3]) if isinstance(result, str) else result
    return code, rest


def check(stream: bytes, cuts: list[int] = (), size_limit: int = 0) -> tuple[bytes | int, bytes]:  # type: ignore[assignment]
    got = asyncio.run(run_reader(stream, list(cuts), size_limit))
    assert got == reference(stream, size_limit, LINE_LIMIT)
    assert got is not None
    return got


TOKENS = st.sampled_from(
    [b"a", b"text ", b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.", b".\r\n", b"x" * 600, b"=" * 76]
)


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(TOKENS, max_size=40).map(b"".join),
    after=st.sampled_from([b"", b"MAIL FROM:<a@b>\r\n", b"QUIT\r\n", b".\r\n", b"\r\n.\r\n"]),
    end=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=8),
    size_limit=st.sampled_from([0, 5, 100, 2000]),
)
def test_same_as_line_by_line(
    body: bytes, after: bytes, end: bool, cuts: list[int], size_limit: int
) -> None:
    stream = body + (b"\r\n.\r\n" if end else b"") + after
    got = asyncio.run(run_reader(stream, cuts, size_limit))
    assert got == reference(stream, size_limit, LINE_LIMIT)


def test_dot_stuffing_and_end_line() -> None:
    assert check(b".\r\n") == (b"", b"")
    assert check(b"..\r\n.\r\n") == (b".\r\n", b"")  # a line that is just "."
    assert check(b"a\r\n..b\r\n...\r\n.\r\nQUIT\r\n") == (b"a\r\n.b\r\n..\r\n", b"QUIT\r\n")
    assert check(b".x\r\n.\r\n") == (b"x\r\n", b"")  # the first line is unstuffed too


def test_dot_not_at_line_start() -> None:
    # "hello." is no end line, and a dot after a bare LF is not at a line start
    assert check(b"hello.\r\n.\r\n") == (b"hello.\r\n", b"")
    assert check(b"a\n.\nb\r\n.\r\n") == (b"a\n.\nb\r\n", b"")
    assert check(b"a\r.\r\n.\r\n") == (b"a\r.\r\n", b"")


@pytest.mark.parametrize("cut", range(1, 12))
def test_end_line_split_anywhere(cut: int) -> None:
    stream = b"ab\r\n.c\r\n.\r\nRSET\r\n"
    assert check(stream, [cut]) == (b"ab\r\nc\r\n", b"RSET\r\n")
    assert check(stream, [cut, cut + 1, cut + 2]) == (b"ab\r\nc\r\n", b"RSET\r\n")


def test_big_body_in_blocks() -> None:
    body = b"".join(b"." + b"%075d" % i + b"\r\n" for i in range(30_000))  # 2.3 MB, all stuffed
    content, rest = check(body + b".\r\nNOOP\r\n", [100_000, 777_777, 1_500_001])
    assert isinstance(content, bytes)
    assert len(content) == len(body) - 30_000 and not content.startswith(b".")
    assert rest == b"NOOP\r\n"


def test_size_limit_counts_unstuffed_octets() -> None:
    # RFC 1870 §6: the doubled dots and the end line do not count
    assert check(b"..12\r\n.\r\n", size_limit=5) == (b".12\r\n", b"")
    assert check(b"..123\r\n.\r\n", size_limit=5) == (552, b"")
    assert check(b"x" * 900 + b"\r\n.\r\nNOOP\r\n", [10, 500], size_limit=100) == (552, b"NOOP\r\n")
    # mostly doubled dots: 132 octets on the wire, 99 in the message
    assert check(b"..\r\n" * 33 + b".\r\n", [7, 50], size_limit=99) == (b".\r\n" * 33, b"")
    assert check(b"..\r\n" * 34 + b".\r\n", [7, 50], size_limit=101) == (552, b"")


def test_line_limit() -> None:
    ok = b"x" * (LINE_LIMIT - 2) + b"\r\n"
    assert check(ok + b".\r\n")[0] == ok
    assert check(b"x" + ok + b".\r\nNOOP\r\n") == (500, b"NOOP\r\n")
    assert check(b"x" * 5000 + b"\r\n.\r\n", [1500]) == (500, b"")


def test_eof_before_end_line() -> None:
    assert asyncio.run(run_reader(b"abc\r\n.", [], 0)) is None


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"bcd" * 7])), max_size=30),
    limit=st.integers(min_value=3, max_value=60),
)
def test_long_line_probe(lines: list[list[bytes]], limit: int) -> None:
    data = b"".join(b"".join(line) + b"\r\n" for line in lines)
    assert has_long_line(data, limit) == any(len(line) + 2 > limit for line in data.split(b"\r\n"))
