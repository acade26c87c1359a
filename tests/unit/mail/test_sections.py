"""Every BODY[section] of a nested message is the exact hand-computed byte slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from coi.mail import decoded_part, header_fields, index_message, section_bytes
from coi.mail.sections import decode_quoted_printable

DATA = Path(__file__).parents[2] / "data" / "mail"
RAW = (DATA / "nested.eml").read_bytes()
IX = index_message(RAW)

TOP_HEADER = (
    b"From: A <a@example.org>\r\n"
    b"To: B <b@example.org>\r\n"
    b"Subject: nested\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
)
INNER_HEADER = (
    b"From: C <c@example.org>\r\n"
    b"Subject: inner\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
)
INNER_TEXT = (
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner html</p>\r\n"
    b"--inner--\r\n"
)
PART3 = (
    b"--rel\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGVsbG8=\r\n"
    b"--rel\r\n"
    b"Content-Type: image/png\r\n"
    b'Content-Disposition: inline; filename="a.png"\r\n'
    b"\r\n"
    b"PNG\r\n"
    b"--rel--"
)

CASES: list[tuple[tuple[int, ...], str, bytes | None]] = [
    ((), "", RAW),
    ((), "HEADER", TOP_HEADER),
    ((), "TEXT", RAW[len(TOP_HEADER) :]),
    ((), "MIME", None),
    ((1,), "", b"first part\r\n"),
    ((1,), "MIME", b"Content-Type: text/plain; charset=utf-8\r\n\r\n"),
    ((1,), "HEADER", None),
    ((1,), "TEXT", None),
    ((2,), "", INNER_HEADER + INNER_TEXT),
    ((2,), "MIME", b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"),
    ((2,), "HEADER", INNER_HEADER),
    ((2,), "TEXT", INNER_TEXT),
    ((2, 1), "", b"inner plain"),
    ((2, 1), "MIME", b"Content-Type: text/plain\r\n\r\n"),
    ((2, 2), "", b"<p>inner html</p>"),
    ((2, 2), "MIME", b"Content-Type: text/html\r\n\r\n"),
    ((2, 3), "", None),
    ((3,), "", PART3),
    ((3,), "MIME", b"Content-Type: multipart/related; boundary=rel\r\n\r\n"),
    ((3,), "HEADER", None),
    ((3, 1), "", b"aGVsbG8="),
    ((3, 1), "MIME", b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
    ((3, 2), "", b"PNG"),
    (
        (3, 2),
        "MIME",
        b'Content-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n\r\n',
    ),
    ((4,), "", None),
    ((4,), "MIME", None),
    ((0,), "", None),
    ((1, 1), "", None),
]


@pytest.mark.parametrize(("part", "text", "expected"), CASES)
def test_section(part: tuple[int, ...], text: str, expected: bytes | None) -> None:
    assert section_bytes(RAW, IX, part, text) == expected


def test_unknown_section_text() -> None:
    assert section_bytes(RAW, IX, (), "BOGUS") is None
    assert section_bytes(RAW, IX, (), "header") == TOP_HEADER  # case-insensitive


def test_header_fields() -> None:
    assert section_bytes(RAW, IX, (2,), "HEADER.FIELDS", ("SUBJECT",)) == (
        b"Subject: inner\r\n\r\n"
    )
    assert section_bytes(RAW, IX, (), "HEADER.FIELDS", ("to", "From", "x-none")) == (
        b"From: A <a@example.org>\r\nTo: B <b@example.org>\r\n\r\n"
    )
    assert section_bytes(RAW, IX, (), "HEADER.FIELDS.NOT", ("from", "to", "content-type")) == (
        b"Subject: nested\r\nMIME-Version: 1.0\r\n\r\n"
    )
    assert section_bytes(RAW, IX, (3,), "HEADER.FIELDS", ("subject",)) is None


def test_header_fields_keeps_folding_and_duplicates() -> None:
    header = b"Received: a\r\n\tb\r\nX: 1\r\nreceived: c\r\ngarbage line\r\n\r\n"
    assert header_fields(header, ("RECEIVED",), exclude=False) == (
        b"Received: a\r\n\tb\r\nreceived: c\r\n\r\n"
    )
    assert header_fields(header, ("received",), exclude=True) == b"X: 1\r\n\r\n"
    assert header_fields(b"", ("x",), exclude=False) == b"\r\n"
    assert header_fields(b"X: no newline", ("x",), exclude=False) == b"X: no newline\r\n\r\n"


def test_single_part_sections() -> None:
    raw = b"Subject: s\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9=\r\nllo\r\n"
    ix = index_message(raw)
    assert section_bytes(raw, ix, (1,), "") == b"h=C3=A9=\r\nllo\r\n"
    assert section_bytes(raw, ix, (1,), "MIME") == raw[: raw.index(b"\r\n\r\n") + 4]
    assert section_bytes(raw, ix, (), "TEXT") == b"h=C3=A9=\r\nllo\r\n"
    assert decoded_part(raw, ix, (1,)) == "héllo\r\n".encode()


def test_decoded_part() -> None:
    assert decoded_part(RAW, IX, (3, 1)) == b"hello"
    assert decoded_part(RAW, IX, (3, 2)) == b"PNG"
    assert decoded_part(RAW, IX, (9,)) is None
    assert decoded_part(RAW, IX, ()) == RAW
    raw = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
    assert decoded_part(raw, index_message(raw), (1,)) is None
    raw = b"Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n!!junk\r\naG"
    got = decoded_part(raw, index_message(raw), (1,))
    assert got is not None and got.startswith(b"hello")  # junk ignored, never raises


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"a=3Db=3db", b"a=b=b"),  # either case of hex digits
        (b"soft=\r\nbreak", b"softbreak"),
        (b"soft= \t\r\nbreak", b"softbreak"),  # rule 3: whitespace after "=" is dropped
        (b"trail \t\r\nnext", b"trail\r\nnext"),
        (b"lf only\nline", b"lf only\r\nline"),  # hard breaks are CRLF (rule 4)
        (b"end=", b"end"),
        (b"end= ", b"end"),
        (b"bad=G1 =4", b"bad=G1 =4"),  # not an escape: kept as it is
        (b"\r\n\r\n", b"\r\n\r\n"),
        (b"", b""),
    ],
)
def test_quoted_printable_by_rfc2045(encoded: bytes, decoded: bytes) -> None:
    assert decode_quoted_printable(encoded) == decoded


def test_header_fields_finds_what_splitting_every_field_finds() -> None:
    """HEADER.FIELDS looks only for the named fields (one regex per field list); the
    result must equal keeping the named ones of all fields split out, byte for byte."""
    import random

    from coi.mail import headers as H
    from coi.mail.sections import header_fields

    def reference(header: bytes, fields: tuple[str, ...]) -> bytes:
        wanted = {f.lower().encode("ascii", "replace") for f in fields}
        out = [block for name, block in H.field_blocks(header) if name in wanted]
        out = [b if b.endswith(b"\n") else b + b"\r\n" for b in out]
        return b"".join(out) + b"\r\n"

    rng = random.Random(5)
    names = ["From", "to", "SUBJECT", "Subject-X", "X-To", "Date", "a b", "Ünï", "k", "To:"]
    pieces = [
        b"From: a@b\r\n",
        b"from : folded\r\n\tline two\r\n",
        b"To: x\r\n  To: not a field\r\n",
        b"X-To: y\r\n",
        b"Subject-X: z\r\n",
        b"SUBJECT:s\n",
        b"garbage line\r\n",
        b"a b: spaced\r\n",
        b"K: kelvin\r\n",
        b"Date: d",
        b"\r\n",
        b" leading: continuation\r\n",
    ]
    for _ in range(3000):
        header = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        fields = tuple(rng.sample(names, rng.randint(1, 4)))
        assert header_fields(header, fields, exclude=False) == reference(header, fields)
