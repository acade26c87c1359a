"""SORT and UID SORT (RFC 5256) with ESORT (RFC 5267), DISPLAYFROM/DISPLAYTO (RFC 5957)
and the MODSEQ result of RFC 7162 §3.1.9/§3.1.10."""

from __future__ import annotations

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import append, crlf

MESSAGES = [
    (
        '"10-Jan-2024 12:00:00 +0000"',
        crlf(
            "From: Zed <alice@example.org>\nTo: bob@example.org\n"
            "Date: Tue, 2 Jan 2024 10:00:00 +0000\nSubject: Re: [coi] Hello\n\nbody one\n"
        ),
    ),
    (
        '"09-Jan-2024 12:00:00 +0000"',
        crlf(
            "From: Bob <bob@example.org>\nTo: carol@example.org\nCc: dave@example.org\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: hello (fwd)\n\n"
            "a somewhat longer body two\n"
        ),
    ),
    (
        '"12-Jan-2024 12:00:00 +0000"',
        crlf(
            "From: =?utf-8?q?=C3=84rger?= <carl@example.org>\nSubject: [fwd: Apple]\n\n"
            "three, the longest body of all of them, really\n"
        ),
    ),
    (
        '"08-Jan-2024 12:00:00 +0000"',
        crlf("Date: Wed, 3 Jan 2024 10:00:00 +0000\nSubject: Fwd: Re: apple\n\n4\n"),
    ),
]


async def test_sort_keys_and_esort(alice: LineClient) -> None:
    for when, data in MESSAGES:
        await append(alice, data, extra=f"{when} ")
    await alice.command("s SELECT INBOX")
    by_size = sorted(range(1, 5), key=lambda n: len(MESSAGES[n - 1][1]))
    cases = [
        ("(SUBJECT) UTF-8 ALL", "3 4 1 2"),
        ("(REVERSE SUBJECT) UTF-8 ALL", "1 2 3 4"),
        ("(SUBJECT DATE) UTF-8 ALL", "4 3 2 1"),
        ("(FROM) UTF-8 ALL", "4 1 2 3"),
        ("(DISPLAYFROM) UTF-8 ALL", "4 2 1 3"),
        ("(TO) UTF-8 ALL", "3 4 1 2"),
        ("(DISPLAYTO) US-ASCII ALL", "3 4 1 2"),
        ("(CC) UTF-8 ALL", "1 3 4 2"),
        ("(DATE) UTF-8 ALL", "2 1 4 3"),
        ("(REVERSE DATE) UTF-8 ALL", "3 4 1 2"),
        ("(ARRIVAL) UTF-8 ALL", "4 2 1 3"),
        ("(SIZE) UTF-8 ALL", " ".join(map(str, by_size))),
        ("(REVERSE SIZE) UTF-8 ALL", " ".join(map(str, reversed(by_size)))),
        ("(DATE) UTF-8 FROM bob", "2"),
        ("(DATE) UTF-8 FROM nobody", ""),
    ]
    transcript = "\n".join(
        f"C: k{i} SORT {args}\nS: * SORT{' ' if want else ''}{want}\nS: k{i} OK SORT completed"
        for i, (args, want) in enumerate(cases)
    )
    await run_transcript(alice, transcript)
    await run_transcript(
        alice,
        """
        C: m1 SORT (DATE) UTF-8 MODSEQ 1
        S: * OK [HIGHESTMODSEQ 5] {{.*}}
        S: * SORT 2 1 4 3 (MODSEQ 5)
        S: m1 OK SORT completed
        C: u1 UID SORT (DATE) UTF-8 UID 2:4
        S: * SORT 2 4 3
        S: u1 OK SORT completed
        C: e1 SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "e1") MIN 2 MAX 3 COUNT 4
        S: e1 OK SORT completed
        C: e2 UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL
        S: * ESEARCH (TAG "e2") UID ALL 3,1:2,4
        S: e2 OK SORT completed
        C: a SORT RETURN (ALL) (DATE) UTF-8 MODSEQ 1
        S: * ESEARCH (TAG "a") ALL 2,1,4,3 MODSEQ 5
        S: a OK SORT completed
        C: e3 SORT RETURN (COUNT) (DATE) UTF-8 FROM nobody
        S: * ESEARCH (TAG "e3") COUNT 0
        S: e3 OK SORT completed
        C: e4 SORT RETURN (SAVE MIN) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "e4") MIN 2
        S: e4 OK SORT completed
        C: e5 FETCH $ (UID)
        S: * 2 FETCH (UID 2)
        S: e5 OK {{.*}}
        C: b1 SORT (DATE) KOI8-R ALL
        S: b1 NO [BADCHARSET {{.*}}] {{.*}}
        C: b2 SORT (BOGUS) UTF-8 ALL
        S: b2 BAD {{.*}}
        C: b3 UNSELECT
        S: b3 OK {{.*}}
        C: b4 SORT (DATE) UTF-8 ALL
        S: b4 BAD {{.*}}
        """,
    )
