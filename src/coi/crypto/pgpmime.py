"""PGP/MIME (RFC 3156 §4) with protected headers, shaped as Delta Chat sends and reads them.

The encrypted payload is the whole inner message with its real headers (From, To, Subject,
Chat-*, Autocrypt-Gossip ...), its Content-Type marked ``protected-headers="v1"; hp="cipher"``,
and one ``HP-Outer:`` line per header field left outside, as the header-protection draft
(draft-ietf-lamps-header-protection) and Delta Chat do. Outside stay only what delivery needs:
From (address only), Date, Message-ID, ``To: "hidden-recipients": ;``, ``Subject: [...]``,
MIME-Version, Autocrypt, and what the caller keeps outside (e.g. Chat-Version).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses

from coi.crypto.autocrypt import AutocryptHeader, parse_gossip_header, parse_header
from coi.crypto.engine import CryptoError, KeyPair, decrypt_and_verify, encrypt_and_sign

__all__ = ["DecryptedMessage", "decrypt_message", "encrypt_message"]

CRLF = b"\r\n"
_HIDDEN_TO = '"hidden-recipients": ;'
_HIDDEN_SUBJECT = "[...]"
# Outer fields copied in when the inner part lacks them (never Subject or To: those are masks).
_FROM_OUTER = ("From", "Date", "Message-ID")
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 §3.6.8 ftext


@dataclass(frozen=True, slots=True)
class DecryptedMessage:
    """A decrypted PGP/MIME message; ``gossip`` counts only if ``signer`` is the sender's key."""

    inner: bytes
    signer: str | None
    autocrypt: AutocryptHeader | None
    gossip: tuple[AutocryptHeader, ...]


def _fold(name: str, value: str) -> bytes:
    """``name: value`` folded at spaces to 78 columns (RFC 5322 §2.2.3), CRLF-terminated."""
    if "\r" in value or "\n" in value or not _FIELD_NAME.match(name):
        raise ValueError(f"bad header field {name!r}")
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _split(message: bytes) -> tuple[list[bytes], bytes, bytes]:
    """Header lines (unfolded fields, original bytes), the line separator, and the body."""
    match = re.search(rb"\r?\n\r?\n", message)
    if match is None:
        head, body = message, b""
    else:
        head, body = message[: match.start()], message[match.end() :]
    linesep = CRLF if b"\r\n" in head or not head else b"\n"
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += linesep + line
        elif line:
            fields.append(line)
    return fields, linesep, body


def _field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].decode("ascii", "replace").strip().lower()


def _protect(inner: bytes, outer: list[tuple[str, str]], autocrypt: str | None) -> bytes:
    """The inner message with ``protected-headers="v1"`` and its HP-Outer lines (CRLF)."""
    fields, linesep, body = _split(inner)
    lines: list[bytes] = []
    has_type = False
    for field in fields:
        name = _field_name(field)
        if name == "content-type":
            has_type = True
            field = field.rstrip().rstrip(b";") + b'; protected-headers="v1"; hp="cipher"'
        elif name in ("hp-outer", "mime-version") or (name == "autocrypt" and autocrypt):
            continue
        lines.append(field.replace(linesep, CRLF) + CRLF)
    if not has_type:
        lines.append(b'Content-Type: text/plain; charset="us-ascii"; protected-headers="v1"\r\n')
    lines.extend(_fold("HP-Outer", f"{name}: {value}") for name, value in outer)
    if autocrypt:
        lines.append(_fold("Autocrypt", autocrypt))
    if linesep != CRLF:
        body = body.replace(linesep, CRLF)
    return b"".join(lines) + CRLF + body


def encrypt_message(
    inner: bytes,
    *,
    outer_from: str,
    message_id: str,
    date: str,
    recipients: Sequence[bytes],
    signer: KeyPair,
    autocrypt: str | None,
    keep_outside: Sequence[tuple[str, str]] = (),
) -> bytes:
    """``inner`` (a complete MIME message) encrypted and signed as RFC 3156 §4 PGP/MIME.

    ``outer_from`` is the bare address (the display name stays inside); ``autocrypt`` the
    header value from ``format_header`` (it goes outside, and inside as Delta Chat reads it).
    Returns CRLF bytes ready for SMTP.
    """
    addr = outer_from.strip()
    if "<" not in addr:
        addr = f"<{addr}>"
    outer: list[tuple[str, str]] = [
        ("From", addr),
        ("Date", date),
        ("Message-ID", message_id),
        ("To", _HIDDEN_TO),
        ("Subject", _HIDDEN_SUBJECT),
        *keep_outside,
    ]
    payload = _protect(inner, outer, autocrypt)
    armored = encrypt_and_sign(payload, recipients, signer)
    boundary = f"coi-{secrets.token_hex(16)}"
    head = b"".join(_fold(name, value) for name, value in outer[:5])
    head += b"MIME-Version: 1.0\r\n"
    if autocrypt:
        head += _fold("Autocrypt", autocrypt)
    head += b"".join(_fold(name, value) for name, value in keep_outside)
    head += _fold(
        "Content-Type",
        f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"',
    )
    body = (
        f"\r\n--{boundary}\r\n"
        "Content-Type: application/pgp-encrypted\r\n"
        "Content-Description: PGP/MIME version identification\r\n"
        "\r\n"
        "Version: 1\r\n"
        f"\r\n--{boundary}\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        "Content-Description: OpenPGP encrypted message\r\n"
        'Content-Disposition: inline; filename="encrypted.asc"\r\n'
        "\r\n"
        + armored.replace("\r\n", "\n").rstrip("\n").replace("\n", "\r\n")
        + f"\r\n\r\n--{boundary}--\r\n"
    )
    return head + CRLF + body.encode("ascii")


def _encrypted_part(outer: Message) -> bytes | None:
    """The armored payload if ``outer`` is RFC 3156 §4 PGP/MIME, else None."""
    if outer.get_content_type() != "multipart/encrypted":
        return None
    protocol = outer.get_param("protocol")
    if not isinstance(protocol, str) or protocol.lower() != "application/pgp-encrypted":
        return None
    parts = outer.get_payload()
    if not isinstance(parts, list) or len(parts) != 2:
        raise CryptoError("PGP/MIME message without its two parts")
    control, data = parts
    if not isinstance(control, Message) or not isinstance(data, Message):
        raise CryptoError("PGP/MIME message without its two parts")
    if control.get_content_type() != "application/pgp-encrypted":
        raise CryptoError("PGP/MIME message without its version part")
    payload = data.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise CryptoError("PGP/MIME message without encrypted data")
    return payload


def _single_autocrypt(values: list[str], from_addr: str) -> AutocryptHeader | None:
    """§2.3: of all ``Autocrypt`` headers exactly one must be valid, with addr == From."""
    valid = [h for h in (parse_header(v) for v in values) if h is not None]
    if len(valid) != 1 or valid[0].addr != from_addr:
        return None
    return valid[0]


def _from_addr(value: str | None) -> str:
    addresses = [addr for _, addr in getaddresses([value or ""]) if addr]
    return addresses[0].lower() if len(addresses) == 1 else ""


def decrypt_message(
    raw: bytes, keys: Sequence[KeyPair], verifiers: Sequence[bytes]
) -> DecryptedMessage | None:
    """Decrypt PGP/MIME ``raw``; None if it is not PGP/MIME, ``CryptoError`` if it cannot.

    ``inner`` has the protected headers on top, so ``coi.chat.parse.parse(inner)`` reads it as a
    clear message; From, Date and Message-ID come from outside where the inner part lacks them.
    ``autocrypt`` is the inner (signed) Autocrypt header, where Delta Chat puts it, else the outer
    one; either must name the From address. ``gossip`` comes from the inner header only.
    """
    outer = message_from_bytes(raw, policy=compat32)
    armored = _encrypted_part(outer)
    if armored is None:
        return None
    decrypted = decrypt_and_verify(armored, keys, verifiers)
    fields, linesep, _ = _split(decrypted.plaintext)
    inner = message_from_bytes(decrypted.plaintext, policy=compat32)
    present = {_field_name(field) for field in fields}
    added = [
        f"{name}: {outer[name]}".encode("utf-8", "surrogateescape") + linesep
        for name in _FROM_OUTER
        if name.lower() not in present and outer[name] is not None
    ]
    inner_bytes = b"".join(added) + decrypted.plaintext if added else decrypted.plaintext
    from_addr = _from_addr(inner["From"] or outer["From"])
    autocrypt = _single_autocrypt(
        [str(v) for v in inner.get_all("Autocrypt", [])], from_addr
    ) or _single_autocrypt([str(v) for v in outer.get_all("Autocrypt", [])], from_addr)
    gossip = tuple(
        header
        for header in (parse_gossip_header(str(v)) for v in inner.get_all("Autocrypt-Gossip", []))
        if header is not None
    )
    return DecryptedMessage(
        inner=inner_bytes, signer=decrypted.signer, autocrypt=autocrypt, gossip=gossip
    )
