"""Storage quotas: IMAP QUOTA (RFC 9208), APPEND/COPY refused with OVERQUOTA, LMTP and
submission answer 552 5.2.2 for a full mailbox, and ``coi user quota``."""

from __future__ import annotations

import asyncio
import smtplib
import sys

from tests.conftest import PASSWORDS, LineClient, run_transcript, store_args
from tests.integration.conftest import MailEnv

ALICE, BOB = "alice@example.org", "bob@example.org"


def _message(size: int) -> str:
    head = "From: bob@example.org\r\nSubject: q\r\n\r\n"
    return head + "x" * (size - len(head) - 2) + "\r\n"


async def test_imap_quota_and_overquota(mail_env: MailEnv) -> None:
    await mail_env.imap.store.set_quota(ALICE, 4096)
    client = await LineClient.connect(mail_env.imap)
    await client.login(ALICE)
    small = _message(1200)
    escaped = small.replace("\r\n", "\\r\\n")  # the transcript sends \\r\\n as CRLF
    await run_transcript(
        client,
        f"""
        C: q1 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX ""
        S: * QUOTA "" (STORAGE 0 4)
        S: q1 OK GETQUOTAROOT completed
        C: q2 APPEND INBOX {{{len(small)}+}}
        C: {escaped}
        S: q2 OK [APPENDUID {{{{\\d+}}}} 1] APPEND completed
        C: q3 GETQUOTA ""
        S: * QUOTA "" (STORAGE 2 4)
        S: q3 OK GETQUOTA completed
        """,
    )
    assert (await client.command("q4 SELECT INBOX"))[-1].startswith(b"q4 OK")
    await run_transcript(
        client,
        """
        C: q5 COPY 1 Archive
        S: q5 OK [COPYUID {{\\d+}} 1 1] COPY completed
        C: q6 COPY 1:* Archive
        S: q6 OK [COPYUID {{\\d+}} 1 2] COPY completed
        C: q7 COPY 1 Archive
        S: q7 NO [OVERQUOTA] Mailbox is over quota (4096 octets)
        C: q8 SETQUOTA "" (STORAGE 100)
        S: q8 NO [NOPERM] Quotas are set by the administrator ('coi user quota')
        C: q9 GETQUOTA "other"
        S: q9 NO [NONEXISTENT] No quota root 'other'
        """,
    )
    await client.close()
    bob = await LineClient.connect(mail_env.imap)
    await bob.login(BOB)
    await run_transcript(
        bob,
        """
        C: b1 CAPABILITY
        S: {{.* QUOTA QUOTA=RES-STORAGE .*}}
        S: b1 OK CAPABILITY completed
        C: b2 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX
        S: b2 OK GETQUOTAROOT completed
        """,
    )
    await bob.close()


def _lmtp(env: MailEnv, size: int) -> tuple[dict[str, int], list[tuple[int, bytes]]]:
    with smtplib.LMTP("127.0.0.1", env.lmtp_port) as client:
        client.ehlo("mx.example")
        client.mail("sender@remote.example")
        refused = {}
        for rcpt in (ALICE, BOB):
            code, _ = client.rcpt(rcpt)
            if code != 250:
                refused[rcpt] = code
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(_message(size).encode() + b".\r\n")
        return refused, [client.getreply() for _ in range(2 - len(refused))]


async def test_lmtp_and_submission_say_mailbox_full(mail_env: MailEnv) -> None:
    await mail_env.imap.store.set_quota(ALICE, 3000)
    refused, replies = await asyncio.to_thread(_lmtp, mail_env, 2000)
    assert refused == {} and [code for code, _ in replies] == [250, 250]
    refused, replies = await asyncio.to_thread(_lmtp, mail_env, 2000)  # would not fit
    assert refused == {}
    assert replies == [
        (552, b"5.2.2 <alice@example.org>: mailbox full"),
        (250, b"2.0.0 <bob@example.org> delivered"),
    ]
    await mail_env.imap.store.set_quota(ALICE, 2000)  # now full: refused at RCPT
    refused, replies = await asyncio.to_thread(_lmtp, mail_env, 500)
    assert refused == {ALICE: 552} and [code for code, _ in replies] == [250]

    def submit() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", mail_env.submission_port) as smtp:
            smtp.login(BOB, PASSWORDS[BOB])
            smtp.mail(BOB)
            return smtp.rcpt(ALICE)

    assert await asyncio.to_thread(submit) == (552, b"5.2.2 <alice@example.org>: mailbox full")


async def test_coi_user_quota(mail_env: MailEnv) -> None:
    data = store_args(mail_env.imap)

    async def coi(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coi.cli.main", "user", "quota", *args, *data,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    assert await coi(ALICE) == (0, "alice@example.org: 0B used of no limit\n", "")
    assert await coi(ALICE, "1.5G") == (0, "alice@example.org: 0B used of 1.5G\n", "")
    assert await coi(BOB, "--default-quota", "1048576") == (
        0, "bob@example.org: 0B used of 1.0M (default_quota)\n", ""
    )  # fmt: skip
    assert await coi(ALICE, "lots") == (2, "", "coi: 'lots' is no size like 500M, 2G or 0\n")
    assert (await coi("nobody@example.org", "1M"))[0] == 1
