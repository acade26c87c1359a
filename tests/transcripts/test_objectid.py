# ruff: noqa: E501  (protocol lines are compared whole)
"""OBJECTID (RFC 8474) after the RFC's examples: MAILBOXID on CREATE (§4.1), SELECT and
EXAMINE (§4.2), STATUS and LIST-STATUS (§4.3), kept by RENAME; EMAILID kept by COPY and
MOVE, THREADID NIL (§5.3); SEARCH EMAILID/THREADID (§6)."""

from __future__ import annotations

import re

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, crlf, logged_in

OBJECTID = "[FM][0-9a-f]{24}"


def _ids(lines: list[bytes], kind: str) -> list[str]:
    found = re.findall(rf"{kind} \(({OBJECTID})\)".encode(), b"".join(lines))
    return [x.decode() for x in found]


def _message(subject: str, extra: str = "") -> bytes:
    return crlf(
        f"Subject: {subject}\nMessage-ID: <{subject.replace(' ', '.')}@example.com>\n{extra}\nbody\n"
    )


async def test_mailboxid_rfc8474_section_4_examples(alice: LineClient) -> None:
    (foo,) = _ids(await alice.command("3 create foo"), "MAILBOXID")
    (bar,) = _ids(await alice.command("4 create bar"), "MAILBOXID")
    assert foo != bar and foo.startswith("F")
    await run_transcript(
        alice,
        f"""
        C: 5 create foo
        S: 5 NO [ALREADYEXISTS] Mailbox already exists
        C: 6 status foo (mailboxid)
        S: * STATUS foo (MAILBOXID ({foo}))
        S: 6 OK STATUS completed
        C: 7 status bar (mailboxid)
        S: * STATUS bar (MAILBOXID ({bar}))
        S: 7 OK STATUS completed
        C: 8 rename foo renamed
        S: 8 OK RENAME completed
        C: 9 status renamed (mailboxid)
        S: * STATUS renamed (MAILBOXID ({foo}))
        S: 9 OK STATUS completed
        C: 10 status bar (messages mailboxid)
        S: * STATUS bar (MESSAGES 0 MAILBOXID ({bar}))
        S: 10 OK STATUS completed
        C: 11 list "" "*" return (status (mailboxid))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren \\Archive) "/" Archive
        S: * STATUS Archive (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
        S: * STATUS Drafts (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * STATUS Junk (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * STATUS Sent (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: * STATUS Trash (MAILBOXID ({{{{F[0-9a-f]+}}}}))
        S: * LIST (\\HasNoChildren) "/" bar
        S: * STATUS bar (MAILBOXID ({bar}))
        S: * LIST (\\HasNoChildren) "/" renamed
        S: * STATUS renamed (MAILBOXID ({foo}))
        S: 11 OK LIST completed
        C: 27 select "renamed"
        S: * FLAGS {{{{.*}}}}
        S: * 0 EXISTS
        S: * 0 RECENT
        S: * OK [PERMANENTFLAGS {{{{.*}}}}] Limited
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [MAILBOXID ({foo})] Ok
        S: 27 OK [READ-WRITE] SELECT completed
        C: 28 examine bar
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS {{{{.*}}}}
        S: * 0 EXISTS
        S: * 0 RECENT
        S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [MAILBOXID ({bar})] Ok
        S: 28 OK [READ-ONLY] EXAMINE completed
        """,
    )


async def test_mailboxid_is_never_reused(alice: LineClient) -> None:
    """A mailbox deleted and created again under its name is another mailbox (a new
    UIDVALIDITY): it gets another MAILBOXID (§4). RENAME INBOX creates its target
    (RFC 3501 §6.3.5): INBOX keeps its id, the target gets a new one."""
    (first,) = _ids(await alice.command("c1 CREATE again"), "MAILBOXID")
    await alice.command("d1 DELETE again")
    (second,) = _ids(await alice.command("c2 CREATE again"), "MAILBOXID")
    assert first != second
    (inbox,) = _ids(await alice.command("s1 STATUS INBOX (MAILBOXID)"), "MAILBOXID")
    await alice.command("r1 RENAME INBOX Old")
    (old,) = _ids(await alice.command("s2 STATUS Old (MAILBOXID)"), "MAILBOXID")
    assert _ids(await alice.command("s3 STATUS INBOX (MAILBOXID)"), "MAILBOXID") == [inbox]
    assert old not in (inbox, first, second)


async def test_emailid_threadid_rfc8474_section_5_3_example(alice: LineClient) -> None:
    await append(alice, _message("Message A"))
    await append(alice, _message("Re: Message A", "References: <Message.A@example.com>\n"))
    await append(alice, _message("Message C"))
    await alice.command("c CREATE foo")
    await alice.command("s SELECT INBOX")
    lines = await alice.command("22 fetch 1:* (emailid threadid)")
    a, b, c = _ids(lines, "EMAILID")
    assert len({a, b, c}) == 3 and a.startswith("M")
    await run_transcript(
        alice,
        f"""
        C: 22 fetch 1:* (emailid threadid)
        S: * 1 FETCH (EMAILID ({a}) THREADID NIL)
        S: * 2 FETCH (EMAILID ({b}) THREADID NIL)
        S: * 3 FETCH (EMAILID ({c}) THREADID NIL)
        S: 22 OK FETCH completed
        C: 27 search emailid {a}
        S: * SEARCH 1
        S: 27 OK SEARCH completed
        C: 28 uid search or emailid {c} emailid {b}
        S: * SEARCH 2 3
        S: 28 OK SEARCH completed
        C: 29 search threadid T64b478a75b7ea9
        S: * SEARCH
        S: 29 OK SEARCH completed
        C: 30 search emailid {a.upper()}
        S: * SEARCH
        S: 30 OK SEARCH completed
        C: 31 search emailid "{a}"
        S: * SEARCH 1
        S: 31 OK SEARCH completed
        C: 32 search emailid a+b
        S: 32 BAD {{{{.*}}}}
        C: 23 move 2 foo
        S: * OK [COPYUID {{{{\\d+}}}} 2 1] {{{{.*}}}}
        S: * 2 EXPUNGE
        S: 23 OK {{{{.*}}}}
        C: 24 fetch 1:* (emailid threadid)
        S: * 1 FETCH (EMAILID ({a}) THREADID NIL)
        S: * 2 FETCH (EMAILID ({c}) THREADID NIL)
        S: 24 OK FETCH completed
        C: 25 copy 1 foo
        S: 25 OK [COPYUID {{{{\\d+}}}} 1 2] {{{{.*}}}}
        C: 26 select "foo"
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS {{{{.*}}}}
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] {{{{.*}}}}
        S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
        S: 26 OK [READ-WRITE] SELECT completed
        C: 26 fetch 1:* (emailid threadid)
        S: * 1 FETCH (EMAILID ({b}) THREADID NIL)
        S: * 2 FETCH (EMAILID ({a}) THREADID NIL)
        S: 26 OK FETCH completed
        C: 27 fetch 2 (uid flags emailid envelope)
        S: * 2 FETCH (UID 2 FLAGS (\\Recent) EMAILID ({a}) ENVELOPE (NIL "Message A" NIL NIL NIL NIL NIL NIL NIL "<Message.A@example.com>"))
        S: 27 OK FETCH completed
        """,
    )


async def test_emailid_of_a_new_body_is_new(imap_server: RunningServer) -> None:
    """Each APPEND stores a new body with a new EMAILID, even with the same content (§5.1
    only allows sharing it); an id is never given twice, even once the body with the
    highest id is gone."""
    client = await logged_in(imap_server)
    try:
        await append(client, SIMPLE)
        await append(client, SIMPLE)
        await client.command("s SELECT INBOX")
        first, second = _ids(await client.command("f FETCH 1:* EMAILID"), "EMAILID")
        assert first != second
        await client.command("d STORE 2 +FLAGS.SILENT (\\Deleted)")
        await client.command("e EXPUNGE")
        await append(client, SIMPLE)
        ids = _ids(await client.command("g FETCH 1:* EMAILID"), "EMAILID")
        assert ids[0] == first and ids[1] not in (first, second)
    finally:
        await client.close()
    # another user's message gets an id of its own
    other = await logged_in(imap_server, "bob@example.org")
    try:
        await append(other, SIMPLE)
        await other.command("s SELECT INBOX")
        assert _ids(await other.command("f FETCH 1 EMAILID"), "EMAILID")[0] not in ids
    finally:
        await other.close()
