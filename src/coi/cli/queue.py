"""`coi queue list|flush|delete`: inspect and manage the relay queue (server may be running).

The running server picks up `flush` within its poll interval (30 s at most).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from coi.cli.common import config_or_exit
from coi.config import add_arguments
from coi.delivery.queue import RelayQueue


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "queue",
        help="manage the relay queue",
        description="Inspect and manage messages waiting to be relayed to other domains.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="list queued messages and their recipients")
    add_arguments(listing, only=("data_dir",))
    listing.set_defaults(handler=_list)
    flush = actions.add_parser("flush", help="retry every queued message now")
    add_arguments(flush, only=("data_dir",))
    flush.set_defaults(handler=_flush)
    delete = actions.add_parser("delete", help="drop a queued message without a bounce")
    delete.add_argument("id", type=int, help="message id from 'coi queue list'")
    add_arguments(delete, only=("data_dir",))
    delete.set_defaults(handler=_delete)


def _open(args: argparse.Namespace) -> RelayQueue:
    config = config_or_exit(args)
    return RelayQueue(config.data_dir / "queue.sqlite3")


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    queue = _open(args)
    try:
        items = queue.list()
    finally:
        queue.close()
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
    queue = _open(args)
    try:
        count = queue.flush()
    finally:
        queue.close()
    print(f"{count} recipient(s) due now")
    return 0


def _delete(args: argparse.Namespace) -> int:
    queue = _open(args)
    try:
        found = queue.delete(args.id)
    finally:
        queue.close()
    if not found:
        print(f"coi: no queued message {args.id}")
        return 1
    print(f"deleted message {args.id}")
    return 0
