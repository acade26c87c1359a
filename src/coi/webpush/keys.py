"""The server's WebPush secrets: the VAPID key pair and the key of validation values.

Both are made once and kept in the data directory (or the VAPID key comes from a file the
administrator names), so pushes keep their identity across restarts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from coi.webpush.crypto import generate_vapid_key, load_private_key, private_key_pem, public_key_pem


@dataclass(frozen=True, slots=True)
class WebPushKeys:
    vapid: ec.EllipticCurvePrivateKey
    validation_secret: bytes

    @property
    def public_pem(self) -> str:
        return public_key_pem(self.vapid)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_keys(data_dir: Path, vapid_key: Path | None = None) -> WebPushKeys:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = vapid_key or data_dir / "vapid-key.pem"
    if not path.exists():
        if vapid_key is not None:
            raise FileNotFoundError(f"--webpush-vapid-key {path} does not exist")
        _write_private(path, private_key_pem(generate_vapid_key()))
    key = load_private_key(path.read_bytes())
    secret_path = data_dir / "webpush-secret"
    if not secret_path.exists():
        _write_private(secret_path, secrets.token_bytes(32))
    return WebPushKeys(key, secret_path.read_bytes())
