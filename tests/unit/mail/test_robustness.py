"""Never raise, always well-formed, linear time (hypothesis + scaling checks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.mail.mail_wire import check_body, parse

from coi.mail import (
    decoded_part,
    dump_index,
    dump_search,
    index_message,
    load_index,
    load_search,
    search_data,
    section_bytes,
)
from coi.mail.index import MAX_DEPTH, MessageIndex, Part

DATA = Path(__file__).parents[2] / "data" / "mail"
SEEDS = [
    p.read_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    for p in sorted((DATA / "deltachat").glob("*.eml"))[:5]
] + [(DATA / "nested.eml").read_bytes()]
SEEDS = [s[:6000] for s in SEEDS]  # keep examples small; the structure is at the top
VOCAB = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"--outer",
    b"--inner--",
    b"--outer--\r\n",
    b"--rel\r\n",
    b'Content-Type: multipart/mixed; boundary="outer"\r\n',
    b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?b?",
    b"?=",
    b'"',
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b":",
    b";",
    b"\\",
    b"\x00",
    b"\xff",
    b"\xc3\xa4",
    b" ",
    b"\t",
    b"=",
]


def _parts(p: Part) -> list[Part]:
    return [p, *(q for c in p.children for q in _parts(c))]


def check_index(raw: bytes, ix: MessageIndex) -> None:
    env = parse(ix.envelope)
    assert isinstance(env, list) and len(env) == 10
    check_body(parse(ix.body), extended=False)
    check_body(parse(ix.bodystructure), extended=True)
    for p in _parts(ix.root):
        assert 0 <= p.header_start <= p.body_start <= p.body_end <= len(raw)
        for c in p.children:
            assert p.body_start <= c.header_start and c.body_end <= p.body_end
        if p.path:
            for text in ("", "MIME", "HEADER", "TEXT", "HEADER.FIELDS"):
                section_bytes(raw, ix, p.path, text, ("subject",))
            decoded_part(raw, ix, p.path)
    assert load_index(dump_index(ix)) == ix
    d = search_data(raw, ix)
    assert load_search(dump_search(d)) == d


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    check_index(raw, index_message(raw))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.one_of(st.sampled_from(VOCAB), st.binary(max_size=8)))
        if op == "insert":
            raw[pos:pos] = chunk
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 200))]
        else:
            raw[pos : pos + len(chunk)] = chunk
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(raw: bytes) -> None:
    check_index(raw, index_message(raw))


# --- scaling ----------------------------------------------------------------------


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _assert_linear(make: Callable[[int], bytes], n: int) -> None:
    small, big = make(n), make(4 * n)
    t1 = _best(lambda: index_message(small))
    t4 = _best(lambda: index_message(big))
    # linear means ~4x; allow a generous margin for noise and constant costs
    assert t4 < 12 * t1 + 0.05, (t1, t4)


def _text_message(n: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
    return b"Subject: big\r\n\r\n" + line * (n // len(line))


def _many_parts(n: int) -> bytes:
    head = b'Subject: parts\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n'
    part = b"--zz\r\nContent-Type: text/plain\r\n\r\nchat message\r\n"
    return head + part * n + b"--zz--\r\n"


def _fake_delimiters(n: int) -> bytes:
    head = b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\n\r\n'
    return head + b"--aX\r\n--a x\r\n" * n + b"--a--\r\n"


def _deep(n: int) -> bytes:
    out = b""
    for i in range(MAX_DEPTH + 20):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    return out + b"x" * n


def _address_soup(n: int) -> bytes:
    return b"To: " + b'"a\\" b" <x@y>, (c (d) e), g:h;, ' * n + b"\r\n\r\n"


def test_two_megabyte_message_is_linear() -> None:
    _assert_linear(_text_message, 512 * 1024)
    ix = index_message(_text_message(2 * 1024 * 1024))
    assert ix.root.body_end > 2_000_000


def test_ten_thousand_parts() -> None:
    _assert_linear(_many_parts, 2500)
    raw = _many_parts(10_000)
    ix = index_message(raw)
    assert len(ix.root.children) == 10_000
    assert section_bytes(raw, ix, (10_000,), "") == b"chat message"
    assert load_index(dump_index(ix)) == ix


def test_adversarial_inputs_are_linear() -> None:
    _assert_linear(_fake_delimiters, 20_000)
    _assert_linear(_deep, 100_000)
    _assert_linear(_address_soup, 2_000)


def test_depth_limit() -> None:
    raw = _deep(10)
    ix = index_message(raw)
    check_index(raw, ix)
    depth, p = 0, ix.root
    while p.children:
        p, depth = p.children[0], depth + 1
    assert depth == MAX_DEPTH
    assert p.content_type == "application/octet-stream"
