"""NOTIFY (RFC 5465): another connection's APPEND, STORE, EXPUNGE, CREATE, SUBSCRIBE,
RENAME and DELETE arrive without a command; STATUS for other mailboxes."""

from __future__ import annotations

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in

SET = (
    "(selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
    " (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
    " (mailboxes Sent (MessageNew MessageExpunge))"
)
EVENTS = (
    "AnnotationChange FlagChange MailboxMetadataChange MailboxName MessageExpunge MessageNew"
    " ServerMetadataChange SubscriptionChange"
)


async def test_notify_selected_and_other_mailboxes(imap_server: RunningServer) -> None:
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    try:
        await a.command("s SELECT INBOX")
        await run_transcript(
            a,
            """
            C: n1 NOTIFY SET STATUS {SET}""".replace("{SET}", SET)
            + """
            S: * STATUS Archive (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {{\\d+}} HIGHESTMODSEQ 1)
            S: * STATUS Drafts (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {{\\d+}} HIGHESTMODSEQ 1)
            S: * STATUS Junk (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {{\\d+}} HIGHESTMODSEQ 1)
            S: * STATUS Sent (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {{\\d+}} HIGHESTMODSEQ 1)
            S: * STATUS Trash (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {{\\d+}} HIGHESTMODSEQ 1)
            S: n1 OK NOTIFY completed
            """,
        )
        await append(b, SIMPLE)  # into the selected mailbox
        await run_transcript(
            a,
            """
            S: * 1 EXISTS
            S: * 1 RECENT
            S: * 1 FETCH (UID 1 FLAGS (\\Recent))
            """,
        )
        await append(b, SIMPLE, mailbox="Sent")
        await run_transcript(a, "S: * STATUS Sent (MESSAGES 1 UIDNEXT 2)")
        await b.command("s SELECT Sent")
        await b.command("f STORE 1 +FLAGS (\\Seen)")
        await run_transcript(a, "S: * STATUS Sent (UIDVALIDITY {{\\d+}} UNSEEN 0)")
        await b.command("s SELECT INBOX")
        await b.command("f STORE 1 +FLAGS (\\Flagged)")
        await run_transcript(a, "S: * 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)")
        await b.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
        await b.command("e EXPUNGE")
        await run_transcript(
            a,
            """
            S: * 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent) UID 1)
            S: * 1 EXPUNGE
            """,
        )
        await b.command("c CREATE Chats")
        await run_transcript(a, 'S: * LIST (\\HasNoChildren) "/" Chats')
        await b.command("c SUBSCRIBE Chats")
        await run_transcript(a, 'S: * LIST (\\HasNoChildren \\Subscribed) "/" Chats')
        await b.command("c CREATE Chats/Group")
        await run_transcript(
            a,
            """
            S: * LIST (\\HasNoChildren) "/" Chats/Group
            S: * LIST (\\HasChildren \\Subscribed) "/" Chats
            """,
        )
        await b.command("c RENAME Chats Talks")
        await run_transcript(
            a, 'S: * LIST (\\HasChildren \\Subscribed) "/" Talks ("OLDNAME" (Chats))'
        )
        await b.command("c DELETE Talks/Group")
        await run_transcript(
            a,
            """
            S: * LIST (\\NonExistent) "/" Talks/Group
            S: * LIST (\\HasNoChildren \\Subscribed) "/" Talks
            """,
        )
        await b.command("c DELETE Talks")
        await run_transcript(a, 'S: * LIST (\\NonExistent{{.*}}) "/" Talks')
        # this session's own changes are not echoed as STATUS, nor its own new messages
        # as FETCH (RFC 5465 §5, §5.2)
        await append(a, SIMPLE, mailbox="Sent")
        lines = await append(a, SIMPLE)
        assert lines[:-1] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"], lines
        for command in ("CREATE Own/Box", "SUBSCRIBE Own", "RENAME Own Mine", "DELETE Mine/Box"):
            lines = await a.command("o " + command)
            assert len(lines) == 1 and lines[0].startswith(b"o OK"), lines
        await run_transcript(
            a,
            """
            C: n2 NOTIFY NONE
            S: n2 OK NOTIFY completed
            """,
        )
        await append(b, SIMPLE)
        await append(b, SIMPLE, mailbox="Sent")
        await run_transcript(
            a,
            """
            C: n3 NOOP
            S: * 2 EXISTS
            S: * 2 RECENT
            S: n3 OK {{.*}}
            """,
        )
    finally:
        await a.close()
        await b.close()


async def test_notify_without_selection_and_during_idle(imap_server: RunningServer) -> None:
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    try:
        await run_transcript(
            a,
            """
            C: n1 NOTIFY SET (inboxes (MessageNew MessageExpunge))
            S: n1 OK NOTIFY completed
            C: i1 IDLE
            S: + {{.*}}
            """,
        )
        await append(b, SIMPLE)
        await run_transcript(a, "S: * STATUS INBOX (MESSAGES 1 UIDNEXT 2)")
        await b.command("s SELECT INBOX")
        await b.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
        await b.command("e EXPUNGE")
        await run_transcript(
            a,
            """
            S: * STATUS INBOX (MESSAGES 0 UIDNEXT 2)
            C: DONE
            S: i1 OK {{.*}}
            """,
        )
    finally:
        await a.close()
        await b.close()


async def test_notify_selected_delayed_holds_expunges(imap_server: RunningServer) -> None:
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    try:
        await append(a, SIMPLE)
        await append(a, SIMPLE)
        await a.command("s SELECT INBOX")
        await a.command("e ENABLE QRESYNC")
        await run_transcript(
            a,
            """
            C: n1 NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))
            S: n1 OK NOTIFY completed
            """,
        )
        await b.command("s SELECT INBOX")
        await b.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
        await run_transcript(a, "S: * 1 FETCH (FLAGS (\\Deleted \\Recent) UID 1 MODSEQ (4))")
        await b.command("e EXPUNGE")
        await append(b, SIMPLE)
        await run_transcript(
            a,
            """
            S: * 3 EXISTS
            S: * 3 RECENT
            C: f UID FETCH 1:* (FLAGS)
            S: * 2 FETCH (UID 2 FLAGS (\\Recent))
            S: * 3 FETCH (UID 3 FLAGS (\\Recent))
            S: * VANISHED 1
            S: f OK {{.*}}
            """,
        )
    finally:
        await a.close()
        await b.close()


async def test_notify_errors(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: a NOTIFY SET (personal (MailboxFrobnicated))
        S: a NO [BADEVENT (EVENTS)] {{.*}}
        C: b NOTIFY SET (selected (MessageNew))
        S: b BAD {{.*}}
        C: c NOTIFY SET (personal (FlagChange))
        S: c BAD {{.*}}
        C: d NOTIFY SET (selected (MailboxName))
        S: d BAD {{.*}}
        C: e NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)
        S: e BAD {{.*}}
        C: f NOTIFY SET (mailboxes nosuch (MessageNew MessageExpunge))
        S: f OK {{.*}}
        C: g NOTIFY SET (subscribed NONE)
        S: g OK {{.*}}
        """.replace("EVENTS", EVENTS),
    )


async def test_notify_metadata_changes(imap_server: RunningServer) -> None:
    """RFC 5465 §5.7, §5.8: another session's SETMETADATA arrives as unsolicited METADATA."""
    a, b = await LineClient.connect(imap_server), await LineClient.connect(imap_server)
    await a.login()
    await b.login()
    try:
        await run_transcript(
            a,
            """
            C: n NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))
            S: n OK {{.*}}
            """,
        )
        await b.command('s1 SETMETADATA INBOX (/private/comment "hello")')
        await b.command('s2 SETMETADATA "" (/private/vendor/example.org/x "y")')
        assert await a.line() == b'* METADATA "INBOX" /private/comment\r\n'
        assert await a.line() == b'* METADATA "" /private/vendor/example.org/x\r\n'
    finally:
        await a.close()
        await b.close()
