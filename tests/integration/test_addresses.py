"""Aliases, catch-all, sub-addressing and postmaster@/abuse@ at LMTP and submission."""

from __future__ import annotations

import asyncio
import smtplib
import sys
from pathlib import Path

from tests.conftest import PASSWORDS, store_args
from tests.integration.conftest import MailEnv
from tests.integration.test_submission import stored

ALICE, BOB = "alice@example.org", "bob@example.org"


async def coi(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lmtp(env: MailEnv, rcpts: list[str]) -> tuple[dict[str, tuple[int, bytes]], list[int]]:
    """RCPT answers of the refused ones, and each accepted one's DATA answer."""
    with smtplib.LMTP("127.0.0.1", env.lmtp_port) as client:
        client.ehlo("mx.example")  # smtplib.LMTP sends LHLO
        client.mail("sender@remote.example")
        refused = {}
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code != 250:
                refused[rcpt] = (code, text)
        if len(refused) == len(rcpts):
            return refused, []
        client.putcmd("data")
        reply = client.getreply()
        assert reply[0] == 354, (refused, reply)
        client.send(b"Subject: hi\r\nMessage-ID: <a@remote.example>\r\n\r\nhello\r\n.\r\n")
        codes = [client.getreply()[0] for _ in range(len(rcpts) - len(refused))]
    return refused, codes


async def test_aliases_catch_all_sub_addresses_and_postmaster(
    mail_env: MailEnv, tmp_path: Path
) -> None:
    data = store_args(mail_env.imap)
    assert await coi("alias", "add", "info@example.org", ALICE, *data) == (
        0, "info@example.org -> alice@example.org\n", ""
    )  # fmt: skip
    code, _, err = await coi("alias", "add", BOB, ALICE, *data)
    assert (code, err) == (1, "coi: bob@example.org is an account; an alias needs an address"
                              " of its own\n")  # fmt: skip
    code, _, err = await coi("alias", "add", "x@example.org", "nobody@example.org", *data)
    assert code == 1 and "no such user nobody@example.org" in err
    refused, codes = await asyncio.to_thread(
        lmtp, mail_env, ["info@example.org", "alice+news@example.org", "postmaster@example.org",
                         "abuse@example.org", "nobody@example.org"],
    )  # fmt: skip
    assert list(refused) == ["nobody@example.org"] and refused["nobody@example.org"][0] == 550
    assert codes == [250, 250, 250, 250]
    # alice is the first user of example.org: postmaster@ and abuse@ reach her; one copy
    # for all four addresses
    assert len(stored(mail_env, ALICE, "INBOX")) == 1

    assert (await coi("alias", "add", "@example.org", BOB, *data))[0] == 0
    refused, codes = await asyncio.to_thread(lmtp, mail_env, ["anything@example.org"])
    assert (refused, codes) == ({}, [250])
    assert len(stored(mail_env, BOB, "INBOX")) == 1
    assert (await coi("alias", "list", *data))[1] == (
        "@example.org -> bob@example.org\ninfo@example.org -> alice@example.org\n"
    )
    assert (await coi("alias", "del", "@example.org", *data))[0] == 0
    refused, _ = await asyncio.to_thread(lmtp, mail_env, ["anything@example.org"])
    assert refused["anything@example.org"][0] == 550


async def test_submission_to_an_alias_is_delivered_locally(mail_env: MailEnv) -> None:
    await mail_env.imap.store.set_alias("team@example.org", BOB)

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", mail_env.submission_port) as smtp:
            smtp.login(ALICE, PASSWORDS[ALICE])
            return smtp.sendmail(
                ALICE, ["team@example.org", "bob+x@example.org"],
                f"From: {ALICE}\r\nTo: team@example.org\r\nSubject: t\r\n\r\nhi\r\n",
            )  # fmt: skip

    assert await asyncio.to_thread(send) == {}
    assert len(stored(mail_env, BOB, "INBOX")) == 1
