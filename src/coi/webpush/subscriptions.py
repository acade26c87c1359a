"""WebPush subscriptions as clients store them in METADATA (webpush-spec: Subscriptions).

Parsing is strict: every rule of the spec and of RFC 8291 is checked, unknown keys are
dropped, and each refusal says what is wrong. Validation values are HMACs of the
subscription, the user and the time of sending, so the server keeps no extra state to
check them and a value can't be moved to another subscription or user. The MAC covers
the endpoint and keys too (webpush-spec: Validate New Subscriptions): only the push
service that received the value can complete validation, so a value seen at endpoint A
does not validate the same subscription id once it points at endpoint B.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from coi.webpush.crypto import InvalidKey, parse_auth, parse_p256dh

if TYPE_CHECKING:
    from coi.webpush.sender import PushTarget

PREFIX = "/private/vendor/vendor.dovecot/webpush/"
SUBSCRIPTIONS = PREFIX + "subscriptions"
VAPID_ENTRY = PREFIX + "vapid"
ID_PATTERN = re.compile(r"[0-9A-Za-z_-]{10,36}")
MsgType = Literal["chat", "mail", "all"]


class InvalidSubscription(ValueError):
    """The client's subscription breaks a rule; the text is the NO [CANNOT] message."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    client: str
    device: str
    msgtype: MsgType
    endpoint: str
    p256dh: str
    auth: str
    created: str  # RFC 3339, set by the server
    validated: bool

    def target(self) -> PushTarget:
        from coi.webpush.sender import PushTarget  # aiohttp: not for the chat client's start

        return PushTarget(self.endpoint, parse_p256dh(self.p256dh), parse_auth(self.auth))

    def wants(self, is_chat: bool) -> bool:
        return self.msgtype == "all" or (self.msgtype == "chat") == is_chat

    def to_json(self) -> bytes:
        """What GETMETADATA returns: `created` and `validated` first, as in the spec."""
        data: dict[str, Any] = {
            "created": self.created,
            "validated": self.validated,
            "client": self.client,
            "device": self.device,
            "msgtype": self.msgtype,
            "resource": {
                "endpoint": self.endpoint,
                "keys": {"p256dh": self.p256dh, "auth": self.auth},
            },
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def subscription_id(entry: str) -> tuple[str, bool] | None:
    """(id, is the /validate entry) for a subscription entry name, else None."""
    if not entry.startswith(SUBSCRIPTIONS + "/"):
        return None
    rest = entry[len(SUBSCRIPTIONS) + 1 :]
    validate = rest.endswith("/validate")
    if validate:
        rest = rest[: -len("/validate")]
    if not ID_PATTERN.fullmatch(rest):
        raise InvalidSubscription(
            "invalid subscription id: use 10 to 36 characters of [0-9A-Za-z_-]"
        )
    return rest, validate


def _text(data: dict[str, Any], key: str, limit: int, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidSubscription(f"{where}{key} must be a string")
    if len(value.encode("utf-8")) > limit:
        raise InvalidSubscription(f"{where}{key} is longer than {limit} octets")
    return value


def parse_subscription(sub_id: str, value: bytes, now: datetime | None = None) -> Subscription:
    """A new, not yet validated subscription from the client's JSON."""
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSubscription("subscription is not valid UTF-8 JSON") from exc
    if not isinstance(data, dict):
        raise InvalidSubscription("subscription must be a JSON object")
    client = _text(data, "client", 128)
    device = _text(data, "device", 128)
    msgtype = data.get("msgtype")
    if msgtype not in ("chat", "mail", "all"):
        raise InvalidSubscription('msgtype must be "chat", "mail" or "all"')
    resource = data.get("resource")
    if not isinstance(resource, dict):
        raise InvalidSubscription("resource must be an object with endpoint and keys")
    endpoint = _text(resource, "endpoint", 512, "resource.")
    from coi.webpush.sender import PushRefused, check_endpoint  # aiohttp, as above

    try:
        check_endpoint(endpoint)
    except PushRefused as exc:
        raise InvalidSubscription(f"resource.endpoint: {exc}") from exc
    keys = resource.get("keys")
    if not isinstance(keys, dict):
        raise InvalidSubscription("resource.keys must be an object with p256dh and auth")
    p256dh = _text(keys, "p256dh", 256, "resource.keys.")
    auth = _text(keys, "auth", 256, "resource.keys.")
    try:
        parse_p256dh(p256dh)
        parse_auth(auth)
    except InvalidKey as exc:
        raise InvalidSubscription(f"resource.keys: {exc}") from exc
    created = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    return Subscription(sub_id, client, device, msgtype, endpoint, p256dh, auth, created, False)


def load_subscription(sub_id: str, stored: bytes) -> Subscription:
    """A subscription as the server stored it (already validated when stored)."""
    data = json.loads(stored.decode("utf-8"))
    resource = data["resource"]
    return Subscription(
        sub_id,
        data["client"],
        data["device"],
        data["msgtype"],
        resource["endpoint"],
        resource["keys"]["p256dh"],
        resource["keys"]["auth"],
        data["created"],
        bool(data["validated"]),
    )


def validation_value(secret: bytes, user_id: int, sub: Subscription, sent_at: int) -> str:
    """The text sent in the validation push: `<time>$<mac>` (at most 1 kB, per the spec),
    the MAC over user, subscription id, endpoint, keys and time (a JSON array, so no field
    can run into the next)."""
    bound = [user_id, sub.id, sub.endpoint, sub.p256dh, sub.auth, sent_at]
    message = json.dumps(bound, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    mac = hmac.new(secret, message, hashlib.sha256)
    return f"{sent_at}${mac.hexdigest()}"


def check_validation(
    secret: bytes,
    user_id: int,
    sub: Subscription,
    value: str,
    window: float,
    now: float | None = None,
) -> bool:
    """True if `value` was made for this user and subscription as it is now (endpoint and
    keys included) and is younger than `window`."""
    sent_text, _, _ = value.partition("$")
    if not sent_text.isdigit() or len(sent_text) > 20:
        return False
    sent_at = int(sent_text)
    current = time.time() if now is None else now
    if not 0 <= current - sent_at <= window:
        return False
    return hmac.compare_digest(value, validation_value(secret, user_id, sub, sent_at))
