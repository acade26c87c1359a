"""BINARY (RFC 3516): APPEND with literal8 keeps every octet; UNKNOWN-CTE for encodings
the server cannot decode."""

from __future__ import annotations

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import append, crlf

UUENCODED = crlf(
    "Subject: odd\nMIME-Version: 1.0\nContent-Type: text/plain\n"
    "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n"
)


async def test_binary_append_and_unknown_cte(alice: LineClient) -> None:
    await append(alice, UUENCODED)
    await run_transcript(
        alice,
        """
        C: A1 APPEND INBOX ~{10+}
        C: a\x00b\\r\\n\\r\\ncd\x00
        S: A1 OK [APPENDUID {{\\d+}} 2] {{.*}}
        C: s SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 3] {{.*}}
        S: s OK {{.*}}
        C: f1 FETCH 2 (BINARY.PEEK[] RFC822.SIZE)
        S: * 2 FETCH (BINARY[] ~{10}{{\\r\\na\\x00b\\r\\n\\r\\ncd\\x00}} RFC822.SIZE 10)
        S: f1 OK {{.*}}
        C: f2 FETCH 1 BINARY.PEEK[1]
        S: f2 NO [UNKNOWN-CTE] {{.*}}
        C: f3 FETCH 1 BINARY.SIZE[1]
        S: f3 NO [UNKNOWN-CTE] {{.*}}
        C: f4 FETCH 1 BODY.PEEK[1]
        S: * 1 FETCH (BODY[1] {21}{{\\r\\n}}begin 644 a{{\\r\\n}}`{{\\r\\n}}end{{\\r\\n}})
        S: f4 OK {{.*}}
        """,
    )
