"""The WebPush side of `coi serve`: validation pushes, expiry, and notifications.

Invariants: everything is driven by committed store events (nothing polls): a new or
replaced subscription entry (MetadataChanged) gets one validation push and an expiry
timer; a message delivered with `Delivered(push=True)` (MessagesAdded) gets one push per
validated subscription that wants its kind. Sending never blocks delivery: pushes go to
a `FairPushQueue` (per-user queues in turn, a limit per push service, retries of 429/5xx
honouring Retry-After), so one user's slow push service does not delay anyone else's.
A push service answering 404/410 removes the subscription. The validated subscriptions
of a user pushed to are kept (one read per user, not per message) until a change of that
user's server entries (MetadataChanged, from any process) or `SUBSCRIPTIONS_MAX_AGE`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Coroutine
from typing import Any

from coi.config import ServerConfig
from coi.store.coi import CHAT_KEYWORD
from coi.store.events import (
    REMOTE,
    ChangesMissed,
    Delivered,
    Event,
    MessagesAdded,
    MetadataChanged,
)
from coi.store.protocol import MetadataStore, Store
from coi.webpush.keys import WebPushKeys
from coi.webpush.payload import build_payload
from coi.webpush.queue import FairPushQueue, PushJob
from coi.webpush.sender import PushRefused, PushResult, PushSender
from coi.webpush.subscriptions import (
    SUBSCRIPTIONS,
    Subscription,
    load_subscription,
    validation_value,
)

log = logging.getLogger("coi.webpush")

# Kept subscriptions are read again after this many seconds: the bound on what a lost
# LISTEN connection (changes of other processes missed) leaves stale; at most
# SUBSCRIPTIONS_MAX_USERS users are kept, then the cache starts over.
SUBSCRIPTIONS_MAX_AGE = 60.0
SUBSCRIPTIONS_MAX_USERS = 10_000


def stored_subscriptions(store: MetadataStore, user_id: int) -> list[Subscription]:
    return _subscriptions(user_id, store.get_metadata(user_id, 0, [SUBSCRIPTIONS], "1"))


async def read_subscriptions(store: MetadataStore, user_id: int) -> list[Subscription]:
    """`stored_subscriptions` with the read awaited (a push per delivered message)."""
    return _subscriptions(user_id, await store.read_metadata(user_id, 0, [SUBSCRIPTIONS], "1"))


def _subscriptions(user_id: int, entries: dict[str, bytes]) -> list[Subscription]:
    out = []
    for name, value in sorted(entries.items()):
        sub_id = name[len(SUBSCRIPTIONS) + 1 :]
        if not sub_id or "/" in sub_id:
            continue
        try:
            out.append(load_subscription(sub_id, value))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable subscription user=%d id=%s", user_id, sub_id)
    return out


def is_disposition_notification(raw: bytes) -> bool:
    """webpush-spec: no push for disposition notifications (RFC 8098 reports)."""
    head = raw[: raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else 8192].lower()
    return b"multipart/report" in head and b"disposition-notification" in head


class WebPushService:
    def __init__(self, config: ServerConfig, store: Store, keys: WebPushKeys) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        subject = config.webpush_subject or f"mailto:postmaster@{config.hostname}"
        context = ssl.create_default_context()
        if config.webpush_ca_file is not None:
            context.load_verify_locations(cafile=str(config.webpush_ca_file))
        self.sender = PushSender(
            keys.vapid, subject, allow_private=config.webpush_allow_private, ssl_context=context
        )
        self.queue = FairPushQueue(self._deliver, self._finished)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self._validated: dict[int, tuple[float, list[Subscription]]] = {}
        self._changes = 0  # server entries changed: a read across one is not kept
        self._unwatch = store.events.watch_all(self._on_event)

    def start(self) -> None:
        """Subscriptions left unvalidated by an earlier run expire on schedule."""
        for user in self.store.list_users():
            for sub in stored_subscriptions(self.store, user.id):
                if not sub.validated:
                    self._expire_later(user.id, sub)

    async def stop(self) -> None:
        self._unwatch()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.queue.close()
        await self.sender.close()

    # -- events ----------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessagesAdded):
            if isinstance(event.origin, Delivered) and event.origin.push:
                self._spawn(self._notify(event))
        elif isinstance(event, ChangesMissed):  # subscriptions may have changed unheard
            self._validated.clear()
            self._changes += 1
        elif isinstance(event, MetadataChanged) and event.mailbox_id == 0:
            self._validated.pop(event.user_id, None)
            self._changes += 1
            for name in event.entries:
                if (
                    name.startswith(SUBSCRIPTIONS + "/")
                    and "/" not in name[len(SUBSCRIPTIONS) + 1 :]
                ):
                    self._subscription_changed(event.user_id, name, event.origin is REMOTE)

    def _subscription_changed(self, user_id: int, name: str, remote: bool = False) -> None:
        """Validates a new subscription (and expires it unless validated in time); a change
        another process made is validated there (one push, however many processes)."""
        sub_id = name[len(SUBSCRIPTIONS) + 1 :]
        stored = self.store.get_metadata(user_id, 0, [name])
        if name not in stored:  # unsubscribed
            timer = self._timers.pop((user_id, sub_id), None)
            if timer is not None:
                timer.cancel()
            return
        sub = load_subscription(sub_id, stored[name])
        if sub.validated:
            timer = self._timers.pop((user_id, sub_id), None)
            if timer is not None:
                timer.cancel()
            return
        if remote:
            return
        self._spawn(self._validate(user_id, sub))
        self._expire_later(user_id, sub)

    # -- validation --------------------------------------------------------------------

    async def _validate(self, user_id: int, sub: Subscription) -> None:
        value = validation_value(self.keys.validation_secret, user_id, sub, int(time.time()))
        payload = json.dumps({"validation": value}).encode()
        self.queue.put(PushJob(user_id, sub, payload, validation=True))

    def _expire_later(self, user_id: int, sub: Subscription) -> None:
        key = (user_id, sub.id)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        delay = self.config.webpush_validation_window + 1.0
        self._timers[key] = loop.call_later(
            delay, lambda: self._spawn(self._expire(user_id, sub.id))
        )

    async def _expire(self, user_id: int, sub_id: str) -> None:
        self._timers.pop((user_id, sub_id), None)
        name = f"{SUBSCRIPTIONS}/{sub_id}"
        stored = self.store.get_metadata(user_id, 0, [name])
        if name in stored and not load_subscription(sub_id, stored[name]).validated:
            log.info("subscription expired unvalidated user=%d id=%s", user_id, sub_id)
            await self.store.set_metadata(user_id, 0, [(name, None)], origin=self)

    # -- notifications -------------------------------------------------------------------

    async def _validated_subscriptions(self, user_id: int) -> list[Subscription]:
        now = time.monotonic()
        kept = self._validated.get(user_id)
        if kept is not None and now - kept[0] < SUBSCRIPTIONS_MAX_AGE:
            return kept[1]
        changes = self._changes
        subs = [s for s in await read_subscriptions(self.store, user_id) if s.validated]
        if changes == self._changes:
            if len(self._validated) >= SUBSCRIPTIONS_MAX_USERS:
                self._validated.clear()
            self._validated[user_id] = (now, subs)
        return subs

    async def _notify(self, event: MessagesAdded) -> None:
        subs = await self._validated_subscriptions(event.user_id)
        if not subs:
            return
        mailbox = self.store.mailbox_by_id(event.mailbox_id)
        if mailbox is None:
            return
        rows = self.store.rows(event.mailbox_id, list(event.uids))
        for uid in event.uids:
            row = rows.get(uid)
            blob = self.store.blob(row.blob_id) if row is not None else None
            if row is None or blob is None:
                continue
            raw = blob[0]
            if is_disposition_notification(raw):
                continue
            is_chat = CHAT_KEYWORD in row.flags.keywords
            wanted = [s for s in subs if s.wants(is_chat)]
            if not wanted:
                continue
            payload = build_payload(
                raw, uid=uid, uidvalidity=mailbox.uidvalidity, folder=mailbox.name
            )
            for sub in wanted:
                self.queue.put(PushJob(event.user_id, sub, payload))

    async def _deliver(self, job: PushJob) -> PushResult | None:
        """One attempt at one push; None when it failed for good (refused, network)."""
        try:
            return await self.sender.send(job.sub.target(), job.payload, validation=job.validation)
        except PushRefused as exc:
            log.warning("push refused user=%d id=%s: %s", job.user_id, job.sub.id, exc)
        except Exception as exc:  # network/HTTP errors must not end the dispatcher
            log.warning("push failed user=%d id=%s: %r", job.user_id, job.sub.id, exc)
        return None

    async def _finished(self, job: PushJob, result: PushResult) -> None:
        """The push service's final answer: 404/410 unsubscribes (webpush-spec)."""
        user_id, sub = job.user_id, job.sub
        if result.gone:
            name = f"{SUBSCRIPTIONS}/{sub.id}"
            stored = self.store.get_metadata(user_id, 0, [name]).get(name)
            if stored is None or load_subscription(sub.id, stored).endpoint != sub.endpoint:
                return  # removed or re-pointed meanwhile (a retried push can be late)
            log.info("push service says gone; unsubscribing user=%d id=%s", user_id, sub.id)
            await self.store.set_metadata(user_id, 0, [(name, None)], origin=self)
        elif not result.delivered:
            log.warning("push rejected status=%d user=%d id=%s", result.status, user_id, sub.id)
