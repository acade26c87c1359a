"""The client-side response reader: framing, literals, typed responses, robustness."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coi.imap.wire.responses import (
    AppendUid,
    Capability,
    Condition,
    Continuation,
    CopyUid,
    Enabled,
    ESearchData,
    Exists,
    Expunge,
    FetchData,
    Flags,
    Id,
    ListEntry,
    MetadataChanged,
    MetadataCode,
    MetadataData,
    NamespaceData,
    Recent,
    Response,
    ResponseCode,
    ResponseParseError,
    ResponseReader,
    SearchData,
    StatusData,
    Tagged,
    Unknown,
    Vanished,
    parse_response,
)


def read_all(data: bytes, chunk: int | None = None, **limits: int) -> list[Response]:
    reader = ResponseReader(**limits)
    out: list[Response] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
        while (resp := reader.next_response()) is not None:
            out.append(resp)
    assert reader.pending == 0
    return out


def one(line: bytes) -> Response:
    got = read_all(line + b"\r\n")
    assert len(got) == 1
    return got[0]


HEADER = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)

# RFC 3501 §8, server side, long line joined.
RFC3501_SAMPLE = (
    b"* OK IMAP4rev1 Service Ready\r\n"
    b"a001 OK LOGIN completed\r\n"
    b"* 18 EXISTS\r\n"
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    b"* 2 RECENT\r\n"
    b"* OK [UNSEEN 17] Message 17 is the first unseen message\r\n"
    b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    b"a002 OK [READ-WRITE] SELECT completed\r\n"
    b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
    b'RFC822.SIZE 4286 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
    b'"IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US") '
    b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    b'"<B27397-0100000@cac.washington.edu>") '
    b'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))\r\n'
    b"a003 OK FETCH completed\r\n"
    b"* 12 FETCH (BODY[HEADER] {%d}\r\n" % len(HEADER) + HEADER + b")\r\n"
    b"a004 OK FETCH completed\r\n"
    b"* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n"
    b"a005 OK +FLAGS completed\r\n"
    b"* BYE IMAP4rev1 server terminating connection\r\n"
    b"a006 OK LOGOUT completed\r\n"
)


def test_rfc3501_sample_connection() -> None:
    got = read_all(RFC3501_SAMPLE)
    assert got[0] == Condition("OK", None, "IMAP4rev1 Service Ready")
    assert got[1] == Tagged("a001", "OK", None, "LOGIN completed")
    assert got[2] == Exists(18)
    assert got[3] == Flags(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"))
    assert got[4] == Recent(2)
    assert got[5] == Condition(
        "OK", ResponseCode("UNSEEN", 17), "Message 17 is the first unseen message"
    )
    assert got[6] == Condition("OK", ResponseCode("UIDVALIDITY", 3857529045), "UIDs valid")
    assert got[7] == Tagged("a002", "OK", ResponseCode("READ-WRITE"), "SELECT completed")
    fetch = got[8]
    assert isinstance(fetch, FetchData)
    assert fetch.seq == 12
    assert fetch.flags == ("\\Seen",)
    assert fetch.size == 4286
    assert fetch.internaldate == datetime.datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=datetime.timezone(-datetime.timedelta(hours=7))
    )
    envelope = fetch.items["ENVELOPE"]
    assert isinstance(envelope, tuple)
    assert envelope[0] == b"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)"
    assert envelope[2] == ((b"Terry Gray", None, b"gray", b"cac.washington.edu"),)
    assert envelope[6] == (
        (None, None, b"minutes", b"CNRI.Reston.VA.US"),
        (b"John Klensin", None, b"KLENSIN", b"MIT.EDU"),
    )
    assert envelope[7:] == (None, None, b"<B27397-0100000@cac.washington.edu>")
    assert fetch.items["BODY"] == (
        b"TEXT",
        b"PLAIN",
        (b"CHARSET", b"US-ASCII"),
        None,
        None,
        b"7BIT",
        3028,
        92,
    )
    header = got[10]
    assert isinstance(header, FetchData)
    assert header.body("header") == HEADER
    assert got[12] == FetchData(12, {"FLAGS": ("\\Seen", "\\Deleted")})
    assert got[14] == Condition("BYE", None, "IMAP4rev1 server terminating connection")
    assert got[15] == Tagged("a006", "OK", None, "LOGOUT completed")
    assert len(got) == 16


def test_split_at_every_byte_gives_the_same_responses() -> None:
    whole = read_all(RFC3501_SAMPLE)
    for cut in range(1, len(RFC3501_SAMPLE)):
        reader = ResponseReader()
        got: list[Response] = []
        for part in (RFC3501_SAMPLE[:cut], RFC3501_SAMPLE[cut:]):
            reader.feed(part)
            while (resp := reader.next_response()) is not None:
                got.append(resp)
        assert got == whole, cut
    assert read_all(RFC3501_SAMPLE, chunk=1) == whole


def test_continuation_and_tagged_codes() -> None:
    assert one(b"+ Ready for literal data") == Continuation("Ready for literal data")
    assert one(b"+") == Continuation("")
    assert one(b"+ ") == Continuation("")
    assert one(b"A1 OK [APPENDUID 38505 3955] APPEND completed") == Tagged(
        "A1", "OK", ResponseCode("APPENDUID", AppendUid(38505, (3955,))), "APPEND completed"
    )
    copy = one(b"A2 OK [COPYUID 38505 304,319:320 3956:3958] Done")
    assert isinstance(copy, Tagged) and copy.code is not None
    assert copy.code.value == CopyUid(38505, (304, 319, 320), (3956, 3957, 3958))
    nope = one(b"A3 NO [METADATA LONGENTRIES 2199] Some entries too long")
    assert isinstance(nope, Tagged) and nope.code == ResponseCode(
        "METADATA", MetadataCode("LONGENTRIES", 2199)
    )
    many = one(b"A4 NO [METADATA TOOMANY] Too many entries")
    assert isinstance(many, Tagged) and many.code == ResponseCode(
        "METADATA", MetadataCode("TOOMANY")
    )
    assert one(b"A5 BAD syntax error") == Tagged("A5", "BAD", None, "syntax error")
    assert one(b"A6 ok done") == Tagged("A6", "OK", None, "done")
    assert one(b"A7 OK") == Tagged("A7", "OK", None, "")


def test_untagged_codes() -> None:
    caps = one(b"* OK [CAPABILITY IMAP4rev1 literal+ IDLE] ready")
    assert caps == Condition(
        "OK", ResponseCode("CAPABILITY", ("IMAP4REV1", "LITERAL+", "IDLE")), "ready"
    )
    perm = one(b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited")
    assert isinstance(perm, Condition) and perm.code is not None
    assert perm.code.value == ("\\Deleted", "\\Seen", "\\*")
    assert one(b"* OK [HIGHESTMODSEQ 90060115205545359] x") == Condition(
        "OK", ResponseCode("HIGHESTMODSEQ", 90060115205545359), "x"
    )
    assert one(b"* OK [NOMODSEQ] no") == Condition("OK", ResponseCode("NOMODSEQ"), "no")
    assert one(b"* OK [CLOSED] x") == Condition("OK", ResponseCode("CLOSED"), "x")
    assert one(b"* OK [UIDNEXT 4392] Predicted") == Condition(
        "OK", ResponseCode("UIDNEXT", 4392), "Predicted"
    )
    assert one(b"* OK [ALERT] System shutdown") == Condition(
        "OK", ResponseCode("ALERT"), "System shutdown"
    )
    assert one(b"* NO [X-SOMETHING some text] hm") == Condition(
        "NO", ResponseCode("X-SOMETHING", "some text"), "hm"
    )
    # a malformed known code keeps its raw text instead of failing the response
    assert one(b"* OK [UIDNEXT soon] x") == Condition("OK", ResponseCode("UIDNEXT", "soon"), "x")
    assert one(b"* PREAUTH welcome") == Condition("PREAUTH", None, "welcome")
    assert one(b"A1 OK [MODIFIED 7,9] Conditional STORE failed") == Tagged(
        "A1", "OK", ResponseCode("MODIFIED", (7, 9)), "Conditional STORE failed"
    )


def test_simple_untagged() -> None:
    assert one(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN") == Capability(
        ("IMAP4REV1", "STARTTLS", "AUTH=PLAIN")
    )
    assert one(b"* ENABLED CONDSTORE QRESYNC") == Enabled(("CONDSTORE", "QRESYNC"))
    assert one(b"* 44 EXPUNGE") == Expunge(44)
    assert one(b"* SEARCH 2 84 882") == SearchData((2, 84, 882))
    assert one(b"* SEARCH") == SearchData(())
    assert one(b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)") == SearchData(
        (2, 5, 6, 7, 11, 12, 18, 19, 20, 23), 917162500
    )
    assert one(b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)") == StatusData(
        "blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292}
    )
    assert one(b'* ID ("name" "Cyrus" "version" NIL)') == Id({"name": "Cyrus", "version": None})
    assert one(b"* ID NIL") == Id(None)
    ns = one(b'* NAMESPACE (("" "/")) NIL (("Public Folders/" "/"))')
    assert isinstance(ns, NamespaceData)
    assert ns.personal is not None and ns.personal[0].prefix == ""
    assert ns.other is None
    assert ns.shared is not None and ns.shared[0].prefix == "Public Folders/"


def test_list_and_lsub() -> None:
    assert one(b'* LIST (\\Noselect) "/" ~/Mail/foo') == ListEntry(
        ("\\Noselect",), "/", "~/Mail/foo"
    )
    assert one(b'* LSUB () "." #news.comp.mail.misc') == ListEntry(
        (), ".", "#news.comp.mail.misc", "LSUB"
    )
    assert one(b'* LIST (\\NoInferiors) NIL ""') == ListEntry(("\\NoInferiors",), None, "")
    # mUTF-7 names are decoded; INBOX is canonical
    assert one(b'* LIST () "/" "Entw&APw-rfe"') == ListEntry((), "/", "Entwürfe")
    assert one(b'* LIST () "/" inbox') == ListEntry((), "/", "INBOX")
    lit = one(b'* LIST () "/" {5}\r\na b c')
    assert lit == ListEntry((), "/", "a b c")
    ext = one(b'* LIST (\\HasNoChildren \\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))')
    assert isinstance(ext, ListEntry)
    assert ext.extended == (b"CHILDINFO", (b"SUBSCRIBED",))


def test_esearch_rfc4731_examples() -> None:
    assert one(b'* ESEARCH (TAG "A282") MIN 2 COUNT 3') == ESearchData(
        "A282", False, {"MIN": 2, "COUNT": 3}
    )
    all_ = one(b'* ESEARCH (TAG "A283") ALL 2,10:11')
    assert isinstance(all_, ESearchData)
    assert all_.items == {"ALL": "2,10:11"}
    assert all_.all_numbers() == (2, 10, 11)
    assert one(b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800') == ESearchData(
        "A285", True, {"MIN": 7, "MAX": 3800}
    )
    assert one(b'* ESEARCH (TAG "a1") MIN 2 MODSEQ 917162488') == ESearchData(
        "a1", False, {"MIN": 2, "MODSEQ": 917162488}
    )
    assert one(b"* ESEARCH") == ESearchData(None, False, {})
    assert one(b"* ESEARCH UID COUNT 0") == ESearchData(None, True, {"COUNT": 0})


def test_metadata_rfc5464_examples() -> None:
    assert one(b'* METADATA "" (/shared/comment "Shared comment")') == MetadataData(
        "", {"/shared/comment": b"Shared comment"}
    )
    boss = (
        b'* METADATA "INBOX" (/private/filters/values/small "SMALLER 5000" '
        b'/private/filters/values/boss "FROM \\"boss@example.com\\"")'
    )
    assert one(boss) == MetadataData(
        "INBOX",
        {
            "/private/filters/values/small": b"SMALLER 5000",
            "/private/filters/values/boss": b'FROM "boss@example.com"',
        },
    )
    assert one(b'* METADATA "INBOX" (/private/comment NIL)') == MetadataData(
        "INBOX", {"/private/comment": None}
    )
    binary = one(b'* METADATA "" (/private/x ~{3}\r\n\x00\x01\x02)')
    assert binary == MetadataData("", {"/private/x": b"\x00\x01\x02"})
    assert one(b'* METADATA "" /shared/comment') == MetadataChanged("", ("/shared/comment",))
    assert one(b'* METADATA "INBOX" /shared/comment /private/comment') == MetadataChanged(
        "INBOX", ("/shared/comment", "/private/comment")
    )


def test_vanished() -> None:
    assert one(b"* VANISHED (EARLIER) 300:310,405,411") == Vanished(
        True, (*range(300, 311), 405, 411)
    )
    assert one(b"* VANISHED 505,507,510,625") == Vanished(False, (505, 507, 510, 625))
    assert one(b"* VANISHED 3:1") == Vanished(False, (1, 2, 3))


def test_qresync_select_fetch_with_modseq() -> None:
    data = (
        b"* OK [HIGHESTMODSEQ 90060115205545359] Highest\r\n"
        b"* VANISHED (EARLIER) 41,43:45\r\n"
        b"* 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (90060115194045001))\r\n"
        b"* 50 FETCH (UID 119 FLAGS (\\Draft $MDNSent) MODSEQ (90060115194045308))\r\n"
    )
    got = read_all(data)
    assert got[1] == Vanished(True, (41, 43, 44, 45))
    fetch = got[2]
    assert isinstance(fetch, FetchData)
    assert (fetch.seq, fetch.uid, fetch.modseq) == (49, 117, 90060115194045001)
    assert fetch.flags == ("\\Seen", "\\Answered")
    assert isinstance(got[3], FetchData) and got[3].flags == ("\\Draft", "$MDNSent")


def test_fetch_bodies_sections_and_origins() -> None:
    msg = b"From: a\r\n\r\nhello\r\n"
    data = (
        b"* 3 FETCH (UID 9 RFC822.SIZE %d BODY[] {%d}\r\n" % (len(msg), len(msg))
        + msg
        + b' BODY[HEADER.FIELDS (From  to)] "From: a\\r\\n" BODY[1]<0> {3}\r\nhel'
        b" BINARY[1] ~{2}\r\n\x00\xff BINARY.SIZE[1] 6 RFC822.HEADER NIL)\r\n"
    )
    (fetch,) = read_all(data)
    assert isinstance(fetch, FetchData)
    assert fetch.uid == 9 and fetch.size == len(msg)
    assert fetch.body() == msg
    assert fetch.body("header.fields (FROM TO)") == b"From: a\\r\\n"
    assert fetch.items["BODY[HEADER.FIELDS (FROM TO)]"] == b"From: a\\r\\n"
    assert fetch.body("1") == b"hel"
    assert fetch.origins == {"BODY[1]": 0}
    assert fetch.items["BINARY[1]"] == b"\x00\xff"
    assert fetch.items["BINARY.SIZE[1]"] == 6
    assert fetch.body("HEADER") == b""  # RFC822.HEADER NIL
    with pytest.raises(KeyError):
        fetch.body("TEXT")


def test_nested_bodystructure() -> None:
    line = (
        b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 1 '
        b'NIL NIL NIL NIL)(("TEXT" "HTML" NIL NIL NIL "QUOTED-PRINTABLE" 20 2 NIL NIL NIL NIL)'
        b'("IMAGE" "PNG" ("NAME" "a.png") "<id@x>" NIL "BASE64" 1000 NIL ("INLINE" '
        b'("FILENAME" "a.png")) NIL NIL) "RELATED" ("BOUNDARY" "b2") NIL NIL NIL) '
        b'"MIXED" ("BOUNDARY" "b1") NIL NIL NIL))'
    )
    fetch = one(line)
    assert isinstance(fetch, FetchData)
    bs = fetch.items["BODYSTRUCTURE"]
    assert isinstance(bs, tuple)
    text, related, subtype = bs[0], bs[1], bs[2]
    assert subtype == b"MIXED"
    assert text[:2] == (b"TEXT", b"PLAIN")  # type: ignore[index]
    assert related[1][8] == (b"INLINE", (b"FILENAME", b"a.png"))  # type: ignore[index]
    assert related[2] == b"RELATED"  # type: ignore[index]


def test_unknown_untagged_is_kept_raw() -> None:
    assert one(b"* XAPPLEPUSHSERVICE aps-version 2") == Unknown(
        b"* XAPPLEPUSHSERVICE aps-version 2\r\n"
    )
    assert one(b"* 5 XWEIRD foo") == Unknown(b"* 5 XWEIRD foo\r\n")


def test_limits_are_fatal_and_sticky() -> None:
    reader = ResponseReader(max_line=100, max_literal=10)
    reader.feed(b"* OK " + b"x" * 200)
    with pytest.raises(ResponseParseError) as exc:
        reader.next_response()
    assert exc.value.fatal
    with pytest.raises(ResponseParseError):
        reader.next_response()
    reader = ResponseReader(max_literal=10)
    reader.feed(b"* 1 FETCH (BODY[] {11}\r\n")
    with pytest.raises(ResponseParseError) as exc:
        reader.next_response()
    assert exc.value.fatal


def test_malformed_response_is_not_fatal() -> None:
    reader = ResponseReader()
    reader.feed(b"* 1 FETCH (UID x)\r\nA1 OK done\r\n")
    with pytest.raises(ResponseParseError) as exc:
        reader.next_response()
    assert not exc.value.fatal
    assert exc.value.raw == b"* 1 FETCH (UID x)\r\n"
    assert reader.next_response() == Tagged("A1", "OK", None, "done")


@pytest.mark.parametrize(
    "line",
    [
        b"garbage",
        b"A1 MAYBE done",
        b"* 1 FETCH (",
        b"* 1 FETCH (BODY[1 {3}\r\nabc)",
        b"* STATUS x (MESSAGES)",
        b'* LIST (\\a "/" x',
        b'* 1 FETCH (INTERNALDATE "yesterday")',
        b"* VANISHED 1:99999999999",
        b"* 1 FETCH (X " + b"(" * 100 + b")" * 100 + b")",
    ],
)
def test_garbage_raises_the_parse_error(line: bytes) -> None:
    with pytest.raises(ResponseParseError):
        parse_response(line + b"\r\n")


_VALID_LINES = st.sampled_from(
    [
        b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n",
        b"* 3 EXISTS\r\n",
        b"* 1 FETCH (UID 7 BODY[] {5}\r\nab\r\nc)\r\n",
        b"* 2 FETCH (BINARY[1] ~{3}\r\n\x00\r\n FLAGS (\\Seen))\r\n",
        b'* METADATA "" (/private/x {2}\r\n{})\r\n',
        b"* VANISHED (EARLIER) 1:3\r\n",
        b"+ go\r\n",
        b"A9 NO [TRYCREATE] no\r\n",
        b'* LIST () "/" {3}\r\nx\ry\r\n',
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALID_LINES, min_size=1, max_size=8), st.data())
def test_property_arbitrary_splitting(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(lines)
    whole = read_all(stream)
    assert len(whole) == len(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = ResponseReader()
    got: list[Response] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[prev:cut])
        prev = cut
        while (resp := reader.next_response()) is not None:
            got.append(resp)
    assert got == whole


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_property_garbage_never_escapes(data: bytes) -> None:
    reader = ResponseReader(max_line=200, max_literal=1000)
    reader.feed(data)
    for _ in range(len(data) + 2):
        try:
            if reader.next_response() is None:
                break
        except ResponseParseError as exc:
            if exc.fatal:
                break
    else:
        pytest.fail("reader did not settle")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"* ",
                b"1 ",
                b"FETCH",
                b"(",
                b")",
                b"{2}\r\n",
                b"NIL ",
                b'"q"',
                b"BODY[",
                b"]",
                b"<0>",
                b"\r\n",
                b"UID ",
                b"A1 OK ",
                b"[",
                b"METADATA ",
                b"VANISHED ",
                b"1:2",
                b"~{1}\r\n",
                b" ",
            ]
        )
    )
)
def test_property_token_soup_only_raises_the_parse_error(parts: list[bytes]) -> None:
    reader = ResponseReader(max_line=500, max_literal=100)
    reader.feed(b"".join(parts) + b"\r\n")
    for _ in range(len(parts) + 2):
        try:
            if reader.next_response() is None:
                break
        except ResponseParseError as exc:
            if exc.fatal:
                break
