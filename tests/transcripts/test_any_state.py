"""CAPABILITY, NOOP, LOGOUT and ID in every state (RFC 3501 §6.1, RFC 2971)."""

from __future__ import annotations

from tests.conftest import LineClient, RunningServer, run_transcript

PRE = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS AUTH=PLAIN"
POST = (
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE ESEARCH SEARCHRES BINARY "
    "CONDSTORE QRESYNC SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESORT "
    "CONTEXT=SEARCH CONTEXT=SORT NOTIFY UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE "
    "LIST-EXTENDED LIST-STATUS MULTIAPPEND CATENATE STATUS=SIZE QUOTA QUOTA=RES-STORAGE "
    "PREVIEW OBJECTID "
    "COMPRESS=DEFLATE APPENDLIMIT={{\\d+}}"
    " METADATA METADATA-SERVER COI WEBPUSH"
)


async def test_not_authenticated_state(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    # RFC 3501 §6.2.3: loopback may log in without TLS, STARTTLS is still offered
    await run_transcript(
        client,
        f"""
        S: * OK [CAPABILITY {PRE}] {{{{.*}}}}
        C: a001 CAPABILITY
        S: * CAPABILITY {PRE}
        S: a001 OK {{{{.*}}}}
        C: a002 NOOP
        S: a002 OK {{{{.*}}}}
        C: a003 ID ("name" "test" "version" "1")
        S: * ID ("name" "coi" "version" "{{{{[^"]+}}}}" "vendor" "coi project")
        S: a003 OK {{{{.*}}}}
        C: a004 LOGOUT
        S: * BYE {{{{.*}}}}
        S: a004 OK {{{{.*}}}}
        """,
    )
    assert await client.reader.read() == b""


async def test_authenticated_state(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        f"""
        S: * OK [CAPABILITY {PRE}] {{{{.*}}}}
        C: a001 LOGIN alice@example.org alice-secret
        S: a001 OK [CAPABILITY {POST}] {{{{.*}}}}
        C: a002 CAPABILITY
        S: * CAPABILITY {POST}
        S: a002 OK {{{{.*}}}}
        C: a003 NOOP
        S: a003 OK {{{{.*}}}}
        C: a004 ID NIL
        S: * ID ("name" "coi" "version" "{{{{[^"]+}}}}" "vendor" "coi project")
        S: a004 OK {{{{.*}}}}
        C: a005 LOGOUT
        S: * BYE {{{{.*}}}}
        S: a005 OK {{{{.*}}}}
        """,
    )
    assert await client.reader.read() == b""


async def test_selected_state(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await client.login()
    await client.command("s SELECT INBOX")
    await run_transcript(
        client,
        f"""
        C: a002 CAPABILITY
        S: * CAPABILITY {POST}
        S: a002 OK {{{{.*}}}}
        C: a003 NOOP
        S: a003 OK {{{{.*}}}}
        C: a004 LOGOUT
        S: * BYE {{{{.*}}}}
        S: a004 OK {{{{.*}}}}
        """,
    )
    assert await client.reader.read() == b""


async def test_noop_reports_changes_from_another_session(imap_server: RunningServer) -> None:
    # RFC 3501 §6.1.2: NOOP is the polling command for new messages and flag updates
    client = await LineClient.connect(imap_server)
    await client.login()
    other = await LineClient.connect(imap_server)
    await other.login()
    await client.command("s SELECT INBOX")
    await other.command("s SELECT INBOX")
    await other.send("a APPEND INBOX {6+}\r\nhi\r\n\r\n\r\n")
    assert (await other.until_tagged("a"))[-1].startswith(b"a OK")
    await run_transcript(
        client,
        """
        C: n1 NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: n1 OK {{.*}}
        """,
    )
    await other.command("b STORE 1 +FLAGS.SILENT (\\Flagged)")
    await run_transcript(
        client,
        """
        C: n2 NOOP
        S: * 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)
        S: n2 OK {{.*}}
        """,
    )
    await client.close()
    await other.close()
