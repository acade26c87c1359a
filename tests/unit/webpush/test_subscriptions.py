from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from coi.webpush.subscriptions import (
    SUBSCRIPTIONS,
    InvalidSubscription,
    check_validation,
    load_subscription,
    parse_subscription,
    subscription_id,
    validation_value,
)

P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "tBHItJI5svbpez7KI4CCXg=="


def _json(**changes: object) -> bytes:
    data: dict[str, object] = {
        "client": "My awesome WebPush App",
        "device": "My Favorite Smartphone",
        "msgtype": "chat",
        "resource": {
            "endpoint": "https://my-push-service.com/some-kind-of-unique-id-1234/v2/",
            "keys": {"p256dh": P256DH, "auth": AUTH},
        },
        "extra": "dropped",
    }
    data.update(changes)
    return json.dumps(data).encode()


def test_valid_subscription_round_trip() -> None:
    now = datetime(2019, 10, 16, 16, 14, 17, tzinfo=UTC)
    sub = parse_subscription("31754ee7-d3ee-4226", _json(), now)
    assert sub.created == "2019-10-16T16:14:17+00:00" and not sub.validated
    stored = sub.to_json()
    assert stored.startswith(b'{"created":"2019-10-16T16:14:17+00:00","validated":false,')
    assert b"extra" not in stored
    assert load_subscription(sub.id, stored) == sub
    assert sub.wants(is_chat=True) and not sub.wants(is_chat=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"msgtype": "Chat"}, "msgtype"),
        ({"msgtype": None}, "msgtype"),
        ({"client": "x" * 129}, "client is longer than 128"),
        ({"device": 5}, "device must be a string"),
        ({"resource": "x"}, "resource must be an object"),
        (
            {"resource": {"endpoint": "http://x/", "keys": {"p256dh": P256DH, "auth": AUTH}}},
            "https",
        ),
        ({"resource": {"endpoint": "https://x/" + "a" * 510, "keys": {}}}, "512"),
        (
            {"resource": {"endpoint": "https://x/", "keys": {"p256dh": "AAAA", "auth": AUTH}}},
            "p256dh",
        ),
        (
            {"resource": {"endpoint": "https://x/", "keys": {"p256dh": P256DH, "auth": "AAAA"}}},
            "auth",
        ),
    ],
)
def test_invalid_subscriptions_say_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSubscription, match=message):
        parse_subscription("abcdefghij", _json(**changes))


def test_not_json() -> None:
    with pytest.raises(InvalidSubscription, match="JSON"):
        parse_subscription("abcdefghij", b"{nope")


def test_entry_names() -> None:
    assert subscription_id(SUBSCRIPTIONS + "/abcdefghij") == ("abcdefghij", False)
    assert subscription_id(SUBSCRIPTIONS + "/abcdefghij/validate") == ("abcdefghij", True)
    assert subscription_id("/private/other") is None
    for bad in ("short", "x" * 37, "has space1", "dots.are.bad"):
        with pytest.raises(InvalidSubscription):
            subscription_id(SUBSCRIPTIONS + "/" + bad)


def test_validation_values() -> None:
    secret = b"k" * 32
    sub = parse_subscription("abcdefghij", _json())
    value = validation_value(secret, 1, sub, 1000)
    assert len(value) < 1024
    assert check_validation(secret, 1, sub, value, 300, now=1100)
    assert not check_validation(secret, 1, sub, value, 300, now=1400)  # too late
    assert not check_validation(secret, 2, sub, value, 300, now=1100)  # other user
    other_id = parse_subscription("abcdefghik", _json())
    assert not check_validation(secret, 1, other_id, value, 300, now=1100)  # other sub
    assert not check_validation(secret, 1, sub, "ZZZ000", 300, now=1100)
    # bound to the endpoint and keys: re-pointed, the same id does not validate
    moved = replace(sub, endpoint="https://elsewhere.example/push/1")
    assert not check_validation(secret, 1, moved, value, 300, now=1100)
    rekeyed = replace(sub, auth="AAAAAAAAAAAAAAAAAAAAAA==")
    assert not check_validation(secret, 1, rekeyed, value, 300, now=1100)
