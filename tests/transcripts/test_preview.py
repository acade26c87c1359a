# ruff: noqa: E501  (protocol lines are compared whole)
"""FETCH PREVIEW and PREVIEW (LAZY) (RFC 8970), after the RFC's §5 examples: previews are
computed at APPEND; a message stored before previews were kept gets NIL with LAZY and its
preview computed (and kept) without it."""

from __future__ import annotations

import sqlite3

from tests.conftest import LineClient, RunningServer, require_sqlite, run_transcript
from tests.transcripts.helpers import SIMPLE, append, crlf, logged_in

HTML = crlf(
    "From: Bob <bob@example.org>\n"
    "Subject: html\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=b\n"
    "\n"
    "--b\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<html><head><style>p {color: red}</style></head><body><p>Message&nbsp;data\n"
    "from <b>message</b> 3.</p></body></html>\n"
    "--b--\n"
)
IMAGE = crlf(
    "From: Bob <bob@example.org>\n"
    "Subject: picture\n"
    "MIME-Version: 1.0\n"
    "Content-Type: image/png\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "iVBORw0KGgo=\n"
)
LONG = crlf(
    "Subject: long\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n" + "Gr=C3=BC=C3=9Fe   aus\n\n   K=C3=B6ln. " * 30 + "\n"
)


async def _setup(client: LineClient) -> None:
    for message in (SIMPLE, IMAGE, HTML, LONG):
        await append(client, message)
    await client.command("s SELECT INBOX")


async def test_preview_rfc8970_example_1(alice: LineClient) -> None:
    await _setup(alice)
    await run_transcript(
        alice,
        """
        C: A1 CAPABILITY
        S: * CAPABILITY {{.*}} PREVIEW {{.*}}
        S: A1 OK {{.*}}
        C: A2 FETCH 1 (RFC822.SIZE PREVIEW)
        S: * 1 FETCH (RFC822.SIZE 316 PREVIEW "Hello Joe, do you think we can meet at 3:30 tomorrow?")
        S: A2 OK FETCH completed
        C: A3 FETCH 2:3 (PREVIEW UID)
        S: * 2 FETCH (PREVIEW "" UID 2)
        S: * 3 FETCH (PREVIEW "Message data from message 3." UID 3)
        S: A3 OK FETCH completed
        C: A4 UID FETCH 4 PREVIEW
        S: * 4 FETCH (UID 4 PREVIEW {{\\{\\d+\\}\\r\\nGrüße aus Köln\\. .*}}
        S: A4 OK FETCH completed
        """,
    )


async def test_preview_is_at_most_200_characters(alice: LineClient) -> None:
    await _setup(alice)
    await alice.send(b"L FETCH 4 (PREVIEW)\r\n")
    lines = await alice.until_tagged("L")
    head, _, rest = lines[0].partition(b"\r\n")
    text = rest.removesuffix(b")\r\n").decode("utf-8")
    assert head == b"* 4 FETCH (PREVIEW {%d}" % len(text.encode("utf-8"))
    assert len(text) == 200  # RFC 8970 §3.3: SHOULD 200, MUST NOT more than 256
    assert text.startswith("Grüße aus Köln. Grüße aus Köln. ")


async def test_preview_lazy_rfc8970_examples_2_and_3(imap_server: RunningServer) -> None:
    require_sqlite(imap_server, "bodies stored before previews were kept")
    client = await logged_in(imap_server)
    try:
        await _setup(client)
        # messages 3 and 4 as if stored before previews were kept
        db = sqlite3.connect(imap_server.data_dir / "coi.sqlite3")
        with db:
            db.execute(
                "DELETE FROM previews WHERE blob_id IN"
                " (SELECT blob_id FROM messages WHERE uid IN (3, 4))"
            )
        db.close()
        await run_transcript(
            client,
            """
            C: B1 FETCH 1:4 (UID PREVIEW (LAZY))
            S: * 1 FETCH (UID 1 PREVIEW "Hello Joe, do you think we can meet at 3:30 tomorrow?")
            S: * 2 FETCH (UID 2 PREVIEW "")
            S: * 3 FETCH (UID 3 PREVIEW NIL)
            S: * 4 FETCH (UID 4 PREVIEW NIL)
            S: B1 OK FETCH completed
            C: B2 FETCH 3 (PREVIEW)
            S: * 3 FETCH (PREVIEW "Message data from message 3.")
            S: B2 OK FETCH completed
            C: B3 FETCH 3:4 (PREVIEW (lazy))
            S: * 3 FETCH (PREVIEW "Message data from message 3.")
            S: * 4 FETCH (PREVIEW NIL)
            S: B3 OK FETCH completed
            C: C2 SEARCH RETURN (SAVE) SUBJECT "html"
            C: C3 FETCH $ (UID PREVIEW (LAZY))
            S: C2 OK SEARCH completed
            S: * 3 FETCH (UID 3 PREVIEW "Message data from message 3.")
            S: C3 OK FETCH completed
            C: C4 FETCH 1 (PREVIEW (LAZY LAZY)) (CHANGEDSINCE 1)
            S: * OK [HIGHESTMODSEQ 5] Highest
            S: * 1 FETCH (PREVIEW "Hello Joe, do you think we can meet at 3:30 tomorrow?" MODSEQ (2))
            S: C4 OK FETCH completed
            C: C5 FETCH 1 PREVIEW (CHANGEDSINCE 1)
            S: * 1 FETCH (PREVIEW "Hello Joe, do you think we can meet at 3:30 tomorrow?" MODSEQ (2))
            S: C5 OK FETCH completed
            C: C6 FETCH 1 (PREVIEW (EAGER))
            S: C6 BAD {{.*}}
            C: C7 FETCH 1 (PREVIEW ())
            S: C7 BAD {{.*}}
            """,
        )
        # the preview computed by B2 was kept: another session gets it with LAZY too
        other = await logged_in(imap_server)
        try:
            await other.command("e EXAMINE INBOX")
            await run_transcript(
                other,
                """
                C: f UID FETCH 3 (PREVIEW (LAZY))
                S: * 3 FETCH (UID 3 PREVIEW "Message data from message 3.")
                S: f OK FETCH completed
                """,
            )
        finally:
            await other.close()
    finally:
        await client.close()
