"""OpenPGP behind a small interface of ours (DESIGN.md, crypto/): keys, encrypt, decrypt.

The engine is rPGP (the ``openpgp`` module of rpgp-py), the implementation Delta Chat core uses, so
what we write is what Delta Chat writes: an Ed25519 (legacy EdDSA) primary key that certifies and
signs, a Cv25519 (ECDH) encryption subkey, v4 keys; messages encrypted to anonymous recipients
(RFC 9580 §5.1: the recipient's key is not named), SEIPDv2 with AES-128/OCB when every recipient
key advertises it (RFC 9580 §5.13.2), SEIPDv1 otherwise, signed by the primary key (Delta Chat
accepts only primary-key signatures), the signed data compressed with ZLIB. Only this module
imports the engine: callers see bytes, strings and the dataclasses below.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from openpgp.armor import Dearmor
from openpgp.composed import (
    DecryptedMessage,
    EncryptionCaps,
    KeyType,
    Message,
    MessageBuilder,
    SecretKeyParamsBuilder,
    SignedPublicKey,
    SignedPublicSubKey,
    SignedSecretKey,
    SubkeyParamsBuilder,
)
from openpgp.errors import Error as EngineError

__all__ = [
    "CryptoError",
    "Decrypted",
    "KeyInfo",
    "KeyPair",
    "armor_public",
    "dearmor",
    "decrypt_and_verify",
    "encrypt_and_sign",
    "generate_key",
    "public_key_info",
]

_ARMOR_START = b"-----BEGIN PGP"
_MAX_MESSAGE = 64 * 1024 * 1024  # refuse absurd input before the engine buffers it


class CryptoError(Exception):
    """A key or message that cannot be used: one clear message, never an engine exception."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """Our own key: binary transferable secret and public keys (RFC 9580 §10.1, §10.2)."""

    secret: bytes
    public: bytes
    fingerprint: str  # upper-case hex of the primary key


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a peer's public key tells: its fingerprint and the addresses of its user ids."""

    fingerprint: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decrypted:
    """Decrypted plaintext; ``signer``: the verifier whose primary key validly signed it."""

    plaintext: bytes
    signer: str | None


def dearmor(data: bytes) -> bytes:
    """The binary packets of ASCII-armored ``data`` (RFC 9580 §6); binary input comes back as is."""
    if not data.lstrip().startswith(_ARMOR_START):
        return data
    try:
        return Dearmor(data).readall()
    except (EngineError, ValueError) as error:
        raise CryptoError(f"bad OpenPGP armor: {error}") from None


def _public(data: bytes) -> SignedPublicKey:
    try:
        return SignedPublicKey.from_bytes(dearmor(data))
    except (EngineError, ValueError) as error:
        raise CryptoError(f"not an OpenPGP public key: {error}") from None


def _secret(data: bytes) -> SignedSecretKey:
    try:
        return SignedSecretKey.from_bytes(dearmor(data))
    except (EngineError, ValueError) as error:
        raise CryptoError(f"not an OpenPGP secret key: {error}") from None


def generate_key(address: str) -> KeyPair:
    """A new key shaped as Delta Chat makes it (and Autocrypt Level 1 "OpenPGP Based key data").

    User id ``<address>``; preferences AES-256/192/128, SHA-256/384/512/224, ZLIB/ZIP, AES-256+OCB;
    features SEIPDv1 and SEIPDv2, so that peers may send us either.
    """
    subkey = (
        SubkeyParamsBuilder()
        .key_type(KeyType.ecdh("curve25519"))
        .can_encrypt(EncryptionCaps.all())
        .passphrase(None)
        .build()
    )
    try:
        secret = (
            SecretKeyParamsBuilder()
            .key_type(KeyType.ed25519_legacy())
            .can_certify(True)
            .can_sign(True)
            .feature_seipd_v1(True)
            .feature_seipd_v2(True)
            .primary_user_id(f"<{address}>")
            .passphrase(None)
            .preferred_symmetric_algorithms(["aes256", "aes192", "aes128"])
            .preferred_hash_algorithms(["sha256", "sha384", "sha512", "sha224"])
            .preferred_compression_algorithms(["zlib", "zip"])
            .preferred_aead_algorithms([("aes256", "ocb")])
            .subkey(subkey)
            .generate()
        )
        secret.verify_bindings()
    except (EngineError, ValueError) as error:
        raise CryptoError(f"cannot generate a key for {address!r}: {error}") from None
    return KeyPair(
        secret=secret.to_bytes(),
        public=secret.to_public_key().to_bytes(),
        fingerprint=secret.fingerprint.upper(),
    )


def _encryption_subkeys(key: SignedPublicKey) -> list[SignedPublicSubKey]:
    """Subkeys bound for communication encryption (RFC 9580 §5.2.3.29), unexpired."""
    now = int(time.time())
    found = []
    for subkey in key.public_subkeys:
        if not subkey.key.algorithm.can_encrypt() or not subkey.signatures:
            continue
        binding = subkey.signatures[0]
        if not binding.key_flags().encrypt_communications:
            continue
        lifetime = binding.key_expiration_time()
        if lifetime and now > subkey.key.created_at + lifetime:
            continue
        found.append(subkey)
    return found


def _supports_seipd_v2(key: SignedPublicKey) -> bool:
    """The key advertises SEIPDv2 in a direct-key or user id self-signature (RFC 9580 §5.2.3.32)."""
    signatures = list(key.details.direct_signatures)
    for user in key.details.users:
        signatures.extend(user.signatures)
    return any((features := s.features()) is not None and features.seipd_v2 for s in signatures)


def public_key_info(public: bytes) -> KeyInfo:
    """Check a peer's key (armored or binary) and read its fingerprint and addresses.

    Raises ``CryptoError`` unless every binding self-signature verifies and there is a usable
    encryption subkey: a key we could not encrypt to is of no use to Autocrypt.
    """
    key = _public(public)
    try:
        key.verify_bindings()
    except (EngineError, ValueError) as error:
        raise CryptoError(f"public key fails its self-signatures: {error}") from None
    if not key.details.users:
        raise CryptoError("public key has no user id")
    if not _encryption_subkeys(key):
        raise CryptoError("public key has no usable encryption subkey")
    addresses = tuple(
        dict.fromkeys(addr.lower() for _, addr in getaddresses(key.user_ids) if "@" in addr)
    )
    return KeyInfo(fingerprint=key.fingerprint.upper(), addresses=addresses)


def armor_public(public: bytes) -> str:
    """The ASCII-armored form of a public key (RFC 9580 §6.2), e.g. for an export file."""
    return _public(public).to_armored()


def encrypt_and_sign(
    plaintext: bytes,
    recipients: Sequence[bytes],
    signer: KeyPair,
    *,
    compress: bool = True,
) -> str:
    """An armored OpenPGP message for every key in ``recipients`` (include your own), signed.

    Layers as Delta Chat: encryption, then compression, then a one-pass signature by the
    signer's primary key over the literal data (RFC 9580 §10.3). Recipients stay anonymous.
    """
    if not recipients:
        raise CryptoError("no recipients to encrypt to")
    keys = [_public(recipient) for recipient in recipients]
    subkeys = []
    for key in keys:
        usable = _encryption_subkeys(key)
        if not usable:
            raise CryptoError(f"key {key.fingerprint.upper()} has no usable encryption subkey")
        subkeys.append(usable[0])
    secret = _secret(signer.secret)
    try:
        builder = MessageBuilder.from_bytes("", plaintext).sign(secret, None, "sha256")
        if compress:
            builder = builder.compression("zlib")
        if all(_supports_seipd_v2(key) for key in keys):
            builder = builder.seipd_v2("aes128", "ocb", 7)  # 7: 8 KiB chunks, as Delta Chat
        else:
            builder = builder.seipd_v1("aes128")
        for subkey in subkeys:
            builder = builder.encrypt_to_key_anonymous(subkey)
        return builder.to_armored_string()
    except (EngineError, ValueError) as error:
        raise CryptoError(f"cannot encrypt: {error}") from None


def _message(message: bytes | str) -> Message:
    data = message.encode("ascii", "replace") if isinstance(message, str) else message
    if len(data) > _MAX_MESSAGE:
        raise CryptoError("encrypted message too large")
    try:
        parsed = Message.from_bytes(dearmor(data))
    except (EngineError, ValueError) as error:
        raise CryptoError(f"not an OpenPGP message: {error}") from None
    if parsed.kind != "encrypted":
        raise CryptoError("not an encrypted OpenPGP message")
    try:
        kind = parsed.encrypted_data_packet().kind
    except (EngineError, ValueError) as error:
        raise CryptoError(f"not an encrypted OpenPGP message: {error}") from None
    if kind == "sed":
        # RFC 9580 §5.7: no integrity protection; MUST NOT be decrypted by default
        raise CryptoError("message has no integrity protection")
    return parsed


def _signer(decrypted: DecryptedMessage, verifiers: Sequence[bytes]) -> str | None:
    """The first verifier whose primary key made a valid signature over the plaintext."""
    count = decrypted.signature_count()
    if not count:
        return None
    for data in verifiers:
        try:
            key = _public(data)
        except CryptoError:
            continue
        primary_fpr = key.fingerprint.lower()
        primary_id = key.key_id.lower()
        for index in range(count):
            try:
                signature = decrypted.verify(key, index)
            except (EngineError, ValueError):
                continue
            issuers = {fpr.lower() for fpr in signature.issuer_fingerprint()}
            ids = {key_id.lower() for key_id in signature.issuer_key_id()}
            if primary_fpr in issuers or (not issuers and primary_id in ids):
                return key.fingerprint.upper()
    return None


def decrypt_and_verify(
    message: bytes | str, keys: Sequence[KeyPair], verifiers: Sequence[bytes]
) -> Decrypted:
    """Decrypt with the first of ``keys`` that fits, and tell which verifier signed it.

    An unsigned message, or one signed by an unknown key or badly, still decrypts with
    ``signer=None``: whether to show it is the caller's choice. Raises ``CryptoError`` when
    no key fits or the ciphertext fails its integrity check.
    """
    failure = "no key for this message"
    for pair in keys:
        secret = _secret(pair.secret)
        parsed = _message(message)  # a fresh parse per attempt: decryption consumes it
        try:
            decrypted = parsed.decrypt(None, secret)
            plaintext = decrypted.as_data_vec()
        except (EngineError, ValueError) as error:
            if getattr(error, "code", "") == "CRYPTO" and "missing key" in str(error):
                continue
            failure = f"cannot decrypt: {error}"
            continue
        return Decrypted(plaintext=plaintext, signer=_signer(decrypted, verifiers))
    if not keys:
        _message(message)  # still report a malformed message as such
    raise CryptoError(failure)
