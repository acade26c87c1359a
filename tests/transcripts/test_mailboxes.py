"""SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 3501 §6.3) with modified UTF-7 names (§5.1.3), LIST-EXTENDED (RFC 5258), SPECIAL-USE
(RFC 6154), LIST-STATUS (RFC 5819), NAMESPACE (RFC 2342) and ENABLE (RFC 5161)."""

from __future__ import annotations

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append


async def test_mailbox_commands_need_authentication(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await client.line()
    lines = "\n".join(
        f"C: b{i} {command}\nS: b{i} BAD {{{{.*}}}}"
        for i, command in enumerate(
            [
                "SELECT INBOX",
                "EXAMINE INBOX",
                "CREATE x",
                "DELETE x",
                "RENAME x y",
                "SUBSCRIBE INBOX",
                "UNSUBSCRIBE INBOX",
                'LIST "" *',
                'LSUB "" *',
                "STATUS INBOX (MESSAGES)",
                "APPEND INBOX {1+}\\r\\nx",
                "NAMESPACE",
                "ENABLE CONDSTORE",
                "IDLE",
                "UNSELECT",
            ]
        )
    )
    await run_transcript(client, lines)


async def test_select_and_examine(alice: LineClient) -> None:
    await append(alice, SIMPLE, extra="(\\Seen) ")
    await append(alice, SIMPLE)
    await run_transcript(
        alice,
        """
        C: A142 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 2] {{.*}}
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 3] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: A142 OK [READ-WRITE] {{.*}}
        C: A932 EXAMINE INBOX
        S: * OK [CLOSED] {{.*}}
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 2 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 2] {{.*}}
        S: * OK [PERMANENTFLAGS ()] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 3] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: A932 OK [READ-ONLY] {{.*}}
        C: A933 SELECT nosuch
        S: * OK [CLOSED] {{.*}}
        S: A933 NO [NONEXISTENT] {{.*}}
        C: A934 FETCH 1 FLAGS
        S: A934 BAD {{.*}}
        """,
    )


async def test_create_list_modified_utf7_and_hierarchy(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: A003 CREATE &ZeVnLIqe-
        S: A003 OK {{.*}}
        C: A004 CREATE owatagusiam/
        S: A004 OK {{.*}}
        C: A005 CREATE owatagusiam/blurdybloop
        S: A005 OK {{.*}}
        C: A006 CREATE "Entw&APw-rfe/2024"
        S: A006 OK {{.*}}
        C: A007 CREATE &ZeVnLIqe-
        S: A007 NO [ALREADYEXISTS] {{.*}}
        C: A008 CREATE INBOX
        S: A008 NO {{.*}}
        C: A101 LIST "" ""
        S: * LIST (\\Noselect) "/" ""
        S: A101 OK {{.*}}
        C: A102 LIST #news.comp.mail.misc ""
        S: * LIST (\\Noselect) "/" #news.comp.mail.misc
        S: A102 OK {{.*}}
        C: A103 LIST owatagusiam/ %
        S: * LIST (\\HasNoChildren) "/" owatagusiam/blurdybloop
        S: A103 OK {{.*}}
        C: A104 LIST "" %
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren \\Archive) "/" Archive
        S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
        S: * LIST (\\HasChildren) "/" Entw&APw-rfe
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: * LIST (\\HasChildren) "/" owatagusiam
        S: * LIST (\\HasNoChildren) "/" &ZeVnLIqe-
        S: A104 OK {{.*}}
        C: A105 LIST "" inbox
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: A105 OK {{.*}}
        C: A106 LIST "" Entw*
        S: * LIST (\\HasChildren) "/" Entw&APw-rfe
        S: * LIST (\\HasNoChildren) "/" Entw&APw-rfe/2024
        S: A106 OK {{.*}}
        C: A107 STATUS &ZeVnLIqe- (MESSAGES UIDNEXT UNSEEN RECENT)
        S: * STATUS &ZeVnLIqe- (MESSAGES 0 UIDNEXT 1 UNSEEN 0 RECENT 0)
        S: A107 OK {{.*}}
        C: A108 SELECT &ZeVnLIqe-
        S: * FLAGS {{.*}}
        S: * 0 EXISTS
        S: * 0 RECENT
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 1] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: A108 OK [READ-WRITE] {{.*}}
        C: A109 CREATE &Jjo-bad&
        S: A109 NO [CANNOT] {{.*}}
        """,
    )


async def test_names_that_are_not_modified_utf7(alice: LineClient) -> None:
    """A name that parses but is not valid modified UTF-7 names no mailbox: NO, not BAD
    (RFC 3501 §5.1.3); a LIST pattern like it matches nothing (RFC 5258 §3)."""
    await run_transcript(
        alice,
        """
        C: a SELECT &Jjo
        S: a NO [NONEXISTENT] {{.*}}
        C: b EXAMINE &AGE-
        S: b NO [NONEXISTENT] {{.*}}
        C: c STATUS "&Jjo!" (MESSAGES)
        S: c NO [NONEXISTENT] {{.*}}
        C: d LIST "" &Jjo*
        S: d OK LIST completed
        C: e LIST "" (&Jjo* INBOX)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: e OK LIST completed
        C: f LIST &Jjo/ *
        S: f OK LIST completed
        C: g LSUB "" &Jjo*
        S: g OK LSUB completed
        C: h CREATE &Jjo/
        S: h NO [CANNOT] {{.*}}
        C: i RENAME INBOX &Jjo/
        S: i NO [CANNOT] {{.*}}
        C: j DELETE &Jjo
        S: j NO [NONEXISTENT] {{.*}}
        C: k APPEND &Jjo {1+}
        C: x
        S: k NO [CANNOT] {{.*}}
        C: l GETMETADATA &Jjo /private/comment
        S: l NO [NONEXISTENT] {{.*}}
        """,
    )


async def test_delete_rename_and_inferiors(alice: LineClient) -> None:
    await append(alice, SIMPLE)
    await run_transcript(
        alice,
        """
        C: A1 CREATE foo/bar
        S: A1 OK {{.*}}
        C: A2 DELETE foo
        S: A2 OK {{.*}}
        C: A3 LIST "" foo*
        S: * LIST (\\Noselect \\HasChildren) "/" foo
        S: * LIST (\\HasNoChildren) "/" foo/bar
        S: A3 OK {{.*}}
        C: A4 DELETE foo
        S: A4 NO [HASCHILDREN] {{.*}}
        C: A5 RENAME foo zap
        S: A5 OK {{.*}}
        C: A6 LIST "" zap*
        S: * LIST (\\Noselect \\HasChildren) "/" zap
        S: * LIST (\\HasNoChildren) "/" zap/bar
        S: A6 OK {{.*}}
        C: A7 DELETE zap/bar
        S: A7 OK {{.*}}
        C: A8 LIST "" zap*
        S: A8 OK {{.*}}
        C: A9 DELETE INBOX
        S: A9 NO {{.*}}
        C: B1 DELETE nosuch
        S: B1 NO [NONEXISTENT] {{.*}}
        C: B2 RENAME nosuch other
        S: B2 NO [NONEXISTENT] {{.*}}
        C: B3 RENAME Sent Trash
        S: B3 NO [ALREADYEXISTS] {{.*}}
        C: B4 RENAME INBOX Old
        S: B4 OK {{.*}}
        C: B5 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: B5 OK {{.*}}
        C: B6 STATUS Old (MESSAGES UIDNEXT)
        S: * STATUS Old (MESSAGES 1 UIDNEXT 2)
        S: B6 OK {{.*}}
        C: B7 LIST "" Old
        S: * LIST (\\HasNoChildren) "/" Old
        S: B7 OK {{.*}}
        C: B8 STATUS zap (MESSAGES)
        S: B8 NO [NONEXISTENT] {{.*}}
        """,
    )


async def test_subscribe_lsub_and_list_subscribed(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: A1 CREATE news/comp/mail
        S: A1 OK {{.*}}
        C: A2 SUBSCRIBE news/comp/mail
        S: A2 OK {{.*}}
        C: A3 UNSUBSCRIBE Junk
        S: A3 OK {{.*}}
        C: A4 LSUB "" news/%
        S: * LSUB (\\Noselect) "/" news/comp
        S: A4 OK {{.*}}
        C: A5 LSUB "" news/*
        S: * LSUB () "/" news/comp/mail
        S: A5 OK {{.*}}
        C: A6 LIST (SUBSCRIBED) "" *
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive
        S: * LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts
        S: * LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash \\Subscribed) "/" Trash
        S: * LIST (\\HasNoChildren \\Subscribed) "/" news/comp/mail
        S: A6 OK {{.*}}
        C: A7 LIST "" * RETURN (SUBSCRIBED SPECIAL-USE)
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive
        S: * LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash \\Subscribed) "/" Trash
        S: * LIST (\\HasChildren) "/" news
        S: * LIST (\\HasChildren) "/" news/comp
        S: * LIST (\\HasNoChildren \\Subscribed) "/" news/comp/mail
        S: A7 OK {{.*}}
        C: A8 LIST (SPECIAL-USE) "" *
        S: * LIST (\\HasNoChildren \\Archive) "/" Archive
        S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: A8 OK {{.*}}
        C: A9 DELETE news/comp/mail
        S: A9 OK {{.*}}
        C: B1 LSUB "" news/*
        S: * LSUB (\\Noselect) "/" news/comp/mail
        S: B1 OK {{.*}}
        C: B2 UNSUBSCRIBE news/comp/mail
        S: B2 OK {{.*}}
        C: B3 LSUB "" news/*
        S: B3 OK {{.*}}
        C: B4 SUBSCRIBE nosuch
        S: B4 NO {{.*}}
        """,
    )


async def test_create_with_special_use(alice: LineClient) -> None:
    # RFC 6154 §3
    await run_transcript(
        alice,
        """
        C: t1 CREATE MySpecial (USE (\\All))
        S: t1 OK {{.*}}
        C: t2 LIST "" MySpecial RETURN (SPECIAL-USE)
        S: * LIST (\\HasNoChildren \\All) "/" MySpecial
        S: t2 OK {{.*}}
        C: t3 CREATE Bad (USE (\\Flagged \\All))
        S: t3 NO [USEATTR] {{.*}}
        C: t4 CREATE Bad (USE (\\Bogus))
        S: t4 NO [USEATTR] {{.*}}
        C: t5 LIST "" Bad
        S: t5 OK {{.*}}
        """,
    )


async def test_list_status(alice: LineClient) -> None:
    await append(alice, SIMPLE)
    await append(alice, SIMPLE, extra="(\\Seen) ")
    # RFC 5819 §2: a STATUS response follows each selectable mailbox's LIST response
    await run_transcript(
        alice,
        """
        C: A1 CREATE box/inner
        S: A1 OK {{.*}}
        C: A2 DELETE box
        S: A2 OK {{.*}}
        C: A3 LIST "" % RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (MESSAGES 2 UNSEEN 1 UIDNEXT 3)
        S: * LIST (\\HasNoChildren \\Archive) "/" Archive
        S: * STATUS Archive (MESSAGES 0 UNSEEN 0 UIDNEXT 1)
        S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
        S: * STATUS Drafts (MESSAGES 0 UNSEEN 0 UIDNEXT 1)
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * STATUS Junk (MESSAGES 0 UNSEEN 0 UIDNEXT 1)
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * STATUS Sent (MESSAGES 0 UNSEEN 0 UIDNEXT 1)
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: * STATUS Trash (MESSAGES 0 UNSEEN 0 UIDNEXT 1)
        S: * LIST (\\Noselect \\HasChildren) "/" box
        S: A3 OK {{.*}}
        """,
    )


async def test_namespace_and_enable(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: A001 NAMESPACE
        S: * NAMESPACE (("" "/")) NIL NIL
        S: A001 OK {{.*}}
        C: A002 ENABLE FOO BAR
        S: * ENABLED
        S: A002 OK {{.*}}
        C: A003 ENABLE
        S: A003 BAD {{.*}}
        """,
    )


async def test_list_selection_options_checked(alice: LineClient) -> None:
    """RFC 5258 §3: BAD for an unknown selection option and for RECURSIVEMATCH alone;
    REMOTE is known (there are no remote mailboxes to add)."""
    await run_transcript(
        alice,
        """
        C: a LIST (BOGUS) "" *
        S: a BAD {{.*}}
        C: b LIST (RECURSIVEMATCH) "" *
        S: b BAD {{.*}}
        C: c LIST (REMOTE) "" INBOX
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: c OK LIST completed
        """,
    )


async def test_inbox_is_case_insensitive_as_a_superior(alice: LineClient) -> None:
    """RFC 3501 §5.1: INBOX is case-insensitive, also as the first level of a name, so
    `InBoX/child` is `INBOX/child` and INBOX is listed once."""
    await run_transcript(
        alice,
        """
        C: a CREATE INBOX/child
        S: a OK [MAILBOXID ({{F[0-9a-f]+}})] CREATE completed
        C: b CREATE InBoX/child
        S: b NO [ALREADYEXISTS] {{.*}}
        C: c CREATE inbox/other
        S: c OK [MAILBOXID ({{F[0-9a-f]+}})] CREATE completed
        C: d LIST "" inbox*
        S: * LIST (\\HasChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" INBOX/child
        S: * LIST (\\HasNoChildren) "/" INBOX/other
        S: d OK LIST completed
        C: e STATUS Inbox/child (MESSAGES)
        S: * STATUS INBOX/child (MESSAGES 0)
        S: e OK STATUS completed
        C: f LIST "" INBOXes
        S: f OK LIST completed
        """,
    )


async def test_list_recursivematch_childinfo(alice: LineClient) -> None:
    """RFC 5258 §3 RECURSIVEMATCH and §3.5 CHILDINFO (RFC 9051 §6.3.9.8 example 8): a name
    matching the pattern is listed for a subscribed descendant, with CHILDINFO, unless
    every such descendant is listed itself (redundant CHILDINFO suppressed, §3.5)."""
    for name in ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222"):
        assert (await alice.command(f"c CREATE {name}"))[-1].startswith(b"c OK")
    for name in ("eps2/mamba", "qux2/bar2"):
        assert (await alice.command(f"c CREATE {name}"))[-1].startswith(b"c OK")
    for name in (
        "foo2/bar1",
        "foo2/bar2",
        "baz2/bar2",
        "baz2/bar22",
        "baz2/bar222",
        "eps2",
        "eps2/mamba",
        "qux2/bar2",
    ):
        assert (await alice.command(f"s SUBSCRIBE {name}"))[-1].startswith(b"s OK")
    await run_transcript(
        alice,
        """
        C: D03 LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar22
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar222
        S: * LIST (\\HasChildren \\Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" foo2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" qux2/bar2
        S: D03 OK LIST completed
        C: D04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%2"
        S: * LIST (\\HasChildren) "/" baz2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren \\Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren) "/" qux2 ("CHILDINFO" ("SUBSCRIBED"))
        S: D04 OK LIST completed
        C: D05 LIST (SUBSCRIBED) "" "%2"
        S: * LIST (\\HasChildren \\Subscribed) "/" eps2
        S: D05 OK LIST completed
        C: D06 UNSUBSCRIBE foo2/bar1
        S: D06 OK UNSUBSCRIBE completed
        C: D07 LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar22
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar222
        S: * LIST (\\HasChildren \\Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" foo2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" qux2/bar2
        S: D07 OK LIST completed
        """,
    )
