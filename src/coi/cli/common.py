"""Helpers shared by the sub-commands: config loading, logging, opening the store."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from coi.config import ConfigError, ServerConfig, load
from coi.store.protocol import Store
from coi.store.sqlite.store import SqliteStore

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
    """The composition root of the commands: the one place that picks the backend."""
    return SqliteStore(
        config.data_dir / "coi.sqlite3", fsync=config.fsync.lower(), fsync_delay=config.fsync_delay
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message; an error's
    traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


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
