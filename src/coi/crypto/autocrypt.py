"""Autocrypt Level 1 (autocrypt.org/level1.html): the header, gossip, and the peer-state rules.

Pure functions over values: the client stores ``PeerState`` and decides what to do with a
recommendation. Section names follow the Level 1 document: "The Autocrypt Header" (§2.1),
"Updating Autocrypt Peer State" (§2.3), "Provide a recommendation for message encryption" (§2.4),
"Key Gossip" (§2.7).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import Literal

from coi.crypto.engine import dearmor

__all__ = [
    "AutocryptHeader",
    "PeerState",
    "encryption_key",
    "format_gossip_header",
    "format_header",
    "parse_gossip_header",
    "parse_header",
    "recommendation",
    "update_from_gossip",
    "update_from_header",
]

MAX_HEADER = 10 * 1024  # §2.1: larger headers SHOULD be treated as invalid
_CHUNK = 64  # keydata chunks: "keydata=" + one chunk must fit a folded line, or it is encoded
_STALE = 35 * 24 * 3600  # §2.4: autocrypt_timestamp this much older than last_seen discourages

Recommendation = Literal["encrypt", "available", "disable"]


@dataclass(frozen=True, slots=True)
class AutocryptHeader:
    """One valid ``Autocrypt`` or ``Autocrypt-Gossip`` header; ``keydata`` is the binary key."""

    addr: str
    keydata: bytes
    prefer_encrypt: bool


def _format(addr: str, public: bytes, prefer_encrypt: bool) -> str:
    encoded = base64.b64encode(dearmor(public)).decode("ascii")
    chunks = " ".join(encoded[i : i + _CHUNK] for i in range(0, len(encoded), _CHUNK))
    mutual = " prefer-encrypt=mutual;" if prefer_encrypt else ""
    return f"addr={addr};{mutual} keydata={chunks}"


def format_header(addr: str, public: bytes, prefer_encrypt: bool = True) -> str:
    """The ``Autocrypt`` header value (§2.1); keydata last, base64 in space-separated chunks.

    Base64 ignores whitespace, so the spaces only give the email header folder places to fold
    (RFC 5322 §2.2.3) without breaking the 78-character line limit.
    """
    return _format(addr, public, prefer_encrypt)


def format_gossip_header(addr: str, public: bytes) -> str:
    """An ``Autocrypt-Gossip`` header value (§2.7): no prefer-encrypt, as the spec asks."""
    return _format(addr, public, False)


def parse_header(value: str) -> AutocryptHeader | None:
    """The header if valid (§2.1), else None.

    Invalid: a missing ``addr`` or ``keydata``, a repeated attribute, an unknown critical
    attribute (no leading underscore), bad base64, or more than 10 KiB. ``prefer-encrypt`` other
    than ``mutual`` means "nopreference"; unknown ``_x`` attributes are ignored.
    """
    if len(value) > MAX_HEADER:
        return None
    attributes: dict[str, str] = {}
    for item in value.replace("\r", " ").replace("\n", " ").split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, attr_value = item.partition("=")
        name = name.strip().lower()
        if not sep or name in attributes:
            return None
        if name.startswith("_"):
            continue
        if name not in ("addr", "prefer-encrypt", "keydata"):
            return None
        attributes[name] = attr_value.strip()
    addr = attributes.get("addr", "")
    keydata = "".join(attributes.get("keydata", "").split())
    if not addr or not keydata:
        return None
    try:
        key = base64.b64decode(keydata, validate=True)
    except (binascii.Error, ValueError):
        return None
    return AutocryptHeader(
        addr=addr.lower(),
        keydata=key,
        prefer_encrypt=attributes.get("prefer-encrypt", "").lower() == "mutual",
    )


def parse_gossip_header(value: str) -> AutocryptHeader | None:
    """An ``Autocrypt-Gossip`` header (§2.7: same format as ``Autocrypt``), else None."""
    return parse_header(value)


@dataclass(frozen=True, slots=True)
class PeerState:
    """``peers[addr]`` of §2 "Communication Peers"; timestamps are Unix seconds (UTC)."""

    addr: str
    last_seen: float = 0.0
    autocrypt_timestamp: float = 0.0
    public: bytes | None = None
    prefer_encrypt: bool = False
    gossip_timestamp: float = 0.0
    gossip_key: bytes | None = None


def update_from_header(
    state: PeerState | None, addr: str, header: AutocryptHeader | None, effective_date: float
) -> PeerState:
    """Apply one message from ``addr`` to its peer state (§2.3 steps 1-6).

    ``effective_date`` is the Date header, or the time of receipt when that is missing or in the
    future. A header whose addr is not the From address is invalid (§2.1): treated as absent.
    The caller skips messages §2.3 says to ignore (auto-replies, multipart/report, spam).
    """
    addr = addr.lower()
    current = state if state is not None else PeerState(addr=addr)
    if effective_date < current.autocrypt_timestamp:
        return current  # step 1: older than what we know
    if effective_date > current.last_seen:
        current = replace(current, last_seen=effective_date)  # step 2
    if header is None or header.addr.lower() != addr:
        return current  # step 3
    return replace(  # steps 4-6
        current,
        autocrypt_timestamp=effective_date,
        public=header.keydata,
        prefer_encrypt=header.prefer_encrypt,
    )


def update_from_gossip(
    state: PeerState | None, addr: str, header: AutocryptHeader, effective_date: float
) -> PeerState:
    """Apply one ``Autocrypt-Gossip`` header about ``addr`` (§2.7 "Updating ... from Key Gossip").

    The caller checks step 1 (``addr`` is in the message's To, Cc or Reply-To) and that the
    message was signed by its sender: gossip from an unsigned message proves nothing.
    """
    addr = addr.lower()
    current = state if state is not None else PeerState(addr=addr)
    if header.addr.lower() != addr or current.gossip_timestamp > effective_date:
        return current  # step 2
    return replace(current, gossip_timestamp=effective_date, gossip_key=header.keydata)


def encryption_key(state: PeerState | None) -> bytes | None:
    """The key to encrypt to (§2.4 target-keys): the peer's own, else a gossiped one."""
    if state is None:
        return None
    return state.public if state.public is not None else state.gossip_key


def recommendation(
    state: PeerState | None,
    *,
    reply_to_encrypted: bool = False,
    own_prefer_encrypt: bool = True,
) -> Recommendation:
    """§2.4 for one recipient, simplified: "discourage" folds into "available".

    No key: "disable". A key and (a reply to an encrypted message, or both sides prefer
    mutual with a fresh own key): "encrypt". Otherwise "available".
    """
    if encryption_key(state) is None:
        return "disable"
    assert state is not None
    if reply_to_encrypted:
        return "encrypt"
    fresh = state.public is not None and state.last_seen - state.autocrypt_timestamp <= _STALE
    if fresh and state.prefer_encrypt and own_prefer_encrypt:
        return "encrypt"
    return "available"
