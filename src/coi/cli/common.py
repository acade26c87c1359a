"""Helpers shared by the sub-commands: config loading, logging, opening the store."""

from __future__ import annotations

import argparse
import logging
import sys

from coi.config import ConfigError, ServerConfig, load
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


def open_store(config: ServerConfig) -> SqliteStore:
    return SqliteStore(config.data_dir / "coi.sqlite3")


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        print(
            f"coi: unknown log level {level!r}; use debug, info, warning or error", file=sys.stderr
        )
        raise SystemExit(2)
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
