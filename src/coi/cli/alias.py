"""``coi alias add|del|list``: addresses and catch-alls (``@domain``) delivered to a user."""

from __future__ import annotations

import argparse
import asyncio
import sys

from coi.cli.common import config_or_exit, store_or_exit
from coi.config import add_arguments
from coi.store.errors import NoSuchUser, StoreError, UserExists


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "alias",
        help="addresses delivered to a user (aliases, catch-all)",
        description="Aliases: mail to ADDRESS goes to USER. '@example.org' is the domain's "
        "catch-all (any address there that is no user, alias or sub-address). postmaster@ "
        "and abuse@ of a local domain always reach someone: their alias, else --postmaster, "
        "else the domain's first user. user+tag@ reaches user@ (--recipient-delimiter).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="deliver ADDRESS to USER")
    add.add_argument("address", metavar="ADDRESS", help="alice@example.org, or @example.org")
    add.add_argument("user", metavar="USER", help="an existing account")
    add_arguments(add, only=("data_dir", "store"))
    add.set_defaults(handler=_add)
    delete = actions.add_parser("del", help="remove an alias")
    delete.add_argument("address", metavar="ADDRESS")
    add_arguments(delete, only=("data_dir", "store"))
    delete.set_defaults(handler=_delete)
    listing = actions.add_parser("list", help="list aliases")
    add_arguments(listing, only=("data_dir", "store"))
    listing.set_defaults(handler=_list)


def _address(value: str) -> str:
    local, at, domain = value.strip().lower().rpartition("@")
    if not at or "." not in domain or any(c.isspace() for c in value.strip()):
        raise SystemExit(f"coi: {value!r} is no address like info@example.org or @example.org")
    return f"{local}@{domain}"


def _add(args: argparse.Namespace) -> int:
    address = _address(args.address)
    store = store_or_exit(config_or_exit(args))
    try:
        asyncio.run(store.set_alias(address, args.user))
    except UserExists:
        print(f"coi: {address} is an account; an alias needs an address of its own",
              file=sys.stderr)  # fmt: skip
        return 1
    except NoSuchUser:
        print(f"coi: no such user {args.user} ('coi user list')", file=sys.stderr)
        return 1
    except StoreError as exc:  # a shard not in the map, ...
        print(f"coi: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{address} -> {args.user.lower()}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    address = _address(args.address)
    store = store_or_exit(config_or_exit(args))
    try:
        asyncio.run(store.set_alias(address, None))
    except NoSuchUser:
        print(f"coi: no alias {address} ('coi alias list')", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"removed {address}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = store_or_exit(config_or_exit(args))
    try:
        for address, user in asyncio.run(store.list_aliases()):
            print(f"{address} -> {user}")
    finally:
        store.close()
    return 0
