"""Guard against pathological (super-linear) parsing time on large inputs."""

from __future__ import annotations

import time

import pytest

from coi.imap.wire.errors import ParseError

from .helpers import parse

BIG = 60_000


@pytest.mark.parametrize(
    "line",
    [
        b'a LOGIN "' + b"x" * BIG,  # unterminated quoted string
        b'a LOGIN "' + b"\\\\" * (BIG // 2),
        b"a FETCH " + b"1," * (BIG // 2) + b"2 FLAGS",
        b"a SEARCH " + b"SEEN " * (BIG // 5) + b"ALL",
        b"a SEARCH " + b"9" * BIG,
        b"a STORE 1 FLAGS (" + b"k " * (BIG // 2) + b")",
        b"a SELECT " + b"&AOQ-x" * (BIG // 6),
        b"a " + b"X" * BIG,
    ],
)
def test_large_lines_are_fast(line: bytes) -> None:
    start = time.process_time()
    try:
        parse(line)
    except ParseError:
        pass
    assert time.process_time() - start < 2.0  # generous: a quadratic blow-up would take minutes
