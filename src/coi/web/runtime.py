"""One running client per person logged in to ``coi web``, shared by their browser tabs.

Each person's ``Client`` works on their own profile, so ids in the API are theirs only
and one person can never name another's chat.  While any tab listens for events the
client stays connected (``Client.watch``: IDLE or NOTIFY) and everything it reports,
and everything a tab changes, goes to every tab of that person.  With no tab left it
disconnects after a grace period; Web Push reaches the browser without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from coi.client.client import Client, ClientEvent

log = logging.getLogger(__name__)

QUEUE_LIMIT = 500  # events a slow tab may lag behind before it is told to reload
# put in each tab's queue when the app stops: its event stream ends at once, so the web
# server does not wait for the stream's next keepalive to find the tab gone
END_OF_EVENTS: dict[str, Any] = {"kind": "end"}
LINGER_SECONDS = 60.0  # stay connected this long after the last tab went away


class UserRuntime:
    def __init__(self, address: str, profile_dir: Path) -> None:
        self.address = address
        self.client = Client(profile_dir)
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._stop: asyncio.Event | None = None
        self._watch: asyncio.Task[None] | None = None
        self._linger: asyncio.Task[None] | None = None
        self.status = ""

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.full():  # the tab is too slow: it reloads instead of getting each event
                queue.get_nowait()
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait({"kind": "reload"})
                continue
            queue.put_nowait(event)

    def _on_event(self, event: ClientEvent) -> None:
        self.publish(
            {
                "kind": event.kind,
                "chat": event.chat_id,
                "message": event.message,
                "target": event.target,
                "notify": event.notify,  # False for a muted chat, unless it mentions us
            }
        )

    def _on_status(self, line: str) -> None:
        self.status = line
        log.info("%s", line)
        self.publish({"kind": "status", "text": line})

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Events for one tab while it listens; the first tab connects the client."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._listeners.add(queue)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._start_watch()
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
            if not self._listeners:
                self._linger = asyncio.create_task(self._stop_later())

    def _start_watch(self) -> None:
        if self._watch is not None and not self._watch.done():
            return
        if not self.client.accounts():
            return
        self._stop = asyncio.Event()
        self._watch = asyncio.create_task(
            self.client.watch(self._on_event, self._stop, self._on_status)
        )
        self._watch.add_done_callback(self._watch_ended)

    def _watch_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: watching ended: %s", self.address, task.exception())

    async def _stop_later(self) -> None:
        await asyncio.sleep(LINGER_SECONDS)
        await self.stop_watch()

    async def stop_watch(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._watch is not None:
            try:
                async with asyncio.timeout(10):
                    await asyncio.shield(self._watch)
            except (TimeoutError, Exception):
                self._watch.cancel()
            self._watch = None

    async def close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
        for queue in list(self._listeners):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(END_OF_EVENTS)
        await self.stop_watch()
        self.client.close()


class Runtimes:
    """The running clients, by address."""

    def __init__(self) -> None:
        self._by_address: dict[str, UserRuntime] = {}

    def get(self, address: str, profile_dir: Path) -> UserRuntime:
        key = address.lower()
        runtime = self._by_address.get(key)
        if runtime is None:
            runtime = self._by_address[key] = UserRuntime(address, profile_dir)
        return runtime

    async def close(self) -> None:
        for runtime in list(self._by_address.values()):
            await runtime.close()
        self._by_address.clear()
