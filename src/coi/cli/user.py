"""`coi user add|del|passwd|list`: manage accounts in the store (server may be running)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from coi.auth.passwords import hash_password
from coi.cli.common import DEFAULT_MAILBOXES, config_or_exit, store_or_exit
from coi.config import add_arguments
from coi.store.errors import NoSuchUser, StoreError, UserExists
from coi.store.protocol import UserStore
from coi.store.quota import parse_size, size_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "user", help="manage mail accounts", description="Manage mail accounts."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(p: argparse.ArgumentParser) -> None:
        add_arguments(p, only=("data_dir", "store"))

    add = actions.add_parser("add", help="create an account", description="Create an account.")
    add.add_argument("address", help="e-mail address, e.g. alice@example.org")
    _password_options(add)
    add.add_argument(
        "--shard",
        type=int,
        metavar="N",
        help="the shard to create it on (coi shard list); default: the one with fewest users",
    )
    common(add)
    add.set_defaults(handler=_add)

    delete = actions.add_parser("del", help="delete an account and all its mail")
    delete.add_argument("address")
    common(delete)
    delete.set_defaults(handler=_delete)

    passwd = actions.add_parser("passwd", help="change an account's password")
    passwd.add_argument("address")
    _password_options(passwd)
    common(passwd)
    passwd.set_defaults(handler=_passwd)

    limit = actions.add_parser(
        "quota",
        help="show or set an account's storage quota",
        description="Show an account's storage use and limit, or set its limit: SIZE like "
        "500M or 2G (powers of 1024), 0 for the server's default_quota (none unless set).",
    )
    limit.add_argument("address")
    limit.add_argument("size", nargs="?", metavar="SIZE")
    add_arguments(limit, only=("data_dir", "store", "default_quota"))
    limit.set_defaults(handler=_quota)

    listing = actions.add_parser("list", help="list accounts")
    common(listing)
    listing.set_defaults(handler=_list)


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-file", type=Path, help="read the password from this file")
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def read_password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        text = args.password_file.read_text(encoding="utf-8")
        password = text.splitlines()[0] if text else ""
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():  # getpass would read it in clear, with a warning
            raise SystemExit(
                "coi: no terminal to ask for the password: use --password-stdin or"
                " --password-file"
            )
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise SystemExit("coi: the passwords do not match")
    if not password:
        raise SystemExit("coi: the password must not be empty")
    return password


def _valid_address(address: str) -> str:
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address.strip()):
        raise SystemExit(f"coi: {address!r} is not an e-mail address like alice@example.org")
    return address.strip().lower()


def _run(
    args: argparse.Namespace,
    change: Callable[[UserStore], Coroutine[Any, Any, object]],
    done: str,
) -> int:
    """Runs one account change on the store and says what happened, or what is wrong."""
    store = store_or_exit(config_or_exit(args))
    try:
        asyncio.run(change(store))
    except UserExists:
        print(
            f"coi: {args.address.lower()} already exists; use 'coi user passwd' to change its"
            " password",
            file=sys.stderr,
        )
        return 1
    except NoSuchUser:
        print(f"coi: no such user {args.address}", file=sys.stderr)
        return 1
    except StoreError as exc:  # a shard not in the map, ...
        print(f"coi: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(done)
    return 0


def _add(args: argparse.Namespace) -> int:
    address = _valid_address(args.address)
    encoded = hash_password(read_password(args))
    shard: int | None = args.shard

    async def add(store: UserStore) -> None:
        if shard is None:
            await store.add_user(address, encoded, DEFAULT_MAILBOXES)
            return
        try:
            from coi.store.postgres.sharded import ShardedStore
        except ImportError:  # no asyncpg: SQLite, never sharded
            ShardedStore = None  # type: ignore[assignment,misc]
        if ShardedStore is None or not isinstance(store, ShardedStore):
            raise StoreError("--shard: the store is not sharded (coi shard add DSN)")
        await store.add_user(address, encoded, DEFAULT_MAILBOXES, shard=shard)

    return _run(args, add, f"created {address}")


def _delete(args: argparse.Namespace) -> int:
    return _run(
        args, lambda store: store.delete_user(args.address), f"deleted {args.address.lower()}"
    )


def _passwd(args: argparse.Namespace) -> int:
    encoded = hash_password(read_password(args))
    return _run(
        args,
        lambda store: store.set_password(args.address, encoded),
        f"password changed for {args.address.lower()}",
    )


def _quota(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    octets = None
    if args.size is not None:
        try:
            octets = parse_size(args.size)
        except ValueError as exc:
            print(f"coi: {exc}", file=sys.stderr)
            return 2
    store = store_or_exit(config)
    try:
        if octets is not None:
            asyncio.run(store.set_quota(args.address, octets))
        user = store.get_user(args.address)
        if user is None:
            raise NoSuchUser(args.address)
        own = store.quota_of(user.id)
        limit = own or config.default_quota
        used = store.storage_used(user.id)
    except NoSuchUser:
        print(f"coi: no such user {args.address}", file=sys.stderr)
        return 1
    finally:
        store.close()
    shown = size_text(limit) if limit else "no limit"
    source = "" if own or not limit else " (default_quota)"
    print(f"{user.address}: {size_text(used)} used of {shown}{source}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = store_or_exit(config_or_exit(args))
    try:
        for user in store.list_users():
            print(user.address)
    finally:
        store.close()
    return 0
