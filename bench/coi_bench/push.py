"""delivery -> WebPush latency (coi only): a local HTTPS push service receives the
encrypted pushes; each LMTP delivery is timed until its push arrives."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coi.tls import ensure_self_signed, server_context
from coi.webpush import crypto
from coi_bench.clients import Imap, Lmtp
from coi_bench.servers import Server

SUBS = "/private/vendor/vendor.dovecot/webpush/subscriptions"


def push_ca(directory: Path) -> Path:
    """The push service's certificate, made before coi starts so coi can trust it."""
    cert, _ = ensure_self_signed(directory, "localhost")
    return cert


async def push_latency(
    server: Server, directory: Path, user: tuple[str, str], deliveries: int
) -> dict[str, float]:
    cert, key = ensure_self_signed(directory, "localhost")
    ua = ec.generate_private_key(ec.SECP256R1())
    auth = b"0123456789abcdef"
    arrived: asyncio.Queue[tuple[float, dict[str, object]]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(crypto.decrypt(body, ua, auth))
        arrived.put_nowait((time.perf_counter(), payload))
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/push/{id}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        imap = await Imap.login(server.host, server.imap_port, *user)
        point = ua.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sub = json.dumps(
            {
                "client": "bench",
                "device": "bench",
                "msgtype": "all",
                "resource": {
                    "endpoint": f"https://127.0.0.1:{port}/push/bench",
                    "keys": {
                        "p256dh": crypto.b64url_encode(point),
                        "auth": base64.b64encode(auth).decode(),
                    },
                },
            }
        ).encode()
        entry = f"{SUBS}/bench-subscription"
        await imap.ok(f'SETMETADATA "" ({entry} {{{len(sub)}+}}\r\n'.encode() + sub + b")")
        _, validation = await asyncio.wait_for(arrived.get(), 30)
        await imap.ok(f'SETMETADATA "" ({entry}/validate "{validation["validation"]}")')
        assert server.lmtp_port, "push latency needs LMTP"
        lmtp = await Lmtp.connect(server.host, server.lmtp_port)
        latencies = []
        for n in range(deliveries):
            message = (
                f"From: sender@example.net\r\nTo: {user[0]}\r\nSubject: push {n}\r\n"
                f"Message-ID: <chat$push{n}@example.net>\r\nChat-Version: 1.0\r\n\r\nhi {n}\r\n"
            ).encode()
            sent = time.perf_counter()
            await lmtp.deliver("sender@example.net", user[0], message)
            got, _ = await asyncio.wait_for(arrived.get(), 30)
            latencies.append(got - sent)
        await lmtp.quit()
        await imap.logout()
    finally:
        await runner.cleanup()
    latencies.sort()
    return {
        "push_p50_ms": latencies[len(latencies) // 2] * 1000,
        "push_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }
