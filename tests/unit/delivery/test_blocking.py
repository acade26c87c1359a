"""The blocked-sender index kept from the contacts folder, and from the store's events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from coi.chat.contacts import address_hash
from coi.delivery.blocking import BlockIndex
from coi.mail.prepare import prepare
from coi.store.events import ChangesMissed
from coi.store.sqlite.store import SqliteStore

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _contact(sender: str) -> bytes:
    return (
        b"Subject: contact\r\nCOI-Blocked: yes\r\nCOI-From-Hash: "
        + address_hash(sender).encode()
        + b"\r\n\r\n{}\r\n"
    )


async def test_a_block_added_unheard_counts_once_events_were_missed(tmp_path: Path) -> None:
    """Another handle on the store (another process) adds a blocked contact whose event
    this one never hears; once told that events were missed (a LISTEN connection back),
    the index is read again."""
    store = SqliteStore(tmp_path / "coi.sqlite3")
    other = SqliteStore(tmp_path / "coi.sqlite3")  # its events stay its own
    index = BlockIndex(store)
    try:
        user = await store.add_user("alice@example.org", "x", [("Contacts", "")])
        contacts = store.get_mailbox(user.id, "Contacts")
        assert contacts is not None
        assert not index.is_blocked(user.id, "Contacts", "spam@example.net")
        await other.append(contacts.id, [prepare(_contact("spam@example.net"), (), WHEN)])
        assert not index.is_blocked(user.id, "Contacts", "spam@example.net")  # unheard
        store.events.publish(ChangesMissed())
        assert index.is_blocked(user.id, "Contacts", "spam@example.net")
    finally:
        index.close()
        other.close()
        store.close()
