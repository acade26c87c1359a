"""What several sessions on one mailbox see of each other's changes, exactly: the state a
checking client (Dovecot's imaptest) builds from the responses must match the mailbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.conftest import LineClient, RunningServer, open_other_store, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in

from coi.store.events import Event
from coi.store.model import SEEN, Flags


@pytest.fixture
async def two(imap_server: RunningServer) -> AsyncIterator[tuple[LineClient, LineClient]]:
    first = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        yield first, other
    finally:
        await first.close()
        await other.close()


async def test_store_never_followed_by_an_older_state_condstore(
    two: tuple[LineClient, LineClient],
) -> None:
    """RFC 7162 §3.1.3: after A's STORE the client must not be told an older state of the
    message (an older MODSEQ, flags without A's change): one FETCH with the current flags."""
    a, b = two
    await append(a, SIMPLE)
    await a.command("s SELECT INBOX (CONDSTORE)")
    await b.command("s SELECT INBOX (CONDSTORE)")
    await b.command("t STORE 1 +FLAGS (\\Flagged)")  # MODSEQ 3
    await run_transcript(
        a,
        """
        C: d STORE 1 +FLAGS.SILENT (\\Deleted)
        S: * 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent) UID 1 MODSEQ (4))
        S: d OK STORE completed
        C: n NOOP
        S: n OK NOOP completed
        """,
    )
    await b.command("t STORE 1 -FLAGS (\\Flagged)")  # MODSEQ 5
    await run_transcript(
        a,
        """
        C: e STORE 1 +FLAGS (\\Seen)
        S: * 1 FETCH (FLAGS (\\Deleted \\Seen \\Recent) UID 1 MODSEQ (6))
        S: e OK STORE completed
        C: n NOOP
        S: n OK NOOP completed
        """,
    )


async def test_silent_store_reports_the_newest_state_without_condstore(
    two: tuple[LineClient, LineClient],
) -> None:
    """A pending update about a message a session then changed itself carries the state
    after its own change (RFC 3501 §7.4.2: FETCH FLAGS is the message's current flags)."""
    a, b = two
    await append(a, SIMPLE)
    await a.command("s SELECT INBOX")
    await b.command("s SELECT INBOX")
    await b.command("t STORE 1 +FLAGS.SILENT (\\Flagged)")
    await run_transcript(
        a,
        """
        C: d STORE 1 +FLAGS.SILENT (\\Deleted)
        S: * 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent) UID 1)
        S: d OK STORE completed
        C: n NOOP
        S: n OK NOOP completed
        """,
    )


async def test_a_new_keyword_is_announced_to_every_session_before_it_shows(
    two: tuple[LineClient, LineClient],
) -> None:
    """RFC 3501 §7.2.6: FLAGS lists the flags in use; a client learns new keywords from an
    updated FLAGS (and PERMANENTFLAGS, §7.1) before any FETCH shows them."""
    a, b = two
    await append(a, SIMPLE)
    await a.command("s SELECT INBOX")
    await b.command("s EXAMINE INBOX")
    await run_transcript(
        a,
        """
        C: k STORE 1 +FLAGS ($Label1)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)
        S: * OK [PERMANENTFLAGS ({{\\\\Answered [^)]*}} $Label1 \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (\\Recent $Label1))
        S: k OK STORE completed
        C: k STORE 1 +FLAGS ($Label1)
        S: * 1 FETCH (FLAGS (\\Recent $Label1))
        S: k OK STORE completed
        """,
    )
    await run_transcript(
        b,
        """
        C: n NOOP
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)
        S: * OK [PERMANENTFLAGS ()] Flags permitted
        S: * 1 FETCH (FLAGS ($Label1) UID 1)
        S: n OK NOOP completed
        """,
    )
    # a keyword arriving with a message (APPEND with flags) is announced before EXISTS
    await append(b, SIMPLE, extra="($Junk) ")
    await run_transcript(
        a,
        """
        C: n NOOP
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk $Label1)
        S: * OK [PERMANENTFLAGS ({{\\\\Answered [^)]*}} $Junk $Label1 \\*)] Flags permitted
        S: * 2 EXISTS
        S: * 2 RECENT
        S: n OK NOOP completed
        C: f FETCH 2 FLAGS
        S: * 2 FETCH (FLAGS (\\Recent $Junk))
        S: f OK FETCH completed
        """,
    )


async def test_status_recent_agrees_with_the_session_given_recent(
    imap_server: RunningServer,
) -> None:
    """RFC 3501 §2.3.2: a new message is recent in one session only; once a session with
    the mailbox selected has it as \\Recent, STATUS (RECENT) elsewhere says 0 at once."""
    owner = await logged_in(imap_server)
    sender = await logged_in(imap_server)
    third = await logged_in(imap_server)
    try:
        await owner.command("s SELECT INBOX")
        for round_ in range(5):
            await append(sender, SIMPLE)
            await run_transcript(
                third,
                f"""
                C: t STATUS INBOX (MESSAGES RECENT)
                S: * STATUS INBOX (MESSAGES {round_ + 1} RECENT 0)
                S: t OK STATUS completed
                """,
            )
        await run_transcript(
            owner,
            """
            C: n NOOP
            S: * 5 EXISTS
            S: * 5 RECENT
            S: n OK NOOP completed
            """,
        )
    finally:
        for client in (owner, sender, third):
            await client.close()


async def _committed_unpublished(
    running: RunningServer, address: str, uid: int, flags: Flags
) -> list[Event]:
    """A flag change committed to the database whose event the server has not had yet:
    the state between the writer thread's COMMIT and the loop publishing its event, where
    another session's command may run. Made by a second store on the same database (its
    events go to its own bus); returns them, for the test to publish to the server's."""
    other = open_other_store(running)
    events: list[Event] = []
    other.events.watch_all(events.append)
    try:
        user = other.get_user(address)
        assert user is not None
        inbox = other.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        await other.store_flags(inbox.id, [uid], "add", flags)
    finally:
        other.close()
    return events


async def test_fetch_flags_and_modseq_show_one_committed_state(
    imap_server: RunningServer,
) -> None:
    """Stress-found (issue 15): `FETCH (FLAGS MODSEQ)` took MODSEQ from the committed row
    but FLAGS from the shared state, which learns a commit only when its event is
    published: a client got MODSEQ 3 with the flags of MODSEQ 2, then MODSEQ 3 again
    with other flags, and a keyword no `* FLAGS` had announced (RFC 7162 §3.1.3,
    RFC 3501 §7.2.6). Both now come from the row, its keywords announced first."""
    a = await logged_in(imap_server)
    try:
        await append(a, SIMPLE)
        await a.command("s SELECT INBOX (CONDSTORE)")
        await a.command("f FETCH 1 (FLAGS)")  # the shared flags are read now
        events = await _committed_unpublished(
            imap_server, "alice@example.org", 1, Flags(SEEN, ("$Label7",))
        )
        await run_transcript(
            a,
            """
            C: f FETCH 1 (UID FLAGS MODSEQ)
            S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label7)
            S: * OK [PERMANENTFLAGS ({{\\\\Answered [^)]*}} $Label7 \\*)] Flags permitted
            S: * 1 FETCH (UID 1 FLAGS (\\Seen \\Recent $Label7) MODSEQ (3))
            S: f OK FETCH completed
            C: g FETCH 1 (FLAGS MODSEQ ENVELOPE)
            S: * 1 FETCH (FLAGS (\\Seen \\Recent $Label7) MODSEQ (3) {{ENVELOPE .*}})
            S: g OK FETCH completed
            """,
        )
        for event in events:
            imap_server.store.events.publish(event)
        await run_transcript(
            a,
            """
            C: n NOOP
            S: * 1 FETCH (FLAGS (\\Seen \\Recent $Label7) UID 1 MODSEQ (3))
            S: n OK NOOP completed
            """,
        )
    finally:
        await a.close()


async def test_copy_and_move_of_messages_expunged_meanwhile(
    two: tuple[LineClient, LineClient],
) -> None:
    """Stress-found (issue 15): COPY or MOVE of messages another session had expunged (still
    in this session's view) answered `OK [COPYUID 7  ]`, a COPYUID with empty sets, which
    RFC 4315 §3 has no syntax for. Nothing was copied: NO [EXPUNGEISSUED] (RFC 5530)."""
    a, b = two
    await append(a, SIMPLE)
    await append(a, SIMPLE)
    await a.command("s SELECT INBOX")
    await b.command("s SELECT INBOX")
    await b.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.command("e EXPUNGE")
    await run_transcript(
        a,
        """
        C: c COPY 1 Archive
        S: * 1 EXPUNGE
        S: c NO [EXPUNGEISSUED] The messages were expunged meanwhile; nothing copied
        """,
    )
    await b.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.command("e EXPUNGE")
    await run_transcript(
        a,
        """
        C: m UID MOVE 2 Archive
        S: * 1 EXPUNGE
        S: m NO [EXPUNGEISSUED] The messages were expunged meanwhile; nothing copied
        """,
    )


async def test_store_reports_a_message_expunged_right_after_its_change(
    imap_server: RunningServer,
) -> None:
    """Another actor (the COI seen filter, maybe in another server process) may expunge a
    message between STORE's commit and its response: the message keeps its sequence
    number until the EXPUNGE is announced, so STORE still answers with what it set
    (RFC 3501 §6.4.6; RFC 7162 §3.1.3 with MODSEQ), never silently nothing."""
    a = await logged_in(imap_server)
    try:
        await append(a, SIMPLE)
        await a.command("s SELECT INBOX (CONDSTORE)")
        store = imap_server.store
        # the row is gone by the time STORE reads it back (a MOVE committed meanwhile)
        store.rows = lambda mailbox_id, uids: {}  # type: ignore[method-assign]
        try:
            await run_transcript(
                a,
                """
                C: t UID STORE 1 +FLAGS (\\Flagged)
                S: * 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1 MODSEQ ({{\\d+}}))
                S: t OK STORE completed
                """,
            )
        finally:
            del store.rows  # type: ignore[attr-defined]
    finally:
        await a.close()
