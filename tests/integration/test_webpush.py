"""WebPush end to end: subscribe over IMAP, validate via a real local HTTPS push service,
deliver over LMTP, receive the encrypted, signed notification (webpush-spec)."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.conftest import LineClient, RunningServer, start_server
from tests.push_endpoint import Endpoint, serve_push

from coi.delivery.service import DeliveryService
from coi.tls import ensure_self_signed, server_context
from coi.webpush.crypto import b64url_encode
from coi.webpush.service import WebPushService

ALICE = "alice@example.org"
SUBS = "/private/vendor/vendor.dovecot/webpush/subscriptions"
SUB_ID = "31754ee7-d3ee-4226-b112-6895ed26fcf8"


@dataclass
class PushEnv:
    imap: RunningServer
    delivery: DeliveryService
    webpush: WebPushService
    endpoint: Endpoint


@pytest.fixture
async def push_env(tmp_path: Path, push_endpoint: Endpoint) -> AsyncIterator[PushEnv]:
    env = await _push_env(tmp_path, push_endpoint)
    try:
        yield env
    finally:
        await _stop_env(env)


async def _push_env(tmp_path: Path, push_endpoint: Endpoint, **overrides: object) -> PushEnv:
    settings: dict[str, object] = {
        "domains": ("example.org",),
        "lmtp": "127.0.0.1:0",
        "submission": "off",
        "submissions": "off",
        "webpush_allow_private": True,
        "webpush_ca_file": push_endpoint.ca_file,
        "webpush_validation_window": 2.0,
        "webpush_max_subscriptions": 2,
    }
    settings.update(overrides)
    imap = await start_server(tmp_path, **settings)
    config = imap.server.config
    cert, key = ensure_self_signed(tmp_path, "localhost")
    delivery = DeliveryService(config, imap.store, server_context(cert, key))
    await delivery.start()
    assert imap.server.webpush_keys is not None
    webpush = WebPushService(config, imap.store, imap.server.webpush_keys)
    webpush.start()
    return PushEnv(imap, delivery, webpush, push_endpoint)


async def _stop_env(env: PushEnv) -> None:
    await env.delivery.stop()
    await env.imap.server.stop(grace=1)
    await env.webpush.stop()
    env.imap.store.close()


def subscription(env: PushEnv, msgtype: str = "chat", path: str = "/push/one") -> bytes:
    point = env.endpoint.ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    data = {
        "client": "My awesome WebPush App",
        "device": "My Favorite Smartphone",
        "msgtype": msgtype,
        "resource": {
            "endpoint": env.endpoint.url + path,
            "keys": {
                "p256dh": b64url_encode(point),
                "auth": base64.b64encode(env.endpoint.auth).decode(),
            },
        },
    }
    return json.dumps(data).encode()


async def setmeta(client: LineClient, tag: str, entry: str, value: bytes) -> list[bytes]:
    await client.send(
        f'{tag} SETMETADATA "" ({entry} {{{len(value)}+}}\r\n'.encode() + value + b")\r\n"
    )
    return await client.until_tagged(tag)


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def deliver(env: PushEnv, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", env.delivery.port("lmtp")) as lmtp:
        lmtp.ehlo("mta.example")
        lmtp.mail("carol@remote.example")
        lmtp.rcpt(ALICE)
        code, _ = lmtp.data(raw)
        assert code == 250


CHAT = (
    b"From: Carol <carol@remote.example>\r\nTo: alice@example.org\r\nSubject: Chat: hi\r\n"
    b"Date: Tue, 31 Dec 2019 23:20:50 +0000\r\n"
    b"Message-ID: <chat$group.abcdefghijkl.1@remote.example>\r\nChat-Version: 1.0\r\n\r\n"
    b"hello alice\r\n"
)
MAIL = b"From: carol@remote.example\r\nTo: alice@example.org\r\nSubject: plain\r\n\r\nx\r\n"
MDN = (
    b"From: carol@remote.example\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\n"
    b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n"
    b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nread\r\n--b--\r\n"
)


async def test_subscribe_validate_and_receive_pushes(push_env: PushEnv) -> None:
    client = await LineClient.connect(push_env.imap)
    await client.login(ALICE)
    lines = await client.command('v GETMETADATA "" /private/vendor/vendor.dovecot/webpush/vapid')
    assert lines[0].startswith(
        b'* METADATA "" (/private/vendor/vendor.dovecot/webpush/vapid {133}\r\n'
        b"-----BEGIN PUBLIC KEY-----\n"
    )
    # COI on, so chat messages get $Chat at delivery (which is how msgtype "chat" is told)
    await client.command('c SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes)')
    # no subscription yet: nothing is pushed (and what was read then is not kept after)
    await asyncio.to_thread(deliver, push_env, CHAT.replace(b".1@", b".0@"))
    await asyncio.sleep(0.2)
    assert push_env.endpoint.received == []
    lines = await setmeta(client, "s", f"{SUBS}/{SUB_ID}", subscription(push_env))
    assert lines[-1] == b"s OK SETMETADATA complete\r\n"
    await wait_for(lambda: push_env.endpoint.received)
    headers, body = push_env.endpoint.received.pop(0)
    assert "WebPush-Validation" in headers
    validation = json.loads(body)["validation"]
    listing = await client.command(f'l GETMETADATA (DEPTH 1) "" ({SUBS})')
    assert b'"validated":false' in listing[0]
    # a wrong value is refused with the spec's words; the right one validates
    lines = await client.command(f'w SETMETADATA "" ({SUBS}/{SUB_ID}/validate "ZZZ000")')
    assert lines[-1] == b"w NO [CANNOT] invalid validation\r\n"
    lines = await client.command(f'r SETMETADATA "" ({SUBS}/{SUB_ID}/validate "{validation}")')
    assert lines[-1].startswith(b"r OK")
    listing = await client.command(f'l2 GETMETADATA (DEPTH 1) "" ({SUBS})')
    assert listing[0].startswith(f'* METADATA "" ({SUBS}/{SUB_ID} {{'.encode())
    stored = json.loads(listing[0].split(b"\r\n", 1)[1].rsplit(b")", 1)[0])
    assert stored["validated"] is True and stored["msgtype"] == "chat"
    assert list(stored)[:2] == ["created", "validated"]
    # a chat message is pushed; plain mail (msgtype chat) and a read receipt are not
    await asyncio.to_thread(deliver, push_env, MAIL)
    await asyncio.to_thread(deliver, push_env, MDN)
    await asyncio.to_thread(deliver, push_env, CHAT)
    await wait_for(lambda: push_env.endpoint.received)
    await asyncio.sleep(0.3)
    assert len(push_env.endpoint.received) == 1
    headers, body = push_env.endpoint.received[0]
    payload = json.loads(body)
    assert headers["Authorization"].startswith("vapid t=")
    assert payload["from-email"] == "carol@remote.example"
    assert payload["from-name"] == "Carol"
    assert payload["subject"] == "Chat: hi"
    assert payload["group-id"] == "abcdefghijkl"
    assert payload["folder"] == "INBOX" and payload["content"] == "hello alice\r\n"
    assert isinstance(payload["uid"], int) and isinstance(payload["uidvalidity"], int)
    # the push service says the subscription is gone: the server removes it
    push_env.endpoint.status = 410
    await asyncio.to_thread(deliver, push_env, CHAT.replace(b".1@", b".2@"))
    await wait_for(lambda: len(push_env.endpoint.received) == 2)
    await wait_for(
        lambda: (
            not push_env.imap.store.get_metadata(
                push_env.imap.store.get_user(ALICE).id, 0, [SUBS], "1"
            )
        )
    )  # type: ignore[union-attr]
    await client.close()


async def test_bad_subscriptions_limits_and_expiry(push_env: PushEnv) -> None:
    client = await LineClient.connect(push_env.imap)
    await client.login(ALICE)
    bad = json.loads(subscription(push_env))
    bad["msgtype"] = "everything"
    lines = await setmeta(client, "b1", f"{SUBS}/{SUB_ID}", json.dumps(bad).encode())
    assert lines[-1].startswith(b"b1 NO [CANNOT] invalid subscription: msgtype")
    lines = await setmeta(client, "b2", f"{SUBS}/short", subscription(push_env))
    assert lines[-1].startswith(b"b2 NO [CANNOT] invalid subscription id")
    lines = await client.command(
        'b3 SETMETADATA "" (/private/vendor/vendor.dovecot/webpush/vapid "x")'
    )
    assert lines[-1].startswith(b"b3 NO [CANNOT]")
    for n, path in enumerate(("/push/a", "/push/b")):
        lines = await setmeta(
            client, f"o{n}", f"{SUBS}/sub-number-{n}", subscription(push_env, path=path)
        )
        assert lines[-1].startswith(f"o{n} OK".encode())
    lines = await setmeta(client, "o3", f"{SUBS}/sub-number-3", subscription(push_env))
    assert lines[-1].startswith(b"o3 NO [LIMIT]")
    # nobody validates: both expire after the window (2 s here) and are removed
    user = push_env.imap.store.get_user(ALICE)
    assert user is not None
    await wait_for(lambda: not push_env.imap.store.get_metadata(user.id, 0, [SUBS], "1"), 6)
    lines = await setmeta(client, "o4", f"{SUBS}/sub-number-4", subscription(push_env))
    assert lines[-1].startswith(b"o4 OK")
    lines = await client.command(f'u SETMETADATA "" ({SUBS}/sub-number-4 NIL)')
    assert lines[-1].startswith(b"u OK")
    await client.close()


async def test_webpush_only_after_login(push_env: PushEnv) -> None:
    client = await LineClient.connect(push_env.imap)
    greeting = await client.line()
    assert b"WEBPUSH" not in greeting
    assert b"WEBPUSH" not in (await client.command("c CAPABILITY"))[0]
    lines = await client.command('l LOGIN alice@example.org "alice-secret"')
    assert b" WEBPUSH]" in lines[-1]
    await client.close()


async def test_encrypted_deltachat_message_is_pushed_as_chat(push_env: PushEnv) -> None:
    """Delta Chat's encrypted mail has no COI marker outside; the encrypted rule of
    coi.chat.detect gives it $Chat at delivery, so a msgtype "chat" subscription gets it."""
    sample = Path(__file__).resolve().parents[1] / "data/chat/deltachat/e2ee-one_to_one.eml"
    encrypted = sample.read_bytes().replace(b"alice@example.org", b"bob@example.org", 1)
    encrypted = encrypted.replace(b"\n", b"\r\n")
    client = await LineClient.connect(push_env.imap)
    await client.login(ALICE)
    await client.command('c SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes)')
    lines = await setmeta(client, "s", f"{SUBS}/{SUB_ID}", subscription(push_env, "chat"))
    assert lines[-1] == b"s OK SETMETADATA complete\r\n"
    await wait_for(lambda: push_env.endpoint.received)
    validation = json.loads(push_env.endpoint.received.pop(0)[1])["validation"]
    lines = await client.command(f'r SETMETADATA "" ({SUBS}/{SUB_ID}/validate "{validation}")')
    assert lines[-1].startswith(b"r OK")
    await asyncio.to_thread(deliver, push_env, MAIL)
    await asyncio.to_thread(deliver, push_env, encrypted)
    await wait_for(lambda: push_env.endpoint.received)
    await asyncio.sleep(0.3)
    assert len(push_env.endpoint.received) == 1  # the plain mail is not a chat
    payload = json.loads(push_env.endpoint.received[0][1])
    assert payload["from-email"] == "bob@example.org"
    assert payload["subject"] == "[...]"
    assert payload["msg-id"] == "b6f8428a-5aaf-4f7c-8bf4-dfb18532c6ce@localhost"
    if "content-type" in payload:
        assert payload["content-type"].startswith("multipart/encrypted")
    await client.close()


async def test_validation_value_is_bound_to_the_endpoint(push_env: PushEnv) -> None:
    """webpush-spec: Validate New Subscriptions. A value pushed to endpoint A does not
    validate the same subscription id once re-pointed at endpoint B (which never saw it);
    the value pushed to B does."""
    client = await LineClient.connect(push_env.imap)
    await client.login(ALICE)
    endpoint = push_env.endpoint
    lines = await setmeta(client, "a", f"{SUBS}/{SUB_ID}", subscription(push_env, path="/push/a"))
    assert lines[-1].startswith(b"a OK")
    await wait_for(lambda: endpoint.received)
    value_a = json.loads(endpoint.received.pop(0)[1])["validation"]
    assert endpoint.paths.pop(0) == "/push/a"
    lines = await setmeta(client, "b", f"{SUBS}/{SUB_ID}", subscription(push_env, path="/push/b"))
    assert lines[-1].startswith(b"b OK")
    await wait_for(lambda: endpoint.received)
    value_b = json.loads(endpoint.received.pop(0)[1])["validation"]
    assert endpoint.paths.pop(0) == "/push/b"
    lines = await client.command(f'v1 SETMETADATA "" ({SUBS}/{SUB_ID}/validate "{value_a}")')
    assert lines[-1] == b"v1 NO [CANNOT] invalid validation\r\n"
    lines = await client.command(f'v2 SETMETADATA "" ({SUBS}/{SUB_ID}/validate "{value_b}")')
    assert lines[-1].startswith(b"v2 OK")
    await client.close()


async def test_internal_endpoints_are_refused_at_setmetadata(tmp_path: Path) -> None:
    """An endpoint that is or resolves to an internal address would never get a push:
    SETMETADATA says so with NO [CANNOT] (webpush-spec: Security Considerations)."""
    imap = await start_server(tmp_path)
    try:
        client = await LineClient.connect(imap)
        await client.login(ALICE)
        keys = {"p256dh": _public_point(), "auth": "MDEyMzQ1Njc4OWFiY2RlZg"}
        for n, endpoint in enumerate(
            (
                "https://127.0.0.1/push/x",
                "https://localhost:8443/push/x",
                "https://[::1]/push/x",
                "https://10.1.2.3/push/x",
                "https://169.254.169.254/latest/meta-data",
                "https://[fe80::1]/x",
                "https://[::ffff:192.168.0.1]/x",
            )
        ):
            value = json.dumps(
                {
                    "client": "c",
                    "device": "d",
                    "msgtype": "all",
                    "resource": {"endpoint": endpoint, "keys": keys},
                }
            ).encode()
            lines = await setmeta(client, f"i{n}", f"{SUBS}/{SUB_ID}", value)
            assert lines[-1].startswith(f"i{n} NO [CANNOT]".encode()), (endpoint, lines)
            assert b"internal" in lines[-1]
        # a public address is taken (nothing is sent to it in this test)
        value = json.dumps(
            {
                "client": "c",
                "device": "d",
                "msgtype": "all",
                "resource": {"endpoint": "https://[2606:4700::1111]/push/x", "keys": keys},
            }
        ).encode()
        lines = await setmeta(client, "p", f"{SUBS}/{SUB_ID}", value)
        assert lines[-1].startswith(b"p OK"), lines
        await client.close()
    finally:
        await imap.server.stop(grace=1)
        imap.store.close()


def _public_point() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(point)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_literal_endpoint_gets_pushes(tmp_path: Path) -> None:
    """An endpoint `https://[::1]:PORT/...` (allowed by webpush_allow_private) gets its
    validation push: IPv6 literal hosts work (issue 16)."""
    async with serve_push(tmp_path / "push6", "::1") as endpoint:
        (tmp_path / "server").mkdir()
        env = await _push_env(tmp_path / "server", endpoint)
        try:
            client = await LineClient.connect(env.imap)
            await client.login(ALICE)
            assert endpoint.url.startswith("https://[::1]:")
            lines = await setmeta(client, "s", f"{SUBS}/{SUB_ID}", subscription(env))
            assert lines[-1].startswith(b"s OK")
            await wait_for(lambda: endpoint.received)
            value = json.loads(endpoint.received[0][1])["validation"]
            lines = await client.command(f'v SETMETADATA "" ({SUBS}/{SUB_ID}/validate "{value}")')
            assert lines[-1].startswith(b"v OK")
            await client.close()
        finally:
            await _stop_env(env)


async def _validated(client: LineClient, env: PushEnv, sub_id: str, path: str) -> None:
    """Subscribes `sub_id` at env's endpoint and validates it with the value pushed there."""
    endpoint = env.endpoint
    seen = len(endpoint.received)
    lines = await setmeta(client, "s", f"{SUBS}/{sub_id}", subscription(env, "all", path))
    assert lines[-1].startswith(b"s OK"), lines
    await wait_for(lambda: len(endpoint.received) > seen)
    value = json.loads(endpoint.received[seen][1])["validation"]
    lines = await client.command(f'v SETMETADATA "" ({SUBS}/{sub_id}/validate "{value}")')
    assert lines[-1].startswith(b"v OK"), lines


def deliver_many(env: PushEnv, rcpt: str, count: int) -> None:
    with smtplib.LMTP("127.0.0.1", env.delivery.port("lmtp")) as lmtp:
        lmtp.ehlo("mta.example")
        for n in range(count):
            lmtp.mail("carol@remote.example")
            lmtp.rcpt(rcpt)
            code, _ = lmtp.data(MAIL.replace(b"plain", f"plain {n}".encode()))
            assert code == 250


async def test_slow_push_service_of_one_user_does_not_delay_another(
    tmp_path: Path, push_endpoint: Endpoint
) -> None:
    """Issue 16 item 4: alice's push service answers after 3 s and she has 80 pushes
    waiting; bob's push (another service) arrives at once, not after hers."""
    async with serve_push(tmp_path / "push-service", "127.0.0.1") as fast:  # same certificate
        (tmp_path / "server").mkdir()
        env = await _push_env(tmp_path / "server", push_endpoint, webpush_max_subscriptions=2)
        bob_env = PushEnv(env.imap, env.delivery, env.webpush, fast)
        try:
            alice = await LineClient.connect(env.imap)
            await alice.login(ALICE)
            for n in range(2):
                await _validated(alice, env, f"alice-sub-{n}", f"/push/alice{n}")
            bob = await LineClient.connect(env.imap)
            await bob.login("bob@example.org")
            await _validated(bob, bob_env, "bob-subscription-0", "/push/bob")
            push_endpoint.delay = 3.0
            await asyncio.to_thread(deliver_many, env, ALICE, 40)  # 80 pushes to the slow one
            await asyncio.sleep(0.2)
            seen = len(fast.received)
            loop = asyncio.get_running_loop()
            sent = loop.time()
            await asyncio.to_thread(deliver_many, env, "bob@example.org", 1)
            await wait_for(lambda: len(fast.received) > seen, 10)
            late = fast.times[-1] - sent
            assert late < 1.0, f"bob's push was {late:.2f} s late"
            for client in (alice, bob):
                await client.close()
        finally:
            push_endpoint.delay = 0.0
            await _stop_env(env)


async def test_429_is_retried_after_retry_after(push_env: PushEnv) -> None:
    """A push answered 429 with `Retry-After: 1` is sent again after a second (RFC 8030
    §8.4); then it arrives and the subscription stays."""
    client = await LineClient.connect(push_env.imap)
    await client.login(ALICE)
    endpoint = push_env.endpoint
    await _validated(client, push_env, SUB_ID, "/push/one")
    endpoint.received.clear()
    endpoint.times.clear()
    endpoint.script = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "0"})]
    await asyncio.to_thread(deliver, push_env, MAIL)
    await wait_for(lambda: len(endpoint.received) == 3, 10)
    assert endpoint.times[1] - endpoint.times[0] >= 1.0
    assert endpoint.received[0][1] == endpoint.received[1][1] == endpoint.received[2][1]
    await asyncio.sleep(0.3)
    assert len(endpoint.received) == 3  # delivered (201): no more tries
    listing = await client.command(f'l GETMETADATA (DEPTH 1) "" ({SUBS})')
    assert b'"validated":true' in listing[0]
    await client.close()
