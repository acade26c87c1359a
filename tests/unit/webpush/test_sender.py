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


def test_retry_after_seconds_or_http_date() -> None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date (any of its three forms)."""
    from coi.webpush.sender import retry_after_seconds

    now = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("Sun, 06 Nov 1994 08:50:37 GMT", now) == 60.0
    assert retry_after_seconds("Sunday, 06-Nov-94 08:50:37 GMT", now) == 60.0
    assert retry_after_seconds("Sun Nov  6 08:50:37 1994", now) == 60.0
    assert retry_after_seconds("Sun, 06 Nov 1994 08:00:00 GMT", now) == 0.0  # past: now


def test_retry_delays_back_off_and_honour_retry_after() -> None:
    from coi.webpush.queue import FairPushQueue, should_retry

    queue = FairPushQueue(None, None, backoff=2.0, max_delay=600.0)  # type: ignore[arg-type]
    assert [queue.delay(n, None) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert queue.delay(0, 30.0) == 30.0
    assert queue.delay(0, 3600.0) is None  # beyond max_delay: give up
    assert should_retry(429) and should_retry(503) and not should_retry(404)
    assert not should_retry(400) and not should_retry(201)
