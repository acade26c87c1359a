"""CATENATE (RFC 4469): APPEND of TEXT literals and IMAP URLs (RFC 5092) naming messages
and parts in the user's own mailboxes; BADURL and TOOBIG (§4); with MULTIAPPEND all or
nothing. The examples of RFC 4469 appendix A, adapted to our UIDs and UIDVALIDITY."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.conftest import LineClient, RunningServer, run_transcript, start_server
from tests.transcripts.helpers import append, crlf, logged_in

BOUNDARY = "------------030308070208000400050907"
DRAFT = crlf(
    "Return-Path: <bar@example.org>\n"
    "Message-ID: <419399E1.6000505@example.org>\n"
    "Date: Thu, 12 Nov 2004 16:57:05 +0000\n"
    "From: Bob Ar <bar@example.org>\n"
    "MIME-Version: 1.0\n"
    "To: foo@example.net\n"
    "Subject: About our holiday trip\n"
    "Content-Type: multipart/mixed;\n"
    f'              boundary="{BOUNDARY}"\n'
    "\n"
    f"--{BOUNDARY}\n"
    "Content-Type: text/plain; charset=us-ascii; format=flowed\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "Our travel agent has sent the schedule.\n"
    "\n"
    "Cheers,\n"
    "Bob\n"
    f"--{BOUNDARY}\n"
    "Content-Type: application/x-zip-compressed; name=schedule.zip\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "UEsDBBQAAAAIAAAAIQBvgIb3AAAAAAAAAAAAAAAA\n"
    f"--{BOUNDARY}--\n"
)
HEADER, _, BODY = DRAFT.partition(b"\r\n\r\n")
HEADER += b"\r\n\r\n"
PART1_MIME = crlf("Content-Type: text/plain; charset=us-ascii; format=flowed\n"
                  "Content-Transfer-Encoding: 7bit\n\n")  # fmt: skip
PART1 = crlf("Our travel agent has sent the schedule.\n\nCheers,\nBob")
PART2_MIME = crlf(
    "Content-Type: application/x-zip-compressed; name=schedule.zip\n"
    "Content-Transfer-Encoding: base64\n\n"
)
PART2 = b"UEsDBBQAAAAIAAAAIQBvgIb3AAAAAAAAAAAAAAAA"
OTHER = crlf("From: carol@example.org\nSubject: the other one\n\nanother message\n")
SEP = f"\r\n--{BOUNDARY}\r\n".encode()
END = f"\r\n--{BOUNDARY}--\r\n".encode()
assert len(SEP) == 42 and len(END) == 44 and PART1_MIME in DRAFT and PART2 in DRAFT


def esc(data: bytes) -> str:
    return data.decode().replace("\r\n", "\\r\\n")


async def uidvalidity(client: LineClient, mailbox: str) -> int:
    lines = await client.command(f"v STATUS {mailbox} (UIDVALIDITY)")
    found = re.search(rb"UIDVALIDITY (\d+)", lines[0])
    assert found is not None, lines
    return int(found.group(1))


def literal_of(line: bytes, name: bytes) -> bytes:
    """The string following `name` in a FETCH response line (literals folded in)."""
    quoted = re.search(re.escape(name) + rb' "((?:[^"\\]|\\.)*)"', line)
    if quoted is not None:
        return re.sub(rb"\\(.)", rb"\1", quoted.group(1))
    at = line.index(name + b" {") + len(name) + 2
    end = line.index(b"}\r\n", at)
    return line[end + 3 : end + 3 + int(line[at:end])]


async def body(client: LineClient, mailbox: str, uid: int) -> bytes:
    await client.command(f"x EXAMINE {mailbox}")
    lines = await client.command(f"f UID FETCH {uid} BODY.PEEK[]")
    await client.command("u UNSELECT")
    return literal_of(lines[0], b"BODY[]")


async def drafts(client: LineClient) -> int:
    await append(client, DRAFT, "Drafts")  # UID 1
    await append(client, OTHER, "Drafts")  # UID 2
    return await uidvalidity(client, "Drafts")


async def test_example_1_replace_attachment(alice: LineClient) -> None:
    """Appendix A example 1: header, part 1 and a whole other message by URL."""
    v = await drafts(alice)
    url = f"/Drafts;UIDVALIDITY={v}/;UID=1"
    head = f"{url}/;section=HEADER"
    await run_transcript(
        alice,
        f"""
        C: A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "{head}" TEXT {{42}}
        S: + Ready for literal data
        C: {esc(SEP)} URL "{url}/;section=1.MIME" URL "{url}/;section=1" TEXT {{42}}
        S: + Ready for literal data
        C: {esc(SEP)} URL "/Drafts;UIDVALIDITY={v}/;UID=2" TEXT {{44}}
        S: + Ready for literal data
        C: {esc(END)})
        S: A003 OK [APPENDUID {v} 3] APPEND completed
        """,
    )
    want = HEADER + SEP + PART1_MIME + PART1 + SEP + OTHER + END
    assert await body(alice, "Drafts", 3) == want
    # no \\Seen was set on the source (§3); the new message has the flags given
    await alice.command("F1 EXAMINE Drafts")
    await run_transcript(
        alice,
        """
        C: F2 UID FETCH 1:3 FLAGS
        S: * 1 FETCH (UID 1 FLAGS (\\Recent))
        S: * 2 FETCH (UID 2 FLAGS (\\Recent))
        S: * 3 FETCH (UID 3 FLAGS (\\Seen \\Draft \\Recent $MDNSent))
        S: F2 OK {{.*}}
        """,
    )


async def test_example_2_text_first_and_mixed_case_keywords(alice: LineClient) -> None:
    """Appendix A example 2: a TEXT literal first, then "Section=" (keywords are
    case-insensitive) and APPENDUID (RFC 4315)."""
    v = await drafts(alice)
    text = HEADER + BODY[: BODY.index(PART1) + len(PART1)] + SEP
    url = f"/Drafts;UIDVALIDITY={v}/;UID=1"
    await run_transcript(
        alice,
        f"""
        C: A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT {{{len(text)}}}
        S: + Ready for literal data
        C: {esc(text)} URL "{url}/;Section=2.MIME" URL "{url}/;Section=2" TEXT {{44}}
        S: + Ready for literal data
        C: {esc(END)})
        S: A003 OK [APPENDUID {v} 3] APPEND completed
        """,
    )
    await alice.command("A004 SELECT Drafts")
    lines = await alice.command("A005 UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert lines[-1].startswith(b"A005 OK"), lines
    assert await body(alice, "Drafts", 3) == text + PART2_MIME + PART2 + END


async def test_example_4_badurl_stores_nothing(alice: LineClient) -> None:
    """Appendix A example 4: a digest whose second URL names no message fails with the
    BADURL response code holding that URL, bare (errata 4046), and nothing is stored."""
    await append(alice, OTHER)  # INBOX UID 1
    v = await uidvalidity(alice, "INBOX")
    head = crlf("From: foo@example.org\nSubject: Digest\n"
                f'Content-Type: multipart/digest; boundary="{BOUNDARY}"\n\n')  # fmt: skip
    bad = f"/INBOX;UIDVALIDITY={v}/;UID=113330/;section=1.5.9"
    await run_transcript(
        alice,
        f"""
        C: A003 APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT {{{len(head) - 2}}}
        S: + Ready for literal data
        C: {esc(head[:-2])} URL "/INBOX;UIDVALIDITY={v}/;UID=1" TEXT {{42}}
        S: + Ready for literal data
        C: {esc(SEP)} URL "{bad}" TEXT {{42}}
        S: + Ready for literal data
        C: {esc(SEP)} URL "/INBOX;UIDVALIDITY={v}/;UID=1" TEXT {{44}}
        S: + Ready for literal data
        C: {esc(END)})
        S: A003 NO [BADURL {bad}] {{{{.*}}}}
        C: A004 STATUS Sent (MESSAGES)
        S: * STATUS Sent (MESSAGES 0)
        S: A004 OK STATUS completed
        """,
    )


async def test_bad_urls(imap_server: RunningServer) -> None:
    """BADURL for a URL that is not the user's own message: another user's UIDVALIDITY,
    an absolute or network-path URL naming another user, a mailbox path that is not
    ours, a missing UID or section, URLAUTH, bad %-encoding; a good one works."""
    alice = await logged_in(imap_server)
    bob = await logged_in(imap_server, "bob@example.org")
    await append(bob, OTHER)
    bob_v = await uidvalidity(bob, "INBOX")
    await append(alice, DRAFT)
    v = await uidvalidity(alice, "INBOX")
    # UIDVALIDITY is unique per database: on a sharded store alice and bob (two shards)
    # may have the same, and then the first URL names alice's own INBOX
    same = v == bob_v and os.environ.get("COI_TEST_STORE") == "sharded"
    assert v != bob_v or same
    bad = [
        f"/INBOX;UIDVALIDITY={bob_v}/;UID=1",  # bob's INBOX is not ours
        f"imap://bob@example.org/INBOX;UIDVALIDITY={bob_v}/;UID=1",
        f"imap://alice@example.org/INBOX;UIDVALIDITY={v}/;UID=1",  # absolute: out of scope
        f"//bob@example.org/INBOX;UIDVALIDITY={bob_v}/;UID=1",
        "/user/bob/INBOX/;UID=1",
        "/bob@example.org/INBOX/;UID=1",
        f"/INBOX;UIDVALIDITY={v + 1}/;UID=1",  # UIDVALIDITY mismatch
        f"/INBOX;UIDVALIDITY={v}/;UID=2",  # no such UID
        f"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=3",  # no such part
        f"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1.HEADER",  # not message/rfc822
        f"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=MIME",
        f"/INBOX;UIDVALIDITY={v}/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous",
        f"/INBOX;UIDVALIDITY={v}/;UID=1/;URLAUTH=anonymous:internal:0123456789abcdef",
        "/INBOX/;UID=0",
        "/Nope/;UID=1",
        "/%FF/;UID=1",
        ";UID=1",  # against imap://alice@server/ (RFC 3986 §5.2): no mailbox
        "../../user/bob/INBOX/;UID=1",  # dot segments stop at the root
        "",
    ][1 if same else 0 :]
    for i, url in enumerate(bad):
        lines = await alice.command(f'B{i} APPEND Drafts CATENATE (URL "{url}")')
        want = f"B{i} NO [BADURL {url or '%20'}] ".encode()
        assert lines[-1].startswith(want), (url, lines)
    # a "]" in the URL is %-encoded in the code, so it cannot end it early
    lines = await alice.command('C1 APPEND Drafts CATENATE (URL "/a]b/;UID=1")')
    assert lines[-1].startswith(b"C1 NO [BADURL /a%5Db/;UID=1] "), lines
    good = [
        (f"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=1", PART1),
        ("/inbox/;uid=1/;section=2.MIME", PART2_MIME),  # INBOX in any case
        ("/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject%20To)",
         crlf("To: foo@example.net\nSubject: About our holiday trip\n\n")),
        ("/INBOX/;UID=1/;SECTION=1/;PARTIAL=4.6", PART1[4:10]),
        ("/INBOX/;UID=1/;SECTION=2/;PARTIAL=30", PART2[30:]),
        ("/INBOX/;UID=1/;SECTION=TEXT", BODY),
        ("INBOX/;UID=1/;SECTION=1", PART1),  # relative to imap://alice@server/
    ]  # fmt: skip
    for i, (url, want_bytes) in enumerate(good, start=2):
        lines = await alice.command(f'G{i} APPEND Drafts CATENATE (URL "{url}")')
        assert lines[-1].startswith(b"G%d OK [APPENDUID " % i), (url, lines)
        uid = int(lines[-1].split(b"]")[0].split()[-1])
        assert await body(alice, "Drafts", uid) == want_bytes, url
    # RFC 4469 §3: with a mailbox selected the base is imap://user@server/mailbox
    await alice.command("c1 CREATE Archive/2024")
    await append(alice, OTHER, "Archive/2024")
    relative = [
        ("../INBOX/;UID=1/;SECTION=1", PART1),
        ("2024/;UID=1", OTHER),
        ("./2024/;UID=1/;SECTION=TEXT", b"another message\r\n"),
    ]
    for i, (url, want_bytes) in enumerate(relative):
        await alice.command("c3 SELECT Archive/2024")  # body() unselects
        lines = await alice.command(f'R{i} APPEND Drafts CATENATE (URL "{url}")')
        assert lines[-1].startswith(b"R%d OK [APPENDUID " % i), (url, lines)
        uid = int(lines[-1].split(b"]")[0].split()[-1])
        assert await body(alice, "Drafts", uid) == want_bytes, url
    await alice.command("c4 SELECT Archive/2024")
    for i, url in enumerate(["INBOX/;UID=1", ";UID=1", "/;UID=1"]):
        lines = await alice.command(f'Q{i} APPEND Drafts CATENATE (URL "{url}")')
        assert lines[-1].startswith(f"Q{i} NO [BADURL {url}] ".encode()), (url, lines)
    # syntax errors are BAD
    for i, args in enumerate(["CATENATE ()", "CATENATE (TEXT x)", "CATENATE (FOO {1+}\r\nx)"]):
        lines = await alice.command(f"S{i} APPEND Drafts {args}")
        assert lines[-1].startswith(b"S%d BAD " % i), lines
    lines = await alice.command("S9 APPEND Drafts CATENATE (TEXT {3+}\r\na\x00b)")
    assert lines[-1].startswith(b"S9 BAD "), lines  # NUL only in literal8 (RFC 3501 §4.3)
    await alice.close()
    await bob.close()


async def test_multiappend_with_catenate_all_or_nothing(alice: LineClient) -> None:
    """RFC 4469 §3 with RFC 3502: a plain literal, then a CATENATE message; one
    APPENDUID range; a BADURL in the second message stores neither."""
    await append(alice, DRAFT)
    v = await uidvalidity(alice, "INBOX")
    url = f"/INBOX;UIDVALIDITY={v}/;UID=1"
    await run_transcript(
        alice,
        f"""
        C: M1 APPEND Drafts (\\Seen) {{{len(OTHER)}+}}
        C: {esc(OTHER)} (\\Draft) CATENATE (URL "{url}/;SECTION=HEADER" TEXT {{4+}}
        C: body)
        S: M1 OK [APPENDUID {{{{\\d+}}}} 1:2] APPEND completed
        C: M2 APPEND Drafts {{{len(OTHER)}+}}
        C: {esc(OTHER)} CATENATE (URL "{url}/;SECTION=HEADER" URL "{url}/;SECTION=7")
        S: M2 NO [BADURL {url}/;SECTION=7] {{{{.*}}}}
        C: M3 STATUS Drafts (MESSAGES UIDNEXT)
        S: * STATUS Drafts (MESSAGES 2 UIDNEXT 3)
        S: M3 OK STATUS completed
        """,
    )
    assert await body(alice, "Drafts", 2) == HEADER + b"body"
    assert await body(alice, "Drafts", 1) == OTHER


async def test_nul_part_comes_as_fetch_body_gives_it(alice: LineClient) -> None:
    """§3: a URL's octets are what FETCH BODY returns, so a part stored with NUL (APPEND
    literal8) comes in the base64 form BODY[n] serves (RFC 3516 §6), never as NUL; a
    TEXT literal8 may carry NUL as a literal8 APPEND may."""
    head = 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\n'
    raw = crlf(head + "Content-Type: application/octet-stream\n\n") + b"a\x00b"
    raw += crlf("\n--b--\n")
    await alice.send(b"N1 APPEND INBOX ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert (await alice.until_tagged("N1"))[-1].startswith(b"N1 OK")
    await alice.command("s SELECT INBOX")
    fetched = await alice.command("f FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])")
    await alice.command("u UNSELECT")
    lines = await alice.command('N2 APPEND Drafts CATENATE (URL "/INBOX/;UID=1/;SECTION=1.MIME" '
                                'URL "/INBOX/;UID=1/;SECTION=1")')  # fmt: skip
    assert lines[-1].startswith(b"N2 OK"), lines
    got = await body(alice, "Drafts", 1)
    served = literal_of(fetched[0], b"BODY[1.MIME]") + literal_of(fetched[0], b"BODY[1]")
    assert got == served and b"\x00" not in got and b"base64" in got.lower()
    await alice.send(b"N3 APPEND Drafts CATENATE (TEXT ~{3+}\r\nx\x00y)\r\n")
    assert (await alice.until_tagged("N3"))[-1].startswith(b"N3 OK")
    await alice.command("x EXAMINE Drafts")
    lines = await alice.command("f UID FETCH 2 (BINARY.PEEK[] BODY.PEEK[])")
    # stored as sent; BODY[] serves a NUL outside a part body as 0x80 (RFC 3516 §6)
    assert b"BINARY[] ~{3}\r\nx\x00y" in lines[0] and b"BODY[] {3}\r\nx\x80y" in lines[0], lines


async def test_toobig_past_appendlimit(tmp_path: Path) -> None:
    """§4.2: a catenated message past APPENDLIMIT is refused with TOOBIG, though no
    literal of its own is too big."""
    running = await start_server(tmp_path, max_literal=4096)
    try:
        alice = await logged_in(running)
        await append(alice, b"x" * 3000)
        url = 'URL "/INBOX/;UID=1"'
        lines = await alice.command(f"T1 APPEND INBOX CATENATE ({url} {url})")
        assert lines[-1].startswith(b"T1 NO [TOOBIG] "), lines
        lines = await alice.command(f"T2 APPEND INBOX CATENATE ({url} TEXT {{4+}}\r\nabcd)")
        assert lines[-1].startswith(b"T2 OK"), lines
        await alice.close()
    finally:
        await running.server.stop(grace=2)
        running.store.close()


async def test_like_imaptest_catenate_scripts(alice: LineClient) -> None:
    """The cases of imaptest's catenate and catenate-multiappend scripts: section 1 of a
    single-part message is its body, a PARTIAL past the end adds nothing, two CATENATE
    messages and a CATENATE before a plain literal in one APPEND, and TRYCREATE (not
    BADURL) for a mailbox that does not exist."""
    one = crlf("From: foo2@example.com\n\nLookslike: header\n\nAnother body")
    await append(alice, one)
    commands = [
        'a1 APPEND INBOX (\\seen \\flagged) CATENATE (URL "/INBOX/;uid=1/;section=1" '
        "TEXT {5+}\r\nbody4)",
        'a2 APPEND INBOX CATENATE (URL "/INBOX/;uid=1/;partial=100000.1" TEXT {5+}\r\nbody7)',
        'a3 APPEND INBOX CATENATE (TEXT {3+}\r\nabc) CATENATE (URL "/INBOX/;uid=1")',
        'a4 APPEND INBOX CATENATE (URL "/INBOX/;uid=1/;section=header") (\\Answered) {5+}\r\nhello',
    ]
    for command in commands:
        lines = await alice.command(command)
        assert lines[-1].startswith(command[:2].encode() + b" OK [APPENDUID "), lines
    lines = await alice.command('a5 APPEND Nope CATENATE (URL "/INBOX;UIDVALIDITY=1/;uid=1")')
    assert lines[-1].startswith(b"a5 NO [TRYCREATE] "), lines
    wanted = [
        b"Lookslike: header\r\n\r\nAnother bodybody4",
        b"body7",
        b"abc",
        one,
        b"From: foo2@example.com\r\n\r\n",
        b"hello",
    ]
    for uid, want in enumerate(wanted, start=2):
        assert await body(alice, "INBOX", uid) == want, uid
