"""`coi shard add|list|close|open|remove|move|drain`: users sharded over several PostgreSQL
databases (coi.store.postgres.sharded; docs/scale-out.md: Sharding).

`--store` names the directory: the database every `coi serve` is given, which holds the
shard map and is itself shard 0. Running servers open a shard added meanwhile on its
first use; nothing needs a restart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from coi.cli.common import config_or_exit, open_postgres, redact
from coi.config import add_arguments
from coi.store.quota import size_text

if TYPE_CHECKING:
    from coi.store.postgres.moving import MoveResult
    from coi.store.postgres.store import PostgresStore

_WHERE = ("store",)
T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "shard",
        help="shard users over several PostgreSQL databases",
        description="Users sharded over several PostgreSQL databases: --store names the "
        "directory (the database every coi serve is given; it holds the shard map and is "
        "shard 0). New users go to the open shard with the fewest users, or to 'coi user add "
        "--shard N'.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def action(
        name: str, handler: Callable[[argparse.Namespace], int], text: str, more: str = ""
    ) -> argparse.ArgumentParser:
        """One ACTION on the directory (--store), its help `text` (and `more` for --help)."""
        one = actions.add_parser(name, help=text, description=more or None)
        add_arguments(one, only=_WHERE)
        one.set_defaults(handler=handler)
        return one

    add = action(
        "add",
        _add,
        "add an empty database as the next shard",
        "Adds DSN (an empty database; coi makes its schema) as the next shard. Every id the "
        "shard hands out starts at its number << 40, so an id names its shard.",
    )
    add.add_argument("dsn", metavar="DSN", help="postgresql://user@host/database")
    listing = action(
        "list", _list, "list the shards with their number of users and their size on disk"
    )
    listing.add_argument("--json", action="store_true", help="one JSON array")
    for name, handler, text, more in (
        (
            "close",
            _close,
            "shard N takes new users only when named (coi user add --shard N)",
            "Shard N takes new users only when named (coi user add --shard N): its users stay "
            "and keep working. For a database that is full or to be retired.",
        ),
        ("open", _open, "shard N takes new users again", ""),
        (
            "remove",
            _remove,
            "take shard N, which holds no users, out of the map",
            "Takes shard N out of the map: only one that holds no users or aliases (close and "
            "drain it first). Its database is left as it is; its number is never given out "
            "again.",
        ),
    ):
        action(name, handler, text, more).add_argument(
            "number", metavar="N", type=int, help="the shard's number"
        )
    move = action(
        "move",
        _move,
        "move a user with all their mail to shard N",
        "Moves ADDRESS (a user, with their mailboxes, messages, METADATA and aliases) to "
        "shard N while servers run: the user's writes wait meanwhile, their sessions end when "
        "it is done and log in again on shard N. UIDs and UIDVALIDITY stay (clients resync "
        "nothing); MAILBOXID and EMAILID change. Run it again after a crash: it finishes the "
        "move.",
    )
    move.add_argument("address", metavar="ADDRESS", help="the user's address")
    move.add_argument("number", metavar="N", type=int, help="the shard to move to")
    move.add_argument("--json", action="store_true", help="what was moved, as JSON")
    drain = action(
        "drain",
        _drain,
        "move every user off shard N (then coi shard remove N can take it out)",
        "Moves every user of shard N, as coi shard move does, to the shard --to names or each "
        "to the open shard with the fewest users. Close N first (coi shard close N) so no new "
        "user lands there meanwhile. One line per user moved; run it again to go on after a "
        "failure.",
    )
    drain.add_argument("number", metavar="N", type=int, help="the shard to empty")
    drain.add_argument("--to", type=int, metavar="M", help="the shard to move them to")
    drain.add_argument("--json", action="store_true", help="one JSON object per user moved")

def _directory(args: argparse.Namespace) -> PostgresStore:
    """The directory database alone (its shards are not opened), or a one-line exit."""
    config = config_or_exit(args)
    if not config.store:
        print("coi: coi shard needs --store postgresql://... (the directory)", file=sys.stderr)
        raise SystemExit(2)
    try:
        return open_postgres(config.store, min_size=1, max_size=2, listen=False)
    except RuntimeError as exc:  # no asyncpg, unreachable, no such database, ...
        print(f"coi: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _add(args: argparse.Namespace) -> int:
    from coi.store.postgres.sharded import add_shard

    def add(directory: PostgresStore) -> str:
        return f"added shard {add_shard(directory, args.dsn)}: {redact(args.dsn)}"

    return _change(args, add, about=f"shard {redact(args.dsn)}: ")


def _close(args: argparse.Namespace) -> int:
    from coi.store.postgres.sharded import set_shard_closed

    def close(directory: PostgresStore) -> str:
        set_shard_closed(directory, args.number, True)
        return f"shard {args.number} is closed to new users"

    return _change(args, close)


def _open(args: argparse.Namespace) -> int:
    from coi.store.postgres.sharded import set_shard_closed

    def reopen(directory: PostgresStore) -> str:
        set_shard_closed(directory, args.number, False)
        return f"shard {args.number} is open to new users"

    return _change(args, reopen)


def _remove(args: argparse.Namespace) -> int:
    from coi.store.postgres.sharded import remove_shard

    def remove(directory: PostgresStore) -> str:
        remove_shard(directory, args.number)
        return f"shard {args.number} is out of the map"

    return _change(args, remove)


def _move(args: argparse.Namespace) -> int:
    from coi.store.postgres.moving import move_user

    def move(directory: PostgresStore) -> str:
        return _moved_line(_moving(move_user(directory.dsn, args.address, args.number)), args.json)

    return _change(args, move, about=f"{args.address}: ")


def _moving(work: Coroutine[Any, Any, T]) -> T:
    """Runs a move; a database that fails on the way is one line (ShardError)."""
    import asyncio

    import asyncpg

    from coi.store.errors import NoSuchUser
    from coi.store.postgres.sharded import ShardError

    try:
        return asyncio.run(work)
    except NoSuchUser:
        raise ShardError("no such user (coi user list shows them)") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ShardError(f"the move stopped ({exc}): run it again to finish it") from None


def _moved_line(done: MoveResult, as_json: bool) -> str:
    if as_json:
        return json.dumps(dataclasses.asdict(done))
    if done.source == done.target:
        left = "".join(f"; old rows deleted on shard {n}" for n in done.leftovers)
        return f"{done.address} is on shard {done.target}{left}"
    return (
        f"moved {done.address} from shard {done.source} to shard {done.target}: "
        f"{done.mailboxes} mailboxes, {done.messages} messages"
    )


def _drain(args: argparse.Namespace) -> int:
    from coi.store.postgres.moving import drain_shard

    def drain(directory: PostgresStore) -> str:
        def moved(done: MoveResult) -> None:
            print(_moved_line(done, args.json), flush=True)

        done = _moving(drain_shard(directory.dsn, args.number, args.to, moved))
        if args.json:
            return json.dumps({"drained": args.number, "users": len(done)})
        return f"shard {args.number} holds no users now ({len(done)} moved)"

    return _change(args, drain, about=f"shard {args.number}: ")


def _change(
    args: argparse.Namespace, change: Callable[[PostgresStore], str], about: str = ""
) -> int:
    """One change of the shard map on the directory; what it did is printed, a mistake is
    one line (`about` says what it concerns)."""
    from coi.store.postgres.sharded import ShardError

    directory = _directory(args)
    try:
        done = change(directory)
    except ShardError as exc:
        print(f"coi: {about}{redact(str(exc))}", file=sys.stderr)
        return 1
    finally:
        directory.close()
    print(done)
    return 0


def _list(args: argparse.Namespace) -> int:
    from coi.store.postgres.sharded import list_shards

    directory = _directory(args)
    try:
        shards = list_shards(directory)
    finally:
        directory.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": s.id,
                        "dsn": redact(s.dsn) or None,
                        "users": s.users,
                        "directory": not s.id,
                        "closed": s.closed,
                        "bytes": s.size,
                    }
                    for s in shards
                ]
            )
        )
        return 0
    if not shards:
        print("not sharded: one database (coi shard add DSN adds a shard)")
        return 0
    for shard in shards:
        where = redact(shard.dsn) if shard.id else "(the directory)"
        size = "unreachable" if shard.size is None else size_text(shard.size)
        closed = "  (closed to new users)" if shard.closed else ""
        print(f"{shard.id}  {shard.users} users  {size}  {where}{closed}")
    return 0
