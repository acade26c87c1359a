"""BINARY (RFC 3516): APPEND with literal8 keeps every octet; UNKNOWN-CTE for encodings
the server cannot decode."""

from __future__ import annotations

import base64

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import append, crlf

UUENCODED = crlf(
    "Subject: odd\nMIME-Version: 1.0\nContent-Type: text/plain\n"
    "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n"
)


async def test_binary_append_and_unknown_cte(alice: LineClient) -> None:
    """The NUL in a header line of the served form is 0x80 (RFC 3516 §6; `.` below)."""
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
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: s OK {{.*}}
        C: f1 FETCH 2 (BINARY.PEEK[] BINARY.SIZE[])
        S: * 2 FETCH (BINARY[] ~{10}{{\\r\\na\\x00b\\r\\n\\r\\ncd\\x00}} BINARY.SIZE[] 10)
        S: f1 OK {{.*}}
        C: f0 FETCH 2 (RFC822.SIZE BODY.PEEK[])
        S: * 2 FETCH (RFC822.SIZE 46 BODY[] {46}{{\\r\\na.b\\r\\n}}B64CTE{{\\r\\n\\r\\n}}Y2QA)
        S: f0 OK {{.*}}
        C: f5 FETCH 2 BODY.PEEK[TEXT]
        S: * 2 FETCH (BODY[TEXT] "Y2QA")
        S: f5 OK {{.*}}
        C: f2 FETCH 1 BINARY.PEEK[1]
        S: f2 NO [UNKNOWN-CTE] {{.*}}
        C: f3 FETCH 1 BINARY.SIZE[1]
        S: f3 NO [UNKNOWN-CTE] {{.*}}
        C: f4 FETCH 1 BODY.PEEK[1]
        S: * 1 FETCH (BODY[1] {21}{{\\r\\n}}begin 644 a{{\\r\\n}}`{{\\r\\n}}end{{\\r\\n}})
        S: f4 OK {{.*}}
        """.replace("B64CTE", "Content-Transfer-Encoding: base64"),
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


NUL_PART = (
    b"From: a@example.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
    b"--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--X\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\nab\0cd\r\n"
    b"--X\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + b"x" * 29 + b"\0" + b"y" * 30 + b"\r\n"
    b"--X--\r\n"
)


async def test_body_of_a_part_with_nul_is_sent_as_base64(alice: LineClient) -> None:
    """RFC 3516 §6: IMAP4rev1 strings cannot carry NUL, so BODYSTRUCTURE describes a part
    holding NUL as BASE64 (with the size and lines of that form) and BODY[n] returns that
    form; BINARY[n] and BINARY.SIZE[n] give the octets as stored."""
    await alice.send(b"A1 APPEND INBOX ~{%d+}\r\n" % len(NUL_PART) + NUL_PART + b"\r\n")
    assert (await alice.until_tagged("A1"))[-1].startswith(b"A1 OK")
    await alice.command("s SELECT INBOX")
    b64 = base64.b64encode(b"x" * 29 + b"\0" + b"y" * 30).decode()
    structure = (
        '(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 2 0 NIL NIL NIL NIL)'
        '("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 8 NIL NIL NIL NIL)'
        '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "BASE64" 82 1 NIL NIL NIL NIL)'
        ' "MIXED" ("BOUNDARY" "X") NIL NIL NIL)'
    )
    binary = "BINARY.SIZE[2] 5 BINARY[2] ~{5}{{\\r\\n}}ab{{\\x00}}cd"
    await run_transcript(
        alice,
        f"""
        C: f1 FETCH 1 (BODYSTRUCTURE)
        S: * 1 FETCH (BODYSTRUCTURE {structure})
        S: f1 OK FETCH completed
        C: f2 FETCH 1 (BODY.PEEK[2] BODY.PEEK[2]<2.3> BINARY.SIZE[2] BINARY.PEEK[2])
        S: * 1 FETCH (BODY[2] "YWIAY2Q=" BODY[2]<2> "IAY" {binary})
        S: f2 OK FETCH completed
        C: f3 FETCH 1 (BODY.PEEK[3])
        S: * 1 FETCH (BODY[3] {{82}}{{{{\\r\\n}}}}{b64[:76]}{{{{\\r\\n}}}}{b64[76:]})
        S: f3 OK FETCH completed
        """,
    )


NUL_SERVED = (
    b"From: a@example.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
    b"--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--X\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\nYWIAY2Q=\r\n"
    b"--X\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(b"x" * 29 + b"\0" + b"y" * 30).replace(b"\n", b"\r\n")
    + b"--X--\r\n"
)


def _literal(data: str) -> str:
    """A literal as a transcript `S:` line shows it (CRLF written as a pattern)."""
    return "{" + str(len(data)) + "}" + ("\r\n" + data).replace("\r\n", "{{\\r\\n}}")


async def test_whole_message_of_a_part_with_nul_is_the_converted_form(
    alice: LineClient,
) -> None:
    """Issue 15 item 4: BODY[], RFC822, BODY[TEXT] and BODY[n.MIME] of a message with a
    NUL part carry no NUL either (RFC 3501 §4.3, RFC 3516 §6): they are cut from the form
    BODYSTRUCTURE describes (that part in base64, its header saying so), and RFC822.SIZE
    and SEARCH LARGER count that form; BINARY[] and BINARY[n] keep the stored octets."""
    await alice.send(b"A1 APPEND INBOX ~{%d+}\r\n" % len(NUL_PART) + NUL_PART + b"\r\n")
    assert (await alice.until_tagged("A1"))[-1].startswith(b"A1 OK")
    await alice.command("s SELECT INBOX")
    served = NUL_SERVED.decode()
    whole, size = _literal(served), len(NUL_SERVED)
    text = _literal(served[served.index("\r\n\r\n") + 4 :])
    cte = "Content-Transfer-Encoding: base64\r\n\r\n"
    mime2 = _literal("Content-Type: application/octet-stream\r\n" + cte)
    mime3 = _literal("Content-Type: text/plain; charset=utf-8\r\n" + cte)
    binary = "BINARY[2] ~{5}{{\\r\\n}}ab{{\\x00}}cd"
    await run_transcript(
        alice,
        f"""
        C: f1 FETCH 1 (RFC822.SIZE BODY.PEEK[])
        S: * 1 FETCH (RFC822.SIZE {size} BODY[] {whole})
        S: f1 OK FETCH completed
        C: f2 FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[2.MIME] BODY.PEEK[3.MIME])
        S: * 1 FETCH (BODY[TEXT] {text} BODY[2.MIME] {mime2} BODY[3.MIME] {mime3})
        S: f2 OK FETCH completed
        C: f3 FETCH 1 (BINARY.SIZE[] BINARY.SIZE[2] {binary.split(" ")[0].replace("[", ".PEEK[")})
        S: * 1 FETCH (BINARY.SIZE[] {len(NUL_PART)} BINARY.SIZE[2] 5 {binary})
        S: f3 OK FETCH completed
        C: s1 SEARCH LARGER {size - 1}
        S: * SEARCH 1
        S: s1 OK SEARCH completed
        C: s2 SEARCH LARGER {size}
        S: * SEARCH
        S: s2 OK SEARCH completed
        C: f4 FETCH 1 RFC822
        S: * 1 FETCH (RFC822 {whole} FLAGS (\\Seen \\Recent))
        S: f4 OK FETCH completed
        """,
    )
