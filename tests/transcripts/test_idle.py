"""IDLE (RFC 2177): another connection's APPEND, flag change and EXPUNGE wake the idler."""

from __future__ import annotations

from tests.conftest import RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, logged_in


async def test_idle_woken_by_append_from_second_connection(imap_server: RunningServer) -> None:
    idler = await logged_in(imap_server)
    other = await logged_in(imap_server)
    await append(idler, SIMPLE)
    await idler.command("s SELECT INBOX")
    await run_transcript(
        idler,
        """
        C: A001 IDLE
        S: + {{.*}}
        """,
    )
    await append(other, SIMPLE)
    await run_transcript(
        idler,
        """
        S: * 2 EXISTS
        S: * 2 RECENT
        """,
    )
    await other.command("o SELECT INBOX")
    await other.command("p STORE 1 +FLAGS.SILENT (\\Deleted)")
    await run_transcript(idler, "S: * 1 FETCH (FLAGS (\\Deleted \\Recent) UID 1)")
    await other.command("q EXPUNGE")
    await run_transcript(
        idler,
        """
        S: * 1 EXPUNGE
        C: DONE
        S: A001 OK {{.*}}
        C: A002 IDLE
        S: + {{.*}}
        C: done
        S: A002 OK {{.*}}
        C: A003 IDLE
        S: + {{.*}}
        C: NOT-DONE
        S: A003 BAD {{.*}}
        C: A004 NOOP
        S: A004 OK {{.*}}
        """,
    )
    await idler.close()
    await other.close()


async def test_idle_in_authenticated_state_and_not_before(imap_server: RunningServer) -> None:
    client = await logged_in(imap_server)
    await run_transcript(
        client,
        """
        C: A1 IDLE
        S: + {{.*}}
        C: DONE
        S: A1 OK {{.*}}
        """,
    )
    await client.close()
