"""CONDSTORE and QRESYNC (RFC 7162): the RFC's examples, adapted to our mailbox contents
(five messages, UIDs 1..5 appended one at a time, so message n has MODSEQ n+1 and the
mailbox starts at HIGHESTMODSEQ 6), with the exact response shapes."""

from __future__ import annotations

import re

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in


async def _five(client: LineClient) -> None:
    for _ in range(5):
        await append(client, SIMPLE)


async def _uidvalidity(client: LineClient) -> int:
    lines = await client.command("v STATUS INBOX (UIDVALIDITY)")
    match = re.search(rb"UIDVALIDITY (\d+)", lines[0])
    assert match is not None, lines
    return int(match.group(1))


async def test_select_condstore_fetch_modseq_and_status(alice: LineClient) -> None:
    await _five(alice)
    await run_transcript(
        alice,
        """
        C: A042 STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)
        S: * STATUS INBOX (UIDNEXT 6 MESSAGES 5 HIGHESTMODSEQ 6)
        S: A042 OK {{.*}}
        C: A142 SELECT INBOX (CONDSTORE)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * OK [HIGHESTMODSEQ 6] {{.*}}
        S: A142 OK [READ-WRITE] {{.*}}
        C: a FETCH 1:3 (MODSEQ)
        S: * 1 FETCH (MODSEQ (2))
        S: * 2 FETCH (MODSEQ (3))
        S: * 3 FETCH (MODSEQ (4))
        S: a OK {{.*}}
        C: a103 UID STORE 4,2,5 (UNCHANGEDSINCE 100) +FLAGS.SILENT (\\Deleted)
        S: * 2 FETCH (UID 2 MODSEQ (7))
        S: * 4 FETCH (UID 4 MODSEQ (7))
        S: * 5 FETCH (UID 5 MODSEQ (7))
        S: a103 OK STORE completed
        C: d105 STORE 1,3,4 (UNCHANGEDSINCE 6) +FLAGS.SILENT (\\Seen)
        S: * 1 FETCH (UID 1 MODSEQ (8))
        S: * 3 FETCH (UID 3 MODSEQ (8))
        S: * 4 FETCH (FLAGS (\\Deleted \\Recent) UID 4 MODSEQ (7))
        S: d105 OK [MODIFIED 4] Conditional STORE failed
        C: a102 STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)
        S: * 1 FETCH (FLAGS (\\Seen \\Recent) UID 1 MODSEQ (8))
        S: a102 OK [MODIFIED 1] Conditional STORE failed
        C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6)
        S: * 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ (8))
        S: * 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent) MODSEQ (7))
        S: * 3 FETCH (UID 3 FLAGS (\\Seen \\Recent) MODSEQ (8))
        S: * 4 FETCH (UID 4 FLAGS (\\Deleted \\Recent) MODSEQ (7))
        S: * 5 FETCH (UID 5 FLAGS (\\Deleted \\Recent) MODSEQ (7))
        S: s100 OK {{.*}}
        C: s101 FETCH 2:4 (FLAGS) (CHANGEDSINCE 7)
        S: * 3 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (8))
        S: s101 OK {{.*}}
        C: s102 FETCH 1 (FLAGS) (CHANGEDSINCE 8)
        S: s102 OK {{.*}}
        C: a SEARCH MODSEQ "/flags/\\\\draft" all 8
        S: * SEARCH 1 3 (MODSEQ 8)
        S: a OK {{.*}}
        C: t SEARCH OR NOT MODSEQ 1 LARGER 50000
        S: * SEARCH
        S: t OK {{.*}}
        C: b SEARCH RETURN (ALL) MODSEQ 7
        S: * ESEARCH (TAG "b") ALL 1:5 MODSEQ 8
        S: b OK {{.*}}
        C: a1 SEARCH RETURN (MIN) MODSEQ 7
        S: * ESEARCH (TAG "a1") MIN 1 MODSEQ 8
        S: a1 OK {{.*}}
        C: a2 UID SEARCH RETURN (MAX) MODSEQ 7
        S: * ESEARCH (TAG "a2") UID MAX 5 MODSEQ 7
        S: a2 OK {{.*}}
        C: a4 SEARCH RETURN (MIN COUNT) MODSEQ 7
        S: * ESEARCH (TAG "a4") MIN 1 COUNT 5 MODSEQ 8
        S: a4 OK {{.*}}
        C: a5 SEARCH RETURN (COUNT) MODSEQ 9
        S: * ESEARCH (TAG "a5") COUNT 0
        S: a5 OK {{.*}}
        """,
    )


async def test_first_enabling_command_reports_highestmodseq(alice: LineClient) -> None:
    await _five(alice)
    await alice.command("x SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: y SELECT INBOX
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: y OK [READ-WRITE] {{.*}}
        C: c100 STORE 5 +FLAGS (\\Deleted)
        S: * 5 FETCH (FLAGS (\\Deleted))
        S: c100 OK {{.*}}
        C: c101 STORE 5 (UNCHANGEDSINCE 7) -FLAGS.SILENT (\\Deleted)
        S: * OK [HIGHESTMODSEQ 7] {{.*}}
        S: * 5 FETCH (UID 5 MODSEQ (8))
        S: c101 OK {{.*}}
        C: c102 STORE 4 +FLAGS (\\Answered)
        S: * 4 FETCH (FLAGS (\\Answered) UID 4 MODSEQ (9))
        S: c102 OK {{.*}}
        C: c103 STORE 4 +FLAGS.SILENT (\\Answered)
        S: c103 OK {{.*}}
        C: c104 STORE 4 -FLAGS.SILENT (\\Answered)
        S: * 4 FETCH (UID 4 MODSEQ (10))
        S: c104 OK {{.*}}
        C: c105 FETCH 3 (BODY[HEADER.FIELDS (SUBJECT)])
        S: * 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {{.*}} FLAGS (\\Seen) UID 3 MODSEQ (11))
        S: c105 OK {{.*}}
        C: c106 ENABLE CONDSTORE
        S: * ENABLED CONDSTORE
        S: c106 OK {{.*}}
        """,
    )


async def test_enable_with_mailbox_selected(alice: LineClient) -> None:
    await _five(alice)
    await run_transcript(
        alice,
        """
        C: x SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: x OK [READ-WRITE] {{.*}}
        C: e ENABLE QRESYNC CONDSTORE
        S: * ENABLED QRESYNC CONDSTORE
        S: * OK [HIGHESTMODSEQ 6] {{.*}}
        S: e OK {{.*}}
        C: e2 ENABLE QRESYNC
        S: * ENABLED
        S: e2 OK {{.*}}
        """,
    )


async def test_other_session_changes_carry_modseq(imap_server: RunningServer) -> None:
    one = await logged_in(imap_server)
    two = await logged_in(imap_server)
    try:
        await _five(one)
        await one.command("s SELECT INBOX")
        await two.command("s SELECT INBOX (CONDSTORE)")
        await run_transcript(
            one,
            """
            C: A160 STORE 2 +FLAGS.SILENT (\\Deleted)
            S: A160 OK {{.*}}
            """,
        )
        await run_transcript(
            two,
            """
            C: C180 NOOP
            S: * 2 FETCH (FLAGS (\\Deleted) UID 2 MODSEQ (7))
            S: C180 OK {{.*}}
            """,
        )
    finally:
        await one.close()
        await two.close()


async def test_qresync_select(imap_server: RunningServer) -> None:
    alice = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        await _five(alice)
        for _ in range(3):
            await append(alice, SIMPLE)  # UIDs 6..8, MODSEQ 7..9
        validity = await _uidvalidity(alice)
        await other.command("s SELECT INBOX")
        await other.command("d STORE 2,4,6 +FLAGS.SILENT (\\Deleted)")  # MODSEQ 10
        await other.command("e UID EXPUNGE 2,4")  # MODSEQ 11
        await other.command("f UID STORE 3 +FLAGS.SILENT (\\Flagged)")  # MODSEQ 12
        await other.command("g UID EXPUNGE 6")  # MODSEQ 13
        await run_transcript(
            alice,
            f"""
            C: A01 SELECT INBOX (QRESYNC ({validity} 9))
            S: A01 BAD {{{{.*}}}}
            C: A02 ENABLE QRESYNC
            S: * ENABLED QRESYNC
            S: A02 OK {{{{.*}}}}
            C: A03 EXAMINE Sent
            S: * FLAGS {{{{.*}}}}
            S: * 0 EXISTS
            S: * 0 RECENT
            S: * OK [PERMANENTFLAGS ()] {{{{.*}}}}
            S: * OK [UIDVALIDITY {{{{\\d+}}}}] {{{{.*}}}}
            S: * OK [UIDNEXT 1] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * OK [HIGHESTMODSEQ 1] {{{{.*}}}}
            S: A03 OK [READ-ONLY] {{{{.*}}}}
            C: A04 SELECT INBOX (QRESYNC ({validity + 1} 9 1:8))
            S: * OK [CLOSED] {{{{.*}}}}
            S: * FLAGS {{{{.*}}}}
            S: * 5 EXISTS
            S: * 0 RECENT
            S: * OK [UNSEEN 1] {{{{.*}}}}
            S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
            S: * OK [UIDVALIDITY {validity}] {{{{.*}}}}
            S: * OK [UIDNEXT 9] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * OK [HIGHESTMODSEQ 13] {{{{.*}}}}
            S: A04 OK [READ-WRITE] {{{{.*}}}}
            C: A05 SELECT INBOX (QRESYNC ({validity} 9 1:5))
            S: * OK [CLOSED] {{{{.*}}}}
            S: * FLAGS {{{{.*}}}}
            S: * 5 EXISTS
            S: * 0 RECENT
            S: * OK [UNSEEN 1] {{{{.*}}}}
            S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
            S: * OK [UIDVALIDITY {validity}] {{{{.*}}}}
            S: * OK [UIDNEXT 9] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * OK [HIGHESTMODSEQ 13] {{{{.*}}}}
            S: * VANISHED (EARLIER) 2,4
            S: * 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (12))
            S: A05 OK [READ-WRITE] {{{{.*}}}}
            C: A06 SELECT INBOX (QRESYNC ({validity} 9))
            S: * OK [CLOSED] {{{{.*}}}}
            S: * FLAGS {{{{.*}}}}
            S: * 5 EXISTS
            S: * 0 RECENT
            S: * OK [UNSEEN 1] {{{{.*}}}}
            S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
            S: * OK [UIDVALIDITY {validity}] {{{{.*}}}}
            S: * OK [UIDNEXT 9] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * OK [HIGHESTMODSEQ 13] {{{{.*}}}}
            S: * VANISHED (EARLIER) 2,4,6
            S: * 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (12))
            S: A06 OK [READ-WRITE] {{{{.*}}}}
            C: A07 SELECT INBOX (QRESYNC ({validity} 9 1:8 (1,2,5 1,3,7)))
            S: * OK [CLOSED] {{{{.*}}}}
            S: * FLAGS {{{{.*}}}}
            S: * 5 EXISTS
            S: * 0 RECENT
            S: * OK [UNSEEN 1] {{{{.*}}}}
            S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
            S: * OK [UIDVALIDITY {validity}] {{{{.*}}}}
            S: * OK [UIDNEXT 9] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * OK [HIGHESTMODSEQ 13] {{{{.*}}}}
            S: * VANISHED (EARLIER) 4,6
            S: * 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (12))
            S: A07 OK [READ-WRITE] {{{{.*}}}}
            C: A08 SELECT INBOX (QRESYNC ({validity} 9 1:8 (1,2 1,2,3)))
            S: A08 BAD {{{{.*}}}}
            """,
        )
    finally:
        await alice.close()
        await other.close()


async def test_vanished_fetch_and_expunge(imap_server: RunningServer) -> None:
    alice = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        await _five(alice)
        await alice.command("s SELECT INBOX")
        await run_transcript(
            alice,
            """
            C: v0 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
            S: v0 BAD {{.*}}
            C: v1 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
            S: v1 BAD {{.*}}
            C: A202 STORE 2,3 +FLAGS.SILENT (\\Deleted)
            S: A202 OK {{.*}}
            C: A203 EXPUNGE
            S: * 3 EXPUNGE
            S: * 2 EXPUNGE
            S: A203 OK EXPUNGE completed
            C: e ENABLE QRESYNC
            S: * ENABLED QRESYNC
            S: * OK [HIGHESTMODSEQ 8] {{.*}}
            S: e OK {{.*}}
            C: B201 STORE 1,3 +FLAGS.SILENT (\\Deleted)
            S: * 1 FETCH (UID 1 MODSEQ (9))
            S: * 3 FETCH (UID 5 MODSEQ (9))
            S: B201 OK {{.*}}
            C: B202 EXPUNGE
            S: * VANISHED 1,5
            S: B202 OK [HIGHESTMODSEQ 10] EXPUNGE completed
            C: B203 UID EXPUNGE 1:*
            S: B203 OK EXPUNGE completed
            C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)
            S: * VANISHED (EARLIER) 1:3,5
            S: s100 OK {{.*}}
            C: s101 UID FETCH 2:4 (FLAGS) (CHANGEDSINCE 4 VANISHED)
            S: * VANISHED (EARLIER) 2:3
            S: * 1 FETCH (UID 4 FLAGS (\\Recent) MODSEQ (5))
            S: s101 OK {{.*}}
            C: s102 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 10 VANISHED)
            S: s102 OK {{.*}}
            """,
        )
        await other.command("s SELECT INBOX")
        await other.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
        await other.command("e EXPUNGE")
        await run_transcript(
            alice,
            """
            C: n NOOP
            S: * VANISHED 4
            S: n OK {{.*}}
            C: c CLOSE
            S: c OK CLOSE completed
            """,
        )
    finally:
        await alice.close()
        await other.close()


async def test_held_back_expunge_lowers_highestmodseq(imap_server: RunningServer) -> None:
    one = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        await _five(one)
        await one.command("s SELECT INBOX (CONDSTORE)")
        await other.command("s SELECT INBOX")
        await other.command("d UID STORE 1 +FLAGS.SILENT (\\Deleted)")  # MODSEQ 7
        await other.command("e EXPUNGE")  # 8
        await other.command("f UID STORE 3 +FLAGS.SILENT (\\Flagged)")  # 9
        await run_transcript(
            one,
            """
            C: f FETCH 2 (UID)
            S: * 2 FETCH (UID 2)
            S: * 3 FETCH (FLAGS (\\Flagged \\Recent) UID 3 MODSEQ (9))
            S: * OK [HIGHESTMODSEQ 7] {{.*}}
            S: f OK {{.*}}
            C: n NOOP
            S: * 1 EXPUNGE
            S: n OK {{.*}}
            C: e ENABLE QRESYNC
            S: * ENABLED QRESYNC
            S: e OK {{.*}}
            C: m UID MOVE 2 Trash
            S: * OK [COPYUID {{\\d+}} 2 1] {{.*}}
            S: * VANISHED 2
            S: m OK [HIGHESTMODSEQ 10] MOVE completed
            """,
        )
    finally:
        await one.close()
        await other.close()


async def test_no_vanished_during_sequence_number_commands(imap_server: RunningServer) -> None:
    one = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        await _five(one)
        await one.command("s SELECT INBOX")
        await one.command("e ENABLE QRESYNC")
        await other.command("s SELECT INBOX")
        await other.command("d UID STORE 1,2 +FLAGS.SILENT (\\Deleted)")
        await run_transcript(
            one,
            """
            C: n NOOP
            S: * 1 FETCH (FLAGS (\\Deleted \\Recent) UID 1 MODSEQ (7))
            S: * 2 FETCH (FLAGS (\\Deleted \\Recent) UID 2 MODSEQ (7))
            S: n OK {{.*}}
            """,
        )
        await other.command("e UID EXPUNGE 1")
        await run_transcript(
            one,
            """
            C: a UID SEARCH 1:2
            S: * SEARCH 2
            S: a OK {{.*}}
            C: b SORT (ARRIVAL) UTF-8 ALL
            S: * SORT 2 3 4 5
            S: b OK {{.*}}
            C: c UID SORT (ARRIVAL) UTF-8 1:2
            S: * SORT 2
            S: c OK {{.*}}
            C: d UID SEARCH UID 1:*
            S: * SEARCH 2 3 4 5
            S: * VANISHED 1
            S: d OK {{.*}}
            """,
        )
        await other.command("e UID EXPUNGE 2")
        await run_transcript(
            one,
            """
            C: f UID SORT (ARRIVAL) UTF-8 UID 1:*
            S: * SORT 3 4 5
            S: * VANISHED 2
            S: f OK {{.*}}
            """,
        )
    finally:
        await one.close()
        await other.close()


async def test_uid_expunge_and_close_with_qresync(alice: LineClient) -> None:
    await _five(alice)
    await run_transcript(
        alice,
        """
        C: e ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: e OK {{.*}}
        C: s SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 6] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * OK [HIGHESTMODSEQ 6] {{.*}}
        S: s OK [READ-WRITE] {{.*}}
        C: d STORE 2:5 +FLAGS.SILENT (\\Deleted)
        S: * 2 FETCH (UID 2 MODSEQ (7))
        S: * 3 FETCH (UID 3 MODSEQ (7))
        S: * 4 FETCH (UID 4 MODSEQ (7))
        S: * 5 FETCH (UID 5 MODSEQ (7))
        S: d OK {{.*}}
        C: . UID EXPUNGE 3:4
        S: * VANISHED 3:4
        S: . OK [HIGHESTMODSEQ 8] EXPUNGE completed
        C: c CLOSE
        S: c OK CLOSE completed
        C: t STATUS INBOX (MESSAGES HIGHESTMODSEQ)
        S: * STATUS INBOX (MESSAGES 1 HIGHESTMODSEQ 9)
        S: t OK {{.*}}
        """,
    )
    validity = await _uidvalidity(alice)
    await run_transcript(
        alice,
        f"""
        C: q EXAMINE INBOX (QRESYNC ({validity} 6))
        S: * FLAGS {{{{.*}}}}
        S: * 1 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{{{.*}}}}
        S: * OK [PERMANENTFLAGS ()] {{{{.*}}}}
        S: * OK [UIDVALIDITY {validity}] {{{{.*}}}}
        S: * OK [UIDNEXT 6] {{{{.*}}}}
        S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
        S: * OK [HIGHESTMODSEQ 9] {{{{.*}}}}
        S: * VANISHED (EARLIER) 2:5
        S: q OK [READ-ONLY] {{{{.*}}}}
        """,
    )
