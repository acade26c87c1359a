"""Response encoding helpers."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coi.imap.wire import encode
from coi.imap.wire.commands import Login

from .helpers import parse


def test_quoted_and_literal() -> None:
    assert encode.quoted('a"b\\c') == b'"a\\"b\\\\c"'
    assert encode.literal(b"abc") == b"{3}\r\nabc"
    assert encode.string(b"hello") == b'"hello"'
    assert encode.string(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert encode.string(b"\xff") == b"{1}\r\n\xff"
    assert encode.string(b"x" * 2000).startswith(b"{2000}\r\n")
    assert encode.nstring(None) == b"NIL"
    assert encode.nstring(b"") == b'""'


def test_astring_and_mailbox() -> None:
    assert encode.astring("foo") == b"foo"
    assert encode.astring("nil") == b'"nil"'
    assert encode.astring("a b") == b'"a b"'
    assert encode.astring("") == b'""'
    assert encode.mailbox("inbox") == b"INBOX"
    assert encode.mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert encode.mailbox("My Stuff") == b'"My Stuff"'
    assert encode.mailbox("a]b") == b'"a]b"'


def test_flag_list_deterministic() -> None:
    assert encode.flag_list(["zz", "\\Seen", "$Junk", "\\Answered", "\\Seen"]) == (
        b"(\\Answered \\Seen $Junk zz)"
    )
    assert encode.flag_list([]) == b"()"


def test_internal_date() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=-7))
    dt = datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz)
    assert encode.internal_date(dt) == b'"17-Jul-1996 02:44:25 -0700"'
    assert encode.internal_date(datetime.datetime(2024, 1, 5, 1, 2, 3)) == (
        b'" 5-Jan-2024 01:02:03 +0000"'
    )
    assert encode.parse_internal_date("17-Jul-1996 02:44:25 -0700") == dt
    assert encode.parse_internal_date(" 5-Jan-2024 01:02:03 +0530").utcoffset() == (
        datetime.timedelta(hours=5, minutes=30)
    )
    for bad in ["17-Jux-1996 02:44:25 -0700", "17-Jul-1996 02:44:25", "31-Feb-1996 00:00:00 +0000"]:
        with pytest.raises(ValueError):
            encode.parse_internal_date(bad)


_NO_NUL = st.binary().filter(lambda b: b"\x00" not in b)


@given(_NO_NUL, _NO_NUL)
def test_string_round_trips_through_parser(user: bytes, password: bytes) -> None:
    line = b"a LOGIN " + encode.string(user) + b" " + encode.string(password)
    cmd = parse(line)
    assert cmd == Login(
        "a",
        user.decode("utf-8", "surrogateescape"),
        password.decode("utf-8", "surrogateescape"),
    )


@given(st.text())
def test_mailbox_round_trips_through_parser(name: str) -> None:
    cmd = parse(b"a DELETE " + encode.mailbox(name))
    assert cmd.mailbox == ("INBOX" if name.upper() == "INBOX" else name)  # type: ignore[union-attr]
