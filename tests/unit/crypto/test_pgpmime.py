"""PGP/MIME with protected headers: round trips through coi.chat, the outer mask, Delta Chat."""

from __future__ import annotations

import email
from email.policy import compat32

import pytest

from coi.chat.builders import new_message
from coi.chat.compose import compose_bytes
from coi.chat.model import Address, ChatMessage, GroupRef
from coi.chat.parse import parse
from coi.crypto import (
    CryptoError,
    KeyPair,
    decrypt_message,
    encrypt_message,
    format_gossip_header,
    format_header,
)

from .conftest import DELTACHAT

ALICE = Address("alice@example.org", "Alice")
BOB = Address("bob@example.org", "Bob")
CAROL = Address("carol@example.org", "Carol")
DATE = "Sat, 28 Nov 2026 01:29:31 +0000"


def _encrypt(message: ChatMessage, inner: bytes, alice: KeyPair, *recipients: KeyPair) -> bytes:
    return encrypt_message(
        inner,
        outer_from="alice@example.org",
        message_id=f"<{message.message_id}>",
        date=DATE,
        recipients=[alice.public, *(r.public for r in recipients)],
        signer=alice,
        autocrypt=format_header("alice@example.org", alice.public),
        keep_outside=[("Chat-Version", "1.0")],
    )


def test_round_trip_through_chat_parse(alice: KeyPair, bob: KeyPair) -> None:
    message = new_message(ALICE, (BOB,), "hello bob, ünïcödé ✓")
    raw = _encrypt(message, compose_bytes(message), alice, bob)
    decrypted = decrypt_message(raw, [bob], [alice.public])
    assert decrypted is not None
    assert decrypted.signer == alice.fingerprint
    assert decrypted.autocrypt is not None and decrypted.autocrypt.keydata == alice.public
    assert decrypted.gossip == ()
    chat = parse(decrypted.inner)
    assert chat.text == "hello bob, ünïcödé ✓"
    assert chat.sender == ALICE
    assert chat.recipients == (BOB,)
    assert chat.chat_version == "1.0"
    assert chat.message_id == message.message_id
    # alice reads her own copy too
    own = decrypt_message(raw, [alice], [alice.public])
    assert own is not None and own.inner == decrypted.inner


def test_outer_headers_hide_the_rest(alice: KeyPair, bob: KeyPair) -> None:
    message = new_message(
        ALICE, (BOB,), "secret text", group=GroupRef("grp123456789ab", "Secret group")
    )
    raw = _encrypt(message, compose_bytes(message), alice, bob)
    assert b"secret text" not in raw and b"Secret group" not in raw and b"Alice" not in raw
    outer = email.message_from_bytes(raw, policy=compat32)
    assert outer["From"] == "<alice@example.org>"
    assert outer["Subject"] == "[...]"
    assert outer["To"] == '"hidden-recipients": ;'
    assert outer["Date"] == DATE
    assert outer["Message-ID"] == f"<{message.message_id}>"
    assert outer["MIME-Version"] == "1.0"
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    chat_headers = [name for name in outer if name.lower().startswith("chat-")]
    assert chat_headers == ["Chat-Version"]
    control, data = outer.get_payload()
    assert control.get_content_type() == "application/pgp-encrypted"
    assert control.get_payload().strip() == "Version: 1"
    assert data.get_content_type() == "application/octet-stream"
    assert data.get_payload().startswith("-----BEGIN PGP MESSAGE-----")
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


def test_protected_headers_as_delta_chat(alice: KeyPair, bob: KeyPair) -> None:
    message = new_message(ALICE, (BOB, CAROL), "hi group", group=GroupRef("grp123456789ab", "G"))
    raw = _encrypt(message, compose_bytes(message), alice, bob)
    decrypted = decrypt_message(raw, [bob], [alice.public])
    assert decrypted is not None
    inner = email.message_from_bytes(decrypted.inner, policy=compat32)
    assert inner.get_param("protected-headers") == "v1"
    assert inner.get_param("hp") == "cipher"
    assert inner.get_all("HP-Outer") == [
        "From: <alice@example.org>",
        f"Date: {DATE}",
        f"Message-ID: <{message.message_id}>",
        'To: "hidden-recipients": ;',
        "Subject: [...]",
        "Chat-Version: 1.0",
    ]
    assert inner["Chat-Group-ID"] == "grp123456789ab"
    assert inner["Subject"] == "G"
    assert "Autocrypt" in inner  # inside too, where Delta Chat reads it
    # the Delta Chat sample has the same shape
    sample = email.message_from_bytes(
        (DELTACHAT / "e2ee-one_to_one.inner.eml").read_bytes(), policy=compat32
    )
    assert sample.get_param("protected-headers") == "v1"
    assert [v.split(":")[0] for v in sample.get_all("HP-Outer")] == [
        "From",
        "Date",
        "Message-ID",
        "To",
        "Subject",
    ]


def test_gossip_comes_from_inside(alice: KeyPair, bob: KeyPair, carol: KeyPair) -> None:
    message = new_message(ALICE, (BOB, CAROL), "with gossip", group=GroupRef("g1g1g1g1g1g1g1", "G"))
    head, _, body = compose_bytes(message).partition(b"\r\n\r\n")
    gossip = b"".join(
        f"Autocrypt-Gossip: {format_gossip_header(addr, key.public)}\r\n".encode()
        for addr, key in (("bob@example.org", bob), ("carol@example.org", carol))
    )
    raw = _encrypt(message, head + b"\r\n" + gossip + b"\r\n" + body, alice, bob, carol)
    decrypted = decrypt_message(raw, [carol], [alice.public])
    assert decrypted is not None
    assert [(g.addr, g.keydata) for g in decrypted.gossip] == [
        ("bob@example.org", bob.public),
        ("carol@example.org", carol.public),
    ]
    assert b"Autocrypt-Gossip" not in raw


def test_missing_inner_headers_come_from_outside(alice: KeyPair, bob: KeyPair) -> None:
    inner = b"From: Alice <alice@example.org>\nChat-Version: 1.0\nContent-Type: text/plain\n\nhi\n"
    raw = encrypt_message(
        inner,
        outer_from="alice@example.org",
        message_id="<m1@example.org>",
        date=DATE,
        recipients=[bob.public],
        signer=alice,
        autocrypt=None,
    )
    outer = email.message_from_bytes(raw, policy=compat32)
    assert outer["Autocrypt"] is None and outer["Chat-Version"] is None
    decrypted = decrypt_message(raw, [bob], [])
    assert decrypted is not None
    assert decrypted.signer is None  # no verifiers given
    assert decrypted.autocrypt is None
    chat = parse(decrypted.inner)
    assert chat.message_id == "m1@example.org"
    assert chat.date is not None and chat.date.day == 28
    assert chat.text.strip() == "hi"


def test_outer_autocrypt_must_name_the_sender(alice: KeyPair, bob: KeyPair) -> None:
    inner = b"From: <alice@example.org>\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    raw = encrypt_message(
        inner,
        outer_from="alice@example.org",
        message_id="<m2@example.org>",
        date=DATE,
        recipients=[bob.public],
        signer=alice,
        autocrypt=format_header("mallory@example.org", bob.public),
    )
    decrypted = decrypt_message(raw, [bob], [alice.public])
    assert decrypted is not None and decrypted.autocrypt is None


def test_clear_message_is_not_pgp_mime(bob: KeyPair) -> None:
    message = new_message(ALICE, (BOB,), "clear")
    assert decrypt_message(compose_bytes(message), [bob], []) is None
    assert decrypt_message((DELTACHAT / "plain-one_to_one.eml").read_bytes(), [bob], []) is None


def test_delta_chat_message_without_our_key(bob: KeyPair) -> None:
    raw = (DELTACHAT / "e2ee-one_to_one.eml").read_bytes()
    with pytest.raises(CryptoError):
        decrypt_message(raw, [bob], [])


def test_broken_pgp_mime_raises(bob: KeyPair) -> None:
    raw = (
        b"From: <a@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n'
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nnot it\r\n--b--\r\n"
    )
    with pytest.raises(CryptoError):
        decrypt_message(raw, [bob], [])


def test_header_injection_refused(alice: KeyPair, bob: KeyPair) -> None:
    with pytest.raises(ValueError):
        encrypt_message(
            b"From: <alice@example.org>\r\n\r\nhi\r\n",
            outer_from="alice@example.org",
            message_id="<m3@example.org>",
            date=DATE,
            recipients=[bob.public],
            signer=alice,
            autocrypt=None,
            keep_outside=[("Chat-Version", "1.0\r\nBcc: eve@example.org")],
        )
