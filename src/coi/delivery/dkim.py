"""DKIM signing of relayed mail (RFC 6376) with dkimpy, and key generation.

Keys live in `DATA_DIR/dkim/DOMAIN.pem` (RSA 2048, PKCS#1 PEM, mode 0600); a message is
signed when its sender's domain has a key there. `coi dkim keygen DOMAIN` makes the key
and prints the DNS TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"references",
    b"in-reply-to",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"chat-version",
    b"reply-to",
)


_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")


def valid_domain(domain: str) -> bool:
    """A DNS name of two or more labels (RFC 1035 §2.3.1, letters, digits, hyphens): never
    a path, so a key file always lands in the key folder."""
    return _DOMAIN.match(domain.lower()) is not None


def key_path(data_dir: Path, domain: str) -> Path:
    if not valid_domain(domain):
        raise ValueError(f"{domain!r} is not a domain name such as example.org")
    return data_dir / "dkim" / f"{domain.lower()}.pem"


def dns_record(private_pem: bytes, selector: str, domain: str) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    return f'{selector}._domainkey.{domain}. IN TXT "{value}"'


def keygen(data_dir: Path, domain: str) -> tuple[Path, bytes, bool]:
    """Creates the domain's key unless it exists; returns (path, PEM, created)."""
    path = key_path(data_dir, domain)
    if path.exists():
        return path, path.read_bytes(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path, pem, True


class DkimSigner:
    def __init__(self, data_dir: Path, selector: str) -> None:
        self.data_dir = data_dir
        self.selector = selector
        self._keys: dict[str, bytes | None] = {}

    def _key(self, domain: str) -> bytes | None:
        if not valid_domain(domain):  # a sender's odd domain never names a file
            return None
        if domain not in self._keys:
            path = key_path(self.data_dir, domain)
            self._keys[domain] = path.read_bytes() if path.exists() else None
        return self._keys[domain]

    def sign(self, raw: bytes, domain: str) -> bytes:
        """`raw` with a DKIM-Signature header prepended, or unchanged without a key."""
        key = self._key(domain.lower()) if domain else None
        if key is None:
            return raw
        signature = dkim.sign(
            raw,
            self.selector.encode("ascii"),
            domain.lower().encode("ascii"),
            key,
            include_headers=list(SIGNED_HEADERS),
        )
        return bytes(signature) + raw
