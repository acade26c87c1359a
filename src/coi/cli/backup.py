"""``coi backup DEST`` and ``coi restore SRC``: a consistent copy of the data directory,
taken while the server runs, and putting one back while it does not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coi.cli.common import config_or_exit, redact
from coi.cli.serve import lock_data_dir
from coi.config import add_arguments
from coi.store.backup import BackupError, backup, restore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    save = sub.add_parser(
        "backup",
        help="copy the store, queue and keys (also while the server runs)",
        description="Copy the data directory's databases (SQLite online backup: consistent "
        "while coi serve runs), keys and certificates into DEST, a new or empty directory, "
        "with a manifest of checksums. With --store postgresql://... the database is dumped "
        "with pg_dump instead (one consistent snapshot, also while coi serve runs); a sharded "
        "store's shards each into a dump of their own, the directory last.",
    )
    save.add_argument("dest", type=Path, metavar="DEST")
    add_arguments(save, only=("data_dir", "store"))
    save.set_defaults(handler=_backup)
    back = sub.add_parser(
        "restore",
        help="put a backup back (the server must be stopped)",
        description="Check a backup made by 'coi backup' against its manifest and copy it "
        "into the data directory. The server must not run meanwhile. A backup of the "
        "PostgreSQL store goes into the database --store names (with pg_restore, in one "
        "transaction), which must hold no users unless --force; a sharded store's shards go "
        "back where they were, or where --shard says.",
    )
    back.add_argument("source", type=Path, metavar="SRC")
    back.add_argument(
        "--force",
        action="store_true",
        help="replace an existing store (its files are kept aside as *.before-restore-TIME;"
        " a PostgreSQL database's contents are replaced)",
    )
    back.add_argument(
        "--shard",
        action="append",
        type=_shard_target,
        default=[],
        metavar="N=DSN",
        help="restore shard N into the database DSN instead of where it was (again for each"
        " shard to move; the shard map then names it)",
    )
    add_arguments(back, only=("data_dir", "store"))
    back.set_defaults(handler=_restore)


def _shard_target(text: str) -> tuple[int, str]:
    number, _, dsn = text.partition("=")
    if not number.strip().isdigit() or not dsn.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not N=postgresql://...")
    return int(number), dsn


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _backup(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    try:
        backup(config.data_dir, args.dest, _say, store=config.store)
    except (BackupError, OSError) as exc:
        print(f"coi backup: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _restore(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    try:
        lock = lock_data_dir(config.data_dir)  # no server starts while we copy
    except OSError as exc:
        print(f"coi restore: {exc}", file=sys.stderr)
        return 1
    try:
        files = restore(
            args.source,
            config.data_dir,
            force=args.force,
            progress=_say,
            store=config.store,
            shards=dict(args.shard),
        )
    except (BackupError, OSError) as exc:
        print(f"coi restore: {redact(str(exc))}", file=sys.stderr)
        return 1
    finally:
        lock.close()
    where = "the PostgreSQL store and " if config.store else ""
    print(f"restored {where}{len(files)} files into {config.data_dir}; start the server with it")
    return 0
