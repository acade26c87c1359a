"""OpenPGP engine: keys, encrypt+sign, decrypt+verify, a fixed vector, and Sequoia cross-checks."""

from __future__ import annotations

import time

import pysequoia as sq
import pytest
from openpgp.composed import (
    EncryptionCaps,
    KeyType,
    Message,
    SecretKeyParamsBuilder,
    SignedPublicKey,
    SignedSecretKey,
    SubkeyParamsBuilder,
)

from coi.crypto import (
    CryptoError,
    KeyPair,
    armor_public,
    dearmor,
    decrypt_and_verify,
    encrypt_and_sign,
    generate_key,
    public_key_info,
)

from .conftest import CRYPTO


def test_generated_key_is_delta_chat_shaped(alice: KeyPair) -> None:
    key = SignedPublicKey.from_bytes(alice.public)
    assert key.fingerprint.upper() == alice.fingerprint
    assert key.version == 4
    assert key.public_key_algorithm == "eddsa-legacy"
    assert key.user_ids == ["<alice@example.org>"]
    (user,) = key.details.users
    (cert,) = user.signatures
    assert cert.key_flags().certify and cert.key_flags().sign
    assert not cert.key_flags().encrypt_communications
    features = cert.features()
    assert features is not None and features.seipd_v1 and features.seipd_v2
    (subkey,) = key.public_subkeys
    assert subkey.key.public_key_algorithm == "ecdh"
    assert subkey.key.public_params.curve == "curve25519"
    assert subkey.signatures[0].key_flags().encrypt_communications
    assert SignedSecretKey.from_bytes(alice.secret).fingerprint.upper() == alice.fingerprint


def test_public_key_info_binary_and_armored(alice: KeyPair) -> None:
    info = public_key_info(alice.public)
    assert info.fingerprint == alice.fingerprint
    assert info.addresses == ("alice@example.org",)
    armored = armor_public(alice.public)
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert public_key_info(armored.encode()) == info
    assert dearmor(armored.encode()) == alice.public
    assert dearmor(alice.public) == alice.public


def test_public_key_info_rejects_bad_keys(alice: KeyPair) -> None:
    with pytest.raises(CryptoError):
        public_key_info(b"not a key")
    tampered = bytearray(alice.public)
    tampered[-5] ^= 0x01  # inside the subkey binding signature
    with pytest.raises(CryptoError):
        public_key_info(bytes(tampered))
    # a primary key and user id alone: nothing to encrypt to
    lone = (
        SecretKeyParamsBuilder()
        .key_type(KeyType.ed25519_legacy())
        .can_certify(True)
        .can_sign(True)
        .primary_user_id("<lone@example.org>")
        .generate()
    )
    with pytest.raises(CryptoError, match="encryption subkey"):
        public_key_info(lone.to_public_key().to_bytes())


def test_two_recipients_decrypt_and_see_the_signer(
    alice: KeyPair, bob: KeyPair, carol: KeyPair
) -> None:
    armored = encrypt_and_sign(b"hello \xe2\x9c\x93", [alice.public, bob.public], alice)
    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    for reader in (alice, bob):
        result = decrypt_and_verify(armored, [reader], [carol.public, alice.public])
        assert result.plaintext == b"hello \xe2\x9c\x93"
        assert result.signer == alice.fingerprint
    # several own keys: the fitting one is found
    assert decrypt_and_verify(armored.encode(), [carol, bob], []).plaintext == b"hello \xe2\x9c\x93"
    with pytest.raises(CryptoError):
        decrypt_and_verify(armored, [carol], [alice.public])


def test_layering_and_packet_versions(alice: KeyPair, bob: KeyPair) -> None:
    armored = encrypt_and_sign(b"layers", [alice.public, bob.public], alice)
    message, _ = Message.from_armor(armored)
    assert message.kind == "encrypted"
    pkesks = message.public_key_encrypted_session_key_packets()
    assert len(pkesks) == 2
    assert all(p.version == 6 and p.recipient_is_anonymous for p in pkesks)
    data = message.encrypted_data_packet()
    assert (data.kind, data.symmetric_algorithm, data.aead_algorithm) == (
        "seipd-v2",
        "aes128",
        "ocb",
    )
    decrypted = message.decrypt(None, SignedSecretKey.from_bytes(bob.secret))
    assert decrypted.kind == "compressed"  # encryption, then compression, then the signature
    assert decrypted.as_data_vec() == b"layers"
    (signature,) = decrypted.signatures()
    assert [f.upper() for f in signature.issuer_fingerprint()] == [alice.fingerprint]


def test_tampered_ciphertext_raises(alice: KeyPair, bob: KeyPair) -> None:
    binary = bytearray(dearmor(encrypt_and_sign(b"x" * 100, [bob.public], alice).encode()))
    binary[-30] ^= 0x01
    with pytest.raises(CryptoError):
        decrypt_and_verify(bytes(binary), [bob], [alice.public])


def test_not_a_message_raises(bob: KeyPair) -> None:
    with pytest.raises(CryptoError):
        decrypt_and_verify(b"hello", [bob], [])
    with pytest.raises(CryptoError):
        decrypt_and_verify(
            "-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n", [bob], []
        )


def test_unknown_signer_gives_none(alice: KeyPair, bob: KeyPair, carol: KeyPair) -> None:
    armored = encrypt_and_sign(b"who?", [bob.public], carol)
    result = decrypt_and_verify(armored, [bob], [alice.public])
    assert result.plaintext == b"who?"
    assert result.signer is None
    assert decrypt_and_verify(armored, [bob], [carol.public]).signer == carol.fingerprint


def test_no_recipients_raises(alice: KeyPair) -> None:
    with pytest.raises(CryptoError):
        encrypt_and_sign(b"x", [], alice)


def test_fixed_vector_stays_readable() -> None:
    """Written once by rpgp-py 0.20.0 (tests/data/crypto/README.md): reading must not regress."""
    bob_secret, _ = SignedSecretKey.from_armor((CRYPTO / "bob.sec.asc").read_text())
    bob = KeyPair(
        secret=bob_secret.to_bytes(),
        public=bob_secret.to_public_key().to_bytes(),
        fingerprint=bob_secret.fingerprint.upper(),
    )
    alice_public = (CRYPTO / "alice.pub.asc").read_bytes()
    result = decrypt_and_verify((CRYPTO / "alice-to-bob.asc").read_bytes(), [bob], [alice_public])
    assert result.plaintext == (
        b"Subject: fixed vector\r\n\r\ncoi fixed vector: hello bob \xe2\x9c\x93\r\n"
    )
    assert result.signer == "B71FFE23C0547F1FEACDADAB053F6431C086C44A"
    assert bob.fingerprint == "A45CFF2CB736802173F44B952D95DD126485ABE5"


def test_sequoia_reads_what_we_write(alice: KeyPair, bob: KeyPair) -> None:
    decryptor = sq.Tsk.from_bytes(bob.secret).decryptor()
    compressed = encrypt_and_sign(b"to sequoia", [alice.public, bob.public], alice)
    assert sq.decrypt(compressed.encode(), decryptor=decryptor).bytes == b"to sequoia"
    # pysequoia's verifying helper refuses a compression layer ("Unexpected message
    # structure"), so the signature is checked on an uncompressed message
    plain = encrypt_and_sign(b"signed", [bob.public], alice, compress=False)
    result = sq.decrypt(
        plain.encode(), decryptor=decryptor, store=lambda _ids: [sq.Cert.from_bytes(alice.public)]
    )
    assert result.bytes == b"signed"
    (valid,) = result.valid_sigs
    assert valid.signing_key.upper() == alice.fingerprint  # the primary key signed


def test_we_read_what_sequoia_writes(alice: KeyPair, bob: KeyPair) -> None:
    bob_cert = sq.Cert.from_bytes(bob.public)
    # signed with Alice's key through Sequoia: it picks the primary (the only signing key)
    signer = sq.Tsk.from_bytes(alice.secret).signer()
    encrypted = sq.encrypt(b"from sequoia", recipients=[bob_cert], signer=signer)
    result = decrypt_and_verify(encrypted, [bob], [alice.public])
    assert (result.plaintext, result.signer) == (b"from sequoia", alice.fingerprint)
    # a Sequoia-made key signs with a subkey: decrypts, but Delta Chat's rule (primary key
    # signatures only) leaves it unverified
    other = sq.Tsk.generate("<dave@example.org>")
    encrypted = sq.encrypt(b"subkey-signed", recipients=[bob_cert], signer=other.signer())
    result = decrypt_and_verify(encrypted, [bob], [bytes(other.extract_certificate())])
    assert (result.plaintext, result.signer) == (b"subkey-signed", None)


def test_timings(alice: KeyPair, bob: KeyPair) -> None:
    """Generous bounds in CPU time (a shared 2-core machine); the figures are in the report."""
    start = time.process_time()
    generate_key("timing@example.org")
    generated = time.process_time() - start
    armored = encrypt_and_sign(b"x" * 2000, [alice.public, bob.public], alice)
    start = time.process_time()
    for _ in range(20):
        decrypt_and_verify(armored, [bob], [alice.public])
    decrypted = (time.process_time() - start) / 20
    assert generated < 0.5
    assert decrypted < 0.05


def test_seipd_v1_for_keys_without_v2(alice: KeyPair) -> None:
    """RFC 9580 §5.13.2: SEIPDv2 only when every recipient key advertises it."""
    old = (
        SecretKeyParamsBuilder()
        .key_type(KeyType.ed25519_legacy())
        .can_certify(True)
        .can_sign(True)
        .feature_seipd_v2(False)
        .primary_user_id("<old@example.org>")
        .subkey(
            SubkeyParamsBuilder()
            .key_type(KeyType.ecdh("curve25519"))
            .can_encrypt(EncryptionCaps.all())
            .build()
        )
        .generate()
    )
    old_pair = KeyPair(
        secret=old.to_bytes(),
        public=old.to_public_key().to_bytes(),
        fingerprint=old.fingerprint.upper(),
    )
    armored = encrypt_and_sign(b"v1", [alice.public, old_pair.public], alice)
    message, _ = Message.from_armor(armored)
    assert message.encrypted_data_packet().kind == "seipd-v1"
    for reader in (alice, old_pair):
        assert decrypt_and_verify(armored, [reader], [alice.public]).signer == alice.fingerprint


def test_encrypts_to_delta_chat_keys(alice: KeyPair) -> None:
    """Keys from Delta Chat's Autocrypt-Gossip headers advertise SEIPDv2: we use it."""
    import email

    from coi.crypto import parse_gossip_header

    from .conftest import DELTACHAT

    inner = email.message_from_bytes((DELTACHAT / "e2ee-group.inner.eml").read_bytes())
    keys = [
        h.keydata for v in inner.get_all("Autocrypt-Gossip", []) if (h := parse_gossip_header(v))
    ]
    assert len(keys) == 2
    armored = encrypt_and_sign(b"to delta chat", [alice.public, *keys], alice)
    message, _ = Message.from_armor(armored)
    assert len(message.public_key_encrypted_session_key_packets()) == 3
    assert message.encrypted_data_packet().kind == "seipd-v2"
