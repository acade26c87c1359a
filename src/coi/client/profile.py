"""Where a client profile lives: the directory, its accounts and their secrets.

A profile is one directory (``--profile DIR``, ``COI_PROFILE``, or the user's data
directory) holding the local store ``client.sqlite3``, received attachments under
``files/`` and one password file per account under ``secrets/`` (mode 0600, in a
0700 directory), so the store itself never holds a password.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import platformdirs

PROFILE_ENV = "COI_PROFILE"
STORE_FILE = "client.sqlite3"


class Security(StrEnum):
    SSL = "ssl"  # implicit TLS (IMAPS 993, SMTPS 465)
    STARTTLS = "starttls"
    PLAIN = "plain"  # no TLS: only to loopback addresses


class FilterMode(StrEnum):
    """coi-client-spec: Filter COI Messages; coi-server-spec: Configure Message Filtering.

    The default is ``none``: Delta Chat reads only INBOX, so any mode that moves chat
    messages out of INBOX (``active`` at once, ``seen`` as soon as any device marks
    them read) hides them from a Delta Chat app on the same account (docs/client.md).
    """

    NONE = "none"
    SEEN = "seen"
    ACTIVE = "active"


DEFAULT_FILTER = FilterMode.NONE


class ProfileError(Exception):
    """A user's mistake in profile or account settings; the message says what to do."""


def default_profile_dir() -> Path:
    env = os.environ.get(PROFILE_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("coi")) / "client"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def parse_endpoint(value: str, default_port: int) -> Endpoint:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT``."""
    match = _ENDPOINT.match(value.strip())
    if match is None:
        raise ProfileError(f"{value!r} is not HOST or HOST:PORT")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port") or default_port)
    if not 0 < port < 65536:
        raise ProfileError(f"port {port} in {value!r} is out of range (1-65535)")
    return Endpoint(host, port)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def default_ports(security: Security) -> tuple[int, int]:
    """(IMAP, SMTP) ports: 993/465 for implicit TLS, 143/587 otherwise."""
    return (993, 465) if security is Security.SSL else (143, 587)


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """What ``coi account add`` was told; kept in the local store."""

    address: str
    imap: Endpoint
    smtp: Endpoint
    security: Security = Security.SSL
    accept_invalid_cert: bool = False
    filter: FilterMode = DEFAULT_FILTER
    name: str = ""
    read_receipts: bool = False  # only when the user enabled them (spec: Sending Read Receipts)
    encrypt_only: bool = False  # never send in clear, hide chat mail that came in clear


class Profile:
    """Paths of one profile directory; created (0700) on first use."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_profile_dir()).expanduser()

    @property
    def store_path(self) -> Path:
        return self.root / STORE_FILE

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.secrets_dir.mkdir(exist_ok=True, mode=0o700)
            self.files_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ProfileError(
                f"cannot create the profile directory {self.root}: {exc.strerror}"
            ) from None
        os.chmod(self.secrets_dir, 0o700)

    def _secret_path(self, address: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", address.lower())
        return self.secrets_dir / safe

    def save_password(self, address: str, password: str) -> None:
        """Written to a new file of mode 0600, then renamed: never readable by others."""
        self.ensure()
        path = self._secret_path(address)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, password.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def load_password(self, address: str) -> str:
        path = self._secret_path(address)
        try:
            return path.read_text("utf-8")
        except FileNotFoundError:
            raise ProfileError(
                f"no password stored for {address}: run 'coi account add {address}' again"
            ) from None

    def remove_password(self, address: str) -> None:
        self._secret_path(address).unlink(missing_ok=True)
