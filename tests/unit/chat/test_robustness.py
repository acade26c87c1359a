"""Any input gives a model and defects, never an exception, in linear time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coi.chat.model import ChatMessage
from coi.chat.parse import parse

from .conftest import DATA

FIXTURES = [p.read_bytes() for p in sorted(DATA.glob("*/*.eml"))]


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        action = rng.randrange(6)
        position = rng.randrange(len(data) + 1)
        if action == 0 and data:
            del data[position : position + rng.randint(1, 50)]
        elif action == 1:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
        elif action == 2:
            data[position:position] = rng.choice(
                [
                    b"\r\n",
                    b"\n\n",
                    b"--",
                    b"boundary=",
                    b"=?utf-8?q?",
                    b"Content-Type: multipart/mixed",
                    b"charset=x-unknown",
                    b"Content-Type: message/rfc822\n\n",
                    b"\xff\xfe",
                    b";",
                    b'"',
                    b"<",
                    b"Chat-Content: ",
                    b"=\r\n",
                ]
            )
        elif action == 3 and data:
            start = rng.randrange(len(data))
            chunk = data[start : start + rng.randint(1, 200)]
            data[position:position] = chunk * rng.randint(1, 5)
        elif action == 4:
            data = data.replace(b"\n", b"\r\n") if rng.random() < 0.5 else data.replace(b"\r", b"")
        else:
            line = rng.choice([b"From: ", b"Message-ID: ", b"References: ", b"Date: ", b"To: "])
            data[0:0] = (
                line + bytes(rng.randrange(32, 256) for _ in range(rng.randint(0, 80))) + b"\n"
            )
    return bytes(data)


def _assert_model(result: ChatMessage) -> None:
    assert isinstance(result, ChatMessage)
    assert all(isinstance(d, str) for d in result.defects)
    # The catch-all must not be what saved us: every path handles its own errors.
    assert not any(d.startswith("parser failure") for d in result.defects), result.defects


def test_mutated_fixtures_never_raise() -> None:
    rng = random.Random(3676)
    deadline = time.monotonic() + 8.0
    count = 0
    while time.monotonic() < deadline and count < 3000:
        raw = _mutate(rng.choice(FIXTURES), rng)
        _assert_model(parse(raw))
        count += 1
    assert count > 50


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _assert_model(parse(raw))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=2000))
def test_random_text_never_raises(raw: str) -> None:
    _assert_model(parse(raw))


def test_missing_everything_is_reported() -> None:
    result = parse(b"\r\n\r\nonly a body")
    assert result.text == "only a body"
    assert {"missing or unreadable From", "missing Message-ID", "missing Date"} <= set(
        result.defects
    )


def test_duplicate_headers_and_unknown_charset() -> None:
    raw = (
        b"From: a@example.org\nFrom: b@example.org\nDate: nonsense\nMessage-ID: <chat$1@x>\n"
        b"Content-Type: text/plain; charset=x-klingon\n\nqapla\xff'\n"
    )
    result = parse(raw)
    assert result.sender is not None and result.sender.addr == "a@example.org"
    assert result.text.startswith("qapla")
    assert any("duplicate from" in d for d in result.defects)
    assert any("unknown charset" in d for d in result.defects)
    assert any("Date" in d for d in result.defects)


def _nested(depth: int) -> bytes:
    head = b"From: a@b.org\nMessage-ID: <chat$n@b.org>\nDate: Mon, 4 Dec 2019 15:51:37 +0100\n"
    parts = []
    for level in range(depth):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level))
    body = b"Content-Type: text/plain\n\ndeep\n"
    tail = b"".join(b"\n--b%d--\n" % level for level in reversed(range(depth)))
    return head + b"".join(parts) + body + tail


def test_deep_nesting_is_cut_with_a_defect() -> None:
    result = parse(_nested(400))
    assert result.defects
    result = parse(_nested(10))
    assert result.text == "deep"


def test_deeply_nested_embedded_messages_are_read_flat() -> None:
    raw = b"From: a@b.org\n" + b"Content-Type: message/rfc822\n\n" * 3000 + b"Subject: x\n\nbody\n"
    result = parse(raw)
    assert any("nested structures" in d for d in result.defects)


def _many_headers(n: int) -> bytes:
    return b"From: a@b.org\n" + b"".join(b"X-H%d: value\n" % i for i in range(n)) + b"\nbody\n"


def _huge_header(n: int) -> bytes:
    return (
        b"From: a@b.org\nTo: "
        + b"x@y.org, " * n
        + b"\nSubject: "
        + b"=?utf-8?q?a?= " * n
        + b"\n\nb\n"
    )


def _many_parts(n: int) -> bytes:
    parts = b"".join(
        b"--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n"
        for _ in range(n)
    )
    return b"From: a@b.org\nContent-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"


def _long_body(n: int) -> bytes:
    return b"From: a@b.org\nContent-Type: text/plain; format=flowed\n\n" + b"> quoted soft \n" * n


def _big_html(n: int) -> bytes:
    cards = (
        b'<div class="h-card"><span class="p-name">N</span><span class="u-email">a@b</span></div>'
    )
    return (
        b"From: a@b.org\nChat-Version: 1.0\nChat-Content: group\nContent-Type: text/html\n\n"
        b'<div class="h-group"><div class="e-participants">' + cards * n + b"</div></div>"
    )


def _seconds(build: Callable[[int], bytes], n: int) -> float:
    raw = build(n)
    best = float("inf")
    for _ in range(3):  # best of three, in CPU time: robust against a busy machine
        start = time.process_time()
        parse(raw)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize(
    ("build", "n"),
    [
        (_many_headers, 2000),
        (_huge_header, 1500),
        (_many_parts, 150),
        (_long_body, 5000),
        (_big_html, 300),
        (_nested, 16),  # 16 and 64 levels: both below the MIME parsing cap
    ],
    ids=["headers", "huge-header", "parts", "body", "html", "nesting"],
)
def test_parse_time_grows_linearly(build: Callable[[int], bytes], n: int) -> None:
    small = max(_seconds(build, n), 0.002)
    large = _seconds(build, 4 * n)
    # 4x the input may cost 4x the time; allow 3x on top for noise, never 16x (quadratic).
    assert large < 12 * small, (small, large)
