"""Whole RFC 3501 client transcripts pushed through framer + parser."""

from __future__ import annotations

from coi.imap.wire.commands import (
    Append,
    AppendMessage,
    Fetch,
    Login,
    Logout,
    Select,
    Store,
    parse_command,
)
from coi.imap.wire.framing import CommandFramer, CommandReady, ContinuationNeeded

# RFC 3501 §6.3.11 example message (310 octets with CRLF line ends).
MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.siam.edu\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def test_rfc3501_append_example() -> None:
    assert len(MESSAGE) == 310
    framer = CommandFramer()
    framer.feed(b"A003 APPEND saved-messages (\\Seen) {310}\r\n")
    assert framer.next_event() == ContinuationNeeded(310)
    framer.feed(MESSAGE + b"\r\n")
    ev = framer.next_event()
    assert isinstance(ev, CommandReady)
    assert parse_command(ev) == Append(
        "A003", "saved-messages", (AppendMessage(("\\Seen",), None, MESSAGE),)
    )


def test_rfc3501_section8_transcript() -> None:
    stream = (
        b"a001 login mrc secret\r\n"
        b"a002 select inbox\r\n"
        b"a003 fetch 12 full\r\n"
        b"a004 fetch 12 body[header]\r\n"
        b"a005 store 12 +flags \\deleted\r\n"
        b"a006 logout\r\n"
    )
    framer = CommandFramer()
    framer.feed(stream)
    cmds = []
    while (ev := framer.next_event()) is not None:
        assert isinstance(ev, CommandReady)
        cmds.append(parse_command(ev))
    assert [type(c) for c in cmds] == [Login, Select, Fetch, Fetch, Store, Logout]
    assert [c.tag for c in cmds] == ["a001", "a002", "a003", "a004", "a005", "a006"]
    assert cmds[1] == Select("a002", "INBOX")
    fetch = cmds[3]
    assert isinstance(fetch, Fetch)
    assert [a.response_name() for a in fetch.attrs] == ["BODY[HEADER]"]
