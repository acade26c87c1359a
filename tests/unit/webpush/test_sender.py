"""The sender against a real local HTTPS push endpoint, and its refusal of internal hosts."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coi.tls import ensure_self_signed, server_context
from coi.webpush import crypto
from coi.webpush.sender import PushRefused, PushSender, PushTarget, is_public


@dataclass
class Endpoint:
    url: str
    ua: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 201
    client_context: ssl.SSLContext | None = None

    def target(self, path: str = "/push/abc") -> PushTarget:
        point = self.ua.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return PushTarget(self.url + path, point, self.auth)


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    cert, key = ensure_self_signed(tmp_path, "localhost")
    state = Endpoint("", ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef")

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        state.received.append((dict(request.headers), crypto.decrypt(body, state.ua, state.auth)))
        return web.Response(status=state.status)

    app = web.Application()
    app.router.add_post("/push/{id}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"https://127.0.0.1:{port}"
    state.client_context = ssl.create_default_context(cafile=str(cert))
    yield state
    await runner.cleanup()


async def test_push_is_encrypted_signed_and_accepted(endpoint: Endpoint) -> None:
    vapid = crypto.generate_vapid_key()
    sender = PushSender(
        vapid, "mailto:admin@example.org", allow_private=True, ssl_context=endpoint.client_context
    )
    try:
        result = await sender.send(endpoint.target(), b'{"uid":1}', validation=True)
        assert result.delivered and not result.gone
        headers, plaintext = endpoint.received[0]
        assert plaintext == b'{"uid":1}'
        assert headers["Content-Encoding"] == "aes128gcm"
        assert headers["TTL"] == "86400"
        assert "WebPush-Validation" in headers
        assert headers["Authorization"].startswith("vapid t=")
        assert headers["Authorization"].endswith("k=" + crypto.application_server_key(vapid))
        endpoint.status = 410
        gone = await sender.send(endpoint.target(), b"{}")
        assert gone.gone and "WebPush-Validation" not in endpoint.received[1][0]
    finally:
        await sender.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://push.example.net/x",
        "https://user:pw@push.example.net/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/x",
    ],
)
async def test_internal_and_plain_http_endpoints_are_refused(url: str) -> None:
    sender = PushSender(crypto.generate_vapid_key(), "mailto:admin@example.org")
    target = PushTarget(
        url,
        crypto.parse_p256dh(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        ),
        b"a" * 16,
    )
    try:
        with pytest.raises(PushRefused):
            await sender.send(target, b"{}")
    finally:
        await sender.close()


def test_public_address_check() -> None:
    assert is_public("93.184.216.34")
    assert is_public("2606:4700::1111")
    for internal in (
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
    ):
        assert not is_public(internal), internal
