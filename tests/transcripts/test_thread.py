"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES on small mailboxes
built after the rules of BASE.6.4.THREAD, with its response format (BASE.7.2.THREAD)."""

from __future__ import annotations

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import append, crlf


def _message(day: int, subject: str, headers: str = "") -> bytes:
    return crlf(f"Date: {day:02d} Jan 2024 10:00:00 +0000\nSubject: {subject}\n{headers}\nbody\n")


async def test_thread_orderedsubject(alice: LineClient) -> None:
    for day, subject in ((2, "A"), (4, "Re: A"), (3, "B"), (5, "re: [list] a"), (1, "C")):
        await append(alice, _message(day, subject))
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: A283 THREAD ORDEREDSUBJECT UTF-8 ALL
        S: * THREAD (5)(1 (2)(4))(3)
        S: A283 OK THREAD completed
        C: A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"
        S: * THREAD
        S: A284 OK THREAD completed
        C: A285 UID THREAD orderedsubject utf-8 1:2
        S: * THREAD (1 2)
        S: A285 OK THREAD completed
        C: A286 THREAD ORDEREDSUBJECT UTF-8 SUBJECT b
        S: * THREAD (3)
        S: A286 OK THREAD completed
        C: A287 THREAD SUBJECTS UTF-8 ALL
        S: A287 BAD {{.*}}
        C: A288 THREAD REFERENCES KOI8-R ALL
        S: A288 NO [BADCHARSET (US-ASCII UTF-8)] {{.*}}
        """,
    )


async def test_thread_references(alice: LineClient) -> None:
    messages = [
        (1, "Topic", "Message-ID: <1@x>\n"),
        (2, "Re: Topic", "Message-ID: <2@x>\nIn-Reply-To: <1@x> (from someone)\n"),
        (3, "Re: Topic", "Message-ID: <3@x>\nReferences: <1@x>\n <2@x>\n"),
        (4, "Re: Topic", "Message-ID: <4@x>\nReferences: <1@x>\n"),
        (5, "Other", "Message-ID: <5@x>\nReferences: <missing@x>\n"),
        (6, "Re: Other", "Message-ID: <6@x>\nReferences: <missing@x>\n"),
        (7, "Quoted", 'Message-ID: <"7"@x>\n'),
        (8, "Re: Quoted", "Message-ID: <8@x>\nReferences: <7@x> <8@x>\n"),
        (1, "Re: Topic", "Message-ID: <9@x>\n"),  # no references, a reply subject
        (10, "Lonely", ""),
        (11, "Lonely", "Message-ID: <4@x>\n"),  # a duplicate Message-ID: its own thread
    ]
    for day, subject, headers in messages:
        await append(alice, _message(day, subject, headers))
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: A285 THREAD REFERENCES UTF-8 ALL
        S: * THREAD (1 (9)(2 3)(4))((5)(6))(7 8)((10)(11))
        S: A285 OK THREAD completed
        C: A286 UID THREAD REFERENCES UTF-8 UID 2:8
        S: * THREAD ((2 3)(4))((5)(6))(7 8)
        S: A286 OK THREAD completed
        C: A287 THREAD REFERENCES UTF-8 SUBJECT nothing
        S: * THREAD
        S: A287 OK THREAD completed
        """,
    )
