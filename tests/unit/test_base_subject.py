"""RFC 5256 §2.1 base subject extraction."""

from __future__ import annotations

import pytest

from coi.imap.server.sort import base_subject, parse_sexp


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Hello", "Hello"),
        ("Re: Hello", "Hello"),
        ("RE:Hello", "Hello"),
        ("re: Re: fwd: Hello", "Hello"),
        ("Fw: Hello", "Hello"),
        ("Re [2]: Hello", "Hello"),
        ("[list] Re: Hello", "Hello"),
        ("Re: [list] Hello", "Hello"),
        ("[list]", "[list]"),
        ("[a][b] Re: [c] Hello", "Hello"),
        ("Hello (fwd)", "Hello"),
        ("Hello (FWD) (fwd)  ", "Hello"),
        ("[Fwd: Re: Hello]", "Hello"),
        ("[fwd: [fwd: Hello (fwd)]]", "Hello"),
        ("  spaced\t  out  ", "spaced out"),
        ("Reply to this", "Reply to this"),
        ("", ""),
        ("Re:", ""),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def test_parse_stored_envelope() -> None:
    data = b'("d" {5}\r\na"b c ((NIL NIL "x\\"y" "h")) NIL)'
    assert parse_sexp(data) == [b"d", b'a"b c', [[None, None, b'x"y', b"h"]], None]


def test_parse_stored_envelope_fast_path() -> None:
    data = b'("d" "" NIL (("N\\\\x" NIL "m" "h")("" NIL "n" "h")))'
    assert parse_sexp(data) == [
        b"d",
        b"",
        None,
        [[b"N\\x", None, b"m", b"h"], [b"", None, b"n", b"h"]],
    ]
