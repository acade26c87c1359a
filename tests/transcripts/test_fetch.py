# ruff: noqa: E501  (protocol lines are compared whole)
"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2) with BINARY (RFC 3516), including
the RFC 3501 §8 sample exchange on a reproduction of its message."""

from __future__ import annotations

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import (
    MULTIPART,
    RFC8_BODY_STRUCTURE,
    RFC8_DATE,
    RFC8_ENVELOPE,
    RFC8_MESSAGE,
    append,
)

NL = "{{\\r\\n}}"
RFC8_FULL = (
    f"FLAGS (\\Seen) INTERNALDATE {RFC8_DATE} RFC822.SIZE 4286 {RFC8_ENVELOPE} "
    f"BODY {RFC8_BODY_STRUCTURE}"
)
BODY_LINES = "(?:x+\\r\\n)+(?:y+\\r\\n)+"
HEADER_RE = "{{\\r\\n(?:[^\\r\\n]+\\r\\n)+\\r\\n}}"


async def _setup(client: LineClient) -> None:
    await append(client, RFC8_MESSAGE, extra=f"(\\Seen) {RFC8_DATE} ")
    await append(client, MULTIPART)
    # the first SELECT takes \Recent, so the second one shows none
    await client.command("x SELECT INBOX")
    await client.command("s SELECT INBOX")


async def test_rfc3501_section_8_example(alice: LineClient) -> None:
    await _setup(alice)
    await run_transcript(
        alice,
        f"""
        C: a003 fetch 1 full
        S: * 1 FETCH ({RFC8_FULL})
        S: a003 OK {{{{.*}}}}
        C: a004 fetch 1 body[header]
        S: * 1 FETCH (BODY[HEADER] {{1258}}{HEADER_RE})
        S: a004 OK {{{{.*}}}}
        C: a005 store 1 +flags \\deleted
        S: * 1 FETCH (FLAGS (\\Deleted \\Seen))
        S: a005 OK {{{{.*}}}}
        """,
    )


async def test_macros_and_simple_items(alice: LineClient) -> None:
    await append(alice, RFC8_MESSAGE, extra=f"(\\Seen) {RFC8_DATE} ")
    await alice.command("s SELECT INBOX")
    await alice.command("x EXAMINE INBOX")
    await run_transcript(
        alice,
        f"""
        C: f1 FETCH 1 ALL
        S: * 1 FETCH (FLAGS (\\Seen) INTERNALDATE {RFC8_DATE} RFC822.SIZE 4286 {RFC8_ENVELOPE})
        S: f1 OK {{{{.*}}}}
        C: f2 FETCH 1 FAST
        S: * 1 FETCH (FLAGS (\\Seen) INTERNALDATE {RFC8_DATE} RFC822.SIZE 4286)
        S: f2 OK {{{{.*}}}}
        C: f3 FETCH 1 FULL
        S: * 1 FETCH ({RFC8_FULL})
        S: f3 OK {{{{.*}}}}
        C: f4 FETCH 1 (UID FLAGS RFC822.SIZE INTERNALDATE)
        S: * 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 4286 INTERNALDATE {RFC8_DATE})
        S: f4 OK {{{{.*}}}}
        C: f5 FETCH 1 BODYSTRUCTURE
        S: * 1 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL))
        S: f5 OK {{{{.*}}}}
        C: f6 UID FETCH 1 ENVELOPE
        S: * 1 FETCH (UID 1 {RFC8_ENVELOPE})
        S: f6 OK {{{{.*}}}}
        C: f7 FETCH 1 RFC822.SIZE
        S: * 1 FETCH (RFC822.SIZE 4286)
        S: f7 OK {{{{.*}}}}
        C: f8 UID FETCH 1:* UID
        S: * 1 FETCH (UID 1)
        S: f8 OK {{{{.*}}}}
        C: f9 UID FETCH 5:7 FLAGS
        S: f9 OK {{{{.*}}}}
        C: g1 FETCH 2 FLAGS
        S: g1 BAD {{{{.*}}}}
        C: g2 FETCH 1 (FLAGS BOGUS)
        S: g2 BAD {{{{.*}}}}
        """,
    )


async def test_body_sections_and_partials(alice: LineClient) -> None:
    await _setup(alice)
    await run_transcript(
        alice,
        f"""
        C: b1 FETCH 1 BODY.PEEK[HEADER.FIELDS (From Subject)]
        S: * 1 FETCH (BODY[HEADER.FIELDS (From Subject)] {{93}}{NL}From: Terry Gray <gray@cac.washington.edu>{NL}Subject: IMAP4rev1 WG mtg summary and minutes{NL}{NL})
        S: b1 OK {{{{.*}}}}
        C: b2 FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (Subject Date From To Message-ID Content-Type)]
        S: * 2 FETCH (BODY[HEADER.FIELDS.NOT (Subject Date From To Message-ID Content-Type)] {{21}}{NL}MIME-Version: 1.0{NL}{NL})
        S: b2 OK {{{{.*}}}}
        C: b3 FETCH 2 BODY.PEEK[1]
        S: * 2 FETCH (BODY[1] "Sch=C3=B6ne Gr=C3=BC=C3=9Fe")
        S: b3 OK {{{{.*}}}}
        C: b4 FETCH 2 BODY.PEEK[2.MIME]
        S: * 2 FETCH (BODY[2.MIME] {{138}}{NL}Content-Type: application/octet-stream; name=a.bin{NL}Content-Disposition: attachment; filename=a.bin{NL}Content-Transfer-Encoding: base64{NL}{NL})
        S: b4 OK {{{{.*}}}}
        C: b5 FETCH 2 BODY.PEEK[2]<2.4>
        S: * 2 FETCH (BODY[2]<2> "ECAw")
        S: b5 OK {{{{.*}}}}
        C: b6 FETCH 1 BODY.PEEK[TEXT]<0.10>
        S: * 1 FETCH (BODY[TEXT]<0> "xxxxxxxxxx")
        S: b6 OK {{{{.*}}}}
        C: b7 FETCH 1 BODY.PEEK[]<4280.100>
        S: * 1 FETCH (BODY[]<4280> {{6}}{NL}yyyy{NL})
        S: b7 OK {{{{.*}}}}
        C: b8 FETCH 1 BODY.PEEK[]<5000.10>
        S: * 1 FETCH (BODY[]<5000> "")
        S: b8 OK {{{{.*}}}}
        C: b9 FETCH 2 (BODY.PEEK[2.1] BODY.PEEK[3])
        S: * 2 FETCH (BODY[2.1] "" BODY[3] "")
        S: b9 OK {{{{.*}}}}
        C: c1 FETCH 2 BODY[TEXT]<0.8>
        S: * 2 FETCH (BODY[TEXT]<0> "preamble" FLAGS (\\Seen))
        S: c1 OK {{{{.*}}}}
        C: c2 FETCH 2 RFC822.HEADER
        S: * 2 FETCH (RFC822.HEADER {{236}}{HEADER_RE})
        S: c2 OK {{{{.*}}}}
        C: c3 FETCH 1 RFC822.TEXT
        S: * 1 FETCH (RFC822.TEXT {{3028}}{{{{\\r\\n{BODY_LINES}}}}})
        S: c3 OK {{{{.*}}}}
        C: c4 FETCH 1 RFC822
        S: * 1 FETCH (RFC822 {{4286}}{HEADER_RE}{{{{{BODY_LINES}}}}})
        S: c4 OK {{{{.*}}}}
        C: c5 FETCH 1 (BODY[] BODY[HEADER] BODY[TEXT] BODY[1] BODY[MIME])
        S: c5 BAD {{{{.*}}}}
        """,
    )


async def test_implicit_seen(alice: LineClient) -> None:
    # RFC 3501 §6.4.5: BODY[...] sets \Seen (and the change is reported); BODY.PEEK,
    # RFC822.HEADER and BINARY.PEEK do not; RFC822 and RFC822.TEXT do
    for _ in range(4):
        await append(alice, MULTIPART)
    await alice.command("x SELECT INBOX")
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: i1 FETCH 1:4 (BODY.PEEK[] RFC822.HEADER BINARY.PEEK[1] RFC822.SIZE)
        S: * 1 FETCH (BODY[] {{.*}} RFC822.HEADER {{.*}} BINARY[1] {{.*}} RFC822.SIZE 531)
        S: * 2 FETCH (BODY[] {{.*}} RFC822.HEADER {{.*}} BINARY[1] {{.*}} RFC822.SIZE 531)
        S: * 3 FETCH (BODY[] {{.*}} RFC822.HEADER {{.*}} BINARY[1] {{.*}} RFC822.SIZE 531)
        S: * 4 FETCH (BODY[] {{.*}} RFC822.HEADER {{.*}} BINARY[1] {{.*}} RFC822.SIZE 531)
        S: i1 OK {{.*}}
        C: i2 FETCH 1:4 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: * 2 FETCH (FLAGS ())
        S: * 3 FETCH (FLAGS ())
        S: * 4 FETCH (FLAGS ())
        S: i2 OK {{.*}}
        C: i3 FETCH 1 RFC822.TEXT
        S: * 1 FETCH (RFC822.TEXT {{.*}} FLAGS (\\Seen))
        S: i3 OK {{.*}}
        C: i4 FETCH 2 (FLAGS BODY[HEADER])
        S: * 2 FETCH (FLAGS (\\Seen) BODY[HEADER] {{.*}})
        S: i4 OK {{.*}}
        C: i5 UID FETCH 3 BINARY[2]
        S: * 3 FETCH (UID 3 BINARY[2] ~{5}{{\\r\\n\\x00\\x01\\x02\\x03\\x04}} FLAGS (\\Seen))
        S: i5 OK {{.*}}
        C: i6 FETCH 4 RFC822
        S: * 4 FETCH (RFC822 {{.*}} FLAGS (\\Seen))
        S: i6 OK {{.*}}
        C: i7 FETCH 1:4 BODY[1]
        S: * 1 FETCH (BODY[1] "Sch=C3=B6ne Gr=C3=BC=C3=9Fe")
        S: * 2 FETCH (BODY[1] "Sch=C3=B6ne Gr=C3=BC=C3=9Fe")
        S: * 3 FETCH (BODY[1] "Sch=C3=B6ne Gr=C3=BC=C3=9Fe")
        S: * 4 FETCH (BODY[1] "Sch=C3=B6ne Gr=C3=BC=C3=9Fe")
        S: i7 OK {{.*}}
        C: i8 EXAMINE INBOX
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS {{.*}}
        S: * 4 EXISTS
        S: * 0 RECENT
        S: * OK [PERMANENTFLAGS ()] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 5] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: i8 OK [READ-ONLY] {{.*}}
        """,
    )


async def test_binary(alice: LineClient) -> None:
    await append(alice, MULTIPART)
    await alice.command("x EXAMINE INBOX")
    await run_transcript(
        alice,
        """
        C: n1 FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2])
        S: * 1 FETCH (BINARY.SIZE[1] 15 BINARY.SIZE[2] 5)
        S: n1 OK {{.*}}
        C: n2 FETCH 1 BINARY.PEEK[1]
        S: * 1 FETCH (BINARY[1] {15}{{\\r\\n}}Schöne Grüße)
        S: n2 OK {{.*}}
        C: n3 FETCH 1 BINARY.PEEK[2]<1.2>
        S: * 1 FETCH (BINARY[2]<1> "\x01\x02")
        S: n3 OK {{.*}}
        C: n4 FETCH 1 BINARY.PEEK[2]<3.10>
        S: * 1 FETCH (BINARY[2]<3> "\x03\x04")
        S: n4 OK {{.*}}
        """,
    )
