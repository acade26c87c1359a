"""The plain-provider fixture (tests/plainserver.py): Debian's Dovecot without COI behind an
SMTP front, as the client's fallback tests will see it."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import time

import pytest
from tests.plainserver import MAILBOXES, PlainMailServer, start_plain_server

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
# LMTP prepends these to what it stores; everything after them is the message as sent
PREPENDED = (b"return-path:", b"delivered-to:", b"received:")


def login(server: PlainMailServer, address: str = ALICE) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.imap_host, server.imap_port)
    imap.login(address, server.users[address])
    return imap


def smtp(server: PlainMailServer, address: str = BOB) -> smtplib.SMTP:
    client = smtplib.SMTP(server.imap_host, server.smtp_port, timeout=10)
    client.login(address, server.users[address])
    return client


def strip_prepended(stored: bytes) -> bytes:
    """The stored message without the trace header fields LMTP put in front of it."""
    rest = stored
    while True:
        line_end = rest.index(b"\r\n") + 2
        while rest[line_end : line_end + 1] in (b" ", b"\t"):  # folded continuation
            line_end = rest.index(b"\r\n", line_end) + 2
        if not rest[:line_end].lower().startswith(PREPENDED):
            return rest
        rest = rest[line_end:]


def fetch_all(server: PlainMailServer, address: str, mailbox: str = "INBOX") -> list[bytes]:
    imap = login(server, address)
    try:
        typ, _ = imap.select(mailbox, readonly=True)
        assert typ == "OK"
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        imap.logout()


def message(subject: str, body: bytes = b"Hello.\r\n", sender: str = BOB) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
        "Date: Sat, 05 Dec 2026 12:00:00 +0000\r\n\r\n"
    ).encode() + body


def test_capability_is_plain_imap(plain_mail: PlainMailServer) -> None:
    imap = login(plain_mail)
    try:
        typ, data = imap.capability()
        assert typ == "OK"
        caps = data[0].decode().upper().split()
        assert "IDLE" in caps
        assert "CONDSTORE" in caps and "QRESYNC" in caps
        assert not [c for c in caps if c.startswith("COI")]
        assert "METADATA" not in caps and "METADATA-SERVER" not in caps
        typ, listed = imap.list()
        assert typ == "OK"
        text = b"\n".join(x for x in listed if isinstance(x, bytes)).decode()
        for name, flag in MAILBOXES.items():
            assert any(flag in line and line.endswith(f" {name}") for line in text.splitlines())
        typ, subscribed = imap.lsub()
        assert typ == "OK"
        names = {x.decode().rsplit(" ", 1)[1] for x in subscribed if isinstance(x, bytes)}
        assert names >= set(MAILBOXES)
    finally:
        imap.logout()
    assert plain_mail.version.startswith("2.")


def test_tls_ports(plain_mail: PlainMailServer) -> None:
    ctx = ssl.create_default_context(cafile=str(plain_mail.cert_path))
    with imaplib.IMAP4_SSL(plain_mail.imap_host, plain_mail.imaps_port, ssl_context=ctx) as imap:
        imap.login(ALICE, plain_mail.users[ALICE])
    with imaplib.IMAP4(plain_mail.imap_host, plain_mail.imap_port) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ctx)
        imap.login(ALICE, plain_mail.users[ALICE])
    with smtplib.SMTP(plain_mail.imap_host, plain_mail.smtp_port, timeout=10) as client:
        client.starttls(context=ctx)
        client.login(BOB, plain_mail.users[BOB])


def test_wrong_password_is_refused(plain_mail: PlainMailServer) -> None:
    imap = imaplib.IMAP4(plain_mail.imap_host, plain_mail.imap_port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login(ALICE, "not-the-password")
    imap.logout()
    with (
        smtplib.SMTP(plain_mail.imap_host, plain_mail.smtp_port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login(BOB, "not-the-password")
    assert refused.value.smtp_code == 535


def test_smtp_front_delivers_to_inbox_as_sent(plain_mail: PlainMailServer) -> None:
    raw = message("through the front", b"line one\r\n.leading dot\r\n\r\nlast\r\n")
    with smtp(plain_mail) as client:
        refused = client.sendmail(BOB, [ALICE, CAROL], raw)
    assert refused == {}
    for address in (ALICE, CAROL):
        (stored,) = fetch_all(plain_mail, address)
        assert stored.startswith(b"Return-Path: <bob@example.org>\r\n")
        assert f"Delivered-To: {address}\r\n".encode() in stored
        assert strip_prepended(stored) == raw
    # a plain provider keeps no sent copy: the client has to APPEND its own
    assert fetch_all(plain_mail, BOB, "Sent") == []
    assert fetch_all(plain_mail, BOB) == []
    assert plain_mail.relayed[0][:2] == (BOB, [ALICE, CAROL])


def test_smtp_needs_auth(plain_mail: PlainMailServer) -> None:
    with smtplib.SMTP(plain_mail.imap_host, plain_mail.smtp_port, timeout=10) as client:
        client.ehlo()
        code, _ = client.mail(BOB)
        assert code == 530


def test_mail_from_someone_else_is_550(plain_mail: PlainMailServer) -> None:
    with smtp(plain_mail) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(ALICE, [CAROL], message("forged", sender=ALICE))
        assert refused.value.smtp_code == 550
        # the same session may still send as itself
        assert client.sendmail(BOB.upper(), [CAROL], message("own")) == {}
    assert len(fetch_all(plain_mail, CAROL)) == 1


def test_unknown_domain_is_550(plain_mail: PlainMailServer) -> None:
    with smtp(plain_mail) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(BOB, ["someone@elsewhere.example"], message("away"))
        code, text = refused.value.recipients["someone@elsewhere.example"]
        assert code == 550 and text.startswith(b"5.1.2")
        # one refused recipient among good ones: the rest is delivered
        partly = client.sendmail(BOB, ["x@elsewhere.example", ALICE], message("mixed"))
        assert list(partly) == ["x@elsewhere.example"]
        assert partly["x@elsewhere.example"][0] == 550
    assert len(fetch_all(plain_mail, ALICE)) == 1


def test_unknown_user_in_domain_gets_lmtp_refusal(plain_mail: PlainMailServer) -> None:
    with smtp(plain_mail) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(BOB, ["nobody@example.org"], message("nobody"))
    assert refused.value.smtp_code == 550
    assert b"doesn't exist" in refused.value.smtp_error
    results = plain_mail.relayed[0][2]
    assert results["nobody@example.org"][0] == 550


def test_oversized_message_is_552(plain_mail: PlainMailServer) -> None:
    plain_mail.max_message_size = 2000  # from the next SMTP connection on
    with smtp(plain_mail) as client:
        with pytest.raises(smtplib.SMTPException) as refused:
            client.sendmail(BOB, [ALICE], message("big", (b"x" * 70 + b"\r\n") * 40))
        # smtplib announces SIZE= on MAIL FROM, so the refusal comes there
        assert getattr(refused.value, "smtp_code", None) == 552
        assert client.sendmail(BOB, [ALICE], message("small")) == {}
    # without SIZE= the refusal comes after DATA
    with smtp(plain_mail) as client:
        client.ehlo()
        assert client.mail(BOB)[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        code, _ = client.data(message("big again", (b"y" * 70 + b"\r\n") * 40))
        assert code == 552
    assert len(fetch_all(plain_mail, ALICE)) == 1


def test_deliver_helper(plain_mail: PlainMailServer) -> None:
    raw = message("from outside", sender="stranger@elsewhere.example")
    results = plain_mail.deliver(raw, [ALICE, "nobody@example.org"], "stranger@elsewhere.example")
    assert results[ALICE][0] == 250
    assert results["nobody@example.org"][0] == 550
    (stored,) = fetch_all(plain_mail, ALICE)
    assert strip_prepended(stored) == raw


async def test_idle_sees_delivery_from_async_test(plain_mail: PlainMailServer) -> None:
    """The fixture works from async tests: the SMTP front runs in its own thread."""
    imap = login(plain_mail)
    try:
        imap.select("INBOX")
        tag = imap._new_tag().decode()  # type: ignore[attr-defined]
        imap.send(f"{tag} IDLE\r\n".encode())
        assert imap.readline().startswith(b"+")

        def send() -> None:
            with smtp(plain_mail) as client:
                client.sendmail(BOB, [ALICE], message("while idling"))

        await asyncio.to_thread(send)
        deadline = time.monotonic() + 10
        line = b""
        while b"EXISTS" not in line and time.monotonic() < deadline:
            line = await asyncio.to_thread(imap.readline)
        assert line == b"* 1 EXISTS\r\n"
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(tag.encode()):
            pass
    finally:
        imap.logout()


def test_two_instances_at_once(plain_mail: PlainMailServer) -> None:
    with start_plain_server() as other:
        assert {other.imap_port, other.smtp_port} & {
            plain_mail.imap_port,
            plain_mail.smtp_port,
        } == (set())
        plain_mail.deliver(message("first"), ALICE, BOB)
        other.deliver(message("second"), ALICE, BOB)
        assert [strip_prepended(m) for m in fetch_all(plain_mail, ALICE)] == [message("first")]
        assert [strip_prepended(m) for m in fetch_all(other, ALICE)] == [message("second")]
        workdir = other.workdir
    assert not workdir.exists()
    # the first instance is untouched by the second one's stop
    assert len(fetch_all(plain_mail, ALICE)) == 1
