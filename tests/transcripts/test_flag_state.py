"""FETCH of flags comes from the mailbox's shared state, which outlives the sessions that
selected it: whatever happens to the mailbox meanwhile (APPEND, COPY, STORE and EXPUNGE
from other sessions, DELETE and CREATE under the same name) must show."""

from __future__ import annotations

import pytest
from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in

from coi.imap.server import server as server_module


async def _flags(client: LineClient, mailbox: str = "INBOX") -> list[bytes]:
    """SELECT, then the FETCH lines of `UID FETCH 1:* (FLAGS)`."""
    await client.command(f"s SELECT {mailbox}")
    lines = await client.command("f UID FETCH 1:* (FLAGS)")
    assert lines[-1].startswith(b"f OK"), lines
    return [line.rstrip(b"\r\n") for line in lines[:-1]]


async def test_state_kept_between_sessions_follows_every_change(
    imap_server: RunningServer,
) -> None:
    first = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        for _ in range(3):
            await append(first, SIMPLE)
        await first.command("c CREATE Archive")
        await append(first, SIMPLE, "Archive", "(\\Answered $Work) ")
        assert await _flags(first) == [
            b"* 1 FETCH (UID 1 FLAGS (\\Recent))",
            b"* 2 FETCH (UID 2 FLAGS (\\Recent))",
            b"* 3 FETCH (UID 3 FLAGS (\\Recent))",
        ]
        await first.command("u UNSELECT")  # nobody has INBOX selected now

        await append(other, SIMPLE, "INBOX", "(\\Flagged) ")  # UID 4
        await other.command("s SELECT Archive")
        await other.command("c COPY 1 INBOX")  # UID 5, with \Answered $Work
        await other.command("s SELECT INBOX")
        await other.command("t STORE 1 +FLAGS (\\Seen)")
        await other.command("d STORE 2 +FLAGS (\\Deleted)")
        await other.command("e EXPUNGE")
        await other.command("k UID STORE 3 +FLAGS (Later)")
        await other.command("u UNSELECT")

        # INBOX was selected read-write by `other` since the last look: \Recent went there
        assert await _flags(first) == [
            b"* 1 FETCH (UID 1 FLAGS (\\Seen))",
            b"* 2 FETCH (UID 3 FLAGS (Later))",
            b"* 3 FETCH (UID 4 FLAGS (\\Flagged))",
            b"* 4 FETCH (UID 5 FLAGS (\\Answered $Work))",
        ]
        await first.command("u UNSELECT")
        await append(other, SIMPLE, "INBOX", "(\\Draft) ")  # UID 6, recent for the next one
        await run_transcript(
            first,
            """
            C: A1 SELECT INBOX
            S: * FLAGS {{.*}}
            S: * 5 EXISTS
            S: * 1 RECENT
            S: * OK [UNSEEN 2] First unseen message
            S: * OK [PERMANENTFLAGS {{.*}}] Limited
            S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
            S: * OK [UIDNEXT 7] Predicted next UID
            S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
            S: A1 OK [READ-WRITE] SELECT completed
            C: A2 FETCH 4:* (UID FLAGS RFC822.SIZE MODSEQ)
            S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
            S: * 4 FETCH (UID 5 FLAGS (\\Answered $Work) RFC822.SIZE {{\\d+}} MODSEQ ({{\\d+}}))
            S: * 5 FETCH (UID 6 FLAGS (\\Draft \\Recent) RFC822.SIZE {{\\d+}} MODSEQ ({{\\d+}}))
            S: A2 OK FETCH completed
            """,
        )
    finally:
        await first.close()
        await other.close()


async def test_flags_seen_by_a_session_while_another_changes_them(
    imap_server: RunningServer,
) -> None:
    first = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        for _ in range(2):
            await append(first, SIMPLE)
        await first.command("s SELECT INBOX")
        await other.command("s SELECT INBOX")
        await first.command("f FETCH 1:* FLAGS")
        await other.command("t STORE 2 +FLAGS.SILENT (\\Flagged)")
        await other.command("d STORE 1 +FLAGS.SILENT (\\Deleted)")
        await other.command("e EXPUNGE")
        # the expunge is held back from `first` during FETCH (RFC 3501 §7.4.1): message 1
        # is missing, message 2 shows its new flags; the EXPUNGE waits for the NOOP
        await run_transcript(
            first,
            """
            C: A1 FETCH 1:2 (FLAGS)
            S: * 2 FETCH (FLAGS (\\Flagged \\Recent))
            S: * 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2)
            S: A1 OK [EXPUNGEISSUED] Some messages were expunged meanwhile
            C: A2 NOOP
            S: * 1 EXPUNGE
            S: A2 OK NOOP completed
            C: A3 FETCH 1 (FLAGS)
            S: * 1 FETCH (FLAGS (\\Flagged \\Recent))
            S: A3 OK FETCH completed
            """,
        )
    finally:
        await first.close()
        await other.close()


async def test_a_new_mailbox_under_an_old_name_starts_afresh(alice: LineClient) -> None:
    await alice.command("c CREATE Box")
    await append(alice, SIMPLE, "Box", "(\\Seen) ")
    await append(alice, SIMPLE, "Box", "(\\Seen) ")
    assert len(await _flags(alice, "Box")) == 2
    await alice.command("u UNSELECT")
    await alice.command("d DELETE Box")
    await alice.command("c CREATE Box")  # may get the deleted mailbox's id back
    await append(alice, SIMPLE, "Box", "(\\Flagged) ")
    assert await _flags(alice, "Box") == [b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"]


async def test_unused_states_are_bounded_and_evicted_ones_reread(
    imap_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "UNUSED_STATES", 1)
    alice = await logged_in(imap_server)
    try:
        for name in ("A", "B", "C"):
            await alice.command(f"c CREATE {name}")
            await append(alice, SIMPLE, name, "(\\Seen) ")
        for name in ("A", "B", "C"):
            assert len(await _flags(alice, name)) == 1
        await alice.command("u UNSELECT")
        assert len(imap_server.server._unused) == 1  # A and B went; C is kept
        await append(alice, SIMPLE, "A", "(\\Flagged) ")  # while A has no state at all
        assert await _flags(alice, "A") == [
            b"* 1 FETCH (UID 1 FLAGS (\\Seen))",
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))",
        ]
    finally:
        await alice.close()


async def test_flags_are_fetched_whatever_the_order_of_the_items(
    imap_server: RunningServer,
) -> None:
    """FLAGS with UID or THREADID, in either order, and FLAGS alone, each message's own
    (the positional templates of `_fetch_row_items`)."""
    client = await logged_in(imap_server)
    try:
        await append(client, SIMPLE)
        await append(client, SIMPLE, "INBOX", "(\\Flagged $Work) ")
        await append(client, SIMPLE, "INBOX", "(\\Seen) ")
        await client.command("s SELECT INBOX")
        await run_transcript(
            client,
            """
            C: A1 FETCH 1:* (FLAGS UID)
            S: * 1 FETCH (FLAGS (\\Recent) UID 1)
            S: * 2 FETCH (FLAGS (\\Flagged \\Recent $Work) UID 2)
            S: * 3 FETCH (FLAGS (\\Seen \\Recent) UID 3)
            S: A1 OK FETCH completed
            C: A2 FETCH 2 (UID FLAGS THREADID)
            S: * 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent $Work) THREADID NIL)
            S: A2 OK FETCH completed
            C: A3 FETCH 2:3 (FLAGS)
            S: * 2 FETCH (FLAGS (\\Flagged \\Recent $Work))
            S: * 3 FETCH (FLAGS (\\Seen \\Recent))
            S: A3 OK FETCH completed
            C: A4 UID FETCH 3,7 (FLAGS)
            S: * 3 FETCH (UID 3 FLAGS (\\Seen \\Recent))
            S: A4 OK FETCH completed
            """,
        )
    finally:
        await client.close()
