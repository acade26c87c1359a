"""`coi migrate --from DATA_DIR --to postgresql://...`: move a SQLite store to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from coi.cli.common import redact
from coi.cli.serve import lock_data_dir
from coi.config import is_postgres_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "migrate",
        help="move the SQLite store of a data directory into a PostgreSQL database",
        description="Copy everything of the SQLite store in DATA_DIR (users, aliases, "
        "mailboxes, messages with their UIDs, flags and MODSEQs, METADATA) into an empty "
        "PostgreSQL database, in one transaction, keeping every id clients know (UIDVALIDITY, "
        "UIDs, EMAILID, MAILBOXID). coi serve must be stopped meanwhile; afterwards start it "
        "with --store URL. The SQLite store is left as it was.",
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="DATA_DIR")
    parser.add_argument("--to", dest="target", required=True, metavar="URL")
    parser.set_defaults(handler=run)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if not is_postgres_url(args.target):
        print("coi migrate: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        from coi.store.postgres.importer import MigrateError, copy_sqlite_to_postgres
    except ImportError as exc:
        print(f"coi migrate: needs asyncpg: pip install 'coi[postgres]' ({exc})", file=sys.stderr)
        return 1
    source: Path = args.source
    if not (source / "coi.sqlite3").exists():
        print(f"coi migrate: no store in {source} (no coi.sqlite3)", file=sys.stderr)
        return 1
    try:
        lock = lock_data_dir(source)  # no coi serve writes to the source meanwhile
    except OSError as exc:
        print(f"coi migrate: {exc}", file=sys.stderr)
        return 1
    try:
        counts = asyncio.run(copy_sqlite_to_postgres(source / "coi.sqlite3", args.target, _say))
    except MigrateError as exc:
        print(f"coi migrate: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # asyncpg's errors, OSError, SchemaTooNew: a message
        print(f"coi migrate: {redact(args.target)}: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()
    print(
        f"moved {counts['users']} users, {counts['mailboxes']} mailboxes and"
        f" {counts['messages']} messages to {redact(args.target)}; start coi serve with"
        f" --store {redact(args.target)}"
    )
    return 0
