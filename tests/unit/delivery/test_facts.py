"""Delivery's per-user facts (COI settings, target mailboxes): read once, kept exact by the
store's events, on both backends and across two processes sharing a PostgreSQL store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import open_test_store

from coi.delivery.facts import DeliveryFacts
from coi.delivery.local import LocalDelivery
from coi.delivery.routing import StoreCoiSource
from coi.store.coi import ENABLED, MESSAGE_FILTER, CoiSettings
from coi.store.events import ChangesMissed, MetadataChanged
from coi.store.model import User
from coi.store.protocol import Store

CHAT = (
    b"From: bob@elsewhere.example\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\n"
    b"Subject: Message from bob\r\nMessage-ID: <%d@elsewhere.example>\r\n\r\nhi\r\n"
)
ACTIVE = [(ENABLED, b"yes"), (MESSAGE_FILTER, b"active")]


class CountingSource(StoreCoiSource):
    reads = 0

    async def read_coi_settings(self, user_id: int) -> CoiSettings:
        self.reads += 1
        return await super().read_coi_settings(user_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_test_store(tmp_path)
    try:
        yield opened
    finally:
        opened.close()


async def _deliver(local: LocalDelivery, user: User, n: int) -> str:
    return (await local.deliver(user, CHAT.replace(b"%d", str(n).encode()), "bob@x")).mailbox


def _count(store: Store, user: User, name: str) -> int:
    mailbox = store.get_mailbox(user.id, name)
    return 0 if mailbox is None else len(store.uids(mailbox.id))


async def test_settings_and_mailboxes_are_read_once_and_follow_changes(store: Store) -> None:
    user = await store.add_user("alice@example.org", "x", [])
    source = CountingSource(store)
    local = LocalDelivery(store, ("example.org",), source)
    try:
        assert await _deliver(local, user, 1) == "INBOX"
        assert await _deliver(local, user, 2) == "INBOX"
        assert source.reads == 1  # kept

        await store.set_metadata(user.id, 0, ACTIVE)  # MetadataChanged drops the settings
        assert await _deliver(local, user, 3) == "COI/Chats"
        assert await _deliver(local, user, 4) == "COI/Chats"
        assert source.reads == 2 and _count(store, user, "COI/Chats") == 2

        # a renamed or deleted target is not used from memory: it is found or made anew
        await store.rename_mailbox(user.id, "COI/Chats", "Old chats")
        assert await _deliver(local, user, 5) == "COI/Chats"
        assert _count(store, user, "COI/Chats") == 1 and _count(store, user, "Old chats") == 2
        await store.delete_mailbox(user.id, "COI/Chats")
        assert await _deliver(local, user, 6) == "COI/Chats"
        assert _count(store, user, "COI/Chats") == 1

        await store.set_metadata(user.id, 0, [(ENABLED, None)])
        assert await _deliver(local, user, 7) == "INBOX"
        assert _count(store, user, "INBOX") == 3
    finally:
        local.close()


async def test_a_read_that_an_event_overtook_is_not_kept(store: Store) -> None:
    user = await store.add_user("alice@example.org", "x", [])
    answers = [CoiSettings(), CoiSettings(True, "active")]

    class Racing(StoreCoiSource):
        reads = 0

        async def read_coi_settings(self, user_id: int) -> CoiSettings:
            self.reads += 1
            if self.reads == 1:  # the change commits while the first read is under way
                store.events.publish(MetadataChanged(user_id, 0, (ENABLED,)))
            return answers[self.reads - 1]

    source = Racing(store)
    facts = DeliveryFacts(store, source)
    try:
        assert (await facts.settings(user.id)).enabled  # read again, not the stale answer
        assert (await facts.settings(user.id)).enabled and source.reads == 2
    finally:
        facts.close()


async def test_entries_are_read_again_after_events_were_missed(store: Store) -> None:
    """A lost LISTEN connection is back (`ChangesMissed`): what changed meanwhile is not
    known, so the settings are read again."""
    user = await store.add_user("alice@example.org", "x", [])
    source = CountingSource(store)
    facts = DeliveryFacts(store, source)
    try:
        await facts.settings(user.id)
        await facts.settings(user.id)
        store.events.publish(ChangesMissed())
        await facts.settings(user.id)
        assert source.reads == 2
    finally:
        facts.close()


async def test_entries_are_read_again_after_max_age(store: Store) -> None:
    user = await store.add_user("alice@example.org", "x", [])
    source = CountingSource(store)
    facts = DeliveryFacts(store, source, max_age=0.0)
    try:
        for _ in range(3):
            await facts.settings(user.id)
        assert source.reads == 3
    finally:
        facts.close()


async def test_a_change_in_another_process_reaches_the_cache(postgres_dsn: str) -> None:
    """Two `coi serve` processes on one database: SETMETADATA taken by one is seen by the
    next delivery in the other once its event has come (LISTEN/NOTIFY)."""
    pytest.importorskip("asyncpg")
    from coi.store.postgres.store import PostgresStore

    here, there = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    local = LocalDelivery(here, ("example.org",), StoreCoiSource(here))
    try:
        user = await there.add_user("alice@example.org", "x", [])
        assert await _deliver(local, user, 1) == "INBOX"
        arrived = asyncio.Event()
        unwatch = here.events.watch_user(
            user.id, lambda e: arrived.set() if isinstance(e, MetadataChanged) else None
        )
        await there.set_metadata(user.id, 0, ACTIVE)
        await asyncio.wait_for(arrived.wait(), 10)
        unwatch()
        assert await _deliver(local, user, 2) == "COI/Chats"
    finally:
        local.close()
        here.close()
        there.close()
