"""The IMAP side of the WebPush extension (webpush-spec): the VAPID entry, and checking
subscriptions and validations in SETMETADATA before they are stored.

Sending (validation pushes, notifications, expiry) is the webpush service's job; it reacts
to the committed METADATA change, so this module only decides what may be stored.
"""

from __future__ import annotations

import time
from dataclasses import replace

from coi.imap.server.errors import CommandNo
from coi.imap.server.session import Session
from coi.webpush.sender import EndpointUnresolved, PushRefused, refuse_internal
from coi.webpush.subscriptions import (
    PREFIX,
    SUBSCRIPTIONS,
    VAPID_ENTRY,
    InvalidSubscription,
    check_validation,
    load_subscription,
    parse_subscription,
    subscription_id,
)

_FAILURE_WINDOW = 600.0  # seconds
_MAX_FAILURES = 20  # invalid subscriptions/validations per user and window


def computed_entries(session: Session) -> dict[str, bytes]:
    keys = session.server.webpush_keys
    return {VAPID_ENTRY: keys.public_pem.encode("ascii")} if keys is not None else {}


def _failed(session: Session) -> None:
    failures = session.server.webpush_failures
    now = time.monotonic()
    recent = [t for t in failures.get(session.user_id, []) if now - t < _FAILURE_WINDOW]
    recent.append(now)
    failures[session.user_id] = recent


def _throttled(session: Session) -> bool:
    """webpush-spec: Security Considerations; a client making many bad subscriptions."""
    now = time.monotonic()
    recent = [
        t
        for t in session.server.webpush_failures.get(session.user_id, [])
        if now - t < _FAILURE_WINDOW
    ]
    return len(recent) >= _MAX_FAILURES


async def check_setmetadata(
    session: Session, mailbox_id: int, entries: dict[str, bytes | None]
) -> None:
    """Validates WebPush entries and rewrites them into what the server stores."""
    keys = session.server.webpush_keys
    if keys is None or mailbox_id != 0:
        return
    for name in [n for n in entries if n.lower().startswith(PREFIX)]:
        value = entries[name]
        lower = name.lower()
        if lower == VAPID_ENTRY:
            raise CommandNo(f"unable to set {VAPID_ENTRY}", "CANNOT")
        if lower == SUBSCRIPTIONS:
            raise CommandNo("name a subscription: .../subscriptions/<id>", "CANNOT")
        try:
            parsed = subscription_id(lower)
        except InvalidSubscription as exc:
            raise CommandNo(str(exc), "CANNOT") from None
        if parsed is None:
            raise CommandNo(f"unable to set {name}", "CANNOT")
        if value is not None and _throttled(session):
            raise CommandNo("too many invalid subscriptions; try again later", "LIMIT")
        sub_id, is_validate = parsed
        entry = f"{SUBSCRIPTIONS}/{sub_id}"
        del entries[name]
        if is_validate:
            entries[entry] = _validated(session, sub_id, entry, value)
        elif value is None:
            entries[entry] = None  # unsubscribe
        else:
            entries[entry] = await _subscribe(session, sub_id, value)


def _validated(session: Session, sub_id: str, entry: str, value: bytes | None) -> bytes:
    keys = session.server.webpush_keys
    assert keys is not None
    stored = session.store.get_metadata(session.user_id, 0, [entry]).get(entry)
    text = value.decode("utf-8", "replace") if value is not None else ""
    window = session.config.webpush_validation_window
    sub = load_subscription(sub_id, stored) if stored is not None else None
    # the value is bound to the endpoint and keys stored now: one pushed to an endpoint
    # the subscription no longer names does not validate it
    if sub is None or not check_validation(
        keys.validation_secret, session.user_id, sub, text, window
    ):
        _failed(session)
        raise CommandNo("invalid validation", "CANNOT")  # the spec's exact text
    return replace(sub, validated=True).to_json()


async def _subscribe(session: Session, sub_id: str, value: bytes) -> bytes:
    try:
        sub = parse_subscription(sub_id, value)
    except InvalidSubscription as exc:
        _failed(session)
        raise CommandNo(f"invalid subscription: {exc}", "CANNOT") from None
    existing = session.store.get_metadata(session.user_id, 0, [SUBSCRIPTIONS], "1")
    others = [n for n in existing if n != f"{SUBSCRIPTIONS}/{sub_id}" and "/validate" not in n]
    limit = session.config.webpush_max_subscriptions
    if len(others) >= limit:
        # webpush-spec: at the maximum the server MUST answer NO
        raise CommandNo(f"at most {limit} subscriptions; remove one first", "LIMIT")
    if not session.config.webpush_allow_private:
        # no push could ever reach it, so say so now rather than OK and silence
        try:
            await refuse_internal(sub.endpoint)
        except PushRefused as exc:
            _failed(session)
            raise CommandNo(f"invalid subscription: resource.endpoint: {exc}", "CANNOT") from None
        except EndpointUnresolved as exc:
            raise CommandNo(f"resource.endpoint: {exc}; try again later", "UNAVAILABLE") from None
    return sub.to_json()
