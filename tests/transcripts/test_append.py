# ruff: noqa: E501  (protocol lines are compared whole)
"""APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315), LITERAL+ (RFC 7888), MULTIAPPEND
syntax, literal8 (RFC 3516) and APPENDLIMIT."""

from __future__ import annotations

from tests.conftest import LineClient, run_transcript
from tests.transcripts.helpers import SIMPLE, literal

SIZE, TEXT = literal(SIMPLE)
SYNC, _ = literal(SIMPLE, plus=False)


async def test_append_synchronizing_literal_rfc_example(alice: LineClient) -> None:
    # RFC 3501 §6.3.11 example, with UIDPLUS's APPENDUID (RFC 4315 §3)
    await run_transcript(
        alice,
        f"""
        C: A003 APPEND saved-messages (\\Seen) {SYNC}
        S: + {{{{.*}}}}
        C: {TEXT}
        S: A003 NO [TRYCREATE] {{{{.*}}}}
        C: A004 APPEND INBOX (\\Seen) {SYNC}
        S: + {{{{.*}}}}
        C: {TEXT}
        S: A004 OK [APPENDUID {{{{\\d+}}}} 1] {{{{.*}}}}
        C: A005 APPEND INBOX (\\Flagged $Important) "05-Jan-2020 10:11:12 +0100" {SIZE}
        C: {TEXT}
        S: A005 OK [APPENDUID {{{{\\d+}}}} 2] {{{{.*}}}}
        C: A006 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 2] {{{{.*}}}}
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] {{{{.*}}}}
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] {{{{.*}}}}
        S: * OK [UIDNEXT 3] {{{{.*}}}}
        S: * OK [MAILBOXID ({{{{F[0-9a-f]+}}}})] Ok
        S: A006 OK [READ-WRITE] {{{{.*}}}}
        C: A007 FETCH 1:2 (FLAGS INTERNALDATE RFC822.SIZE)
        S: * 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "{{{{.*}}}}" RFC822.SIZE {len(SIMPLE)})
        S: * 2 FETCH (FLAGS (\\Flagged \\Recent $Important) INTERNALDATE " 5-Jan-2020 10:11:12 +0100" RFC822.SIZE {len(SIMPLE)})
        S: A007 OK {{{{.*}}}}
        """,
    )


async def test_append_to_selected_mailbox_announces_exists(alice: LineClient) -> None:
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        f"""
        C: A1 APPEND INBOX {SIZE}
        C: {TEXT}
        S: * 1 EXISTS
        S: * 1 RECENT
        S: A1 OK [APPENDUID {{{{\\d+}}}} 1] {{{{.*}}}}
        C: A2 APPEND INBOX (\\Seen) {SIZE}
        C: {TEXT} {SIZE}
        C: {TEXT}
        """,
    )
    # MULTIAPPEND syntax (RFC 3502) as the parser accepts it: one APPENDUID range
    lines = await alice.until_tagged("A2")
    assert lines[-1].startswith(b"A2 OK [APPENDUID ") and b" 2:3]" in lines[-1], lines


async def test_append_literal8_and_errors(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: A1 APPEND INBOX ~{7+}
        C: a\x00b\\r\\ncd
        S: A1 OK [APPENDUID {{\\d+}} 1] {{.*}}
        C: A2 APPEND INBOX "31-Feb-2020 10:00:00 +0000" {1+}
        C: x
        S: A2 BAD {{.*}}
        C: A3 APPEND INBOX (\\Seen {1+}
        C: x
        S: A3 BAD {{.*}}
        C: A4 APPEND Trash {0+}\\r\\n
        S: A4 OK [APPENDUID {{\\d+}} 1] {{.*}}
        C: A5 NOOP
        S: A5 OK {{.*}}
        """,
    )


async def test_multiappend_rfc3502_example(alice: LineClient) -> None:
    """RFC 3502 §6.3.11: several messages in one APPEND, each literal answered with a
    continuation; one APPENDUID range (RFC 4315 §3); a command failing on any message
    stores none of them; STATUS=SIZE (RFC 8438 §3) sums their RFC822.SIZE."""
    await run_transcript(
        alice,
        f"""
        C: A003 APPEND INBOX (\\Seen) {SYNC}
        S: + {{{{.*}}}}
        C: {TEXT} (\\Seen) " 7-Feb-1994 22:43:04 -0800" {SYNC}
        S: + {{{{.*}}}}
        C: {TEXT}
        S: A003 OK [APPENDUID {{{{\\d+}}}} 1:2] APPEND completed
        C: A004 APPEND INBOX {SIZE}
        C: {TEXT} "31-Feb-1994 22:43:04 -0800" {SIZE}
        C: {TEXT}
        S: A004 BAD {{{{.*}}}}
        C: A042 STATUS INBOX (UIDNEXT MESSAGES SIZE)
        S: * STATUS INBOX (UIDNEXT 3 MESSAGES 2 SIZE {2 * len(SIMPLE)})
        S: A042 OK STATUS completed
        C: A043 LIST "" INBOX RETURN (STATUS (SIZE))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (SIZE {2 * len(SIMPLE)})
        S: A043 OK LIST completed
        """,
    )
