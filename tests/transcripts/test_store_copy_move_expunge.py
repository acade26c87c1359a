"""STORE, COPY, MOVE, EXPUNGE, CHECK, CLOSE, UNSELECT and their UID forms (RFC 3501 §6.4,
RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 3691 UNSELECT)."""

from __future__ import annotations

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in


async def _five(client: LineClient) -> None:
    for _ in range(5):
        await append(client, SIMPLE)
    await client.command("x SELECT INBOX")
    await client.command("s SELECT INBOX")  # nothing \Recent any more


async def test_store_forms(alice: LineClient) -> None:
    await _five(alice)
    await run_transcript(
        alice,
        """
        C: A003 STORE 2:4 +FLAGS (\\Deleted)
        S: * 2 FETCH (FLAGS (\\Deleted))
        S: * 3 FETCH (FLAGS (\\Deleted))
        S: * 4 FETCH (FLAGS (\\Deleted))
        S: A003 OK {{.*}}
        C: A004 STORE 1 FLAGS (\\Seen $Label)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label)
        S: * OK [PERMANENTFLAGS ({{.*}} $Label \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (\\Seen $Label))
        S: A004 OK {{.*}}
        C: A005 STORE 1 -FLAGS ($Label)
        S: * 1 FETCH (FLAGS (\\Seen))
        S: A005 OK {{.*}}
        C: A006 STORE 1 +FLAGS.SILENT \\Answered \\Draft
        S: A006 OK {{.*}}
        C: A007 STORE 1 -FLAGS.SILENT (\\Draft)
        S: A007 OK {{.*}}
        C: A008 STORE 1 FLAGS.SILENT ()
        S: A008 OK {{.*}}
        C: A009 UID STORE 5 +FLAGS (\\Flagged)
        S: * 5 FETCH (FLAGS (\\Flagged) UID 5)
        S: A009 OK {{.*}}
        C: A010 UID STORE 9 +FLAGS (\\Flagged)
        S: A010 OK {{.*}}
        C: A011 FETCH 1:5 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: * 2 FETCH (FLAGS (\\Deleted))
        S: * 3 FETCH (FLAGS (\\Deleted))
        S: * 4 FETCH (FLAGS (\\Deleted))
        S: * 5 FETCH (FLAGS (\\Flagged))
        S: A011 OK {{.*}}
        C: A012 STORE 6 +FLAGS (\\Seen)
        S: A012 BAD {{.*}}
        C: A013 STORE 1 FLAGS (\\Recent)
        S: * 1 FETCH (FLAGS ())
        S: A013 OK {{.*}}
        C: A014 STORE 1 +FLAGZ (\\Seen)
        S: A014 BAD {{.*}}
        C: A015 CHECK
        S: A015 OK {{.*}}
        """,
    )


async def test_expunge_rfc_example_and_uid_expunge(alice: LineClient) -> None:
    for _ in range(11):
        await append(alice, SIMPLE)
    await alice.command("x SELECT INBOX")
    await alice.command("s SELECT INBOX")
    await alice.command("d STORE 3,4,7,11 +FLAGS.SILENT (\\Deleted)")
    # RFC 3501 §6.4.3 example deletes 3, 4, 7 and 11; the server announces them highest
    # first (each number stays valid), an equally legal order to the RFC's 3 3 5 8
    await run_transcript(
        alice,
        """
        C: A202 EXPUNGE
        S: * 11 EXPUNGE
        S: * 7 EXPUNGE
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: A202 OK {{.*}}
        C: A203 STORE 1:2 +FLAGS.SILENT (\\Deleted)
        S: A203 OK {{.*}}
        C: A204 UID EXPUNGE 2:5
        S: * 2 EXPUNGE
        S: A204 OK {{.*}}
        C: A205 UID SEARCH ALL
        S: * SEARCH 1 5 6 8 9 10
        S: A205 OK {{.*}}
        C: A206 UID EXPUNGE 20
        S: A206 OK {{.*}}
        """,
    )


async def test_copy_and_move(alice: LineClient) -> None:
    await _five(alice)
    await run_transcript(
        alice,
        """
        C: A003 COPY 2:4 MEETING
        S: A003 NO [TRYCREATE] {{.*}}
        C: A004 CREATE MEETING
        S: A004 OK {{.*}}
        C: A005 COPY 2:4 MEETING
        S: A005 OK [COPYUID {{\\d+}} 2:4 1:3] {{.*}}
        C: A006 UID COPY 1,5 MEETING
        S: A006 OK [COPYUID {{\\d+}} 1,5 4:5] {{.*}}
        C: A007 UID COPY 100 MEETING
        S: A007 OK {{.*}}
        C: A008 MOVE 1:2 Archive
        S: * OK [COPYUID {{\\d+}} 1:2 1:2] {{.*}}
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: A008 OK {{.*}}
        C: A009 UID MOVE 5 Archive
        S: * OK [COPYUID {{\\d+}} 5 3] {{.*}}
        S: * 3 EXPUNGE
        S: A009 OK {{.*}}
        C: A010 MOVE 1 nosuch
        S: A010 NO [TRYCREATE] {{.*}}
        C: A011 STATUS MEETING (MESSAGES)
        S: * STATUS MEETING (MESSAGES 5)
        S: A011 OK {{.*}}
        C: A012 STATUS Archive (MESSAGES)
        S: * STATUS Archive (MESSAGES 3)
        S: A012 OK {{.*}}
        C: A013 UID SEARCH ALL
        S: * SEARCH 3 4
        S: A013 OK {{.*}}
        """,
    )


async def test_close_unselect_and_readonly(imap_server: RunningServer) -> None:
    alice = await logged_in(imap_server)
    await _five(alice)
    await alice.command("d STORE 1,2 +FLAGS.SILENT (\\Deleted)")
    await run_transcript(
        alice,
        """
        C: A1 EXAMINE INBOX
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS ()] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: A1 OK [READ-ONLY] {{.*}}
        C: A2 STORE 1 +FLAGS (\\Seen)
        S: A2 NO {{.*}}
        C: A3 EXPUNGE
        S: A3 NO {{.*}}
        C: A4 UID EXPUNGE 1
        S: A4 NO {{.*}}
        C: A5 MOVE 1 Trash
        S: A5 NO {{.*}}
        C: A6 COPY 1 Trash
        S: A6 OK [COPYUID {{\\d+}} 1 1] {{.*}}
        C: A7 FETCH 1 BODY[TEXT]
        S: * 1 FETCH (BODY[TEXT] {{.*}})
        S: A7 OK {{.*}}
        C: A8 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Deleted))
        S: A8 OK {{.*}}
        C: A9 CLOSE
        S: A9 OK {{.*}}
        C: B1 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 5)
        S: B1 OK {{.*}}
        C: B2 SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: B2 OK [READ-WRITE] {{.*}}
        C: B3 UNSELECT
        S: B3 OK {{.*}}
        C: B4 UNSELECT
        S: B4 BAD {{.*}}
        C: B5 SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: B5 OK [READ-WRITE] {{.*}}
        C: B6 CLOSE
        S: B6 OK {{.*}}
        C: B7 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 3)
        S: B7 OK {{.*}}
        C: B8 CLOSE
        S: B8 BAD {{.*}}
        """,
    )
    await alice.close()


async def test_selected_commands_need_selected_state(alice: LineClient) -> None:
    commands = [
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "UID EXPUNGE 1",
        "SEARCH ALL",
        "UID SEARCH ALL",
        "FETCH 1 FLAGS",
        "UID FETCH 1 FLAGS",
        "STORE 1 +FLAGS (\\Seen)",
        "UID STORE 1 +FLAGS (\\Seen)",
        "COPY 1 Trash",
        "UID COPY 1 Trash",
        "MOVE 1 Trash",
        "UID MOVE 1 Trash",
    ]
    transcript = "\n".join(
        f"C: w{i} {command}\nS: w{i} BAD {{{{.*}}}}" for i, command in enumerate(commands)
    )
    await run_transcript(alice, transcript)


async def test_expunge_is_deferred_during_fetch_store_search(imap_server: RunningServer) -> None:
    # RFC 3501 §7.4.1: no EXPUNGE responses while FETCH, STORE or SEARCH (non-UID) run
    alice = await logged_in(imap_server)
    other = await logged_in(imap_server)
    await _five(alice)
    await other.command("s SELECT INBOX")
    await other.command("d STORE 2 +FLAGS.SILENT (\\Deleted)")
    await other.command("e EXPUNGE")
    await run_transcript(
        alice,
        """
        C: A1 FETCH 1 UID
        S: * 1 FETCH (UID 1)
        S: A1 OK {{.*}}
        C: A2 SEARCH ALL
        S: * SEARCH 1 3 4 5
        S: A2 OK {{.*}}
        C: A3 NOOP
        S: * 2 EXPUNGE
        S: A3 OK {{.*}}
        C: A4 SEARCH ALL
        S: * SEARCH 1 2 3 4
        S: A4 OK {{.*}}
        """,
    )
    await alice.close()
    await other.close()
