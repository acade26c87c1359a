"""Web Push for the browser app: the browser subscribes with the Push API, we register
the subscription at the person's COI server (webpush-spec: Subscribe), the service
worker hands us the validation push, we complete it (Validating A Push Subscription),
and logging out removes it (Unsubscribe).

Each browser session has at most one subscription, remembered with the session, so
logging out in one browser stops the pushes to that browser only.
"""

from __future__ import annotations

import functools
import logging
import secrets

from aiohttp import web

from coi.client import push
from coi.client.client import ClientError
from coi.client.store import Account
from coi.web.app import ApiError, read_json, runtime_of, session_of, state

log = logging.getLogger(__name__)


def routes(app: web.Application) -> None:
    app.router.add_get("/api/push/key", key)
    app.router.add_post("/api/push/subscribe", subscribe)
    app.router.add_post("/api/push/validate", validate)
    app.router.add_post("/api/push/unsubscribe", unsubscribe)


def _account(request: web.Request) -> Account:
    client = runtime_of(request).client
    session = session_of(request)
    found = client.store.account_by_address(session.address)
    if found is None:
        accounts = client.accounts()
        if not accounts:
            raise ApiError("this profile has no account")
        found = accounts[0]
    return found


async def key(request: web.Request) -> web.Response:
    client = runtime_of(request).client
    return web.json_response({"key": await client.push_key(_account(request))})


async def subscribe(request: web.Request) -> web.Response:
    """``{"subscription": PushSubscription.toJSON(), "device": "..."}``."""
    data = await read_json(request)
    sub = data.get("subscription")
    keys = sub.get("keys") if isinstance(sub, dict) else None
    if not isinstance(sub, dict) or not isinstance(keys, dict):
        raise ApiError("subscription must be what PushSubscription.toJSON() gives")
    resource = push.PushResource(
        str(sub.get("endpoint", "")), str(keys.get("p256dh", "")), str(keys.get("auth", ""))
    )
    device = str(data.get("device") or request.headers.get("User-Agent", "browser"))[:128]
    client = runtime_of(request).client
    account = _account(request)
    session = session_of(request)
    old = state(request).sessions.push_of(session)
    if old is not None:
        await client.push_change(account, functools.partial(push.unsubscribe, sub_id=old))
    sub_id = secrets.token_urlsafe(18)  # 24 characters of [0-9A-Za-z_-]
    name = state(request).push_client_name
    await client.push_change(
        account,
        functools.partial(
            push.subscribe, sub_id=sub_id, resource=resource, client=name, device=device
        ),
    )
    state(request).sessions.set_push(session, sub_id)
    return web.json_response({"id": sub_id})


async def validate(request: web.Request) -> web.Response:
    """The service worker's report of a validation push: ``{"validation": "..."}``."""
    data = await read_json(request)
    value = data.get("validation")
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ApiError("validation must be the value the validation push carried")
    sub_id = state(request).sessions.push_of(session_of(request))
    if sub_id is None:
        raise ApiError("this browser has no push subscription", 404)
    client = runtime_of(request).client
    await client.push_change(
        _account(request), functools.partial(push.validate, sub_id=sub_id, value=value)
    )
    return web.json_response({"validated": sub_id})


async def unsubscribe(request: web.Request) -> web.Response:
    removed = await unsubscribe_session(request)
    return web.json_response({"removed": removed})


async def unsubscribe_session(request: web.Request) -> bool:
    """Removes this browser session's subscription at the server, if it has one; logging
    out goes on when the server can't be reached (the server expires it)."""
    session = session_of(request)
    sub_id = state(request).sessions.push_of(session)
    if sub_id is None:
        return False
    try:
        await runtime_of(request).client.push_change(
            _account(request), functools.partial(push.unsubscribe, sub_id=sub_id)
        )
    except ClientError as exc:
        log.warning("push subscription %s not removed at the server: %s", sub_id, exc)
    state(request).sessions.set_push(session, None)
    return True
