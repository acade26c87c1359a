"""Autocrypt Level 1: header format and parsing, folding through email, peer state rules."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from coi.chat.headers import COI_POLICY
from coi.crypto import (
    AutocryptHeader,
    KeyPair,
    PeerState,
    format_gossip_header,
    format_header,
    parse_gossip_header,
    parse_header,
    public_key_info,
    recommendation,
    update_from_gossip,
    update_from_header,
)
from coi.crypto.autocrypt import encryption_key

from .conftest import CRYPTO, DELTACHAT

DAY = 24 * 3600.0


def test_round_trip(alice: KeyPair) -> None:
    value = format_header("alice@example.org", alice.public)
    assert value.startswith("addr=alice@example.org; prefer-encrypt=mutual; keydata=")
    assert parse_header(value) == AutocryptHeader("alice@example.org", alice.public, True)
    plain = format_header("alice@example.org", alice.public, prefer_encrypt=False)
    assert "prefer-encrypt" not in plain
    assert parse_header(plain) == AutocryptHeader("alice@example.org", alice.public, False)
    gossip = format_gossip_header("alice@example.org", alice.public)
    assert "prefer-encrypt" not in gossip
    assert parse_gossip_header(gossip) == AutocryptHeader("alice@example.org", alice.public, False)


def test_armored_key_goes_out_binary(alice: KeyPair) -> None:
    from coi.crypto import armor_public

    value = format_header("alice@example.org", armor_public(alice.public).encode())
    header = parse_header(value)
    assert header is not None and header.keydata == alice.public


def test_spec_example_header() -> None:
    """The example of Autocrypt Level 1, appendix "Example Autocrypt headers"."""
    header = parse_header((CRYPTO / "autocrypt-level1-example.txt").read_text())
    assert header is not None
    assert header.addr == "alice@autocrypt.example"
    assert header.prefer_encrypt
    assert public_key_info(header.keydata).fingerprint.endswith("71DBC5657FDE65A7")


def test_delta_chat_headers() -> None:
    message = email.message_from_bytes((DELTACHAT / "e2ee-group.inner.eml").read_bytes())
    own = parse_header(message["Autocrypt"])
    assert own is not None and own.addr == "alice@example.org" and own.prefer_encrypt
    gossip = [parse_gossip_header(v) for v in message.get_all("Autocrypt-Gossip", [])]
    assert [(g.addr, public_key_info(g.keydata).fingerprint) for g in gossip if g] == [
        ("bob@example.org", "5D6518182142F830492B69EE4BF81DC1F80D3508"),
        ("carol@example.org", "DC981B81D171C7EBB2E77E94761F5ABDD784937F"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "addr=a@example.org; keydata=AAAA; future=1",  # unknown critical attribute
        "addr=a@example.org; version=2; keydata=AAAA",
        "keydata=AAAA",  # no addr
        "addr=a@example.org",  # no keydata
        "addr=a@example.org; keydata=not base64!",
        "addr=a@example.org; addr=b@example.org; keydata=AAAA",  # repeated
        "addr=a@example.org; broken; keydata=AAAA",
        "addr=a@example.org; keydata=" + "A" * 11000,  # over 10 KiB
    ],
)
def test_invalid_headers(value: str) -> None:
    assert parse_header(value) is None


def test_non_critical_and_prefer_encrypt_values() -> None:
    header = parse_header("addr=A@Example.org; _note=hi; prefer-encrypt=nopreference; keydata=AAAA")
    assert header == AutocryptHeader("a@example.org", b"\x00\x00\x00", False)
    header = parse_header("addr=a@example.org; prefer-encrypt=maybe; keydata=AA AA")
    assert header is not None and not header.prefer_encrypt


def test_folding_survives_email(alice: KeyPair) -> None:
    value = format_header("alice@example.org", alice.public)
    message = EmailMessage(policy=COI_POLICY)
    message["From"] = "alice@example.org"
    message["Autocrypt"] = value
    message.set_content("hi")
    raw = message.as_bytes(policy=COI_POLICY)
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"=?" not in raw  # folded at the spaces, not turned into encoded words
    for policy in (email.policy.default, email.policy.compat32):
        back = email.message_from_bytes(raw, policy=policy)
        assert parse_header(str(back["Autocrypt"])) == parse_header(value)


def test_peer_state_follows_section_2_3(alice: KeyPair, bob: KeyPair) -> None:
    first = AutocryptHeader("alice@example.org", alice.public, True)
    state = update_from_header(None, "Alice@example.org", first, 100 * DAY)
    assert state == PeerState(
        addr="alice@example.org",
        last_seen=100 * DAY,
        autocrypt_timestamp=100 * DAY,
        public=alice.public,
        prefer_encrypt=True,
    )
    # an older message changes nothing (step 1)
    older = AutocryptHeader("alice@example.org", bob.public, False)
    assert update_from_header(state, "alice@example.org", older, 50 * DAY) == state
    # a newer message without header: last_seen only (steps 2, 3)
    later = update_from_header(state, "alice@example.org", None, 110 * DAY)
    assert (later.last_seen, later.autocrypt_timestamp, later.public) == (
        110 * DAY,
        100 * DAY,
        alice.public,
    )
    # a header for another address is invalid (§2.1): as if absent
    wrong = AutocryptHeader("mallory@example.org", bob.public, True)
    assert update_from_header(later, "alice@example.org", wrong, 120 * DAY).public == alice.public
    # a newer header replaces key and preference (steps 4-6)
    newest = update_from_header(later, "alice@example.org", older, 130 * DAY)
    assert (newest.public, newest.prefer_encrypt, newest.autocrypt_timestamp) == (
        bob.public,
        False,
        130 * DAY,
    )


def test_gossip_updates(alice: KeyPair, bob: KeyPair) -> None:
    gossip = AutocryptHeader("bob@example.org", bob.public, False)
    state = update_from_gossip(None, "bob@example.org", gossip, 10 * DAY)
    assert (state.gossip_key, state.gossip_timestamp, state.public) == (bob.public, 10 * DAY, None)
    stale = AutocryptHeader("bob@example.org", alice.public, False)
    assert update_from_gossip(state, "bob@example.org", stale, 5 * DAY) == state
    other = AutocryptHeader("carol@example.org", alice.public, False)
    assert update_from_gossip(state, "bob@example.org", other, 20 * DAY) == state
    assert encryption_key(state) == bob.public


def test_recommendation(alice: KeyPair, bob: KeyPair) -> None:
    assert recommendation(None) == "disable"
    assert recommendation(PeerState("a@example.org", last_seen=5.0)) == "disable"
    mutual = update_from_header(
        None, "alice@example.org", AutocryptHeader("alice@example.org", alice.public, True), DAY
    )
    assert recommendation(mutual) == "encrypt"
    assert recommendation(mutual, own_prefer_encrypt=False) == "available"
    nopref = update_from_header(
        None, "alice@example.org", AutocryptHeader("alice@example.org", alice.public, False), DAY
    )
    assert recommendation(nopref) == "available"
    assert recommendation(nopref, reply_to_encrypted=True) == "encrypt"
    # the key went silent for more than 35 days while mail kept coming
    stale = update_from_header(mutual, "alice@example.org", None, 40 * DAY)
    assert recommendation(stale) == "available"
    gossip_only = update_from_gossip(
        None, "bob@example.org", AutocryptHeader("bob@example.org", bob.public, False), DAY
    )
    assert recommendation(gossip_only) == "available"
    assert recommendation(gossip_only, reply_to_encrypted=True) == "encrypt"
