"""Server configuration: defaults, a TOML file, then command-line flags, each overriding the last.

Every key of the file is also a flag (`imap_listen` in the file is `--imap` on the command
line), so `coi serve --help` documents the whole configuration.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from coi.store.model import FSYNC_POLICIES


class ConfigError(Exception):
    """A configuration value is wrong; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("coi")))
    # "" (the embedded SQLite store in data_dir) or postgresql://... (coi.store.postgres)
    store: str = ""
    # serving processes; 0: one per core with PostgreSQL, 1 with SQLite (coi.cli.workers)
    workers: int = 0
    # seconds a worker's event loop may go without a heartbeat before the supervisor kills
    # and restarts it (0: never; coi.cli.workers)
    worker_timeout: float = 60.0
    hostname: str = "localhost"
    domains: tuple[str, ...] = ()
    imap: str = "0.0.0.0:143"
    imaps: str = "0.0.0.0:993"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plaintext_auth: bool = False
    fsync: str = "always"  # or "optimized": flag changes fsynced within fsync_delay
    fsync_delay: float = 1.0
    max_line: int = 64 * 1024
    max_literal: int = 64 * 1024 * 1024
    max_connections_per_ip: int = 100
    max_connections_per_user: int = 100
    max_unauthenticated_connections: int = 500
    prelogin_literal_max: int = 8 * 1024  # RFC 7888 §4: small literals only before login
    prelogin_command_max: int = 64 * 1024
    idle_timeout: float = 30 * 60  # RFC 3501 §5.4: at least 30 minutes once authenticated
    login_timeout: float = 60.0
    log_level: str = "info"
    log_format: str = "text"
    metrics: str = "off"
    protocol_trace: bool = False
    metadata_max_value: int = 64 * 1024  # RFC 5464 §4.1: at least 1024
    metadata_max_entries: int = 1000  # RFC 5464 §4.1: at least 10
    metadata_admin: str = ""
    coi_mailbox_root: str = "COI"
    coi_detect_encrypted: bool = True
    lmtp: str = "127.0.0.1:24"
    submission: str = "0.0.0.0:587"
    submissions: str = "0.0.0.0:465"
    max_message_size: int = 32 * 1024 * 1024
    max_recipients: int = 100
    relay_host: str = ""
    relay_user: str = ""
    relay_password: str = ""
    relay_tls: str = "starttls"
    queue_retry: float = 300.0
    queue_expiry: float = 5 * 24 * 3600
    dkim_selector: str = "coi"
    default_quota: int = 0  # octets per user; 0: none (coi user quota sets one per user)
    recipient_delimiter: str = "+"
    postmaster: str = ""
    webpush_vapid_key: Path | None = None
    webpush_subject: str = ""
    webpush_max_subscriptions: int = 10
    webpush_validation_window: float = 300.0
    webpush_allow_private: bool = False
    webpush_ca_file: Path | None = None


# key -> (flag, help). Keys are the dataclass field names; the TOML file uses the same names.
OPTIONS: dict[str, tuple[str, str]] = {
    "data_dir": ("--data-dir", "directory for the store, keys and certificates"),
    "store": (
        "--store",
        "where mail is kept: empty for SQLite in --data-dir, or a postgresql://USER@HOST/DB"
        " URL shared by any number of coi serve processes (needs coi[postgres])",
    ),
    "workers": (
        "--workers",
        "processes serving the same listeners (PostgreSQL store only; 0: one per core, or 1"
        " on SQLite, which serves from one process)",
    ),
    "worker_timeout": (
        "--worker-timeout",
        "seconds a worker may stop answering (a hung event loop) before it is killed and"
        " started again (with --workers above 1; 0: never)",
    ),
    "hostname": ("--hostname", "name this server announces (greeting, certificate)"),
    "domains": (
        "--domain",
        "mail domain served here (repeatable; default: the domains of the users in the store)",
    ),
    "imap": ("--imap", "IMAP listener with STARTTLS, HOST:PORT ('off' to disable)"),
    "imaps": ("--imaps", "IMAP listener with implicit TLS, HOST:PORT ('off' to disable)"),
    "tls_cert": ("--tls-cert", "PEM certificate chain (default: self-signed, made on first start)"),
    "tls_key": ("--tls-key", "PEM private key for --tls-cert"),
    "allow_plaintext_auth": (
        "--allow-plaintext-auth",
        "allow LOGIN/AUTHENTICATE without TLS on non-loopback connections",
    ),
    "fsync": (
        "--fsync",
        "always: every change is on disk (fsync) before the reply; optimized: new, copied,"
        " moved and expunged messages still are, flag changes are fsynced within"
        " --fsync-delay seconds (on PostgreSQL: 3 x its wal_writer_delay); like Dovecot's"
        " mail_fsync, see README, Durability",
    ),
    "fsync_delay": (
        "--fsync-delay",
        "with --fsync optimized on SQLite: most seconds an acknowledged flag change waits for"
        " its fsync",
    ),
    "max_line": ("--max-line", "longest command line accepted, in bytes"),
    "max_literal": ("--max-literal", "largest literal (e.g. APPEND message) accepted, in bytes"),
    "max_connections_per_ip": ("--max-connections-per-ip", "simultaneous connections per IP"),
    "max_connections_per_user": (
        "--max-connections-per-user",
        "simultaneous authenticated connections per user",
    ),
    "max_unauthenticated_connections": (
        "--max-unauthenticated-connections",
        "simultaneous connections not logged in yet, from all addresses together",
    ),
    "prelogin_literal_max": (
        "--prelogin-literal-max",
        "largest literal accepted before login, in bytes",
    ),
    "prelogin_command_max": (
        "--prelogin-command-max",
        "largest command (lines and literals together) accepted before login, in bytes",
    ),
    "idle_timeout": ("--idle-timeout", "seconds an authenticated connection may stay silent"),
    "login_timeout": ("--login-timeout", "seconds from connect a client has to log in"),
    "log_level": ("--log-level", "debug, info, warning or error"),
    "metrics": (
        "--metrics",
        "HOST:PORT for a Prometheus /metrics endpoint, or off; keep it on loopback",
    ),
    "log_format": (
        "--log-format",
        "text (one line per event) or json (one JSON object per line, for log collectors)",
    ),
    "protocol_trace": (
        "--protocol-trace",
        "log every IMAP, LMTP and SMTP protocol line (credentials redacted)",
    ),
    "metadata_max_value": (
        "--metadata-max-value",
        "largest METADATA entry value a client may set, in bytes (at least 1024)",
    ),
    "metadata_max_entries": (
        "--metadata-max-entries",
        "most METADATA entries one user may keep, server and mailbox entries together",
    ),
    "metadata_admin": (
        "--metadata-admin",
        "URI shown as the read-only /shared/admin server entry, e.g. mailto:postmaster@example.org",
    ),
    "coi_mailbox_root": (
        "--coi-mailbox-root",
        "COI <MAILBOX-ROOT>: parent of the Chats and Contacts folders",
    ),
    "coi_detect_encrypted": (
        "--coi-detect-encrypted",
        "also take PGP/MIME encrypted mail with the outer Subject exactly '[...]' for chat"
        " (Delta Chat); --no-coi-detect-encrypted keeps the strict spec rule"
        " (see docs/chat-detection.md)",
    ),
    "lmtp": ("--lmtp", "LMTP listener for an MTA such as Postfix, HOST:PORT ('off' to disable)"),
    "submission": (
        "--submission",
        "SMTP submission listener with STARTTLS, HOST:PORT ('off' to disable)",
    ),
    "submissions": (
        "--submissions",
        "SMTP submission listener with implicit TLS, HOST:PORT ('off' to disable)",
    ),
    "max_message_size": ("--max-message-size", "largest message accepted over SMTP/LMTP, bytes"),
    "max_recipients": ("--max-recipients", "most recipients of one submitted message"),
    "relay_host": (
        "--relay-host",
        "smarthost HOST:PORT for mail to other domains (default: none, deliver to the MX)",
    ),
    "relay_user": (
        "--relay-user",
        "user name for AUTH at the smarthost (then TLS is required and its certificate checked)",
    ),
    "relay_password": ("--relay-password", "password for AUTH at the smarthost"),
    "relay_tls": (
        "--relay-tls",
        "TLS towards the smarthost: starttls (when offered), tls (implicit) or none",
    ),
    "queue_retry": ("--queue-retry", "seconds before the first retry of a deferred message"),
    "queue_expiry": ("--queue-expiry", "seconds after which an undelivered message bounces"),
    "default_quota": (
        "--default-quota",
        "storage limit per user in octets for users without their own (0: none)",
    ),
    "recipient_delimiter": (
        "--recipient-delimiter",
        "user+tag@ is delivered to user@ (empty: no sub-addressing)",
    ),
    "postmaster": (
        "--postmaster",
        "user who gets postmaster@ and abuse@ of every local domain without an alias"
        " (default: each domain's first user)",
    ),
    "dkim_selector": (
        "--dkim-selector",
        "DKIM selector; keys are DATA_DIR/dkim/DOMAIN.pem (see 'coi dkim keygen')",
    ),
    "webpush_vapid_key": (
        "--webpush-vapid-key",
        "PEM P-256 private key for VAPID (default: made once as DATA_DIR/vapid-key.pem)",
    ),
    "webpush_subject": (
        "--webpush-subject",
        "VAPID contact for push services (default: mailto:postmaster@HOSTNAME)",
    ),
    "webpush_max_subscriptions": (
        "--webpush-max-subscriptions",
        "WebPush subscriptions one user may hold",
    ),
    "webpush_validation_window": (
        "--webpush-validation-window",
        "seconds a client has to validate a new WebPush subscription",
    ),
    "webpush_allow_private": (
        "--webpush-allow-private",
        "allow push endpoints on internal addresses (testing only: opens the server to SSRF)",
    ),
    "webpush_ca_file": (
        "--webpush-ca-file",
        "extra CA certificates (PEM) to trust for push services, e.g. a test push server",
    ),
}


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Adds --config and one flag per configuration key (or the keys ``only`` names: the
    admin commands need only where the store is); unset flags stay None."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    defaults = ServerConfig()
    for item in fields(ServerConfig):
        if only is not None and item.name not in only:
            continue
        flag, text = OPTIONS[item.name]
        default = getattr(defaults, item.name)
        if isinstance(default, bool) and default:
            # on by default: --flag / --no-flag
            parser.add_argument(
                flag,
                dest=item.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{text} (default: on)",
            )
        elif isinstance(default, bool):
            parser.add_argument(flag, dest=item.name, action="store_true", default=None, help=text)
        elif item.name == "domains":
            parser.add_argument(flag, dest=item.name, action="append", metavar="NAME", help=text)
        else:
            # the text may say its default in words already; an empty default says nothing
            shown = "none" if default is None else default
            said = "(default" in text or default == ""
            parser.add_argument(
                flag,
                dest=item.name,
                default=None,
                metavar=item.name.upper(),
                help=text if said else f"{text} (default: {shown})",
            )


def load(args: argparse.Namespace) -> ServerConfig:
    config = ServerConfig()
    path: Path | None = getattr(args, "config", None)
    if path is not None:
        try:
            with path.open("rb") as fh:
                config = merge(config, tomllib.load(fh), source=str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    given = {
        item.name: getattr(args, item.name)
        for item in fields(ServerConfig)
        if getattr(args, item.name, None) is not None
    }
    return merge(config, given, source="command line")


_MINIMUMS: dict[str, float] = {
    "metadata_max_value": 1024,  # RFC 5464 §4.1: a server MUST accept 1024-byte values
    "metadata_max_entries": 10,  # and 10 entries
    "max_connections_per_ip": 1,
    "max_connections_per_user": 1,
    "max_unauthenticated_connections": 1,
    "prelogin_literal_max": 1024,  # room for LOGIN's user name and password as literals
    "prelogin_command_max": 1024,
    "max_recipients": 1,
    "default_quota": 0,
    "max_line": 1024,  # RFC 3501 clients send lines of 1000 octets and more
    "max_literal": 1024,
    "max_message_size": 1024,
    "login_timeout": 0.1,
    "idle_timeout": 0.1,
    "webpush_max_subscriptions": 1,
    "fsync_delay": 0.001,
    "workers": 0,
    "worker_timeout": 0,
}
_CHOICES = {
    "relay_tls": ("starttls", "tls", "none"),
    "log_level": ("debug", "info", "warning", "error"),
    "log_format": ("text", "json"),
    "fsync": FSYNC_POLICIES,
}


def merge(config: ServerConfig, values: dict[str, Any], source: str) -> ServerConfig:
    known = {item.name: item for item in fields(ServerConfig)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}; see 'coi serve --help'")
        changes[name] = _convert(name, getattr(config, name), value, source)
        minimum = _MINIMUMS.get(name)
        if minimum is not None and changes[name] < minimum:
            raise ConfigError(f"{source}: {name} must be at least {minimum:g}")
        if name == "store" and changes[name] and not is_postgres_url(changes[name]):
            raise ConfigError(
                f"{source}: store = {value!r}: use a postgresql:// URL, or leave it empty for"
                " SQLite in the data directory"
            )
        choices = _CHOICES.get(name)
        if choices is not None and str(changes[name]).lower() not in choices:
            raise ConfigError(f"{source}: {name} = {value!r}: use {', '.join(choices)}")
    return replace(config, **changes)


def _convert(name: str, default: Any, value: Any, source: str) -> Any:
    try:
        if name in ("data_dir", "tls_cert", "tls_key", "webpush_vapid_key", "webpush_ca_file"):
            return Path(str(value)).expanduser()
        if name == "domains":
            items = value if isinstance(value, list | tuple) else [value]
            return tuple(str(v).lower() for v in items)
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name} = {value!r} is not valid ({exc})") from exc


def is_postgres_url(store: str) -> bool:
    """Whether `store` names a PostgreSQL database (libpq's URL schemes)."""
    return store.startswith(("postgresql://", "postgres://"))


def parse_listen(spec: str, what: str) -> tuple[str, int] | None:
    """'HOST:PORT' (or '[v6]:PORT') to a pair; 'off' disables the listener."""
    if spec.lower() in ("off", "none", ""):
        return None
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what}: {spec!r} is not HOST:PORT (e.g. 127.0.0.1:1143) or 'off'")
    return host.strip("[]") or "0.0.0.0", int(port)
