"""RFC 8291 Appendix A and RFC 8188 §3.1 vectors; VAPID JWTs that verify."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from coi.webpush import crypto

# RFC 8291 Appendix A (whitespace removed)
PLAINTEXT = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
HEADER = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
CIPHERTEXT = "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ"


def _private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(crypto.b64url_decode(b64), "big"), ec.SECP256R1())


def test_rfc8291_appendix_a_vector() -> None:
    body = crypto.encrypt(
        crypto.b64url_decode(PLAINTEXT),
        crypto.parse_p256dh(UA_PUBLIC),
        crypto.parse_auth(AUTH),
        as_private=_private(AS_PRIVATE),
        salt=crypto.b64url_decode(SALT),
    )
    assert body == crypto.b64url_decode(HEADER) + crypto.b64url_decode(CIPHERTEXT)
    assert crypto.decrypt(body, _private(UA_PRIVATE), crypto.parse_auth(AUTH)) == (
        crypto.b64url_decode(PLAINTEXT)
    )


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(max_size=crypto.MAX_PLAINTEXT))
def test_round_trip_and_size(payload: bytes) -> None:
    ua = ec.generate_private_key(ec.SECP256R1())
    ua_public = ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    body = crypto.encrypt(payload, ua_public, b"0123456789abcdef")
    assert len(body) <= crypto.RECORD_SIZE
    assert crypto.decrypt(body, ua, b"0123456789abcdef") == payload


def test_oversized_payload_is_refused() -> None:
    with pytest.raises(ValueError):
        crypto.encrypt(b"x" * (crypto.MAX_PLAINTEXT + 1), crypto.parse_p256dh(UA_PUBLIC), b"a" * 16)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64!",
        crypto.b64url_encode(b"\x04" + b"\0" * 64),
        UA_PUBLIC[:-4],
        crypto.b64url_encode(b"\x02" + b"\1" * 32),
    ],
)
def test_invalid_p256dh(bad: str) -> None:
    with pytest.raises(crypto.InvalidKey):
        crypto.parse_p256dh(bad)


def test_auth_must_be_16_octets() -> None:
    assert len(crypto.parse_auth(AUTH)) == 16
    with pytest.raises(crypto.InvalidKey):
        crypto.parse_auth(crypto.b64url_encode(b"x" * 15))


def test_public_key_pem_matches_spec_shape() -> None:
    key = crypto.generate_vapid_key()
    pem = crypto.public_key_pem(key)
    # the spec's example: a compressed point, 133 octets of PEM
    assert len(pem) == 133
    loaded = serialization.load_pem_public_key(pem.encode())
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert loaded.public_numbers() == key.public_key().public_numbers()
    assert crypto.load_private_key(crypto.private_key_pem(key)).private_numbers() == (
        key.private_numbers()
    )


def test_vapid_authorization_verifies() -> None:
    key = crypto.generate_vapid_key()
    header = crypto.vapid_authorization(
        key, "https://push.example.net/p/abc?x=1", "mailto:admin@example.org", now=1_000_000
    )
    assert header.startswith("vapid t=")
    token = header.split("t=")[1].split(",")[0]
    k = header.split("k=")[1].strip()
    assert k == crypto.application_server_key(key)
    head_b64, claims_b64, sig_b64 = token.split(".")
    claims = json.loads(crypto.b64url_decode(claims_b64))
    assert claims == {
        "aud": "https://push.example.net",
        "exp": 1_000_000 + 12 * 3600,
        "sub": "mailto:admin@example.org",
    }
    assert json.loads(crypto.b64url_decode(head_b64))["alg"] == "ES256"
    raw = crypto.b64url_decode(sig_b64)
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    key.public_key().verify(
        signature, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
    )


def test_vapid_audience_is_the_serialised_origin() -> None:
    from coi.webpush.crypto import audience_of

    assert audience_of("https://Push.Example.NET/send/abc") == "https://push.example.net"
    assert audience_of("https://push.example.net:443/x") == "https://push.example.net"
    assert audience_of("https://user@push.example.net:8443/x") == "https://push.example.net:8443"
    assert audience_of("https://[2001:DB8::1]/x") == "https://[2001:db8::1]"


def test_vapid_authorization_for_an_ipv6_literal_endpoint() -> None:
    """py_vapid's own claim check refuses `https://[::1]`; ours signs it (RFC 8292 §2)."""
    key = crypto.generate_vapid_key()
    header = crypto.vapid_authorization(key, "https://[::1]:8443/push/x", "mailto:a@b.example")
    token = header.split("t=")[1].split(",")[0]
    claims = json.loads(crypto.b64url_decode(token.split(".")[1]))
    assert claims["aud"] == "https://[::1]:8443"
