"""SORT/UID SORT with ESORT return options (RFC 5256, RFC 5267) and NOTIFY (RFC 5465)."""

from __future__ import annotations

import pytest
from tests.unit.imap_wire.helpers import parse

from coi.imap.wire.commands import BadCharset, Notify, NotifyGroup, ParseError, Sort
from coi.imap.wire.fetch import FetchAttr
from coi.imap.wire.search import AllKey, AndKey, FlagKey, ModSeqKey


def test_sort_plain() -> None:
    got = parse(b"a SORT (REVERSE ARRIVAL subject) UTF-8 ALL")
    assert got == Sort("a", False, (("ARRIVAL", True), ("SUBJECT", False)), "UTF-8", AllKey())


def test_uid_sort_with_return_and_keys() -> None:
    got = parse(b"E01 UID SORT RETURN () (REVERSE DATE) US-ASCII UNDELETED MODSEQ 5")
    assert isinstance(got, Sort)
    assert got.uid and got.return_opts == () and got.charset == "US-ASCII"
    assert got.criteria == (("DATE", True),)
    assert got.key == AndKey((FlagKey("\\Deleted", False), ModSeqKey(5)))
    got = parse(b"b SORT RETURN (MIN COUNT SAVE) (DISPLAYFROM) utf-8 ALL")
    assert isinstance(got, Sort) and got.return_opts == ("MIN", "COUNT", "SAVE")


@pytest.mark.parametrize(
    "line",
    [
        b"a SORT () UTF-8 ALL",
        b"a SORT (REVERSE) UTF-8 ALL",
        b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        b"a SORT (BOGUS) UTF-8 ALL",
        b"a SORT (DATE) UTF-8",
        b"a SORT (DATE)",
        b"a SORT RETURN (PARTIAL) (DATE) UTF-8 ALL",
    ],
)
def test_sort_bad(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


def test_sort_unknown_charset() -> None:
    with pytest.raises(BadCharset):
        parse(b"a SORT (DATE) KOI8-R ALL")


def test_notify_none_and_set() -> None:
    assert parse(b"a NOTIFY NONE") == Notify("a", None)
    got = parse(
        b"a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
        b" (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))"
        b' (mailboxes ("Chats" INBOX) NONE) (subtree Archive (MailboxName))'
    )
    assert got == Notify(
        "a",
        (
            NotifyGroup(
                "selected",
                (),
                ("MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE"),
                (FetchAttr("UID"), FetchAttr("FLAGS")),
            ),
            NotifyGroup(
                "personal",
                (),
                ("MESSAGENEW", "MESSAGEEXPUNGE", "MAILBOXNAME", "SUBSCRIPTIONCHANGE"),
            ),
            NotifyGroup("mailboxes", ("Chats", "INBOX"), ()),
            NotifyGroup("subtree", ("Archive",), ("MAILBOXNAME",)),
        ),
        True,
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a NOTIFY",
        b"a NOTIFY SET",
        b"a NOTIFY SET (everything (MessageNew))",
        b"a NOTIFY SET (selected)",
        b"a NOTIFY SET (mailboxes (MessageNew))",
        b"a NOTIFY SET (selected (MessageNew)",
        b"a NOTIFY NONE extra",
    ],
)
def test_notify_bad(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)
