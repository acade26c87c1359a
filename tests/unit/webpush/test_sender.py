"""The sender against a real local HTTPS push endpoint, and its refusal of internal hosts."""

from __future__ import annotations

import pytest
from tests.push_endpoint import Endpoint

from coi.webpush import crypto
from coi.webpush.sender import PushRefused, PushSender, PushTarget, is_public


async def test_push_is_encrypted_signed_and_accepted(push_endpoint: Endpoint) -> None:
    endpoint = push_endpoint
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
