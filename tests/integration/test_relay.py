"""Relay to a smarthost or an MX: a local aiosmtpd sink on loopback plays the remote side."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import dkim
import pytest
from aiosmtpd.smtp import SMTP
from tests.conftest import PASSWORDS
from tests.integration.conftest import MailEnv, start_mail, stop_mail

from coi.delivery.dkim import dns_record, keygen

ALICE = "alice@example.org"
CAROL = "carol@remote.example"


@dataclasses.dataclass
class Received:
    sender: str
    rcpts: list[str]
    data: bytes
    tls: bool


class Sink:
    """A remote SMTP server: records messages; `data_replies` / `rcpt_reply` script failures."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.data_replies: list[str] = []  # consumed one per DATA; empty -> 250
        self.rcpt_reply: Callable[[str], str | None] = lambda rcpt: None
        self.attempts = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.ssl is not None,
            )
        )
        return "250 OK queued"


async def start_sink(sink: Sink, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.example", tls_context=tls), "127.0.0.1", 0
    )
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    remote = Sink()
    server, port = await start_sink(remote)
    yield remote, port
    server.close()


async def submit(env: MailEnv, rcpts: list[str], body: str = "Hello Carol.") -> None:
    raw = f"From: {ALICE}\r\nTo: {', '.join(rcpts)}\r\nSubject: hi\r\n\r\n{body}\r\n".encode()
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=env.submission_port, start_tls=False
    ) as smtp:
        await smtp.login(ALICE, PASSWORDS[ALICE])
        await smtp.sendmail(ALICE, rcpts, raw)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def inbox(env: MailEnv, address: str = ALICE) -> list[bytes]:
    store = env.imap.store
    box = store.get_mailbox(env.user_id(address), "INBOX")
    assert box is not None
    rows = store.rows(box.id, list(store.uids(box.id)))
    out = []
    for row in rows.values():
        blob = store.blob(row.blob_id)
        assert blob is not None
        out.append(blob[0])
    return out


async def test_smarthost_retry_after_temporary_failure(
    tmp_path: Path, sink: tuple[Sink, int]
) -> None:
    remote, port = sink
    remote.data_replies = ["451 4.3.0 try later"]
    env = await start_mail(tmp_path, relay_host=f"127.0.0.1:{port}", queue_retry=0.1)
    try:
        await submit(env, [CAROL])
        await until(lambda: len(remote.messages) == 1)
        assert remote.attempts == 2
        assert remote.messages[0].sender == ALICE and remote.messages[0].rcpts == [CAROL]
        assert b"Hello Carol." in remote.messages[0].data
        await until(lambda: env.delivery.queue.list() == [])
        assert inbox(env) == []  # no bounce
    finally:
        await stop_mail(env)


async def test_mx_with_starttls_and_dkim(tmp_path: Path) -> None:
    cert = tmp_path / "tls-cert.pem"
    from coi.tls import ensure_self_signed, server_context

    ensure_self_signed(tmp_path, "localhost")
    remote = Sink()
    server, port = await start_sink(remote, server_context(cert, tmp_path / "tls-key.pem"))
    asked: list[str] = []

    async def resolver(domain: str) -> list[tuple[str, int]]:
        asked.append(domain)
        return [("127.0.0.1", port)]

    _, pem, _ = keygen(tmp_path, "example.org")
    env = await start_mail(tmp_path, resolver=resolver)
    try:
        await submit(env, [CAROL, "dave@remote.example"])
        await until(lambda: len(remote.messages) == 1)
        got = remote.messages[0]
        assert asked == ["remote.example"]
        assert sorted(got.rcpts) == [CAROL, "dave@remote.example"]  # one transaction per domain
        assert got.tls, "STARTTLS was offered, so it must be used"
        assert got.data.startswith(b"DKIM-Signature:")
        record = dns_record(pem, "coi", "example.org").split('"')[1].encode()

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            assert name == b"coi._domainkey.example.org."
            return record

        assert dkim.verify(got.data, dnsfunc=dnsfunc)
    finally:
        await stop_mail(env)
        server.close()


async def test_permanent_failure_bounces_to_sender(tmp_path: Path, sink: tuple[Sink, int]) -> None:
    remote, port = sink
    remote.rcpt_reply = lambda rcpt: "550 5.1.1 no such user" if rcpt == CAROL else None
    env = await start_mail(tmp_path, relay_host=f"127.0.0.1:{port}")
    try:
        await submit(env, [CAROL, "dave@remote.example"])
        await until(lambda: len(inbox(env)) == 1)
        dsn = inbox(env)[0].decode()
        assert "report-type=delivery-status" in dsn
        assert f"Final-Recipient: rfc822; {CAROL}" in dsn and "Status: 5.1.1" in dsn
        assert "Final-Recipient: rfc822; dave@remote.example" not in dsn
        assert [m.rcpts for m in remote.messages] == [["dave@remote.example"]]
        await until(lambda: env.delivery.queue.list() == [])
    finally:
        await stop_mail(env)


async def test_expiry_bounces_after_retries(tmp_path: Path, sink: tuple[Sink, int]) -> None:
    remote, port = sink
    remote.data_replies = ["451 4.3.0 try later"] * 1000
    env = await start_mail(
        tmp_path, relay_host=f"127.0.0.1:{port}", queue_retry=0.05, queue_expiry=0.6
    )
    try:
        await submit(env, [CAROL])
        await until(lambda: len(inbox(env)) == 1)
        assert remote.attempts >= 2  # retried with backoff before giving up
        dsn = inbox(env)[0].decode()
        assert "Status: 4.4.7" in dsn and "451 4.3.0 try later" in dsn
        # the bounce is stored before the queue entry goes (never the other way round)
        await until(lambda: env.delivery.queue.list() == [])
    finally:
        await stop_mail(env)


async def test_queue_survives_restart(tmp_path: Path, sink: tuple[Sink, int]) -> None:
    remote, port = sink
    if os.environ.get("COI_TEST_STORE", "sqlite") == "postgres":
        pytest.skip("the queue is in the store's database there: a fresh store, a fresh queue")
    # nothing listens on port 1; the second run gets a fresh store but the same queue
    env = await start_mail(tmp_path, imap_dir=tmp_path / "one", relay_host="127.0.0.1:1")
    try:
        await submit(env, [CAROL])
        await until(lambda: bool(env.delivery.queue.list()))
    finally:
        await stop_mail(env)
    env = await start_mail(tmp_path, imap_dir=tmp_path / "two", relay_host=f"127.0.0.1:{port}")
    try:
        env.delivery.queue.flush()
        env.delivery.relay.wake()
        await until(lambda: len(remote.messages) == 1)
    finally:
        await stop_mail(env)
