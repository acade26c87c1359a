"""The client side of the IMAP WebPush extension (webpush-spec): the server's VAPID key,
and subscribing, validating and unsubscribing a push resource through METADATA.

The server sends the pushes itself, straight to the push service of the device, so a
device that subscribed is told of new messages with no connection of its own open.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coi.imap.client import ImapClient
from coi.webpush.subscriptions import ID_PATTERN, SUBSCRIPTIONS, VAPID_ENTRY, MsgType


class PushUnavailable(Exception):
    """The server has no WebPush (or gave no VAPID key); the text says which."""


@dataclass(frozen=True, slots=True)
class PushResource:
    """What a browser's ``PushSubscription.toJSON()`` gives (RFC 8030, RFC 8291)."""

    endpoint: str
    p256dh: str
    auth: str


def application_server_key(pem: bytes) -> str:
    """The VAPID public key as browsers take it: the uncompressed P-256 point, base64url
    without padding (Push API ``applicationServerKey``).  The server publishes it as PEM
    (webpush-spec: VAPID Key), possibly with a compressed point."""
    key = serialization.load_pem_public_key(pem.strip())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise PushUnavailable("the server's VAPID key is not a P-256 key")
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


async def vapid_key(imap: ImapClient) -> str:
    if not imap.has("WEBPUSH"):
        raise PushUnavailable("the mail server does not offer Web Push (no WEBPUSH capability)")
    found = await imap.getmetadata("", [VAPID_ENTRY])
    pem = next((v for k, v in found.items() if k.lower() == VAPID_ENTRY and v), None)
    if pem is None:
        raise PushUnavailable("the mail server published no VAPID key")
    return application_server_key(pem)


def check_id(sub_id: str) -> str:
    """webpush-spec: Subscribe: 10 to 36 of ``[0-9A-Za-z_-]``."""
    if not ID_PATTERN.fullmatch(sub_id):
        raise ValueError("a subscription id is 10 to 36 characters of [0-9A-Za-z_-]")
    return sub_id


async def subscribe(
    imap: ImapClient,
    sub_id: str,
    resource: PushResource,
    client: str,
    device: str,
    msgtype: MsgType = "chat",
) -> None:
    """Stores the subscription; the server then sends a validation push to it."""
    value = {
        "client": client[:128],
        "device": device[:128],
        "msgtype": msgtype,
        "resource": {
            "endpoint": resource.endpoint,
            "keys": {"p256dh": resource.p256dh, "auth": resource.auth},
        },
    }
    entry = f"{SUBSCRIPTIONS}/{check_id(sub_id)}"
    await imap.setmetadata("", {entry: json.dumps(value).encode("utf-8")})


async def validate(imap: ImapClient, sub_id: str, value: str) -> None:
    """Completes validation with what the validation push carried (webpush-spec:
    Validating A Push Subscription)."""
    entry = f"{SUBSCRIPTIONS}/{check_id(sub_id)}/validate"
    await imap.setmetadata("", {entry: value.encode("utf-8")})


async def unsubscribe(imap: ImapClient, sub_id: str) -> None:
    await imap.setmetadata("", {f"{SUBSCRIPTIONS}/{check_id(sub_id)}": None})


async def subscriptions(imap: ImapClient) -> dict[str, dict[str, object]]:
    """The account's subscriptions by id, as the server lists them."""
    found = await imap.getmetadata("", [SUBSCRIPTIONS], depth="1")
    out: dict[str, dict[str, object]] = {}
    for name, value in found.items():
        if value and name.lower().startswith(SUBSCRIPTIONS + "/"):
            try:
                out[name[len(SUBSCRIPTIONS) + 1 :]] = json.loads(value)
            except ValueError:
                continue
    return out
