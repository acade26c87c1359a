"""A real local HTTPS push service (RFC 8030 receiving side) for WebPush tests."""

from __future__ import annotations

import asyncio
import contextlib
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
from coi.webpush.sender import PushTarget


@dataclass
class Endpoint:
    url: str
    ua: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # the request path of each push received
    times: list[float] = field(default_factory=list)  # loop time each push arrived
    status: int = 201
    delay: float = 0.0  # seconds to wait before answering (a slow push service)
    # answers to give before `status`, in order: (status, extra headers)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    client_context: ssl.SSLContext | None = None
    ca_file: Path | None = None

    def target(self, path: str = "/push/abc") -> PushTarget:
        point = self.ua.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return PushTarget(self.url + path, point, self.auth)


@pytest.fixture
async def push_endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with serve_push(tmp_path / "push-service", "127.0.0.1") as state:
        yield state


@contextlib.asynccontextmanager
async def serve_push(directory: Path, host: str) -> AsyncIterator[Endpoint]:
    """A stand-in push service on `host` (an IPv4 or IPv6 literal) and a free port."""
    cert, key = ensure_self_signed(directory, "localhost")
    state = Endpoint("", ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef")

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        state.times.append(asyncio.get_running_loop().time())
        if state.delay:
            await asyncio.sleep(state.delay)
        state.received.append((dict(request.headers), crypto.decrypt(body, state.ua, state.auth)))
        state.paths.append(request.path)
        if state.script:
            status, headers = state.script.pop(0)
            return web.Response(status=status, headers=headers)
        return web.Response(status=state.status)

    app = web.Application()
    app.router.add_post("/push/{id}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=server_context(cert, key))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    shown = f"[{host}]" if ":" in host else host
    state.url = f"https://{shown}:{port}"
    state.client_context = ssl.create_default_context(cafile=str(cert))
    state.ca_file = cert
    try:
        yield state
    finally:
        await runner.cleanup()
