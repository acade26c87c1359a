"""`coi queue list|flush|delete`: inspect and manage the relay queue (server may be running).

The running server picks up `flush` within its poll interval (30 s at most). With
`--store postgresql://...` the queue is the one every process on that database shares.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from coi.cli.common import config_or_exit, store_or_exit
from coi.config import add_arguments
from coi.delivery.queue import Queue, RelayQueue

_WHERE = ("data_dir", "store")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "queue",
        help="manage the relay queue",
        description="Inspect and manage messages waiting to be relayed to other domains.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="list queued messages and their recipients")
    add_arguments(listing, only=_WHERE)
    listing.set_defaults(handler=_list)
    flush = actions.add_parser("flush", help="retry every queued message now")
    add_arguments(flush, only=_WHERE)
    flush.set_defaults(handler=_flush)
    delete = actions.add_parser("delete", help="drop a queued message without a bounce")
    delete.add_argument("id", type=int, help="message id from 'coi queue list'")
    add_arguments(delete, only=_WHERE)
    delete.set_defaults(handler=_delete)


def _open(args: argparse.Namespace) -> tuple[Queue, Callable[[], None]]:
    """The queue and how to close it: SQLite in the data directory, or the database's."""
    config = config_or_exit(args)
    if not config.store:
        queue = RelayQueue(config.data_dir / "queue.sqlite3")
        return queue, queue.close
    from coi.delivery.pgqueue import PgQueue
    from coi.store.postgres.sharded import ShardedStore
    from coi.store.postgres.store import PostgresStore

    store = store_or_exit(config)
    # sharded: the queue is in the directory database
    database = store.directory if isinstance(store, ShardedStore) else store
    assert isinstance(database, PostgresStore)
    return PgQueue(database), store.close


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    queue, close = _open(args)
    try:
        items = queue.list()
    finally:
        close()
    if not items:
        print("queue is empty")
        return 0
    now = time.time()
    for item in items:
        print(f"{item.id}  from <{item.sender}>  {item.size} bytes  queued {_when(item.created)}")
        for rcpt in item.recipients:
            due = "now" if rcpt.next_attempt <= now else _when(rcpt.next_attempt)
            error = f"  last error: {rcpt.last_error}" if rcpt.last_error else ""
            print(f"    to <{rcpt.rcpt}>  attempts {rcpt.attempts}  next {due}{error}")
    return 0


def _flush(args: argparse.Namespace) -> int:
    queue, close = _open(args)
    try:
        count = queue.flush()
    finally:
        close()
    print(f"{count} recipient(s) due now")
    return 0


def _delete(args: argparse.Namespace) -> int:
    queue, close = _open(args)
    try:
        found = queue.delete(args.id)
    finally:
        close()
    if not found:
        print(f"coi: no queued message {args.id}")
        return 1
    print(f"deleted message {args.id}")
    return 0
