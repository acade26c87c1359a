"""Table-driven parser tests: RFC 3501 §6/§8 examples and extensions."""

from __future__ import annotations

import datetime

import pytest

from coi.imap.wire.commands import (
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    GetMetadata,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QResync,
    Rename,
    Search,
    Select,
    SetMetadata,
    StartTLS,
    Status,
    Store,
    Subscribe,
    UidExpunge,
    Unselect,
    Unsubscribe,
)
from coi.imap.wire.errors import BadCharset, ParseError
from coi.imap.wire.fetch import FetchAttr, Section
from coi.imap.wire.mutf7 import InvalidName
from coi.imap.wire.search import AllKey, FlagKey, TextKey
from coi.imap.wire.sequence import SequenceSet

from .helpers import parse

S = SequenceSet
PST = datetime.timezone(datetime.timedelta(hours=-7))

_UIDS = (15000, 22500, 27000, 29970, 29973, 29976, 29979)
_UIDS += (29982, 29985, 29988, 29991, 29994, 29997)

CASES: list[tuple[bytes, Command]] = [
    # RFC 3501 §6.1, §6.2, §8
    (b"a047 NOOP", Noop("a047")),
    (b"abcd CAPABILITY", Capability("abcd")),
    (b"A023 LOGOUT", Logout("A023")),
    (b"a002 STARTTLS", StartTLS("a002")),
    (b"a004 LOGIN joe password", Login("a004", "joe", "password")),
    (b"a001 login mrc secret", Login("a001", "mrc", "secret")),
    (b'a1 LOGIN "fr\\"ed" "a\\\\b"', Login("a1", 'fr"ed', "a\\b")),
    (b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man", Login("A001", "FRED FOOBAR", "fat man")),
    (b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man", Login("A001", "FRED FOOBAR", "fat man")),
    (b"A001 AUTHENTICATE GSSAPI", Authenticate("A001", "GSSAPI", None)),
    (b"A1 authenticate plain =", Authenticate("A1", "PLAIN", b"")),
    (b"A1 AUTHENTICATE PLAIN AHUAcA==", Authenticate("A1", "PLAIN", b"\x00u\x00p")),
    # §6.3
    (b"a002 select inbox", Select("a002", "INBOX")),
    (b"A142 SELECT INBOX", Select("A142", "INBOX")),
    (b"A932 EXAMINE blurdybloop", Select("A932", "blurdybloop", readonly=True)),
    (b"a SELECT foo (CONDSTORE)", Select("a", "foo", condstore=True)),
    (
        b"A02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
        Select(
            "A02", "INBOX", qresync=QResync(67890007, 90060115194045000, S(((41, 211), (214, 541))))
        ),
    ),
    (
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
        b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))",
        Select(
            "B04",
            "INBOX",
            qresync=QResync(
                67890007,
                90060115194045000,
                S(((1, 29997),)),
                (
                    S(((5000, 5000), (7500, 7500), (9000, 9000), (9990, 9999))),
                    S(tuple((n, n) for n in _UIDS)),
                ),
            ),
        ),
    ),
    (
        b"a SELECT x (QRESYNC (1 2 (1 2)))",
        Select("a", "x", qresync=QResync(1, 2, None, (S(((1, 1),)), S(((2, 2),))))),
    ),
    (b"A004 CREATE owatagusiam/blurdybloop", Create("A004", "owatagusiam/blurdybloop")),
    (b"a CREATE Sent (USE (\\Sent))", Create("a", "Sent", ("\\Sent",))),
    (b"a CREATE X (USE (\\junk \\Trash))", Create("a", "X", ("\\Junk", "\\Trash"))),
    # RFC 6154 §3: unknown attributes are the server's NO [USEATTR], not a syntax error
    (b"a CREATE x (USE (\\Bogus))", Create("a", "x", ("\\Bogus",))),
    (b"A683 DELETE blurdybloop", Delete("A683", "blurdybloop")),
    (b"Z433 RENAME INBOX old-mail", Rename("Z433", "INBOX", "old-mail")),
    (b"A002 SUBSCRIBE #news.comp.mail.mime", Subscribe("A002", "#news.comp.mail.mime")),
    (b"A002 UNSUBSCRIBE #news.comp.mail.mime", Unsubscribe("A002", "#news.comp.mail.mime")),
    (b'A682 LIST "" *', List("A682", "", ("*",))),
    (b'A86 LIST "" %', List("A86", "", ("%",))),
    (b'A102 LIST #news.comp.mail.misc ""', List("A102", "#news.comp.mail.misc", ("",))),
    (b"A202 LIST ~/Mail/ %", List("A202", "~/Mail/", ("%",))),
    (b'a LIST "" inbox', List("a", "", ("INBOX",))),
    (b'a LIST "" "Entw&APw-rfe/*"', List("a", "", ("Entwürfe/*",))),
    (
        b'a LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE CHILDREN SUBSCRIBED STATUS (MESSAGES))',
        List(
            "a",
            "",
            ("*",),
            ("SUBSCRIBED",),
            ("SPECIAL-USE", "CHILDREN", "SUBSCRIBED", "STATUS"),
            True,
            ("MESSAGES",),
        ),
    ),
    (b'a LIST "" ("INBOX" "Drafts")', List("a", "", ("INBOX", "Drafts"), extended=True)),
    (b'a LIST "" % RETURN ()', List("a", "", ("%",), extended=True)),
    (b'A003 LSUB "#news." "comp.%"', Lsub("A003", "#news.", "comp.%")),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)",
        Status("A042", "blurdybloop", ("UIDNEXT", "MESSAGES")),
    ),
    (b"a status INBOX (highestmodseq size)", Status("a", "INBOX", ("HIGHESTMODSEQ", "SIZE"))),
    (b"6 status foo (mailboxid)", Status("6", "foo", ("MAILBOXID",))),  # RFC 8474 §4.3
    # §6.4
    (b"FXXZ CHECK", Check("FXXZ")),
    (b"A341 CLOSE", Close("A341")),
    (b"A202 EXPUNGE", Expunge("A202")),
    (b"a UNSELECT", Unselect("a")),
    (b"a IDLE", Idle("a")),
    (b"a NAMESPACE", Namespace("a")),
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)",
        Store("A003", False, S(((2, 4),)), "add", False, ("\\Deleted",)),
    ),
    (
        b"a005 store 12 +flags \\deleted",
        Store("a005", False, S(((12, 12),)), "add", False, ("\\Deleted",)),
    ),
    (
        b"a UID STORE 1:* -FLAGS.SILENT (\\Seen $Junk)",
        Store("a", True, S(((1, None),)), "remove", True, ("\\Seen", "$Junk")),
    ),
    (
        b"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
        Store("d105", False, S(((7, 7), (5, 5), (9, 9))), "add", True, ("\\Deleted",), 320162338),
    ),
    (b"a STORE 1 FLAGS ()", Store("a", False, S(((1, 1),)), "set", False, ())),
    (b"A003 COPY 2:4 MEETING", Copy("A003", False, S(((2, 4),)), "MEETING")),
    (b"A003 UID COPY 2:4 inbox", Copy("A003", True, S(((2, 4),)), "INBOX")),
    (b"a UID MOVE 42:69 foo", Move("a", True, S(((42, 69),)), "foo")),
    (b"a MOVE $ foo", Move("a", False, S((), saved=True), "foo")),
    (b"A003 UID EXPUNGE 3000:3002", UidExpunge("A003", S(((3000, 3002),)))),
    (b"t2 ENABLE CONDSTORE qresync", Enable("t2", ("CONDSTORE", "QRESYNC"))),
    (b"a023 ID NIL", Id("a023", None)),
    (
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)',
        Id("a023", (("name", "sodr"), ("version", "19.34"), ("vendor", None))),
    ),
    (b"a ID ()", Id("a", ())),
    (
        b"a GETMETADATA INBOX /shared/comment",
        GetMetadata("a", None, "0", "INBOX", ("/shared/comment",)),
    ),
    (
        b'a GETMETADATA (MAXSIZE 1024 DEPTH 1) "" (/shared/comment /private/comment)',
        GetMetadata("a", 1024, "1", "", ("/shared/comment", "/private/comment")),
    ),
    (
        b"a SETMETADATA INBOX (/private/comment {4}\r\nMy c)",
        SetMetadata("a", "INBOX", (("/private/comment", b"My c"),)),
    ),
    (
        b'a SETMETADATA "" (/shared/x NIL /shared/y ~{3}\r\n\x00\x01\x02)',
        SetMetadata("a", "", (("/shared/x", None), ("/shared/y", b"\x00\x01\x02"))),
    ),
    # RFC 5464 §4.2.1/§4.2.2/§4.4.1 examples: options after the mailbox, bare entry lists
    (
        b'a GETMETADATA "INBOX" (MAXSIZE 1024) (/shared/comment /private/comment)',
        GetMetadata("a", 1024, "0", "INBOX", ("/shared/comment", "/private/comment")),
    ),
    (
        b'a GETMETADATA "INBOX" (DEPTH 1) (/private/filters/values)',
        GetMetadata("a", None, "1", "INBOX", ("/private/filters/values",)),
    ),
    (
        b'a GETMETADATA "INBOX" /private/comment /shared/comment',
        GetMetadata("a", None, "0", "INBOX", ("/private/comment", "/shared/comment")),
    ),
    # coi-server-spec examples: atom values and a space after the list
    (
        b'a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes) ',
        SetMetadata("a", "", (("/private/vendor/vendor.dovecot/coi/config/enabled", b"yes"),)),
    ),
    # APPEND (§6.3.11) incl. MULTIAPPEND and literal8
    (
        b"A003 APPEND saved-messages (\\Seen) {10}\r\n0123456789",
        Append("A003", "saved-messages", (AppendMessage(("\\Seen",), None, b"0123456789"),)),
    ),
    (
        b'A1 APPEND INBOX "17-Jul-1996 02:44:25 -0700" {3+}\r\nabc',
        Append(
            "A1",
            "INBOX",
            (AppendMessage((), datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=PST), b"abc"),),
        ),
    ),
    (
        b'A1 APPEND INBOX (\\Seen foo) " 7-Jul-1996 02:44:25 -0700" ~{2}\r\nab (\\Draft) {1}\r\nc',
        Append(
            "A1",
            "INBOX",
            (
                AppendMessage(
                    ("\\Seen", "foo"),
                    datetime.datetime(1996, 7, 7, 2, 44, 25, tzinfo=PST),
                    b"ab",
                    binary=True,
                ),
                AppendMessage(("\\Draft",), None, b"c"),
            ),
        ),
    ),
    # FETCH
    (
        b"a001 FETCH 1 (BODY[HEADER.FIELDS (DATE FROM)])",
        Fetch(
            "a001",
            False,
            S(((1, 1),)),
            (FetchAttr("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM"))),),
        ),
    ),
    (
        b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        Fetch(
            "A654",
            False,
            S(((2, 4),)),
            (
                FetchAttr("FLAGS"),
                FetchAttr("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
            ),
        ),
    ),
    (
        b"a004 fetch 12 body[header]",
        Fetch("a004", False, S(((12, 12),)), (FetchAttr("BODY", Section((), "HEADER")),)),
    ),
    (
        b"a003 fetch 12 fast",
        Fetch(
            "a003",
            False,
            S(((12, 12),)),
            (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"), FetchAttr("RFC822.SIZE")),
        ),
    ),
    (
        b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        Fetch("s100", True, S(((1, None),)), (FetchAttr("FLAGS"),), 12345, True),
    ),
    (
        b"a FETCH 1:*,3 (UID MODSEQ BINARY.PEEK[1]<0.100> BINARY.SIZE[2] RFC822.HEADER)",
        Fetch(
            "a",
            False,
            S(((1, None), (3, 3))),
            (
                FetchAttr("UID"),
                FetchAttr("MODSEQ"),
                FetchAttr("BINARY", Section((1,)), (0, 100), peek=True),
                FetchAttr("BINARY.SIZE", Section((2,))),
                FetchAttr("RFC822.HEADER"),
            ),
        ),
    ),
    (
        b"a FETCH 3 BODY.PEEK[1.2.MIME]",
        Fetch("a", False, S(((3, 3),)), (FetchAttr("BODY", Section((1, 2), "MIME"), peek=True),)),
    ),
    # SEARCH
    (
        b'A283 SEARCH TEXT "string not in mailbox"',
        Search("A283", False, None, TextKey("string not in mailbox")),
    ),
    (
        b"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX",
        Search("A284", False, "UTF-8", TextKey("XXXXXX")),
    ),
    (b"A UID SEARCH RETURN () ALL", Search("A", True, None, AllKey(), ())),
    (
        b"A SEARCH RETURN (MIN MAX) UNSEEN",
        Search("A", False, None, FlagKey("\\Seen", False), ("MIN", "MAX")),
    ),
]


@pytest.mark.parametrize(
    ("line", "expected"), CASES, ids=[c[0][:40].decode("latin-1") for c in CASES]
)
def test_parse(line: bytes, expected: Command) -> None:
    assert parse(line) == expected


def test_command_names_and_uid_flag() -> None:
    assert Fetch.name == "FETCH" and UidExpunge.name == "EXPUNGE" and UidExpunge.uid
    assert Select.name == "SELECT" and parse(b"a examine x").command_name == "EXAMINE"  # type: ignore[union-attr]
    for line, _ in CASES:
        cmd = parse(line)
        assert cmd.name.isupper()


def test_names_not_modified_utf7_parse_as_invalid_names() -> None:
    """RFC 3501 §5.1.3: not a syntax error; the server answers NO (or lists nothing)."""
    for line, name in ((b"a SELECT &AGE-", "&AGE-"), (b'a SELECT "&Jjo!"', "&Jjo!")):
        command = parse(line)
        assert isinstance(command, Select) and command.mailbox == name
        assert isinstance(command.mailbox, InvalidName)
    listing = parse(b'a LIST "" (&Jjo* INBOX)')
    assert isinstance(listing, List)
    assert [isinstance(p, InvalidName) for p in listing.patterns] == [True, False]
    assert not isinstance(parse(b"a SELECT Entw&APw-rfe").mailbox, InvalidName)  # type: ignore[union-attr]


def test_login_repr_hides_password() -> None:
    assert "secret" not in repr(parse(b"a LOGIN u secret"))


BAD: list[tuple[bytes, str | None]] = [
    (b"", None),
    (b"+x NOOP", None),
    (b"a", "a"),
    (b"a ", "a"),
    (b"a XPIG-LATIN", "a"),
    (b"A442 XPIG-LATIN", "A442"),
    (b"a NOOP extra", "a"),
    (b"a NOOP ", "a"),
    (b"a LOGIN joe", "a"),
    (b"a LOGIN", "a"),
    (b"a LOGIN joe pass extra", "a"),
    (b'a LOGIN "unterminated pass', "a"),
    (b'a LOGIN "bad\\escape" x', "a"),
    (b"a FETCH 0 FLAGS", "a"),
    (b"a FETCH 1:0 FLAGS", "a"),
    (b"a FETCH 1,,2 FLAGS", "a"),
    (b"a FETCH x FLAGS", "a"),
    (b"a FETCH 1 (FLAGS", "a"),
    (b"a FETCH 1 FLAGS)", "a"),
    (b"a FETCH 1 (FAST)", "a"),
    (b"a FETCH 1 BODY[1.MIME", "a"),
    (b"a FETCH 1 BODY[MIME]", "a"),
    (b"a FETCH 1 BODY[0]", "a"),
    (b"a FETCH 1 BODY[]<0.0>", "a"),
    (b"a FETCH 1 BODY.PEEK", "a"),
    (b"a FETCH 1 BINARY[HEADER]", "a"),
    (b"a FETCH 1 FOO", "a"),
    (b"a FETCH 1 FLAGS (VANISHED)", "a"),
    (b"a UID FETCH 1 FLAGS (VANISHED)", "a"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 0)", "a"),
    (b"a STORE 1 FLAGS (\\*)", "a"),
    (b"a STORE 1 XFLAGS (\\Seen)", "a"),
    (b"a STORE 1 +FLAGS (\\Seen", "a"),
    (b"a SEARCH", "a"),
    (b"a SEARCH FOO", "a"),
    (b"a SEARCH (SEEN", "a"),
    (b"a SEARCH SEEN)", "a"),
    (b"a SEARCH SINCE 31-Feb-1994", "a"),
    (b"a SEARCH SINCE 1-Fob-1994", "a"),
    (b"a SEARCH OR SEEN", "a"),
    (b"a SEARCH RETURN (BOGUS) ALL", "a"),
    (b"a SELECT", "a"),
    (b"a SELECT x (BOGUS)", "a"),
    (b"a SELECT x (QRESYNC (0 1))", "a"),
    (b"a SELECT x (QRESYNC (1 1 1:*))", "a"),
    (b"a SELECT x (QRESYNC (1 1 1:5 ($ 1)))", "a"),
    (b"a SELECT x (CONDSTORE", "a"),
    (b"a STATUS x (BOGUS)", "a"),
    (b"a STATUS x ()", "a"),
    (b"a APPEND x", "a"),
    (b'a APPEND x "bad date" {1}\r\nx', "a"),
    (b'a APPEND x "quoted message"', "a"),
    (b"a AUTHENTICATE PLAIN not*base64", "a"),
    (b"a AUTHENTICATE PLAIN AHU", "a"),
    (b"a UID FOO 1", "a"),
    (b"a UID EXPUNGE", "a"),
    (b"a ENABLE", "a"),
    (b'a ID ("k")', "a"),
    (b"a GETMETADATA (DEPTH 2) INBOX /shared/x", "a"),
    (b"a GETMETADATA INBOX /shared/*", "a"),
    (b"a SETMETADATA INBOX ()", "a"),
    (b'a LIST "" * RETURN', "a"),
    (b'a LIST (BOGUS) "" *', "a"),  # RFC 5258 §3: unknown selection option
    (b'a LIST (RECURSIVEMATCH) "" *', "a"),  # RFC 5258 §3: not alone
    (b'a LIST (REMOTE RECURSIVEMATCH) "" *', "a"),
    (b"a COPY 1", "a"),
    (b"a LOGIN {3}\r\nabc", "a"),
    (b"a LOGIN ~{3}\r\nabc x", "a"),
]


@pytest.mark.parametrize(("line", "tag"), BAD, ids=[b[0][:40].decode("latin-1") for b in BAD])
def test_malformed(line: bytes, tag: str | None) -> None:
    with pytest.raises(ParseError) as info:
        parse(line)
    assert info.value.tag == tag
    assert info.value.message


def test_unknown_command_message() -> None:
    with pytest.raises(ParseError, match="unknown command"):
        parse(b"a FROB")


@pytest.mark.parametrize("charset", [b"KOI8-R", b"ISO-8859-1", b'"x"'])
def test_bad_charset(charset: bytes) -> None:
    with pytest.raises(BadCharset) as info:
        parse(b"a SEARCH CHARSET " + charset + b" ALL")
    assert info.value.tag == "a"


def test_charset_decoding() -> None:
    cmd = parse("a SEARCH CHARSET utf-8 SUBJECT {6}\r\nGrüße".encode()[:-1])
    assert isinstance(cmd, Search)
    with pytest.raises(ParseError):
        parse(b"a SEARCH CHARSET UTF-8 SUBJECT {2}\r\n\xff\xfe")


def test_eight_bit_in_quoted_login() -> None:
    cmd = parse('a LOGIN "jörg" "pässword"'.encode())
    assert cmd == Login("a", "jörg", "pässword")
