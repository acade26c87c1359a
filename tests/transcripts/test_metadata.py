# ruff: noqa: E501  (protocol lines are compared whole)
"""GETMETADATA and SETMETADATA (RFC 5464): the RFC's examples, entry name rules, limits and
their response codes, binary values, entries that follow their mailbox, and unsolicited
METADATA responses after ENABLE.

The RFC's examples add line breaks for readability and print values as quoted strings; the
server sends every value as a literal (the form the COI server spec's examples show), so
the transcripts show `{N}` literals where the RFC shows quoted strings.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LineClient, RunningServer, run_transcript, start_server
from tests.transcripts.helpers import logged_in

NL = "{{\\r\\n}}"
DONE = "{{.*}}"


async def test_rfc_4_2_getmetadata_examples(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA "" (/shared/comment "Shared comment")
        S: s1 OK SETMETADATA complete
        C: s2 SETMETADATA INBOX (/private/comment "My own comment" /shared/comment "Shared comment")
        S: s2 OK SETMETADATA complete
        C: a GETMETADATA "" /shared/comment
        S: * METADATA "" (/shared/comment {{14}}{NL}Shared comment)
        S: a OK Getmetadata completed {DONE}
        C: a GETMETADATA "INBOX" /private/comment
        S: * METADATA "INBOX" (/private/comment {{14}}{NL}My own comment)
        S: a OK Getmetadata completed {DONE}
        C: a GETMETADATA "INBOX" (/shared/comment /private/comment)
        S: * METADATA "INBOX" (/shared/comment {{14}}{NL}Shared comment /private/comment {{14}}{NL}My own comment)
        S: a OK Getmetadata completed {DONE}
        """,
    )


async def test_rfc_4_2_1_maxsize(alice: LineClient) -> None:
    big = "x" * 2199
    await alice.send(f"s1 SETMETADATA INBOX (/shared/comment {{2199+}}\r\n{big})\r\n")
    assert (await alice.until_tagged("s1"))[-1].startswith(b"s1 OK")
    await run_transcript(
        alice,
        f"""
        C: s2 SETMETADATA INBOX (/private/comment "My own comment")
        S: s2 OK SETMETADATA complete
        C: a GETMETADATA "INBOX" (MAXSIZE 1024) (/shared/comment /private/comment)
        S: * METADATA "INBOX" (/private/comment {{14}}{NL}My own comment)
        S: a OK [METADATA LONGENTRIES 2199] Getmetadata completed {DONE}
        C: b GETMETADATA "INBOX" (MAXSIZE 10) (/shared/comment /private/comment)
        S: b OK [METADATA LONGENTRIES 2199] Getmetadata completed {DONE}
        C: c GETMETADATA "INBOX" (MAXSIZE 2199) /shared/comment
        S: * METADATA "INBOX" (/shared/comment {{2199}}{NL}{big})
        S: c OK Getmetadata completed {DONE}
        """,
    )


async def test_rfc_4_2_2_depth(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000" /private/filters/values/boss "FROM \\"boss@example.com\\"" /private/filters/values/boss/deeper x /private/filters/valuesx y)
        S: s1 OK SETMETADATA complete
        C: a GETMETADATA "INBOX" (DEPTH 1) (/private/filters/values)
        S: * METADATA "INBOX" (/private/filters/values/boss {{23}}{NL}FROM "boss@example.com" /private/filters/values/small {{12}}{NL}SMALLER 5000)
        S: a OK Getmetadata completed {DONE}
        C: b GETMETADATA "INBOX" (DEPTH 0) (/private/filters/values)
        S: * METADATA "INBOX" (/private/filters/values NIL)
        S: b OK Getmetadata completed {DONE}
        C: c GETMETADATA "INBOX" (DEPTH infinity MAXSIZE 1) /private/filters
        S: * METADATA "INBOX" (/private/filters/values/boss/deeper {{1}}{NL}x /private/filters/valuesx {{1}}{NL}y)
        S: c OK [METADATA LONGENTRIES 23] Getmetadata completed {DONE}
        C: d GETMETADATA INBOX /PRIVATE/Filters/VALUESX
        S: * METADATA "INBOX" (/private/filters/valuesx {{1}}{NL}y)
        S: d OK Getmetadata completed {DONE}
        """,
    )


async def test_rfc_4_3_setmetadata_examples(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: a SETMETADATA INBOX (/private/comment {{33}}
        S: + Ready for literal data
        C: My new comment across\\r\\ntwo lines.)
        S: a OK SETMETADATA complete
        C: g1 GETMETADATA INBOX /private/comment
        S: * METADATA "INBOX" (/private/comment {{33}}{NL}My new comment across{NL}two lines.)
        S: g1 OK {DONE}
        C: a SETMETADATA INBOX (/private/comment NIL)
        S: a OK SETMETADATA complete
        C: g2 GETMETADATA INBOX /private/comment
        S: * METADATA "INBOX" (/private/comment NIL)
        S: g2 OK {DONE}
        C: a SETMETADATA INBOX (/private/comment "My new comment" /shared/comment "This one is for you!")
        S: a OK SETMETADATA complete
        C: g3 GETMETADATA INBOX (/private/comment /shared/comment)
        S: * METADATA "INBOX" (/private/comment {{14}}{NL}My new comment /shared/comment {{20}}{NL}This one is for you!)
        S: g3 OK {DONE}
        """,
    )


async def test_rfc_4_3_toomany_maxsize_and_all_or_nothing(tmp_path: Path) -> None:
    running = await start_server(tmp_path, metadata_max_entries=10, metadata_max_value=1024)
    try:
        client = await logged_in(running)
        values = " ".join(f"/private/e{i} v" for i in range(10))
        await run_transcript(
            client,
            f"""
            C: s1 SETMETADATA "" ({values})
            S: s1 OK SETMETADATA complete
            C: a SETMETADATA INBOX (/private/comment "My new comment")
            S: a NO [METADATA TOOMANY] SETMETADATA failed
            C: s2 SETMETADATA "" (/private/e1 changed /private/e2 NIL)
            S: s2 OK SETMETADATA complete
            C: s3 SETMETADATA INBOX (/private/comment "My new comment")
            S: s3 OK SETMETADATA complete
            C: s4 SETMETADATA "" (/private/e3 NIL /private/x1 a /private/x2 b)
            S: s4 NO [METADATA TOOMANY] SETMETADATA failed
            C: g1 GETMETADATA "" (/private/e3 /private/x1)
            S: * METADATA "" (/private/e3 {{1}}{NL}v /private/x1 NIL)
            S: g1 OK {DONE}
            """,
        )
        big = "y" * 1025
        await client.send("s5 SETMETADATA INBOX (/private/comment x /shared/c {1025+}\r\n")
        await client.send(f"{big})\r\n")
        lines = await client.until_tagged("s5")
        assert lines == [b"s5 NO [METADATA MAXSIZE 1024] SETMETADATA failed\r\n"]
        await run_transcript(
            client,
            f"""
            C: g2 GETMETADATA INBOX /private/comment
            S: * METADATA "INBOX" (/private/comment {{14}}{NL}My new comment)
            S: g2 OK {DONE}
            """,
        )
        await client.close()
    finally:
        await running.server.stop(grace=2)
        running.store.close()


async def test_rfc_4_4_1_responses(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA "" (/shared/comment "My comment")
        S: s1 OK SETMETADATA complete
        C: s2 SETMETADATA INBOX (/private/comment "My comment" /shared/comment "Its sunny outside!")
        S: s2 OK SETMETADATA complete
        C: a GETMETADATA "" /shared/comment
        S: * METADATA "" (/shared/comment {{10}}{NL}My comment)
        S: a OK Getmetadata completed {DONE}
        C: a GETMETADATA "INBOX" /private/comment /shared/comment
        S: * METADATA "INBOX" (/private/comment {{10}}{NL}My comment /shared/comment {{18}}{NL}Its sunny outside!)
        S: a OK Getmetadata completed {DONE}
        """,
    )


async def test_rfc_4_4_2_unsolicited_after_enable(imap_server: RunningServer) -> None:
    watcher = await logged_in(imap_server)
    plain = await logged_in(imap_server)
    changer = await logged_in(imap_server)
    await run_transcript(
        watcher, "C: e ENABLE METADATA\nS: * ENABLED METADATA\nS: e OK ENABLE completed"
    )
    await run_transcript(
        changer,
        """
        C: s1 SETMETADATA "" (/shared/comment "x")
        S: s1 OK SETMETADATA complete
        C: s2 SETMETADATA INBOX (/shared/comment "y" /private/comment "z")
        S: s2 OK SETMETADATA complete
        """,
    )
    await run_transcript(
        watcher,
        """
        C: a NOOP
        S: * METADATA "" /shared/comment
        S: * METADATA "INBOX" /private/comment /shared/comment
        S: a OK NOOP completed
        """,
    )
    # without ENABLE nothing is sent (RFC 5464 §4.1); nor to the session that made the change
    await run_transcript(plain, "C: b NOOP\nS: b OK NOOP completed")
    await run_transcript(changer, "C: c NOOP\nS: c OK NOOP completed")
    # during IDLE the change is pushed at once
    await run_transcript(watcher, "C: i IDLE\nS: + idling")
    await run_transcript(
        changer, "C: s3 SETMETADATA INBOX (/private/comment NIL)\nS: s3 OK SETMETADATA complete"
    )
    await run_transcript(
        watcher, 'S: * METADATA "INBOX" /private/comment\nC: DONE\nS: i OK IDLE terminated'
    )
    for client in (watcher, plain, changer):
        await client.close()


async def test_entry_names(alice: LineClient) -> None:
    # RFC 5464 §3.2: invalid entry names are BAD
    bad = [
        'SETMETADATA "" (/private//x a)',
        'SETMETADATA "" (/private/x/ a)',
        'SETMETADATA "" (/other/x a)',
        'SETMETADATA "" (/private a)',
        'SETMETADATA "" (/shared/vendor/x a)',
        'SETMETADATA "" (/private/a*b a)',
        'SETMETADATA "" (private/x a)',
        'SETMETADATA "" ("/private/\xe4" a)',
        'GETMETADATA "" /private/%',
        'GETMETADATA "" /nothing',
        'GETMETADATA (DEPTH 2) "" /private',
        'GETMETADATA (FOO 1) "" /private',
    ]
    await run_transcript(
        alice, "\n".join(f"C: b{i} {c}\nS: b{i} BAD {{{{.*}}}}" for i, c in enumerate(bad))
    )
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA "" (/Private/Vendor/Example.Org/Key "v" /shared/vendor/example.org/k w)
        S: s1 OK SETMETADATA complete
        C: g1 GETMETADATA (DEPTH infinity) "" /private/vendor
        S: * METADATA "" (/private/vendor/example.org/key {{1}}{NL}v /private/vendor/vendor.dovecot/coi/config/mailbox-root {{3}}{NL}COI /private/vendor/vendor.dovecot/webpush/vapid {{133}}{NL}-----BEGIN PUBLIC KEY-----{{{{[^)]*}}}}-----END PUBLIC KEY-----)
        S: g1 OK {DONE}
        C: g2 GETMETADATA nosuch /private/comment
        S: g2 NO [NONEXISTENT] {{{{.*}}}}
        C: s2 SETMETADATA nosuch (/private/comment x)
        S: s2 NO [NONEXISTENT] {{{{.*}}}}
        """,
    )


async def test_metadata_needs_authentication(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await client.line()
    await run_transcript(
        client,
        """
        C: a GETMETADATA "" /shared/comment
        S: a BAD GETMETADATA not allowed in the not authenticated state
        C: b SETMETADATA "" (/shared/comment x)
        S: b BAD SETMETADATA not allowed in the not authenticated state
        """,
    )
    await client.close()


async def test_binary_values_and_literal8(alice: LineClient) -> None:
    await alice.send(b'a SETMETADATA INBOX (/private/bin ~{3}\r\n\x00\x01\x02 /private/e "")\r\n')
    assert await alice.until_tagged("a") == [
        b"+ Ready for literal data\r\n",
        b"a OK SETMETADATA complete\r\n",
    ]
    lines = await alice.command("b GETMETADATA INBOX (/private/bin /private/e)")
    assert (
        lines[0] == b'* METADATA "INBOX" (/private/bin ~{3}\r\n\x00\x01\x02 /private/e {0}\r\n)\r\n'
    )
    assert lines[1].startswith(b"b OK ")


async def test_entries_follow_their_mailbox(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: c1 CREATE Box
        S: c1 OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] CREATE completed
        C: s1 SETMETADATA Box (/private/comment "box" /shared/comment "shared box")
        S: s1 OK SETMETADATA complete
        C: r1 RENAME Box Moved/Box
        S: r1 OK RENAME completed
        C: g1 GETMETADATA Moved/Box /private/comment
        S: * METADATA "Moved/Box" (/private/comment {{3}}{NL}box)
        S: g1 OK {DONE}
        C: s2 SETMETADATA Moved (/private/comment "noselect parent")
        S: s2 OK SETMETADATA complete
        C: d1 DELETE Moved/Box
        S: d1 OK DELETE completed
        C: c2 CREATE Moved/Box
        S: c2 OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] CREATE completed
        C: g2 GETMETADATA Moved/Box (/private/comment /shared/comment)
        S: * METADATA "Moved/Box" (/private/comment NIL /shared/comment NIL)
        S: g2 OK {DONE}
        C: s3 SETMETADATA INBOX (/private/comment "inbox")
        S: s3 OK SETMETADATA complete
        C: r2 RENAME INBOX Old
        S: r2 OK RENAME completed
        C: g3 GETMETADATA Old /private/comment
        S: * METADATA "Old" (/private/comment {{5}}{NL}inbox)
        S: g3 OK {DONE}
        C: g4 GETMETADATA INBOX /private/comment
        S: * METADATA "INBOX" (/private/comment {{5}}{NL}inbox)
        S: g4 OK {DONE}
        """,
    )


async def test_shared_admin_is_read_only(tmp_path: Path) -> None:
    running = await start_server(tmp_path, metadata_admin="mailto:postmaster@example.org")
    try:
        client = await logged_in(running)
        await run_transcript(
            client,
            f"""
            C: a GETMETADATA "" /shared/admin
            S: * METADATA "" (/shared/admin {{29}}{NL}mailto:postmaster@example.org)
            S: a OK {DONE}
            C: b SETMETADATA "" (/shared/admin "mailto:me@example.org")
            S: b NO [CANNOT] unable to set /shared/admin
            """,
        )
        await client.close()
    finally:
        await running.server.stop(grace=2)
        running.store.close()


async def test_enable_metadata_server_reports_server_entries_only(
    imap_server: RunningServer,
) -> None:
    watcher = await logged_in(imap_server)
    changer = await logged_in(imap_server)
    await run_transcript(
        watcher,
        "C: e ENABLE METADATA-SERVER\nS: * ENABLED METADATA-SERVER\nS: e OK ENABLE completed",
    )
    await run_transcript(
        changer,
        """
        C: s1 SETMETADATA INBOX (/private/comment "mailbox entry")
        S: s1 OK SETMETADATA complete
        C: s2 SETMETADATA "" (/private/comment "server entry" /private/comment2 x)
        S: s2 OK SETMETADATA complete
        """,
    )
    await run_transcript(
        watcher,
        """
        C: a NOOP
        S: * METADATA "" /private/comment /private/comment2
        S: a OK NOOP completed
        """,
    )
    await watcher.close()
    await changer.close()
