"""IMAP4rev2 (RFC 9051) offered beside IMAP4rev1 (Appendix A): the session stays
RFC 3501 until ENABLE IMAP4rev2, then follows RFC 9051 (§6.3.1, §7.2.2); the RFC's own
examples where they apply, adapted to our mailbox contents."""

from __future__ import annotations

import unicodedata

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import RFC8_DATE, RFC8_MESSAGE, SIMPLE, append, crlf, logged_in

from coi.imap.wire.mutf7 import encode

ENABLE = """
    C: e1 ENABLE IMAP4rev2
    S: * ENABLED IMAP4rev2
    S: e1 OK {{.*}}
"""


async def _rev2(client: LineClient) -> None:
    await run_transcript(client, ENABLE)


async def test_capability_lists_both_and_enable_does_not_change_it(alice: LineClient) -> None:
    """§6.3.1: CAPABILITY is the same before and after ENABLE; ENABLED lists only what
    this command enabled; names are case-insensitive."""
    lines = await alice.command("c0 CAPABILITY")
    before = lines[0]
    assert before.startswith(b"* CAPABILITY IMAP4rev1 IMAP4rev2 "), before
    await run_transcript(
        alice,
        """
        C: t2 ENABLE CONDSTORE imap4REV2 X-GOOD-IDEA
        S: * ENABLED CONDSTORE IMAP4rev2
        S: t2 OK {{.*}}
        C: t3 ENABLE IMAP4rev2
        S: * ENABLED
        S: t3 OK {{.*}}
        """,
    )
    assert (await alice.command("c1 CAPABILITY"))[0] == before


async def test_rev1_session_is_unchanged(alice: LineClient) -> None:
    """Appendix A: until ENABLE IMAP4rev2, responses conform to RFC 3501."""
    await append(alice, SIMPLE)
    await run_transcript(
        alice,
        """
        C: a SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 1 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 1] {{.*}}
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 2] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: a OK [READ-WRITE] {{.*}}
        C: b SEARCH ALL
        S: * SEARCH 1
        S: b OK {{.*}}
        C: c FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Recent))
        S: c OK {{.*}}
        """,
    )


async def test_select_after_enable(alice: LineClient) -> None:
    """§6.3.2: FLAGS, EXISTS, LIST, PERMANENTFLAGS, UIDNEXT, UIDVALIDITY; no RECENT and
    no UNSEEN (Appendix E items 11, 12); CLOSED when another mailbox was selected
    (item 9)."""
    await append(alice, SIMPLE)
    await append(alice, SIMPLE, extra="(\\Seen) ")
    await alice.command('c CREATE "Drafts/Old"')
    await _rev2(alice)
    await run_transcript(
        alice,
        """
        C: A142 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 2 EXISTS
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: A142 OK [READ-WRITE] SELECT completed
        C: A143 EXAMINE Drafts
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 0 EXISTS
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * LIST (\\HasChildren \\Drafts \\Subscribed) "/" Drafts
        S: A143 OK [READ-ONLY] EXAMINE completed
        """,
    )


async def test_no_recent_after_enable(imap_server: RunningServer) -> None:
    """§2.3.2, Appendix E item 12: a rev2 session sees no \\Recent and no RECENT
    response (EXISTS alone, §7.4.1), and does not take \\Recent from a rev1 session."""
    rev2 = await logged_in(imap_server)
    rev1 = await logged_in(imap_server)
    try:
        await _rev2(rev2)
        await append(rev2, SIMPLE)
        await rev2.command("s SELECT INBOX")
        await rev1.command("s SELECT INBOX")  # first rev1 session: the message is its recent
        await run_transcript(
            rev2,
            """
            C: f FETCH 1 (FLAGS)
            S: * 1 FETCH (FLAGS ())
            S: f OK {{.*}}
            C: g SEARCH RECENT
            S: * ESEARCH (TAG "g")
            S: g OK {{.*}}
            C: h STORE 1 +FLAGS (\\Flagged)
            S: * 1 FETCH (FLAGS (\\Flagged))
            S: h OK {{.*}}
            """,
        )
        await append(rev1, SIMPLE)
        await run_transcript(
            rev2,
            """
            C: n NOOP
            S: * 2 EXISTS
            S: n OK {{.*}}
            """,
        )
        await run_transcript(
            rev1,
            """
            C: f FETCH 1:* (FLAGS)
            S: * 1 FETCH (FLAGS (\\Flagged \\Recent))
            S: * 2 FETCH (FLAGS (\\Recent))
            S: f OK {{.*}}
            """,
        )
    finally:
        await rev2.close()
        await rev1.close()


async def _search_setup(client: LineClient) -> None:
    await append(client, RFC8_MESSAGE, extra=f"(\\Seen) {RFC8_DATE} ")
    await append(client, SIMPLE, extra='(\\Flagged) "01-Feb-2020 12:00:00 +0000" ')
    await append(client, SIMPLE, extra='(\\Flagged \\Deleted) "02-Feb-2020 12:00:00 +0000" ')
    await append(client, SIMPLE, extra='(\\Flagged) "03-Feb-2020 12:00:00 +0000" ')
    await _rev2(client)
    await client.command("s SELECT INBOX")


async def test_search_answers_esearch(alice: LineClient) -> None:
    """§6.4.4 (Appendix E item 4): ESEARCH, never SEARCH; no result option means ALL;
    the UID indicator for UID SEARCH; no match still gets an ESEARCH. The RFC's
    examples with our four messages."""
    await _search_setup(alice)
    await run_transcript(
        alice,
        """
        C: A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: * ESEARCH (TAG "A282") MIN 2 COUNT 3
        S: A282 OK SEARCH completed
        C: A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: * ESEARCH (TAG "A283") ALL 2:4
        S: A283 OK SEARCH completed
        C: A284 SEARCH TEXT "string not in mailbox"
        S: * ESEARCH (TAG "A284")
        S: A284 OK SEARCH completed
        C: A285 UID SEARCH RETURN (MIN MAX) 1:5000
        S: * ESEARCH (TAG "A285") UID MIN 1 MAX 4
        S: A285 OK SEARCH completed
        C: A286 SEARCH RETURN (COUNT) DELETED
        S: * ESEARCH (TAG "A286") COUNT 1
        S: A286 OK SEARCH completed
        C: A287 SEARCH FLAGGED
        S: * ESEARCH (TAG "A287") ALL 2:4
        S: A287 OK SEARCH completed
        C: A288 UID SEARCH UNFLAGGED
        S: * ESEARCH (TAG "A288") UID ALL 1
        S: A288 OK SEARCH completed
        C: A289 SEARCH LARGER 9000000000
        S: * ESEARCH (TAG "A289")
        S: A289 OK SEARCH completed
        """,
    )


async def test_search_save_after_enable(alice: LineClient) -> None:
    """§6.4.4.1: SAVE alone answers no ESEARCH; "$" then names the saved messages."""
    await _search_setup(alice)
    await run_transcript(
        alice,
        """
        C: A282 SEARCH RETURN (SAVE) FLAGGED
        S: A282 OK SEARCH completed
        C: A283 SEARCH $ SEEN
        S: * ESEARCH (TAG "A283")
        S: A283 OK SEARCH completed
        C: A284 UID SEARCH $
        S: * ESEARCH (TAG "A284") UID ALL 2:4
        S: A284 OK SEARCH completed
        """,
    )


async def test_status_deleted_and_size(alice: LineClient) -> None:
    """§6.3.11: DELETED (Appendix E item 3) and SIZE, in either revision."""
    await append(alice, SIMPLE, extra="(\\Deleted) ")
    await append(alice, SIMPLE)
    size = 2 * len(SIMPLE)
    await run_transcript(
        alice,
        f"""
        C: A042 STATUS INBOX (MESSAGES DELETED SIZE UNSEEN)
        S: * STATUS INBOX (MESSAGES 2 DELETED 1 SIZE {size} UNSEEN 2)
        S: A042 OK STATUS completed
        """,
    )
    await _rev2(alice)
    await run_transcript(
        alice,
        """
        C: A043 STATUS INBOX (DELETED)
        S: * STATUS INBOX (DELETED 1)
        S: A043 OK STATUS completed
        """,
    )


async def test_utf8_mailbox_names(imap_server: RunningServer) -> None:
    """§5.1: after ENABLE IMAP4rev2 names are UTF-8 both ways ("&" is itself); a rev1
    session of the same user still sees modified UTF-7 (Appendix A)."""
    rev2 = await logged_in(imap_server)
    rev1 = await logged_in(imap_server)
    try:
        await _rev2(rev2)
        await run_transcript(
            rev2,
            """
            C: c1 CREATE "Entwürfe"
            S: c1 OK {{.*}}
            C: c2 CREATE "R&D"
            S: c2 OK {{.*}}
            C: l LIST "" ("E*" "R*")
            S: * LIST (\\HasNoChildren) "/" "Entwürfe"
            S: * LIST (\\HasNoChildren) "/" R&D
            S: l OK {{.*}}
            C: s STATUS "Entwürfe" (MESSAGES)
            S: * STATUS "Entwürfe" (MESSAGES 0)
            S: s OK {{.*}}
            C: x SELECT "Entwürfe"
            S: * FLAGS {{.*}}
            S: * 0 EXISTS
            S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
            S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
            S: * OK [UIDNEXT 1] {{.*}}
            S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
            S: * LIST (\\HasNoChildren) "/" "Entwürfe"
            S: x OK [READ-WRITE] {{.*}}
            C: y SELECT "Entw&APw-rfe"
            S: * OK [CLOSED] {{.*}}
            S: y NO [NONEXISTENT] {{.*}}
            """,
        )
        await run_transcript(
            rev1,
            """
            C: l LIST "" ("E*" "R*")
            S: * LIST (\\HasNoChildren) "/" Entw&APw-rfe
            S: * LIST (\\HasNoChildren) "/" R&-D
            S: l OK {{.*}}
            """,
        )
    finally:
        await rev2.close()
        await rev1.close()


async def test_denormalized_names_get_oldname(alice: LineClient) -> None:
    """§5.1, §6.3.4, §6.3.6, §6.3.9.7: a name sent in another form than NFC is taken as
    its NFC form in every command, and CREATE/RENAME/SELECT/DELETE tell the client so
    with LIST ... ("OLDNAME" (<the name as sent>))."""
    nfd = unicodedata.normalize("NFD", "Entwürfe")
    nfd2 = unicodedata.normalize("NFD", "Köln")
    assert nfd != "Entwürfe"
    await _rev2(alice)
    await run_transcript(
        alice,
        f"""
        C: A005 CREATE "{nfd}"
        S: * LIST (\\HasNoChildren) "/" "Entwürfe" ("OLDNAME" ("{nfd}"))
        S: A005 OK {{{{.*}}}}
        C: A006 CREATE "Entwürfe/Alt"
        S: A006 OK {{{{.*}}}}
        C: A007 SELECT "{nfd}/Alt"
        S: * FLAGS {{{{.*}}}}
        S: * 0 EXISTS
        S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] {{{{.*}}}}
        S: * OK [UIDNEXT 1] {{{{.*}}}}
        S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
        S: * LIST (\\HasNoChildren) "/" "Entwürfe/Alt" ("OLDNAME" ("{nfd}/Alt"))
        S: A007 OK [READ-WRITE] {{{{.*}}}}
        C: A008 UNSELECT
        S: A008 OK {{{{.*}}}}
        C: A009 RENAME "{nfd}/Alt" "{nfd2}"
        S: * LIST (\\HasNoChildren) "/" "Köln" ("OLDNAME" ("{nfd}/Alt"))
        S: A009 OK {{{{.*}}}}
        C: A010 DELETE "{nfd2}"
        S: * LIST (\\NonExistent) "/" "Köln" ("OLDNAME" ("{nfd2}"))
        S: A010 OK {{{{.*}}}}
        C: A011 LIST "" ("E*" "K*")
        S: * LIST (\\HasNoChildren) "/" "Entwürfe"
        S: A011 OK {{{{.*}}}}
        """,
    )


async def test_lsub_and_check_still_accepted(alice: LineClient) -> None:
    """Appendix E items 17, 19: CHECK and LSUB are gone from RFC 9051's grammar, but a
    server offering both revisions answers what a client explicitly asks (Appendix A)."""
    await _rev2(alice)
    await run_transcript(
        alice,
        """
        C: a LSUB "" "IN*"
        S: * LSUB () "/" INBOX
        S: a OK {{.*}}
        C: b SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 0 EXISTS
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 1] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: b OK {{.*}}
        C: c CHECK
        S: c OK {{.*}}
        """,
    )


async def test_names_must_be_net_unicode(alice: LineClient) -> None:
    """§5.1: the server MUST prohibit creating 8-bit names that are not Net-Unicode
    (RFC 5198 §2: no C1 controls, no unassigned code points); text that is not UTF-8
    names no mailbox."""
    await _rev2(alice)
    await alice.send('a CREATE "Bad\u0085Name"\r\n'.encode())
    assert (await alice.line()).startswith(b"a NO [CANNOT] ")
    await alice.send('b CREATE "Bad\U000e0fffName"\r\n'.encode())
    assert (await alice.line()).startswith(b"b NO [CANNOT] ")
    await alice.send(b'c RENAME Drafts "\xff\xfe"\r\n')
    assert (await alice.line()).startswith(b"c NO [CANNOT] ")
    await alice.send(b'd SELECT "\xff\xfe"\r\n')
    assert (await alice.line()).startswith(b"d NO [NONEXISTENT] ")


async def test_notify_after_enable(imap_server: RunningServer) -> None:
    """Appendix E item 21: every unsolicited FETCH has UID, also NOTIFY's MessageNew
    FETCH when the client did not ask for UID (RFC 5465 §5.2); no RECENT after EXISTS;
    the unsolicited LIST and STATUS of other mailboxes spell names in UTF-8 (§5.1)."""
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    try:
        await _rev2(a)
        await b.command('c CREATE "Entw&APw-rfe"')
        await a.command("s SELECT INBOX")
        groups = (
            "(selected (MessageNew (FLAGS) MessageExpunge FlagChange))"
            " (personal (MessageNew MessageExpunge MailboxName))"
        )
        await run_transcript(
            a,
            f"""
            C: n1 NOTIFY SET {groups}
            S: n1 OK NOTIFY completed
            """,
        )
        await append(b, SIMPLE)
        await run_transcript(
            a,
            """
            S: * 1 EXISTS
            S: * 1 FETCH (UID 1 FLAGS ())
            """,
        )
        await append(b, SIMPLE, mailbox="Entw&APw-rfe")
        await run_transcript(a, 'S: * STATUS "Entwürfe" (MESSAGES 1 UIDNEXT 2)')
        await b.command('r RENAME "Entw&APw-rfe" "K&APY-ln"')
        await run_transcript(a, 'S: * LIST (\\HasNoChildren) "/" "Köln" ("OLDNAME" ("Entwürfe"))')
    finally:
        await a.close()
        await b.close()


async def test_denormalized_name_from_rev1_stays_reachable(imap_server: RunningServer) -> None:
    """§5.1: a rev1 client can create a name in any Unicode form (modified UTF-7 carries
    it as is); a rev2 client sees it in LIST as stored and can use that name, which the
    parser's NFC form would otherwise miss; no OLDNAME as nothing was changed."""
    nfd = unicodedata.normalize("NFD", "Köln")
    rev1 = await logged_in(imap_server)
    rev2 = await logged_in(imap_server)
    try:
        await rev1.command(f"c CREATE {encode(nfd)}")
        await _rev2(rev2)
        await run_transcript(
            rev2,
            f"""
            C: l LIST "" "K*"
            S: * LIST (\\HasNoChildren) "/" "{nfd}"
            S: l OK {{{{.*}}}}
            C: s STATUS "{nfd}" (MESSAGES)
            S: * STATUS "{nfd}" (MESSAGES 0)
            S: s OK {{{{.*}}}}
            C: x EXAMINE "{nfd}"
            S: * FLAGS {{{{.*}}}}
            S: * 0 EXISTS
            S: * OK [PERMANENTFLAGS ()] {{{{.*}}}}
            S: * OK [UIDVALIDITY {{{{\\d+}}}}] {{{{.*}}}}
            S: * OK [UIDNEXT 1] {{{{.*}}}}
            S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
            S: * LIST (\\HasNoChildren) "/" "{nfd}"
            S: x OK [READ-ONLY] {{{{.*}}}}
            C: r RENAME "{nfd}" "Köln"
            S: r OK {{{{.*}}}}
            C: d DELETE "Köln"
            S: d OK {{{{.*}}}}
            """,
        )
    finally:
        await rev1.close()
        await rev2.close()


async def test_rev1_response_text_stays_seven_bit(alice: LineClient) -> None:
    """RFC 3501 §9: resp-text is 7-bit; a name in a rev1 error text is spelled in modified
    UTF-7 as the client knows it, a rev2 session gets UTF-8 (RFC 9051 §9)."""
    lines = await alice.command("s1 SELECT Entw&APw-rfe")
    assert lines[-1].startswith(b"s1 NO "), lines
    assert lines[-1].isascii() and b"Entw&APw-rfe" in lines[-1], lines
    await _rev2(alice)
    lines = await alice.command('s2 SELECT "Entwürfe"')
    assert lines[-1].startswith(b"s2 NO ") and "Entwürfe".encode() in lines[-1], lines


# 8-bit header text (UTF-8; not UTF-8 in place of #), and parameters split and encoded per RFC 2231
_INTL = crlf(
    "From: Jörg Müller <joerg@example.org>\n"
    'Subject: Grüße "zum" \\Fest\n'
    "To: bad# <x@example.org>\n"
    "Content-Type: multipart/mixed; boundary=B\n"
    "\n"
    "--B\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Schöne Grüße\n"
    "--B\n"
    "Content-Type: application/pdf; name*0*=utf-8''%C3%84rger; name*1*=%20und;\n"
    ' name*2=" mehr.pdf"\n'
    "Content-Disposition: attachment; filename=old.pdf;\n"
    " filename*=ISO-8859-1'de'%E4%20%FC.pdf; size=3; x*=unknown-cs''%E4\n"
    "\n"
    "abc\n"
    "--B--\n"
)

_INTL_REV1 = (
    "* 1 FETCH (ENVELOPE (NIL {19}{{\\r\\n}}Grüße \"zum\" \\Fest "
    "(({13}{{\\r\\n}}Jörg Müller NIL \"joerg\" \"example.org\")) "
    "(({13}{{\\r\\n}}Jörg Müller NIL \"joerg\" \"example.org\")) "
    "(({13}{{\\r\\n}}Jörg Müller NIL \"joerg\" \"example.org\")) "
    "(({4}{{\\r\\n}}bad\ufffd NIL \"x\" \"example.org\")) NIL NIL NIL NIL) "
    'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 15 0 NIL NIL NIL NIL)'
    '("APPLICATION" "PDF" ("NAME*0*" "utf-8\'\'%C3%84rger" "NAME*1*" "%20und" '
    '"NAME*2" " mehr.pdf") NIL NIL "7BIT" 3 NIL ("ATTACHMENT" ("FILENAME" "old.pdf" '
    '"FILENAME*" "ISO-8859-1\'de\'%E4%20%FC.pdf" "SIZE" "3" "X*" "unknown-cs\'\'%E4")) '
    'NIL NIL) "MIXED" ("BOUNDARY" "B") NIL NIL NIL))'
)


async def test_rev2_fetch_quotes_utf8_and_decodes_rfc2231(imap_server: RunningServer) -> None:
    """RFC 9051 §4.3.1: UTF-8 text without NUL, CR and LF goes quoted (escaping `"` and
    `\\`), text that is not UTF-8 stays a literal; §7.5.2: parameters split or encoded per
    RFC 2231 come back decoded as the plain name, in UTF-8, in the type's and the
    disposition's lists (an unknown charset: as stored). A rev1 session reading the same
    stored message gets today's bytes: literals, parameters as sent (Appendix A)."""
    rev1 = await logged_in(imap_server)
    rev2 = await logged_in(imap_server)
    try:
        await append(rev1, _INTL.replace(b"bad#", b"bad\xff"))
        await rev1.command("s EXAMINE INBOX")
        await _rev2(rev2)
        await rev2.command("s EXAMINE INBOX")
        await run_transcript(
            rev1,
            f"""
            C: f1 FETCH 1 (ENVELOPE BODYSTRUCTURE)
            S: {_INTL_REV1}
            S: f1 OK {{{{.*}}}}
            """,
        )
        await run_transcript(
            rev2,
            """
            C: f2 FETCH 1 (ENVELOPE BODYSTRUCTURE)
            S: * 1 FETCH (ENVELOPE (NIL "Grüße \\"zum\\" \\\\Fest" """
            """(("Jörg Müller" NIL "joerg" "example.org")) """
            """(("Jörg Müller" NIL "joerg" "example.org")) """
            """(("Jörg Müller" NIL "joerg" "example.org")) """
            """(({4}{{\\r\\n}}bad\ufffd NIL "x" "example.org")) NIL NIL NIL NIL) """
            """BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 15 0 """
            """NIL NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "Ärger und mehr.pdf") NIL NIL """
            """"7BIT" 3 NIL ("ATTACHMENT" ("FILENAME" "ä ü.pdf" "SIZE" "3" """
            """"X*" "unknown-cs''%E4")) NIL NIL) "MIXED" ("BOUNDARY" "B") NIL NIL NIL))
            S: f2 OK {{.*}}
            C: f3 FETCH 1 (BODY PREVIEW)
            S: * 1 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 15 0)"""
            """("APPLICATION" "PDF" ("NAME" "Ärger und mehr.pdf") NIL NIL "7BIT" 3) """
            """"MIXED") PREVIEW "Schöne Grüße")
            S: f3 OK {{.*}}
            """,
        )
        await run_transcript(
            rev1,
            """
            C: f4 FETCH 1 (BODY PREVIEW)
            S: * 1 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 15 0)"""
            """("APPLICATION" "PDF" ("NAME*0*" "utf-8''%C3%84rger" "NAME*1*" "%20und" """
            """"NAME*2" " mehr.pdf") NIL NIL "7BIT" 3) "MIXED") """
            """PREVIEW {15}{{\\r\\n}}Schöne Grüße)
            S: f4 OK {{.*}}
            """,
        )
    finally:
        await rev1.close()
        await rev2.close()


async def test_rev2_accepts_utf8_quoted_strings(alice: LineClient) -> None:
    """RFC 9051 §4.3.1: a rev2 server MUST accept UTF-8 in quoted strings: a SEARCH
    string (UTF-8 is the default charset) and a mailbox name (§5.1)."""
    await append(alice, _INTL.replace(b"bad#", b"bad"))
    await _rev2(alice)
    await run_transcript(
        alice,
        """
        C: s1 SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 1 EXISTS
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 2] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: * LIST {{.*}}
        S: s1 OK [READ-WRITE] {{.*}}
        C: s2 SEARCH SUBJECT "grüße"
        S: * ESEARCH (TAG "s2") ALL 1
        S: s2 OK {{.*}}
        C: s3 SEARCH FROM "Müller" SUBJECT "\\\\fest"
        S: * ESEARCH (TAG "s3") ALL 1
        S: s3 OK {{.*}}
        C: s4 COPY 1 "Grüße"
        S: s4 NO [TRYCREATE] {{.*}}
        """,
    )
