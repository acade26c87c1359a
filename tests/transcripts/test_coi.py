# ruff: noqa: E501  (protocol lines are compared whole)
"""The COI server spec: its examples byte for byte (timing figures aside), COI capability,
enabling and disabling (directly and through CREATE/DELETE/RENAME of <root>/Chats), and the
`seen` message filter."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LineClient, RunningServer, run_transcript, start_server
from tests.transcripts.helpers import SIMPLE, append, logged_in

CONFIG = "/private/vendor/vendor.dovecot/coi/config"
_TIMING = re.escape(r"(0.001 + 0.000 secs)")


async def play(client: LineClient, example: str) -> None:
    """Plays an example exactly as printed in the spec: `C:` lines are sent byte for byte
    (trailing spaces included); a line that starts with neither `C:` nor `S:` continues the
    previous one after a CRLF (a literal); timing figures `(0.001 + 0.000 secs)` may vary."""
    joined: list[str] = []
    for line in example.split("\n"):
        if not line:
            continue
        if line.startswith(("C: ", "S: ")):
            joined.append(line)
        else:
            joined[-1] += "\r\n" + line
    for line in joined:
        if line.startswith("C: "):
            await client.send(line[3:] + "\r\n")
            continue
        got = (await client.line()).decode("utf-8").removesuffix("\r\n")
        pattern = re.escape(line[3:]).replace(_TIMING, r"\(\d+\.\d{3} \+ \d+\.\d{3} secs\)")
        assert re.fullmatch(pattern, got), f"expected {line[3:]!r}\n     got {got!r}"


async def test_coi_capability_only_after_authentication(imap_server: RunningServer) -> None:
    # coi-server-spec: COI Capability. The example's lists are minimal; ours name the other
    # extensions too (WEBPUSH comes with the WebPush issue).
    client = await LineClient.connect(imap_server)
    await client.line()
    before = await client.command("a CAPABILITY")
    assert before[0].startswith(b"* CAPABILITY IMAP4rev1 ")
    assert b" COI" not in before[0] and b"METADATA" not in before[0]
    assert before[-1] == b"a OK CAPABILITY completed\r\n"
    login = await client.command("b LOGIN alice@example.org alice-secret")
    assert login[-1].startswith(b"b OK ")
    after = await client.command("c CAPABILITY")
    caps = after[0].decode().split()
    assert caps[:3] == ["*", "CAPABILITY", "IMAP4rev1"]
    assert {"COI", "METADATA", "METADATA-SERVER"} <= set(caps)
    await client.close()


async def test_spec_reading_configuration(alice: LineClient) -> None:
    await play(
        alice,
        f'C: s1 SETMETADATA "" ({CONFIG}/enabled yes {CONFIG}/message-filter active)\n'
        "S: s1 OK SETMETADATA complete\n",
    )
    # coi-server-spec: Getting COI Namespace Configuration, "Example for reading configuration"
    await play(
        alice,
        """
C: a5 GETMETADATA (DEPTH 1) "" (/private/vendor/vendor.dovecot/coi/config)
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled {3}
yes /private/vendor/vendor.dovecot/coi/config/mailbox-root {3}
COI /private/vendor/vendor.dovecot/coi/config/message-filter {6}
active)
S: a5 OK Getmetadata completed (0.001 + 0.000 secs).
""",
    )


async def test_spec_mailbox_root_cannot_be_set(alice: LineClient) -> None:
    await play(
        alice,
        """
C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/mailbox-root myroot)
S: a NO [CANNOT] unable to set /private/vendor/vendor.dovecot/coi/config/mailbox-root
""",
    )
    # only mailbox-root exists for a user who configured nothing
    await play(
        alice,
        f'C: b GETMETADATA (DEPTH infinity) "" {CONFIG}\n'
        f'S: * METADATA "" ({CONFIG}/mailbox-root {{3}}\nCOI)\n'
        "S: b OK Getmetadata completed (0.001 + 0.000 secs).\n",
    )


async def test_spec_enable_disable_and_invalid_value(alice: LineClient) -> None:
    # coi-server-spec: Configure COI Usage, the three examples (each C: line ends in a space)
    await play(
        alice,
        'C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes) \n'
        "S: a OK SETMETADATA complete\n",
    )
    # the folders exist before the tagged OK; Chats is subscribed
    await run_transcript(
        alice,
        """
        C: l1 LIST "" COI*
        S: * LIST (\\HasChildren) "/" COI
        S: * LIST (\\HasNoChildren) "/" COI/Chats
        S: * LIST (\\HasNoChildren) "/" COI/Contacts
        S: l1 OK LIST completed
        C: l2 LSUB "" COI/*
        S: * LSUB () "/" COI/Chats
        S: l2 OK LSUB completed
        C: g1 GETMETADATA "" /private/vendor/vendor.dovecot/coi/config/enabled
        S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled {3}{{\\r\\n}}yes)
        S: g1 OK {{.*}}
        """,
    )
    await play(
        alice,
        'C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled NIL) \n'
        "S: a OK SETMETADATA complete\n",
    )
    await play(
        alice,
        'C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled true) \n'
        "S: a NO [CANNOT] invalid value for "
        '/private/vendor/vendor.dovecot/coi/config/enabled: "true"\n',
    )
    # case-sensitive: "YES" is no more valid than "true"; disabling kept the folders
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA "" ({CONFIG}/enabled YES)
        S: s1 NO [CANNOT] invalid value for {CONFIG}/enabled: "YES"
        C: g1 GETMETADATA "" {CONFIG}/enabled
        S: * METADATA "" ({CONFIG}/enabled NIL)
        S: g1 OK {{{{.*}}}}
        C: l1 LIST "" COI/%
        S: * LIST (\\HasNoChildren) "/" COI/Chats
        S: * LIST (\\HasNoChildren) "/" COI/Contacts
        S: l1 OK LIST completed
        """,
    )


async def test_spec_message_filter_examples(alice: LineClient) -> None:
    # coi-server-spec: Configure Message Filtering, both examples
    await play(
        alice,
        """
C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/message-filter active)
S: a OK SETMETADATA complete
""",
    )
    await play(
        alice,
        """
C: a SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/message-filter inactive)
S: a NO [CANNOT] invalid value for /private/vendor/vendor.dovecot/coi/config/message-filter: inactive
""",
    )
    # "active" or "seen" makes sure <root>/Chats exists; the values are case-sensitive
    await run_transcript(
        alice,
        f"""
        C: l1 LIST "" COI/*
        S: * LIST (\\HasNoChildren) "/" COI/Chats
        S: l1 OK LIST completed
        C: s1 SETMETADATA "" ({CONFIG}/message-filter Seen)
        S: s1 NO [CANNOT] invalid value for {CONFIG}/message-filter: Seen
        C: s2 SETMETADATA "" ({CONFIG}/message-filter seen {CONFIG}/other x)
        S: s2 NO [CANNOT] unable to set {CONFIG}/other
        C: g1 GETMETADATA "" {CONFIG}/message-filter
        S: * METADATA "" ({CONFIG}/message-filter {{6}}{{{{\\r\\n}}}}active)
        S: g1 OK {{{{.*}}}}
        C: s3 SETMETADATA "" ({CONFIG}/message-filter none)
        S: s3 OK SETMETADATA complete
        C: s4 SETMETADATA "" ({CONFIG}/message-filter NIL)
        S: s4 OK SETMETADATA complete
        C: g2 GETMETADATA "" {CONFIG}/message-filter
        S: * METADATA "" ({CONFIG}/message-filter NIL)
        S: g2 OK {{{{.*}}}}
        """,
    )


def _enabled(value: str | None) -> str:
    if value is None:
        return f'S: * METADATA "" ({CONFIG}/enabled NIL)\n'
    return f'S: * METADATA "" ({CONFIG}/enabled {{{len(value)}}}{{{{\\r\\n}}}}{value})\n'


async def test_indirect_enable_and_disable(alice: LineClient) -> None:
    """coi-server-spec: Indirectly Disabling and Enabling COI."""

    async def check(value: str | None) -> None:
        await run_transcript(
            alice, f'C: g GETMETADATA "" {CONFIG}/enabled\n{_enabled(value)}S: g OK {{{{.*}}}}'
        )

    await run_transcript(alice, "C: c1 CREATE COI/Chats\nS: c1 OK [MAILBOXID ({{F[0-9a-f]+}})] CREATE completed")
    await check("yes")
    # an indirect enable is an enable: Contacts is created and Chats subscribed, too
    await run_transcript(
        alice,
        """
        C: l0 LIST (SUBSCRIBED) "" COI/*
        S: * LIST (\\HasNoChildren \\Subscribed) "/" COI/Chats
        S: l0 OK LIST completed
        C: l1 LIST "" COI/%
        S: * LIST (\\HasNoChildren) "/" COI/Chats
        S: * LIST (\\HasNoChildren) "/" COI/Contacts
        S: l1 OK LIST completed
        """,
    )
    await run_transcript(alice, "C: d1 DELETE COI/Chats\nS: d1 OK DELETE completed")
    await check(None)
    await run_transcript(alice, "C: c2 CREATE Elsewhere\nS: c2 OK [MAILBOXID ({{F[0-9a-f]+}})] CREATE completed")
    await run_transcript(alice, "C: r1 RENAME Elsewhere COI/Chats\nS: r1 OK RENAME completed")
    await check("yes")
    await run_transcript(
        alice,
        """
        C: r2 RENAME COI/Chats Chats2
        S: r2 NO [CANNOT] COI/Chats can only be deleted or moved to the trash
        C: r3 RENAME COI Other
        S: r3 NO [CANNOT] COI/Chats can only be deleted or moved to the trash
        C: r4 RENAME COI/Chats Trash/Chats
        S: r4 OK RENAME completed
        """,
    )
    await check(None)
    await run_transcript(alice, "C: r5 RENAME Trash/Chats COI/Chats\nS: r5 OK RENAME completed")
    await check("yes")
    # moving the root with Chats under the \Trash folder disables COI as well
    await run_transcript(alice, "C: r6 RENAME COI Trash/COI\nS: r6 OK RENAME completed")
    await check(None)
    await run_transcript(
        alice,
        """
        C: l1 LIST "" *Chats
        S: * LIST (\\HasNoChildren) "/" Trash/COI/Chats
        S: l1 OK LIST completed
        """,
    )


async def test_custom_mailbox_root(tmp_path: Path) -> None:
    running = await start_server(tmp_path, coi_mailbox_root="Chat Folders")
    try:
        client = await logged_in(running)
        await run_transcript(
            client,
            f"""
            C: a GETMETADATA "" {CONFIG}/mailbox-root
            S: * METADATA "" ({CONFIG}/mailbox-root {{12}}{{{{\\r\\n}}}}Chat Folders)
            S: a OK {{{{.*}}}}
            C: b SETMETADATA "" ({CONFIG}/enabled yes)
            S: b OK SETMETADATA complete
            C: c LIST "" "Chat Folders/*"
            S: * LIST (\\HasNoChildren) "/" "Chat Folders/Chats"
            S: * LIST (\\HasNoChildren) "/" "Chat Folders/Contacts"
            S: c OK LIST completed
            """,
        )
        await client.close()
    finally:
        await running.server.stop(grace=2)
        running.store.close()


async def test_two_users_see_nothing_of_each_other(imap_server: RunningServer) -> None:
    a = await logged_in(imap_server, "alice@example.org")
    b = await logged_in(imap_server, "bob@example.org")
    await run_transcript(
        a,
        f"""
        C: a1 SETMETADATA "" ({CONFIG}/enabled yes {CONFIG}/message-filter seen)
        S: a1 OK SETMETADATA complete
        C: a2 SETMETADATA "" (/private/comment "alice's" /shared/comment "alice shared")
        S: a2 OK SETMETADATA complete
        C: a3 SETMETADATA INBOX (/private/comment "alice inbox")
        S: a3 OK SETMETADATA complete
        C: a4 LIST "" COI/*
        S: * LIST (\\HasNoChildren) "/" COI/Chats
        S: * LIST (\\HasNoChildren) "/" COI/Contacts
        S: a4 OK LIST completed
        """,
    )
    await run_transcript(
        b,
        f"""
        C: b1 GETMETADATA (DEPTH infinity) "" (/private /shared)
        S: * METADATA "" ({CONFIG}/mailbox-root {{3}}{{{{\\r\\n}}}}COI /private/vendor/vendor.dovecot/webpush/vapid {{133}}{{{{\\r\\n-----BEGIN PUBLIC KEY-----\\n[^)]*\\n-----END PUBLIC KEY-----}}}})
        S: b1 OK {{{{.*}}}}
        C: b2 GETMETADATA (DEPTH infinity) INBOX (/private /shared)
        S: b2 OK {{{{.*}}}}
        C: b3 LIST "" COI*
        S: b3 OK LIST completed
        """,
    )
    await a.close()
    await b.close()


CHAT = (
    b"From: bob@example.org\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\n"
    b"Message-ID: <chat$1@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"
)


async def test_seen_filter_moves_chat_messages(imap_server: RunningServer) -> None:
    a = await logged_in(imap_server)
    other = await logged_in(imap_server)
    await run_transcript(
        a,
        f'C: s SETMETADATA "" ({CONFIG}/enabled yes {CONFIG}/message-filter seen)\nS: s OK {{{{.*}}}}',
    )
    await append(a, CHAT, extra="($Chat) ")
    await append(a, SIMPLE)
    await append(a, CHAT, extra="($Chat) ")
    for client in (a, other):
        lines = await client.command("x SELECT INBOX")
        assert b"* 3 EXISTS\r\n" in lines
    # STORE \Seen on a non-chat message: nothing moves
    await run_transcript(
        a,
        """
        C: t1 STORE 2 +FLAGS.SILENT (\\Seen)
        S: t1 OK STORE completed
        """,
    )
    lines = await a.command("t2 UID STORE 1 +FLAGS (\\Seen)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Seen \\Recent $Chat) UID 1)\r\n"
    assert lines[-1] == b"t2 OK STORE completed\r\n"
    # the move follows the commit; the next command of each session reports it, or UID
    # STORE itself when the move committed while it awaited a read (RFC 3501 §7.4.1
    # allows EXPUNGE during a UID command)
    if b"* 1 EXPUNGE\r\n" not in lines:
        lines = await _until(a, b"* 1 EXPUNGE\r\n")
    assert b"* 1 EXPUNGE\r\n" in lines
    lines = await _until(other, b"* 1 EXPUNGE\r\n")
    # a FETCH that sets \Seen moves the message too
    await a.command("f FETCH 2 BODY[TEXT]")
    await _until(a, b"* 2 EXPUNGE\r\n")
    await run_transcript(
        a,
        """
        C: s1 STATUS COI/Chats (MESSAGES)
        S: * STATUS COI/Chats (MESSAGES 2)
        S: s1 OK STATUS completed
        C: s2 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 1)
        S: s2 OK STATUS completed
        """,
    )
    await a.close()
    await other.close()


async def test_seen_filter_only_when_enabled_and_seen(alice: LineClient) -> None:
    await run_transcript(
        alice,
        f"""
        C: s1 SETMETADATA "" ({CONFIG}/message-filter seen)
        S: s1 OK SETMETADATA complete
        """,
    )
    await append(alice, CHAT, extra="($Chat) ")
    await alice.command("x SELECT INBOX")
    await alice.command("t STORE 1 +FLAGS (\\Seen)")  # COI is not enabled: stays
    await run_transcript(
        alice,
        f"""
        C: s2 SETMETADATA "" ({CONFIG}/enabled yes)
        S: s2 OK SETMETADATA complete
        C: t2 STORE 1 +FLAGS.SILENT (\\Flagged)
        S: t2 OK STORE completed
        C: n NOOP
        S: n OK NOOP completed
        C: s3 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 1)
        S: s3 OK STATUS completed
        """,
    )  # only setting \Seen moves a message, not another change to a seen one
    await run_transcript(
        alice,
        f"""
        C: s4 SETMETADATA "" ({CONFIG}/message-filter active)
        S: s4 OK SETMETADATA complete
        C: t4 STORE 1 -FLAGS.SILENT (\\Seen)
        S: t4 OK STORE completed
        C: t5 STORE 1 +FLAGS.SILENT (\\Seen)
        S: t5 OK STORE completed
        C: n NOOP
        S: n OK NOOP completed
        C: s5 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 1)
        S: s5 OK STATUS completed
        """,
    )


async def _until(client: LineClient, wanted: bytes) -> list[bytes]:
    """Waits in IDLE (pushed as committed, or at once if already pending) for `wanted`."""
    await client.send("i IDLE\r\n")
    lines = [await client.line()]
    while lines[-1] != wanted:
        lines.append(await client.line())
    await client.send("DONE\r\n")
    return lines + await client.until_tagged("i")
