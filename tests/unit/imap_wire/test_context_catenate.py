"""Parsing of CATENATE (RFC 4469 §5), the RETURN options of CONTEXT=SEARCH/SORT and
CANCELUPDATE (RFC 5267 §5), and the PARTIAL helpers (§4.4, RFC 9394 negative ranges)."""

from __future__ import annotations

import pytest

from coi.imap.server.partial import partial_bounds, partial_option, partial_text
from coi.imap.wire.commands import (
    Append,
    AppendMessage,
    CancelUpdate,
    CatPart,
    ParseError,
    Search,
    Sort,
)
from coi.imap.wire.search import AllKey

from .helpers import parse


def test_catenate_parts() -> None:
    line = (
        b'A003 APPEND Drafts (\\Seen) CATENATE (URL "/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER"'
        b" TEXT {4}\r\nabcd URL /x/;UID=1 TEXT ~{1}\r\n\x00) {1+}\r\nz"
    )
    assert parse(line) == Append(
        "A003",
        "Drafts",
        (
            AppendMessage(
                ("\\Seen",),
                None,
                b"",
                catenate=(
                    CatPart("URL", b"/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER"),
                    CatPart("TEXT", b"abcd"),
                    CatPart("URL", b"/x/;UID=1"),
                    CatPart("TEXT", b"\x00"),
                ),
            ),
            AppendMessage((), None, b"z"),
        ),
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND x CATENATE ()",
        b"a APPEND x CATENATE (TEXT abc)",
        b'a APPEND x CATENATE (URL "/x/;UID=1"',
        b"a APPEND x CATENATE (BLOB {1}\r\nx)",
        b"a APPEND x CATENATE (TEXT {1}\r\n\x00)",
        b'a APPEND x CATENATE URL "/x/;UID=1"',
        b"a SEARCH RETURN (PARTIAL) ALL",
        b"a SEARCH RETURN (PARTIAL 0:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:*) ALL",
        b"a SEARCH RETURN (PARTIAL -1:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL",
        b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
        b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 1:5) ALL",
        b"a SEARCH RETURN (ALL ALL) ALL",
        b'a SEARCH RETURN (PARTIAL "1:5") ALL',
        b"a SEARCH RETURN (PARTIAL 5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL",
        b"a SORT RETURN (UPDATE BOGUS) (DATE) UTF-8 ALL",
        b"a SEARCH RETURN (UPDATE UPDATE) ALL",
        b"a CANCELUPDATE",
        b"a CANCELUPDATE x",
        b'a CANCELUPDATE "x" y',
    ],
)
def test_malformed(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


def test_return_options() -> None:
    assert parse(b"A02 UID SEARCH RETURN (PARTIAL 23500:24000 CONTEXT UPDATE) ALL") == Search(
        "A02", True, None, AllKey(), ("PARTIAL 23500:24000", "CONTEXT", "UPDATE")
    )
    assert parse(b"a SORT RETURN (update count partial -10:-1) (DATE) UTF-8 ALL") == Sort(
        "a", False, (("DATE", False),), "UTF-8", AllKey(), ("UPDATE", "COUNT", "PARTIAL -1:-10")
    )
    assert parse(b'B04 CANCELUPDATE "B01" "B\\"2"') == CancelUpdate("B04", ("B01", 'B"2'))
    # echoed with the smaller magnitude first, as Dovecot does (imaptest search-partial)
    assert parse(b"a SEARCH RETURN (PARTIAL 4:2) ALL") == Search(
        "a", False, None, AllKey(), ("PARTIAL 2:4",)
    )
    assert parse(b"a SEARCH RETURN (PARTIAL -9:-3) ALL") == Search(
        "a", False, None, AllKey(), ("PARTIAL -3:-9",)
    )
    # Dovecot's order, RETURN after the charset (imaptest sort-partial)
    assert parse(b"a SORT (ARRIVAL) US-ASCII RETURN (PARTIAL 1:1) ALL") == Sort(
        "a", False, (("ARRIVAL", False),), "US-ASCII", AllKey(), ("PARTIAL 1:1",)
    )


def test_partial_positions() -> None:
    assert partial_option(("MIN", "PARTIAL 4:2")) == "4:2"
    assert partial_option(("MIN",)) is None
    numbers = [10, 11, 12, 13, 14]
    cases = {"1:2": [10, 11], "4:2": [11, 12, 13], "5:9": [14], "6:9": [],
             "-1:-1": [14], "-1:-2": [13, 14], "-3:-9": [10, 11, 12], "-6:-9": []}  # fmt: skip
    for text, want in cases.items():
        start, end = partial_bounds(len(numbers), text)
        assert numbers[start:end] == want, text
    assert partial_text([], "6:9") == "PARTIAL (6:9 NIL)"
    assert partial_text([3, 4, 5], "1:3") == "PARTIAL (1:3 3:5)"
