"""Web Push message encryption (RFC 8291 on RFC 8188 aes128gcm) and VAPID (RFC 8292).

Pure functions: no I/O, no clock except where a caller passes none. The content coding
itself comes from `http_ece`, the VAPID JWT from `py_vapid`; this module fixes the
parameters Web Push requires and validates what clients send us.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid.jwt import sign as sign_jwt

RECORD_SIZE = 4096  # RFC 8291 §4: one record, at most 4096 octets in all
# RFC 8291 §4: header (86) + padding delimiter (1) + AEAD tag (16) leave 3993 octets
MAX_PLAINTEXT = RECORD_SIZE - 86 - 1 - 16

# DER prefix of a SubjectPublicKeyInfo holding a compressed P-256 point (RFC 5480 §2)
_COMPRESSED_SPKI_PREFIX = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200")


class InvalidKey(ValueError):
    """A client-supplied key is not what RFC 8291 requires."""


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_p256dh(text: str) -> bytes:
    """The user agent's public key: an uncompressed P-256 point (RFC 8291 §3.2)."""
    try:
        raw = b64url_decode(text)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("p256dh is not base64url") from exc
    if len(raw) != 65 or raw[0] != 4:
        raise InvalidKey("p256dh must be an uncompressed P-256 point (65 octets)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise InvalidKey("p256dh is not a point on P-256") from exc
    return raw


def parse_auth(text: str) -> bytes:
    """The authentication secret: exactly 16 octets (RFC 8291 §3.2)."""
    try:
        raw = b64url_decode(text)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("auth is not base64url") from exc
    if len(raw) != 16:
        raise InvalidKey("auth must be 16 octets")
    return raw


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    as_private: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """The aes128gcm body of a push message (RFC 8291 §3.4, one record, no padding).

    `as_private` and `salt` are fresh random values unless a test pins them.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"push payload over {MAX_PLAINTEXT} octets")
    private = as_private or ec.generate_private_key(ec.SECP256R1())
    result: bytes = http_ece.encrypt(
        plaintext,
        salt=salt,
        private_key=private,
        dh=ua_public,
        auth_secret=auth_secret,
        rs=RECORD_SIZE,
        version="aes128gcm",
    )
    return result


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """The receiving side, for tests and for our own client library."""
    result: bytes = http_ece.decrypt(
        body, private_key=ua_private, auth_secret=auth_secret, version="aes128gcm"
    )
    return result


# -- VAPID -------------------------------------------------------------------------


def generate_vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidKey("the VAPID key must be a P-256 private key")
    return key


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The VAPID public key as PEM with a compressed point, as in the WebPush spec's example."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    der = base64.b64encode(_COMPRESSED_SPKI_PREFIX + point).decode("ascii")
    lines = [der[i : i + 64] for i in range(0, len(der), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----"


def application_server_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The uncompressed public point, base64url: the `k=` of the VAPID header."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(point)


@dataclass(frozen=True, slots=True)
class VapidClaims:
    audience: str  # the push resource's origin, e.g. "https://push.example.net"
    subject: str  # "mailto:postmaster@example.org" or an https URL (RFC 8292 §2.1)
    expires: int  # seconds since the epoch, at most 24 hours ahead (RFC 8292 §2)


def audience_of(endpoint: str) -> str:
    """RFC 8292 §2: ``aud`` is the push resource's origin as serialised (RFC 6454 §6.2):
    scheme and host in lower case, brackets around an IPv6 literal, no user info, and the
    port only when it is not the scheme's default."""
    parts = urlsplit(endpoint)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def vapid_authorization(
    key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, now: float | None = None
) -> str:
    """`Authorization: vapid t=<JWT>, k=<key>` for a push to `endpoint` (RFC 8292 §3)."""
    expires = int((time.time() if now is None else now) + 12 * 3600)
    # py_vapid's own check of `aud` refuses an IPv6 literal host ("https://[::1]"), so the
    # JWT (RFC 7515 ES256, claims sorted as Chrome wants) is signed with its jwt.sign
    claims = {"aud": audience_of(endpoint), "exp": expires, "sub": subject}
    token: str = sign_jwt(claims, key)
    return f"vapid t={token},k={application_server_key(key)}"
