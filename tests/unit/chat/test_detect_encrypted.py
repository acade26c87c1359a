"""The encrypted rule of coi.chat.detect: PGP/MIME encrypted with the outer Subject ``[...]``."""

from __future__ import annotations

import email
import email.policy
import time

import pytest

from coi.chat.detect import is_chat_message, is_chat_message_bytes, is_pgp_encrypted

from .conftest import load

PGP = (
    b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="b"\r\n'
)
BODY = b"\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b--\r\n"


def mail(subject: bytes, content_type: bytes = PGP, extra: bytes = b"") -> bytes:
    return (
        b"From: <alice@example.org>\r\nTo: <bob@example.org>\r\n"
        b"Message-ID: <1234@example.org>\r\nMIME-Version: 1.0\r\n"
        + extra
        + b"Subject: "
        + subject
        + b"\r\n"
        + content_type
        + BODY
    )


def both(raw: bytes, detect_encrypted: bool = True) -> bool:
    """The raw and parsed paths must agree; returns their answer."""
    fast = is_chat_message_bytes(raw, detect_encrypted=detect_encrypted)
    for policy in (email.policy.compat32, email.policy.default):
        message = email.message_from_bytes(raw, policy=policy)
        assert is_chat_message(message, detect_encrypted=detect_encrypted) is fast
    return fast


def test_deltachat_encrypted_sample_is_chat() -> None:
    raw = load("deltachat/e2ee-one_to_one.eml")
    assert b"Chat-Version" not in raw.split(b"\n\n", 1)[0]
    assert both(raw)


def test_off_switch_gives_the_strict_spec_rule() -> None:
    assert not both(load("deltachat/e2ee-one_to_one.eml"), detect_encrypted=False)
    # the spec markers still count with the rule off
    assert both(mail(b"[...]", extra=b"Chat-Version: 1.0\r\n"), detect_encrypted=False)
    assert both(mail(b"hi", extra=b"References: <chat$1@x>\r\n"), detect_encrypted=False)


@pytest.mark.parametrize(
    "subject",
    [
        b"...",  # Thunderbird's built-in OpenPGP (protected headers): an e-mail, not chat
        b"Encrypted Message",  # K-9 Mail / older Thunderbird Android
        b"Re: [...]",
        b"[...] hello",
        b"[..]",
        b"",
        b"=?utf-8?q?=5B...=5D?=",
    ],
)
def test_other_placeholders_are_email(subject: bytes) -> None:
    assert not both(mail(subject))


def test_placeholder_with_spaces_and_folding_is_chat() -> None:
    assert both(mail(b"  [...]  "))
    assert both(mail(b"\r\n [...]"))


@pytest.mark.parametrize(
    "content_type",
    [
        b'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="b"\r\n',
        b'Content-Type: multipart/encrypted; protocol="application/pkcs7-mime"; boundary="b"\r\n',
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"",
    ],
)
def test_not_pgp_mime_encrypted_is_email(content_type: bytes) -> None:
    assert not both(mail(b"[...]", content_type))


@pytest.mark.parametrize(
    "value",
    [
        'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"',
        'Multipart/Encrypted;\r\n boundary="x"; PROTOCOL = "Application/PGP-Encrypted"',
        "multipart/encrypted;protocol=application/pgp-encrypted",
    ],
)
def test_pgp_mime_content_types(value: str) -> None:
    assert is_pgp_encrypted(value)


def test_only_the_header_counts() -> None:
    raw = b"From: a@b\r\nSubject: hi\r\n\r\n" + PGP + b"Subject: [...]\r\n"
    assert not both(raw)


def test_parsed_mapping_and_pairs() -> None:
    pgp = 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"'
    assert is_chat_message({"subject": "[...]", "content-type": pgp})
    assert is_chat_message([("Subject", "[...]"), ("Content-Type", pgp)])
    assert not is_chat_message({"subject": "[...]", "content-type": pgp}, detect_encrypted=False)


def test_bytes_detection_stays_fast_with_many_placeholder_headers() -> None:
    raw = (
        b"Subject: "
        + b"[...] " * 500_000
        + b"\r\n"
        + b"Content-Type: multipart/encrypted;"
        + b" x=y;" * 500_000
        + b"\r\n"
        + b"X-Junk: a\r\n" * 200_000
        + b"\r\n"
    )
    start = time.process_time()
    assert not is_chat_message_bytes(raw)
    assert time.process_time() - start < 2.0
