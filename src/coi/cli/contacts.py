"""The contact commands: ``coi contacts``, ``coi contact ...``, ``coi block``, ``coi unblock``.

Contacts live in the account's ``<root>/Contacts`` folder (coi.client.contacts), so every
device of the account sees them after its next sync.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coi.chat.contacts import user_categories
from coi.cli.chat_common import command, common_options, emit, read_input
from coi.client.client import Client, ClientError
from coi.client.contacts import ContactRow
from coi.client.vcard import parse_vcards

CATEGORY_HELP = (
    "category, e.g. friend, family, work, partner (several: friend,work); it chooses the"
    " variant of your profile the contact gets"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()

    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        text: str,
        handler: Callable[..., Any],
    ) -> argparse.ArgumentParser:
        parser = command(parent, common, name, text, handler, listed=parent is not sub)
        parser.add_argument("--account", metavar="ADDRESS")
        return parser

    p = add(sub, "contacts", "List the contacts (as of the last sync).", contacts_list)
    p.add_argument("--sync", action="store_true", help="sync first")
    p = add(sub, "block", "Block ADDRESS: its new mail goes to Blocked, its chat is hidden.", block)
    p.add_argument("address", metavar="ADDRESS")
    p = add(sub, "unblock", "Unblock ADDRESS: its chat and its mail in Blocked come back.", unblock)
    p.add_argument("address", metavar="ADDRESS")

    contact = sub.add_parser("contact", description="Contacts and their keys (vCards).")
    con = contact.add_subparsers(dest="contact_command", metavar="COMMAND")
    con.required = True
    p = add(con, "add", "store ADDRESS as a contact (on the server)", contact_add)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--name", default=None, help="display name")
    p.add_argument("--category", metavar="NAME", help=CATEGORY_HELP)
    p = add(con, "edit", "change the name or category of contact ADDRESS", contact_edit)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--name", default=None, help="display name")
    p.add_argument("--category", metavar="NAME", help=CATEGORY_HELP + ' ("" clears it)')
    p = add(con, "remove", "remove contact ADDRESS (unblocks it too)", contact_remove)
    p.add_argument("address", metavar="ADDRESS")
    p = add(
        con,
        "import",
        "import vCards (a Delta Chat contact or invite) with their keys; stores the contacts",
        contact_import,
    )
    p.add_argument("file", metavar="FILE.vcf", type=Path, help="- reads stdin")
    p = add(con, "vcard", "print a vCard with the key (yours by default)", contact_vcard)
    p.add_argument("address", metavar="ADDRESS", nargs="?")


def _json(row: ContactRow) -> dict[str, Any]:
    return {
        "address": row.addr,
        "addresses": list(row.emails),
        "name": row.name,
        "blocked": row.blocked,
        "categories": list(row.categories),
        "hashes": list(row.hashes),
    }


def _line(row: ContactRow) -> str:
    who = f"{row.name} <{row.addr}>" if row.name else (row.addr or "(unreadable here)")
    more = [e for e in row.emails if e != row.addr]
    return (
        who
        + (f" also {', '.join(more)}" if more else "")
        + (f"  ({', '.join(row.categories)})" if row.categories else "")
        + ("  [blocked]" if row.blocked else "")
    )


async def contacts_list(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account)
    if args.sync:
        await client.sync(account)
    rows = client.contacts(account)
    emit(args, [_json(r) for r in rows], "\n".join(map(_line, rows)) or "no contacts yet")
    return 0


async def _save(
    client: Client, args: argparse.Namespace, name: str | None, blocked: bool | None, verb: str
) -> int:
    account = client.account(args.account)
    categories = None
    if getattr(args, "category", None) is not None:
        try:
            categories = user_categories(args.category)
        except ValueError as exc:
            raise ClientError(f"--category: {exc}") from None
    [row] = await client.save_contacts(
        account, [(args.address, name, blocked)], categories=categories
    )
    emit(args, _json(row), f"{verb} {_line(row)}")
    return 0


async def contact_add(client: Client, args: argparse.Namespace) -> int:
    return await _save(client, args, args.name, None, "stored")


async def contact_edit(client: Client, args: argparse.Namespace) -> int:
    if args.name is None and args.category is None:
        raise ClientError("nothing to change: give --name or --category")
    return await _save(client, args, args.name, None, "stored")


async def block(client: Client, args: argparse.Namespace) -> int:
    """coi-client-spec: Blocking Contacts: warn when the sender's last message had no DKIM
    header (its address may be spoofed, and blocking it may block someone else)."""
    account = client.account(args.account)
    if await client.dkim_signed(account, args.address) is False:
        print(
            f"coi: warning: the last message from {args.address} had no DKIM signature:"
            " the sender may be forged; blocking the address all the same",
            file=sys.stderr,
        )
    return await _save(client, args, None, True, "blocked")


async def unblock(client: Client, args: argparse.Namespace) -> int:
    return await _save(client, args, None, False, "unblocked")


async def contact_remove(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account)
    removed = await client.remove_contact(account, args.address)
    if not removed:
        raise ClientError(f"no contact {args.address} ('coi contacts' lists them)")
    emit(args, {"removed": args.address}, f"removed contact {args.address}")
    return 0


async def contact_import(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account)
    text = read_input(args.file).decode("utf-8", "replace")
    imported = client.import_vcards(account, text)
    names = {c.addr.lower(): c.name for c in parse_vcards(text)}
    # the user chose to import them: that is the yes the spec asks for before storing
    await client.save_contacts(
        account, [(a, names.get(a.lower()) or None, None) for a, _ in imported]
    )
    data = [{"address": a, "fingerprint": f} for a, f in imported]
    lines = [f"{a}: " + (f"key {f}" if f else "no key in the vCard") for a, f in imported]
    emit(args, data, "\n".join(lines))
    return 0


def contact_vcard(client: Client, args: argparse.Namespace) -> int:
    card = client.vcard(client.account(args.account), args.address)
    emit(args, {"vcard": card}, card.rstrip("\r\n").replace("\r\n", "\n"))
    return 0
