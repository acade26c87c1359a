"""SEARCH key trees (RFC 3501 §6.4.4 and extensions)."""

from __future__ import annotations

import datetime

import pytest

from coi.imap.wire.commands import Search
from coi.imap.wire.errors import ParseError
from coi.imap.wire.search import (
    AllKey,
    AndKey,
    BodyKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NewKey,
    NotKey,
    ObjectIdKey,
    OldKey,
    OrKey,
    RecentKey,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
    UidKey,
)
from coi.imap.wire.sequence import SequenceSet

from .helpers import parse

D = datetime.date


def _key(text: bytes) -> SearchKey:
    cmd = parse(b"a SEARCH " + text)
    assert isinstance(cmd, Search)
    return cmd.key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            b'FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
            AndKey(
                (
                    FlagKey("\\Flagged", True),
                    DateKey("internal", "since", D(1994, 2, 1)),
                    NotKey(HeaderKey("from", "Smith", True)),
                )
            ),
        ),
        (b"ALL", AllKey()),
        (b"answered", FlagKey("\\Answered", True)),
        (b"UNANSWERED", FlagKey("\\Answered", False)),
        (b"DELETED", FlagKey("\\Deleted", True)),
        (b"UNDELETED", FlagKey("\\Deleted", False)),
        (b"DRAFT", FlagKey("\\Draft", True)),
        (b"UNDRAFT", FlagKey("\\Draft", False)),
        (b"UNFLAGGED", FlagKey("\\Flagged", False)),
        (b"SEEN", FlagKey("\\Seen", True)),
        (b"UNSEEN", FlagKey("\\Seen", False)),
        (b"KEYWORD $Junk", FlagKey("$Junk", True)),
        (b"UNKEYWORD foo", FlagKey("foo", False)),
        (b"NEW", NewKey()),
        (b"OLD", OldKey()),
        (b"RECENT", RecentKey()),
        (b'BEFORE "1-Feb-1994"', DateKey("internal", "before", D(1994, 2, 1))),
        (b"ON 01-jan-2000", DateKey("internal", "on", D(2000, 1, 1))),
        (b"SENTBEFORE 1-Feb-1994", DateKey("sent", "before", D(1994, 2, 1))),
        (b"SENTON 1-Feb-1994", DateKey("sent", "on", D(1994, 2, 1))),
        (b"SENTSINCE 1-Feb-1994", DateKey("sent", "since", D(1994, 2, 1))),
        (
            b"TO bob CC carol BCC dave",
            AndKey(
                (
                    HeaderKey("to", "bob", True),
                    HeaderKey("cc", "carol", True),
                    HeaderKey("bcc", "dave", True),
                )
            ),
        ),
        (b'SUBJECT ""', HeaderKey("subject", "")),
        (b'HEADER Message-ID "<x@y>"', HeaderKey("message-id", "<x@y>")),
        (b"BODY hello", BodyKey("hello")),
        (b"TEXT {5}\r\nhello", TextKey("hello")),
        (b"LARGER 100 SMALLER 2000", AndKey((SizeKey("larger", 100), SizeKey("smaller", 2000)))),
        (b"1:5,7", SequenceKey(SequenceSet(((1, 5), (7, 7))))),
        (b"*", SequenceKey(SequenceSet(((None, None),)))),
        (b"$", SequenceKey(SequenceSet((), saved=True))),
        (b"UID 1:*", UidKey(SequenceSet(((1, None),)))),
        (b"UID $", UidKey(SequenceSet((), saved=True))),
        (
            b"OR SEEN (FLAGGED DRAFT)",
            OrKey(
                FlagKey("\\Seen", True),
                AndKey((FlagKey("\\Flagged", True), FlagKey("\\Draft", True))),
            ),
        ),
        (
            b"OR OR SEEN DRAFT NOT 1",
            OrKey(
                OrKey(FlagKey("\\Seen", True), FlagKey("\\Draft", True)),
                NotKey(SequenceKey(SequenceSet(((1, 1),)))),
            ),
        ),
        (b"(SEEN)", FlagKey("\\Seen", True)),
        (b"MODSEQ 620162338", ModSeqKey(620162338)),
        (b'MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338)),
        (b"MODSEQ 0", ModSeqKey(0)),
        # RFC 8474 §6
        (b"emailid M6d99ac3275bb4e", ObjectIdKey("EMAILID", "M6d99ac3275bb4e")),
        (b'THREADID "T_1-x"', ObjectIdKey("THREADID", "T_1-x")),
        (
            b"OR EMAILID a EMAILID B",
            OrKey(ObjectIdKey("EMAILID", "a"), ObjectIdKey("EMAILID", "B")),
        ),
    ],
)
def test_keys(text: bytes, key: SearchKey) -> None:
    assert _key(text) == key


def test_deep_nesting_is_rejected_not_crashing() -> None:
    with pytest.raises(ParseError):
        _key(b"NOT " * 1000 + b"ALL")
    with pytest.raises(ParseError):
        _key(b"(" * 1000 + b"ALL" + b")" * 1000)


def test_charset_and_return() -> None:
    cmd = parse(b"a UID SEARCH RETURN (SAVE) CHARSET US-ASCII ALL")
    assert cmd == Search("a", True, "US-ASCII", AllKey(), ("SAVE",))
    assert parse(b"a SEARCH return (count) all") == Search("a", False, None, AllKey(), ("COUNT",))


@pytest.mark.parametrize(
    "text", [b"EMAILID", b'EMAILID ""', b"EMAILID a.b", b"THREADID " + b"x" * 256]
)
def test_invalid_objectid(text: bytes) -> None:
    with pytest.raises(ParseError):
        _key(text)
