"""The COI `seen` mover: a \\Seen COI message in INBOX moves to `<root>/Chats`.

# coi-server-spec: Configure Message Filtering ("seen": messages stay in INBOX until they are
# flagged \\Seen; then the server moves them like in the active mode)
Invariants: driven only by FlagsChanged events (nothing polls); a message qualifies when it
is in INBOX, carries `$Chat` and `\\Seen`, and its owner has COI enabled with
message-filter `seen`. The move is one store transaction (copy + expunge), published as
MessagesAdded/MessagesExpunged with this mover as origin.
"""

from __future__ import annotations

import asyncio
import logging

from coi.delivery.local import LocalDelivery
from coi.delivery.routing import CHAT_KEYWORD, Route
from coi.store.events import Event, FlagsChanged
from coi.store.model import SEEN

log = logging.getLogger("coi.mover")


class SeenMover:
    def __init__(self, local: LocalDelivery) -> None:
        self.local = local
        self.store = local.store
        self._unwatch = self.store.events.watch_all(self._on_event)
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        self._unwatch()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, FlagsChanged):
            return
        uids = [
            uid
            for uid, flags, _ in event.changes
            if flags.bits & SEEN and CHAT_KEYWORD in flags.keywords
        ]
        if not uids:
            return
        mailbox = self.store.mailbox_by_id(event.mailbox_id)
        if mailbox is None or mailbox.name != "INBOX":
            return
        settings = self.local.settings.coi_settings(event.user_id)
        if not (settings.enabled and settings.message_filter == "seen"):
            return
        task = asyncio.get_running_loop().create_task(
            self._move(event.user_id, event.mailbox_id, uids, settings.chats)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _move(self, user_id: int, inbox_id: int, uids: list[int], chats: str) -> None:
        try:
            target = await self.local.mailbox_for(user_id, Route(chats))
            present = list(self.store.rows(inbox_id, uids))  # skip already moved/expunged
            if present:
                await self.store.copy(inbox_id, present, target.id, move=True, origin=self)
                log.info("moved seen chats user_id=%d count=%d", user_id, len(present))
        except Exception:
            log.exception("seen mover failed user_id=%d", user_id)
