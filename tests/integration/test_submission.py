"""SMTP submission (RFC 6409) with smtplib and aiosmtplib over real sockets (587 + 465)."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
from pathlib import Path

import aiosmtplib
import pytest
from tests.conftest import PASSWORDS
from tests.integration.conftest import MailEnv, start_mail, stop_mail

from coi.store.coi import CoiSettings
from coi.store.model import SEEN

ALICE = "alice@example.org"
BOB = "bob@example.org"


def message(sender: str = ALICE, to: str = BOB, extra: str = "") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: hi\r\n{extra}"
        "Message-ID: <sub-1@example.org>\r\n\r\nHello Bob.\r\n"
    ).encode()


def stored(env: MailEnv, address: str, mailbox: str) -> list[tuple[bytes, int, tuple[str, ...]]]:
    store = env.imap.store
    box = store.get_mailbox(env.user_id(address), mailbox)
    if box is None:
        return []
    uids = list(store.uids(box.id))
    out = []
    for row in store.rows(box.id, uids).values():
        blob = store.blob(row.blob_id)
        assert blob is not None
        out.append((blob[0], row.flags.bits, row.flags.keywords))
    return out


def _smtplib_session(port: int) -> dict[str, object]:
    out: dict[str, object] = {}
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.ehlo("client.example")
        out["features"] = dict(smtp.esmtp_features)
        out["mail_before_auth"] = smtp.mail(ALICE)
        smtp.rset()
        try:
            smtp.login(ALICE, "wrong")
        except smtplib.SMTPAuthenticationError as exc:
            out["bad_login"] = exc.smtp_code
        smtp.login(ALICE, PASSWORDS[ALICE])  # AUTH PLAIN (loopback: no TLS needed)
        out["foreign_sender"] = smtp.mail(BOB)
        smtp.rset()
        assert smtp.mail(ALICE)[0] == 250
        out["unknown_local"] = smtp.rcpt("nobody@example.org")
        assert smtp.rcpt(BOB)[0] == 250
        out["forged_from"] = smtp.data(message(sender=BOB))
        out["refused"] = smtp.sendmail(ALICE, [BOB, "carol@remote.example"], message())
        too_many = [f"r{i}@remote.example" for i in range(4)]
        assert smtp.mail(ALICE)[0] == 250
        out["rcpts"] = [smtp.rcpt(r)[0] for r in too_many]
    return out


async def test_submission_rules_and_delivery(tmp_path: Path) -> None:
    env = await start_mail(tmp_path, max_recipients=3)
    try:
        out = await asyncio.to_thread(_smtplib_session, env.submission_port)
        features = out["features"]
        assert isinstance(features, dict)
        assert "starttls" in features and "size" in features
        assert "PLAIN" in features["auth"] and "LOGIN" in features["auth"]
        assert out["mail_before_auth"] == (530, b"5.7.0 Authentication required")
        assert out["bad_login"] == 535
        foreign = out["foreign_sender"]
        assert isinstance(foreign, tuple) and foreign[0] == 553 and b"not yours" in foreign[1]
        unknown = out["unknown_local"]
        assert isinstance(unknown, tuple) and unknown[0] == 550
        forged = out["forged_from"]
        assert isinstance(forged, tuple) and forged[0] == 550 and b"5.7.1" in forged[1]
        assert out["refused"] == {}
        assert out["rcpts"] == [250, 250, 250, 452]
        # bob got it, alice keeps a \Seen copy in Sent, carol's copy waits in the queue
        inbox = stored(env, BOB, "INBOX")
        assert len(inbox) == 1 and b"Hello Bob." in inbox[0][0]
        assert inbox[0][0].startswith(b"Return-Path: <alice@example.org>\r\nReceived: from ")
        sent = stored(env, ALICE, "Sent")
        assert len(sent) == 1 and sent[0][1] & SEEN and sent[0][0] == message()
        queued = env.delivery.queue.list()
        assert [q.sender for q in queued] == [ALICE]
        assert [r.rcpt for r in queued[0].recipients] == ["carol@remote.example"]
    finally:
        await env.delivery.relay.stop()  # keep the queued copy from being tried on the MX
        await stop_mail(env)


async def test_starttls_and_implicit_tls_with_aiosmtplib(mail_env: MailEnv) -> None:
    # 587: STARTTLS, then AUTH LOGIN
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submission_port, validate_certs=False, start_tls=True
    ) as smtp:
        await smtp.ehlo()
        await smtp.auth_login(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, [BOB], message())
    # 465: implicit TLS, AUTH PLAIN
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submissions_port, use_tls=True, validate_certs=False
    ) as smtp:
        await smtp.ehlo()
        await smtp.auth_plain(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, [BOB], message())
    inbox = stored(mail_env, BOB, "INBOX")
    assert len(inbox) == 2
    assert all(b"with ESMTPSA" in raw for raw, _, _ in inbox)


async def test_plaintext_auth_refused_off_loopback(
    mail_env: MailEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coi.delivery.submission.is_loopback", lambda peer: False)
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submission_port, start_tls=False, timeout=10
    )
    await smtp.connect()
    try:
        await smtp.ehlo()
        assert not smtp.supports_extension("auth")
        reply = await smtp.execute_command(b"AUTH", b"PLAIN")
        assert reply.code == 538
        await smtp.starttls(validate_certs=False)
        await smtp.ehlo()
        assert smtp.supports_extension("auth")
        await smtp.auth_plain(ALICE, PASSWORDS[ALICE])
    finally:
        smtp.close()


async def test_sent_copy_goes_to_chats_with_active_filter(mail_env: MailEnv) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
    chat = message(extra="Chat-Version: 1.0\r\n")
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submission_port, start_tls=False
    ) as smtp:
        await smtp.login(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, [BOB], chat)
        await smtp.sendmail(ALICE, [BOB], message())
    chats = stored(mail_env, ALICE, "COI/Chats")
    assert len(chats) == 1 and chats[0][1] & SEEN and chats[0][2] == ("$Chat",)
    sent = stored(mail_env, ALICE, "Sent")
    assert len(sent) == 1 and sent[0][2] == ()
    assert "COI/Chats" in mail_env.imap.store.subscriptions(mail_env.user_id(ALICE))


async def test_auth_plain_as_another_user_fails(mail_env: MailEnv) -> None:
    """RFC 4616 §2: alice's password does not let her act as bob (authzid)."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=mail_env.submission_port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        token = base64.b64encode(f"{BOB}\0{ALICE}\0{PASSWORDS[ALICE]}".encode()).decode()
        reply = await smtp.execute_command(b"AUTH", b"PLAIN", token.encode())
        assert reply.code == 535
        same = base64.b64encode(f"{ALICE}\0{ALICE}\0{PASSWORDS[ALICE]}".encode()).decode()
        assert (await smtp.execute_command(b"AUTH", b"PLAIN", same.encode())).code == 235
    finally:
        smtp.close()


async def test_no_sent_copy_when_the_sender_is_a_recipient(mail_env: MailEnv) -> None:
    """Delta Chat sends a copy to itself for its other devices: that copy is the one kept."""
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submission_port, start_tls=False
    ) as smtp:
        await smtp.login(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, [BOB, ALICE], message())
    assert len(stored(mail_env, ALICE, "INBOX")) == 1
    assert stored(mail_env, ALICE, "Sent") == []
    assert len(stored(mail_env, BOB, "INBOX")) == 1


async def test_a_clients_own_sent_copy_is_not_stored_twice(mail_env: MailEnv) -> None:
    """Thunderbird and neomutt APPEND their own copy to Sent after sending: the server
    already filed one, so the APPEND gets that copy's UID and Sent shows the message once."""
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=mail_env.submission_port, start_tls=False
    ) as smtp:
        await smtp.login(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, [BOB], message())
    [(_, _, _)] = stored(mail_env, ALICE, "Sent")

    def client_copies() -> list[bytes]:
        imap = imaplib.IMAP4("127.0.0.1", mail_env.imap.port)
        imap.login(ALICE, PASSWORDS[ALICE])
        answers = []
        copy = message(extra="Bcc: alice@example.org\r\n")  # a client's copy has its Bcc
        for box, raw in (("Sent", copy), ("Sent", copy.replace(b"sub-1@", b"other@")),
                         ("INBOX", copy)):  # fmt: skip
            typ, data = imap.append(box, "(\\Seen)", None, raw)
            assert typ == "OK"
            answers.append(imap.untagged_responses.get("APPENDUID", [b""])[-1] or data[0])
        imap.logout()
        return answers

    answers = await asyncio.to_thread(client_copies)
    assert [a.split()[-1] for a in answers[:2]] == [b"1", b"2"], answers  # 1: the server's
    sent = stored(mail_env, ALICE, "Sent")
    assert len(sent) == 2  # the server's copy, and the other message
    assert sum(b"sub-1@" in raw for raw, _, _ in sent) == 1
    assert len(stored(mail_env, ALICE, "INBOX")) == 1  # elsewhere it is stored as asked


async def test_without_domains_the_users_domains_are_local(tmp_path: Path) -> None:
    env = await start_mail(tmp_path, domains=())
    try:
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=env.submission_port, start_tls=False
        ) as smtp:
            await smtp.login(ALICE, PASSWORDS[ALICE])
            await smtp.mail(ALICE)
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await smtp.rcpt("nobody@example.org")
            assert refused.value.code == 550
            assert (await smtp.rcpt("someone@remote.example")).code == 250
    finally:
        await stop_mail(env)
