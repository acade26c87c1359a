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


QUOTED_PRINTABLE = crlf(
    "Subject: qp\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "foo  \nbar= \nbaz=3D=\n\tend\t\nlast=20 \nlow=e9=\n"
)


async def test_binary_quoted_printable_by_rfc2045(alice: LineClient) -> None:
    """RFC 2045 §6.7: trailing whitespace is deleted on decode (rule 3), `=` followed by
    whitespace at the end of a line is a soft line break, hard line breaks are CRLF;
    BINARY.SIZE and partial BINARY fetches count the decoded octets (RFC 3516 §4.2)."""
    await append(alice, QUOTED_PRINTABLE)
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: f1 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])
        S: * 1 FETCH (BINARY.SIZE[1] 29 BINARY[1] {29}{{\\r\\n}}foo{{\\r\\n}}barbaz={{.*}})
        S: f1 OK FETCH completed
        C: f3 FETCH 1 BINARY.PEEK[1]<12.17>
        S: * 1 FETCH (BINARY[1]<12> {17}{{\\r\\n\\tend\\r\\nlast \\r\\nlow.}})
        S: f3 OK FETCH completed
        C: f2 FETCH 1 (BINARY.PEEK[1]<5.7> BINARY.PEEK[1]<18.7>)
        S: * 1 FETCH (BINARY[1]<5> "barbaz=" BINARY[1]<18> {7}{{\\r\\n}}last {{\\r\\n}})
        S: f2 OK FETCH completed
        """,
    )
