"""Contact storage messages as the client writes and reads them (coi.client.contacts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from coi.chat.contacts import address_hash
from coi.chat.model import Card, ContactStorage
from coi.client import contacts
from coi.client.e2e import Keyring
from coi.client.profile import AccountSettings, Endpoint, Profile
from coi.client.store import LocalStore
from coi.delivery.blocking import blocked_hashes as server_blocked

ALICE, BOB = "alice@example.org", "bob@example.org"


def keyring(tmp_path: Path) -> Keyring:
    profile = Profile(tmp_path / "alice")
    profile.ensure()
    store = LocalStore(profile.store_path)
    settings = AccountSettings(ALICE, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2))
    ring = Keyring(profile, store, store.add_account(settings))
    ring.ensure_own()
    return ring


BOB_CARD = ContactStorage(card=Card(name="Bob", emails=(BOB, "Bob@Other.example")), blocked=True)


def test_encrypted_contact_keeps_what_the_server_reads_outside(tmp_path: Path) -> None:
    ring = keyring(tmp_path)
    when = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    raw = contacts.contact_message(ring.account, BOB_CARD, ring.own(), when)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/encrypted" in head and b"Bob" not in head.replace(b"bob@", b"")
    hashes = {address_hash(BOB), address_hash("bob@other.example")}
    assert server_blocked(raw) == hashes  # exactly what coi serve blocks on
    contact, date = contacts.read_contact(raw, lambda r: ring.open(r).raw)
    assert contact.card.name == "Bob" and contact.blocked and set(contact.from_hashes) == hashes
    assert date == when.timestamp()
    # a device without the key still sees the hashes and the blocked flag, not the name
    blind, _ = contacts.read_contact(raw, None)
    assert blind.blocked and set(blind.from_hashes) == hashes and blind.card.name == ""


def test_clear_contact_and_unblocked(tmp_path: Path) -> None:
    ring = keyring(tmp_path)
    clear = ContactStorage(card=Card(name="Bob", emails=(BOB,)))
    raw = contacts.contact_message(ring.account, clear, None)
    assert b"Chat-Content: contact" in raw and b"COI-Blocked" not in raw
    assert server_blocked(raw) == frozenset()
    contact, _ = contacts.read_contact(raw, None)
    assert contact.card.emails == (BOB,) and not contact.blocked


def test_local_table_decides_blocking_like_the_server(tmp_path: Path) -> None:
    ring = keyring(tmp_path)
    store: LocalStore = ring.store
    acc = ring.account.id
    raw = contacts.contact_message(ring.account, BOB_CARD, None)
    with store.transaction():
        contacts._store_row(store, acc, 7, *contacts.read_contact(raw, None), raw)
    assert contacts.is_blocked(store, acc, '"BOB@example.org"')
    assert contacts.is_blocked(store, acc, "<bob@other.example>")
    assert not contacts.is_blocked(store, acc, "carol@example.org")
    [row] = contacts.contact_rows(store, acc)
    assert (row.uid, row.addr, row.name, row.emails) == (7, BOB, "Bob", (BOB, "bob@other.example"))
    assert contacts.rows_for(store, acc, "bob@other.example") == [row]
