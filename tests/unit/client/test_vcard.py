"""vCards with keys, as Delta Chat shares contacts."""

from __future__ import annotations

from coi.client.vcard import VCardContact, make_vcard, parse_vcards

KEY = bytes(range(256)) * 3


def test_round_trip_with_folding_and_escapes() -> None:
    card = make_vcard("alice@example.org", "Alice; the first, really", KEY)
    assert all(len(line.encode()) <= 75 for line in card.split("\r\n"))
    assert parse_vcards(card) == [
        VCardContact("alice@example.org", "Alice; the first, really", KEY)
    ]


def test_several_cards_groups_and_parameters() -> None:
    text = (
        "BEGIN:VCARD\nVERSION:4.0\nitem1.EMAIL;TYPE=work:bob@example.org\nFN:Bob\n"
        "KEY;PREF=1:data:application/pgp-keys;base64,AAEC\nEND:VCARD\n"
        "BEGIN:VCARD\nVERSION:3.0\nFN:No Mail\nEND:VCARD\n"
        "BEGIN:VCARD\nEMAIL:carol@example.org\nKEY:https://example.org/key.asc\nEND:VCARD\n"
    )
    assert parse_vcards(text) == [
        VCardContact("bob@example.org", "Bob", b"\x00\x01\x02"),
        VCardContact("carol@example.org", "", None),
    ]


def test_bad_key_data_is_no_key() -> None:
    text = (
        "BEGIN:VCARD\r\nEMAIL:a@example.org\r\n"
        "KEY:data:application/pgp-keys;base64,!!\r\nEND:VCARD"
    )
    assert parse_vcards(text) == [VCardContact("a@example.org", "", None)]


def test_delta_chats_escaped_comma() -> None:
    text = (
        "BEGIN:VCARD\r\nEMAIL:b@example.org\r\n"
        "KEY:data:application/pgp-keys;base64\\,AAEC\r\nEND:VCARD"
    )
    assert parse_vcards(text) == [VCardContact("b@example.org", "", b"\x00\x01\x02")]
