"""Helpers shared by the sub-commands: config loading, logging, opening the store."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coi.config import ConfigError, ServerConfig, load
from coi.store.protocol import Store
from coi.store.sqlite.store import SqliteStore

if TYPE_CHECKING:
    from coi.store.postgres.store import PostgresStore

DEFAULT_MAILBOXES: tuple[tuple[str, str], ...] = (
    ("Archive", "\\Archive"),
    ("Drafts", "\\Drafts"),
    ("Junk", "\\Junk"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
)


def config_or_exit(args: argparse.Namespace) -> ServerConfig:
    try:
        return load(args)
    except ConfigError as exc:
        print(f"coi: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def open_store(config: ServerConfig) -> Store:
    """The composition root of the commands: the one place that picks the backend
    (`store`: a postgresql:// URL, or empty for SQLite in the data directory).
    A PostgreSQL store that cannot be opened raises RuntimeError saying why."""
    if not config.store:
        return SqliteStore(
            config.data_dir / "coi.sqlite3",
            fsync=config.fsync.lower(),
            fsync_delay=config.fsync_delay,
        )
    directory = open_postgres(config.store, fsync=config.fsync.lower())
    from coi.store.postgres.sharded import open_sharded

    try:  # a directory with shards: users sharded over several databases
        return open_sharded(directory) or directory
    except Exception as exc:
        directory.close()
        raise RuntimeError(f"store {redact(config.store)}: {redact(str(exc))}") from None


def open_postgres(url: str, **options: Any) -> PostgresStore:
    """One PostgreSQL database (`options`: PostgresStore's); RuntimeError saying why when
    asyncpg is missing or the database cannot be opened."""
    try:
        from coi.store.postgres.store import PostgresStore
    except ImportError as exc:
        raise RuntimeError(
            f"--store {redact(url)} needs asyncpg: pip install 'coi[postgres]' ({exc})"
        ) from None
    try:
        return PostgresStore(url, **options)
    except RuntimeError:
        raise
    except OSError as exc:  # refused, unreachable, no such host: where to look
        raise RuntimeError(
            f"cannot open the store {redact(url)}: {exc}; is PostgreSQL running there,"
            " and are the host and port in --store right?"
        ) from None
    except Exception as exc:  # asyncpg's errors: a message, not a traceback
        raise RuntimeError(f"cannot open the store {redact(url)}: {exc}") from None


def store_or_exit(config: ServerConfig) -> Store:
    """`open_store` for the admin commands: a store that cannot be opened is a message."""
    try:
        return open_store(config)
    except RuntimeError as exc:
        print(f"coi: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def redact(url: str) -> str:
    """The store URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message; an error's
    traceback as ``exception``; in a worker of `coi serve --workers`, its number and pid."""

    worker = 0

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker:
            data["worker"] = self.worker
            data["pid"] = record.process
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def tag_worker(number: int) -> None:
    """Marks every log line of this process with its worker number and pid."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.worker = number
        else:
            handler.setFormatter(
                logging.Formatter(
                    f"%(asctime)s %(levelname)s worker={number} pid=%(process)d %(name)s"
                    " %(message)s"
                )
            )


def setup_logging(level: str, fmt: str = "text") -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        print(
            f"coi: unknown log level {level!r}; use debug, info, warning or error", file=sys.stderr
        )
        raise SystemExit(2)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler])
