"""Autocrypt on the client's keyring: peer state rules, sealing and opening."""

from __future__ import annotations

from pathlib import Path

import pytest

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address
from coi.chat.parse import parse
from coi.client.e2e import Keyring, MissingKeys
from coi.client.profile import AccountSettings, Endpoint, Profile
from coi.client.store import LocalStore
from coi.crypto import autocrypt as ac

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


def keyring(tmp_path: Path, addr: str, encrypt_only: bool = False) -> Keyring:
    profile = Profile(tmp_path / addr)
    profile.ensure()
    store = LocalStore(profile.store_path)
    settings = AccountSettings(
        addr, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2), encrypt_only=encrypt_only
    )
    ring = Keyring(profile, store, store.add_account(settings))
    ring.ensure_own()
    return ring


def message(sender: str, to: list[str], text: str) -> tuple[bytes, str, str]:
    msg = builders.new_message(Address(sender), tuple(Address(a) for a in to), text)
    assert msg.date is not None
    return compose_bytes(msg), msg.message_id, msg.date.strftime("%a, %d %b %Y %H:%M:%S +0000")


def test_clear_until_the_key_is_known_then_encrypted_and_verified(tmp_path: Path) -> None:
    alice, bob = keyring(tmp_path, ALICE), keyring(tmp_path, BOB)
    raw, mid, date = message(ALICE, [BOB], "first, in clear")
    wire, encrypted = alice.seal(raw, [BOB], mid, date)
    assert not encrypted and b"Autocrypt: addr=alice@example.org" in wire
    opened = bob.open(wire)
    assert not opened.encrypted and bob.peer_key(ALICE) == alice.own().public
    raw, mid, date = message(BOB, [ALICE], "now encrypted")
    wire, encrypted = bob.seal(raw, [ALICE], mid, date)
    assert encrypted and b"now encrypted" not in wire and b"Subject: [...]" in wire
    assert b"Chat-Version: 1.0" in wire  # kept outside for the server
    opened = alice.open(wire)  # first contact: verified by the key the message announces
    assert opened.encrypted and opened.verified
    assert parse(opened.raw).text == "now encrypted"


def test_encrypt_only_refuses_clear(tmp_path: Path) -> None:
    alice = keyring(tmp_path, ALICE, encrypt_only=True)
    raw, mid, date = message(ALICE, [BOB], "hi")
    with pytest.raises(MissingKeys, match=r"bob@example\.org"):
        alice.seal(raw, [BOB], mid, date)


def test_an_older_message_does_not_replace_a_newer_key(tmp_path: Path) -> None:
    bob = keyring(tmp_path, BOB)
    new, old = keyring(tmp_path / "n", ALICE), keyring(tmp_path / "o", ALICE)
    bob.observe(ALICE, ac.parse_header(new.autocrypt_value()), 2000.0)
    bob.observe(ALICE, ac.parse_header(old.autocrypt_value()), 1000.0)
    assert bob.peer_key(ALICE) == new.own().public


def test_header_for_another_address_is_not_taken(tmp_path: Path) -> None:
    alice, bob, carol = keyring(tmp_path, ALICE), keyring(tmp_path, BOB), keyring(tmp_path, CAROL)
    raw, _, _ = message(CAROL, [BOB], "pretending")
    forged = b"Autocrypt: " + alice.autocrypt_value().encode() + b"\r\n" + raw
    bob.open(forged)
    assert bob.peer_key(ALICE) is None and bob.peer_key(CAROL) is None
    assert carol.peer_key(ALICE) is None


def test_gossip_reaches_members_only_from_signed_mail(tmp_path: Path) -> None:
    alice, bob, carol = keyring(tmp_path, ALICE), keyring(tmp_path, BOB), keyring(tmp_path, CAROL)
    for ring in (bob, carol):  # alice has met both, they have met her
        alice.import_key(ring.account.address, ring.own().public)
        ring.import_key(ALICE, alice.own().public)
    raw, mid, date = message(ALICE, [BOB, CAROL], "hello group")
    wire, encrypted = alice.seal(raw, [BOB, CAROL], mid, date)
    assert encrypted
    assert bob.open(wire).verified
    assert bob.peer_key(CAROL) == carol.own().public  # learnt from the gossip
