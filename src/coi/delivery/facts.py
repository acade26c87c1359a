"""What delivery reads about a recipient, read once and kept by the store's change events.

Every delivery needs the recipient's COI settings (coi-server-spec: Configure Message
Filtering) and the mailbox it files into. On a networked store each read is a round trip
that cost as much as the append itself, so they are kept per user, as `BlockIndex` keeps
the blocked senders: a `MetadataChanged` of the user's server entries drops the settings,
any mailbox created, deleted or renamed drops the mailboxes (and `delete_user` publishes
`MailboxDeleted` for each). Events are published after the commit, in every process that
shares the store, so a change is seen by every delivery that starts after its event.

Invariants: a value read while an event of its user arrived is not kept (it may predate
the change); an entry is read again after `max_age` seconds, which bounds what a lost
LISTEN connection (events of other processes missed) can leave stale; at most
`max_users` users are kept, then the cache starts over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from coi.delivery.routing import CoiSettingsSource
from coi.store.coi import CoiSettings
from coi.store.events import (
    ChangesMissed,
    Event,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MetadataChanged,
)
from coi.store.model import Mailbox
from coi.store.protocol import EventSource, MailboxStore


@dataclass
class _UserFacts:
    user_id: int
    unwatch: Callable[[], None]
    born: float
    generation: int = 0  # bumped by every event of the user: reads across one are not kept
    settings: CoiSettings | None = None
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)


class DeliveryStore(MailboxStore, EventSource, Protocol):
    """The store as this cache reads and watches it."""


class DeliveryFacts:
    def __init__(
        self,
        store: DeliveryStore,
        source: CoiSettingsSource,
        *,
        max_users: int = 10_000,
        max_age: float = 60.0,
    ) -> None:
        self.store = store
        self.source = source
        self.max_users = max_users
        self.max_age = max_age
        self._users: dict[int, _UserFacts] = {}

    def close(self) -> None:
        for facts in self._users.values():
            facts.unwatch()
        self._users.clear()

    async def settings(self, user_id: int) -> CoiSettings:
        while True:
            facts = self._facts(user_id)
            if facts.settings is not None:
                return facts.settings
            generation = facts.generation
            settings = await self.source.read_coi_settings(user_id)
            if self._unchanged(facts, generation):
                facts.settings = settings
                return settings

    async def mailbox(self, user_id: int, name: str) -> Mailbox | None:
        """The user's mailbox `name`, when it exists and can hold messages."""
        while True:
            facts = self._facts(user_id)
            found = facts.mailboxes.get(name)
            if found is not None:
                return found
            generation = facts.generation
            mailbox = await self.store.read_mailbox(user_id, name)
            if mailbox is None or mailbox.noselect:
                return None
            if self._unchanged(facts, generation):
                facts.mailboxes[name] = mailbox
                return mailbox

    def _unchanged(self, facts: _UserFacts, generation: int) -> bool:
        """No event of the user came while a read ran (else it may predate the change)."""
        return self._users.get(facts.user_id) is facts and facts.generation == generation

    def _facts(self, user_id: int) -> _UserFacts:
        now = time.monotonic()
        facts = self._users.get(user_id)
        if facts is not None and now - facts.born < self.max_age:
            return facts
        if facts is not None:
            del self._users[user_id]
            facts.unwatch()
        elif len(self._users) >= self.max_users:
            self.close()
        facts = _UserFacts(
            user_id,
            self.store.events.watch_user(user_id, lambda e: self._on_event(user_id, e)),
            now,
        )
        self._users[user_id] = facts
        return facts

    def _on_event(self, user_id: int, event: Event) -> None:
        facts = self._users.get(user_id)
        if facts is None:
            return
        if isinstance(event, MetadataChanged) and event.mailbox_id == 0:
            facts.generation += 1
            facts.settings = None
        elif isinstance(event, MailboxCreated | MailboxDeleted | MailboxRenamed):
            facts.generation += 1
            facts.mailboxes.clear()
        elif isinstance(event, ChangesMissed):  # read everything again
            facts.generation += 1
            facts.settings = None
            facts.mailboxes.clear()
