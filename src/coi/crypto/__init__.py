"""End-to-end encryption for chat: OpenPGP (engine), Autocrypt headers and peer state, PGP/MIME."""

from coi.crypto.autocrypt import (
    AutocryptHeader,
    PeerState,
    format_gossip_header,
    format_header,
    parse_gossip_header,
    parse_header,
    recommendation,
    update_from_gossip,
    update_from_header,
)
from coi.crypto.engine import (
    CryptoError,
    Decrypted,
    KeyInfo,
    KeyPair,
    armor_public,
    dearmor,
    decrypt_and_verify,
    encrypt_and_sign,
    generate_key,
    public_key_info,
)
from coi.crypto.pgpmime import DecryptedMessage, decrypt_message, encrypt_message

__all__ = [
    "AutocryptHeader",
    "CryptoError",
    "Decrypted",
    "DecryptedMessage",
    "KeyInfo",
    "KeyPair",
    "PeerState",
    "armor_public",
    "dearmor",
    "decrypt_and_verify",
    "decrypt_message",
    "encrypt_and_sign",
    "encrypt_message",
    "format_gossip_header",
    "format_header",
    "generate_key",
    "parse_gossip_header",
    "parse_header",
    "public_key_info",
    "recommendation",
    "update_from_gossip",
    "update_from_header",
]
