"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8) with ESEARCH (RFC 4731) and SEARCHRES
(RFC 5182)."""

from __future__ import annotations

import sqlite3

from tests.conftest import LineClient, RunningServer, require_sqlite, run_transcript
from tests.transcripts.helpers import (
    MULTIPART,
    RFC8_DATE,
    RFC8_MESSAGE,
    SIMPLE,
    append,
    logged_in,
)


async def _setup(client: LineClient) -> None:
    await append(client, RFC8_MESSAGE, extra=f"(\\Seen) {RFC8_DATE} ")
    await append(client, SIMPLE, extra='(\\Flagged $Work) "01-Feb-2020 12:00:00 +0000" ')
    await append(client, MULTIPART, extra='(\\Answered \\Draft) "02-Mar-2022 00:30:00 +0100" ')
    await client.command("x SELECT INBOX")
    await client.command("s SELECT INBOX")  # nothing \Recent any more
    await client.command("d UID STORE 2 +FLAGS.SILENT (\\Deleted)")


async def test_search_keys(alice: LineClient) -> None:
    await _setup(alice)
    cases = [
        ("ALL", "1 2 3"),
        ("ANSWERED", "3"),
        ("UNANSWERED", "1 2"),
        ("DELETED", "2"),
        ("UNDELETED", "1 3"),
        ("DRAFT", "3"),
        ("UNDRAFT", "1 2"),
        ("FLAGGED", "2"),
        ("UNFLAGGED", "1 3"),
        ("SEEN", "1"),
        ("UNSEEN", "2 3"),
        ("KEYWORD $Work", "2"),
        ("UNKEYWORD $Work", "1 3"),
        ("NEW", ""),
        ("OLD", "1 2 3"),
        ("RECENT", ""),
        ("BCC nobody", ""),
        ("CC klensin", "1"),
        ("FROM terry", "1"),
        ("FROM BOB@EXAMPLE", "3"),
        ("TO mooch", "2"),
        ('SUBJECT "afternoon meeting"', "2"),
        ("HEADER Message-ID <multi@example.org>", "3"),
        ('HEADER X-Padding ""', "1"),
        ('HEADER "MIME-Version" ""', "1 2 3"),
        ("BODY tomorrow", "2"),
        ("TEXT tomorrow", "2"),
        ("TEXT Blurdybloop", "2"),
        ("BODY Blurdybloop", ""),
        ("LARGER 4285", "1"),
        ("SMALLER 400", "2"),
        ("BEFORE 1-Feb-2020", "1"),
        ("ON 1-Feb-2020", "2"),
        ("SINCE 1-Feb-2020", "2 3"),
        ("SINCE 2-Mar-2022", "3"),
        ("SENTBEFORE 1-Jan-1995", "2"),
        ("SENTON 17-Jul-1996", "1"),
        ("SENTSINCE 1-Mar-2022", "3"),
        ("SENTSINCE 2-Mar-2022", ""),
        ("1:2", "1 2"),
        ("2,*", "2 3"),
        ("*:2", "2 3"),
        ("UID 1,3", "1 3"),
        ("UID 3:*", "3"),
        ("NOT SEEN", "2 3"),
        ("OR SEEN FLAGGED", "1 2"),
        ("OR OR SEEN FLAGGED DRAFT", "1 2 3"),
        ("NOT OR SEEN FLAGGED", "3"),
        ("(SEEN) (OR FLAGGED (DRAFT ANSWERED))", ""),
        ("OR (SEEN LARGER 100) (FLAGGED UID 2)", "1 2"),
        ("2:3 (NOT (DELETED)) UNSEEN", "3"),
        ("NOT 1", "2 3"),
        # header keys narrowed in SQL first: combined with each other and with others
        ("FROM terry CC klensin", "1"),
        ("FROM terry FROM bob", ""),
        ("FROM terry NOT CC klensin", ""),
        ("NOT FROM terry", "2 3"),
        ("OR FROM terry TO mooch", "1 2"),
        ("FROM terry SEEN", "1"),
        ("(FROM example) UNSEEN", "2 3"),
        ("SUBJECT summary TEXT blurdybloop", ""),
    ]
    transcript = "\n".join(
        f"C: k{i} SEARCH {key}\nS: * SEARCH{' ' if want else ''}{want}\nS: k{i} OK {{{{.*}}}}"
        for i, (key, want) in enumerate(cases)
    )
    await run_transcript(alice, transcript)


async def test_search_charset_and_uid(alice: LineClient) -> None:
    await _setup(alice)
    await alice.command("e UID EXPUNGE 2")
    subject = "Grüße".encode()
    body = "Schöne".encode()
    await run_transcript(
        alice,
        f"""
        C: c1 SEARCH CHARSET UTF-8 SUBJECT {{{len(subject)}}}
        S: + {{{{.*}}}}
        C: {subject.decode()}
        S: * SEARCH 2
        S: c1 OK {{{{.*}}}}
        C: c2 UID SEARCH CHARSET utf-8 BODY {{{len(body)}+}}
        C: {body.decode()}
        S: * SEARCH 3
        S: c2 OK {{{{.*}}}}
        C: c3 SEARCH CHARSET US-ASCII FROM terry
        S: * SEARCH 1
        S: c3 OK {{{{.*}}}}
        C: c4 SEARCH CHARSET KOI8-R FROM terry
        S: c4 NO [BADCHARSET {{{{\\(.*\\)}}}}] {{{{.*}}}}
        C: c5 UID SEARCH ALL
        S: * SEARCH 1 3
        S: c5 OK {{{{.*}}}}
        C: c6 UID SEARCH UID 2:3
        S: * SEARCH 3
        S: c6 OK {{{{.*}}}}
        C: c7 SEARCH 3
        S: * SEARCH
        S: c7 OK {{{{.*}}}}
        C: c8 SEARCH FOO
        S: c8 BAD {{{{.*}}}}
        C: c9 SEARCH OR SEEN
        S: c9 BAD {{{{.*}}}}
        C: d1 SEARCH SINCE 31-Feb-2020
        S: d1 BAD {{{{.*}}}}
        """,
    )


async def test_esearch_and_searchres(alice: LineClient) -> None:
    await _setup(alice)
    await run_transcript(
        alice,
        """
        C: e1 SEARCH RETURN (MIN MAX COUNT ALL) UNDELETED
        S: * ESEARCH (TAG "e1") MIN 1 MAX 3 ALL 1,3 COUNT 2
        S: e1 OK {{.*}}
        C: e2 UID SEARCH RETURN () ALL
        S: * ESEARCH (TAG "e2") UID ALL 1:3
        S: e2 OK {{.*}}
        C: e3 SEARCH RETURN (MIN MAX ALL COUNT) KEYWORD nothing
        S: * ESEARCH (TAG "e3") COUNT 0
        S: e3 OK {{.*}}
        C: e4 SEARCH RETURN (COUNT) ALL
        S: * ESEARCH (TAG "e4") COUNT 3
        S: e4 OK {{.*}}
        C: e5 SEARCH RETURN (SAVE) UNSEEN
        S: e5 OK {{.*}}
        C: e6 FETCH $ (UID FLAGS)
        S: * 2 FETCH (UID 2 FLAGS (\\Flagged \\Deleted $Work))
        S: * 3 FETCH (UID 3 FLAGS (\\Answered \\Draft))
        S: e6 OK {{.*}}
        C: e7 SEARCH $ DRAFT
        S: * SEARCH 3
        S: e7 OK {{.*}}
        C: e8 UID SEARCH RETURN (SAVE MIN) UNSEEN
        S: * ESEARCH (TAG "e8") UID MIN 2
        S: e8 OK {{.*}}
        C: e9 UID FETCH $ UID
        S: * 2 FETCH (UID 2)
        S: e9 OK {{.*}}
        C: f1 SEARCH RETURN (SAVE MIN MAX) ALL
        S: * ESEARCH (TAG "f1") MIN 1 MAX 3
        S: f1 OK {{.*}}
        C: f2 SEARCH UID $
        S: * SEARCH 1 3
        S: f2 OK {{.*}}
        C: f3 SEARCH RETURN (SAVE COUNT MIN) ALL
        S: * ESEARCH (TAG "f3") MIN 1 COUNT 3
        S: f3 OK {{.*}}
        C: f4 SEARCH $
        S: * SEARCH 1 2 3
        S: f4 OK {{.*}}
        C: f5 EXAMINE INBOX
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS {{.*}}
        S: * 3 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 2] {{.*}}
        S: * OK [PERMANENTFLAGS ()] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 4] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: f5 OK [READ-ONLY] {{.*}}
        C: f6 SEARCH $
        S: * SEARCH
        S: f6 OK {{.*}}
        C: f7 SEARCH RETURN (BOGUS) ALL
        S: f7 BAD {{.*}}
        C: f8 SEARCH RETURN (SAVE) 2:3
        S: f8 OK {{.*}}
        C: f9 SEARCH CHARSET KOI8-R (OR $ 1) ALL
        S: f9 NO [BADCHARSET {{.*}}] {{.*}}
        C: f10 SEARCH $
        S: * SEARCH 2 3
        S: f10 OK {{.*}}
        C: f11 SEARCH RETURN (SAVE) CHARSET KOI8-R ALL
        S: f11 NO [BADCHARSET {{.*}}] {{.*}}
        C: f12 SEARCH $
        S: * SEARCH
        S: f12 OK {{.*}}
        """,
    )


async def test_header_search_covers_bodies_stored_before_header_lines(
    imap_server: RunningServer,
) -> None:
    """Bodies stored before `search_headers` existed have no row there: header keys must
    still find them; and a body's header lines go with the body."""
    require_sqlite(imap_server, "bodies stored before header lines were kept")
    alice = await logged_in(imap_server)
    try:
        await append(alice, RFC8_MESSAGE)
        await append(alice, SIMPLE)
        with sqlite3.connect(imap_server.store.path) as db:  # as if stored by an older coi
            db.execute("DELETE FROM search_headers WHERE blob_id = 1")
        await alice.command("A1 SELECT INBOX")
        await run_transcript(
            alice,
            """
            C: A2 SEARCH FROM terry
            S: * SEARCH 1
            S: A2 OK SEARCH completed
            C: A3 SEARCH TO mooch
            S: * SEARCH 2
            S: A3 OK SEARCH completed
            C: A4 STORE 2 +FLAGS.SILENT (\\Deleted)
            S: A4 OK STORE completed
            C: A5 EXPUNGE
            S: * 2 EXPUNGE
            S: A5 OK EXPUNGE completed
            """,
        )
        with sqlite3.connect(imap_server.store.path) as db:
            assert db.execute("SELECT count(*) FROM search_headers").fetchone() == (0,)
    finally:
        await alice.close()


ADDRESSES = (
    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
    b"To: =?utf-8?q?J=C3=BCrgen?= (the boss) <jb@example.COM>, Group: a@b.example, c@d;\r\n"
    b"Cc: \"Quoted \\\"Name\\\"\" <cc-user @ cc.example>\r\n"
    b"Subject: addresses\r\n\r\nbody\r\n"
)


async def test_search_address_keys_match_the_envelope(alice: LineClient) -> None:
    """RFC 3501 §6.4.4: FROM, TO, CC, BCC look at the addresses as the ENVELOPE sees them
    (display name and mailbox@host, comments and spacing gone), not at the raw text;
    HEADER keeps matching the field's text."""
    await append(alice, ADDRESSES)
    await append(alice, SIMPLE)
    await alice.command("s SELECT INBOX")
    cases = [
        ('FROM "user-from@domain.org"', "1"),
        ("FROM user-from", "1"),
        ('FROM "@domain.org"', "1"),
        ("FROM comment", ""),
        ('HEADER FROM "(comment)"', "1"),
        ('TO "jb@example.com"', "1"),
        ('TO "jürgen"', "1"),
        ('TO "Jürgen <jb@"', "1"),
        ("TO boss", ""),
        ('TO "a@b.example"', "1"),
        ('CC "cc-user@cc.example"', "1"),
        ('CC "quoted \\"name\\""', "1"),
        ('FROM "foobar@blurdybloop.example"', "2"),
        ('FROM "Fred Foobar"', "2"),
        ('OR FROM user-from TO mooch', "1 2"),
        ('BCC ""', ""),
        ('FROM ""', "1 2"),
    ]
    lines = []
    for i, (criteria, result) in enumerate(cases):
        lines.append(f"C: s{i} SEARCH CHARSET UTF-8 {criteria}")
        lines.append(f"S: * SEARCH{' ' + result if result else ''}")
        lines.append(f"S: s{i} OK {{{{.*}}}}")
    await run_transcript(alice, "\n".join(lines))


async def test_search_with_a_thousand_criteria(alice: LineClient) -> None:
    """Issue 15 item 10: a long but valid key list (RFC 3501 §6.4.4 puts no limit on it)
    is answered, not refused for the database's expression depth."""
    await _setup(alice)
    many = " ".join(["BODY tomorrow", "SUBJECT afternoon", "TEXT joe", "FROM foobar"] * 250)
    either = " ".join(["OR BODY tomorrow TEXT nowhere"] * 1000)
    await run_transcript(
        alice,
        f"""
        C: a SEARCH {many}
        S: * SEARCH 2
        S: a OK SEARCH completed
        C: b SEARCH {either} UNDELETED
        S: * SEARCH
        S: b OK SEARCH completed
        C: c SEARCH {either}
        S: * SEARCH 2
        S: c OK SEARCH completed
        """,
    )
