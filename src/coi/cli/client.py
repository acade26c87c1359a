"""The chat commands: ``coi account``, ``coi chats``, ``coi send`` ... on ``coi.client``.

Human output by default, ``--json`` for scripts; every command takes ``--profile``.
A user's mistake or an unreachable server is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coi.cli import extras as cli_extras
from coi.cli.chat_common import (
    chat_or_fail,
    command,
    common_options,
    emit,
    format_time,
    message_line,
    mute_note,
    read_input,
    run_command,
    sent,
)
from coi.client.client import NO_ACCOUNT, Client, ClientError, ClientEvent
from coi.client.profile import (
    AccountSettings,
    FilterMode,
    Security,
    default_ports,
    parse_endpoint,
)
from coi.client.views import chat_view, message_view

CLIENT_COMMANDS = (
    ("account", "add, list and remove mail accounts"),
    ("chats", "list chats with unread counts"),
    ("show", "show the messages of a chat"),
    ("send", "send a message (and files) to a chat or an address"),
    ("reply", "reply to a message"),
    ("edit", "edit one of your messages"),
    ("delete", "delete one of your messages for everyone"),
    ("react", "react to a message with an emoji"),
    ("accept", "accept a contact request (and store the contact)"),
    ("read", "mark a chat read (sends the read receipts that are due)"),
    ("mute", "mute a chat (optionally until a time): no notifications but for mentions"),
    ("unmute", "unmute a chat"),
    ("sync", "fetch what is new from the servers"),
    ("watch", "stay connected and print messages as they arrive"),
    ("group", "group chats: create, rename, add, remove, describe, avatar, leave, info"),
    ("contacts", "list the contacts stored on the server (synced between your devices)"),
    ("contact", "add, edit, remove contacts; import a vCard (with key), print vCards"),
    ("block", "block an address: its mail goes to Blocked, its chat is hidden"),
    ("unblock", "unblock an address: its chat and the mail held in Blocked come back"),
    ("key", "export or import the account's key for your other devices"),
    *cli_extras.COMMANDS,  # profile, pin, unpin, poll, location, export
    ("web", "the chat app in a browser (your profile, or --hosted for a server's users)"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()

    def add(name: str, description: str, handler: Callable[..., Any]) -> argparse.ArgumentParser:
        return command(sub, common, name, description, handler, listed=False)

    account = sub.add_parser("account", description="Mail accounts of this profile.")
    acc = account.add_subparsers(dest="account_command", metavar="COMMAND")
    acc.required = True
    a_add = acc.add_parser(
        "add",
        parents=[common],
        help="add an account (checks the login and sets up the folders)",
        description="Add a mail account: logs in, enables COI on a COI server or creates the "
        "COI folders on a plain IMAP server, then fetches what is waiting (a first sync).",
    )
    a_add.add_argument("address", metavar="ADDRESS")
    a_add.add_argument("--imap", metavar="HOST:PORT", help="IMAP server (default: the domain)")
    a_add.add_argument("--smtp", metavar="HOST:PORT", help="SMTP server (default: the IMAP host)")
    a_add.add_argument(
        "--security",
        choices=[s.value for s in Security],
        default=Security.SSL.value,
        help="ssl (implicit TLS, default), starttls, or plain (loopback only)",
    )
    a_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a_add.add_argument(
        "--accept-invalid-cert", action="store_true", help="accept self-signed certificates"
    )
    a_add.add_argument(
        "--filter",
        choices=[f.value for f in FilterMode],
        default=FilterMode.NONE.value,
        help="where chat messages go: none (stay in INBOX, default: keeps Delta Chat on the "
        "same account working), seen (to Chats once read), active (to Chats at once)",
    )
    a_add.add_argument("--name", default="", help="your display name")
    a_add.add_argument("--read-receipts", action="store_true", help="send read receipts when asked")
    a_add.add_argument(
        "--encrypt-only",
        action="store_true",
        help="never send in clear and hide chat mail that came in clear (as Delta Chat does)",
    )
    a_add.set_defaults(handler=lambda args: run_command(args, account_add))
    a_list = acc.add_parser("list", parents=[common], help="list accounts")
    a_list.set_defaults(handler=lambda args: run_command(args, account_list))
    a_rm = acc.add_parser(
        "remove", parents=[common], help="remove an account and its local data (not the mail)"
    )
    a_rm.add_argument("address", metavar="ADDRESS")
    a_rm.set_defaults(handler=lambda args: run_command(args, account_remove))

    p = add(
        "chats",
        "List chats, the most recent first, as of the last sync; contact requests are marked.",
        chats,
    )
    p.add_argument("--sync", action="store_true", help="fetch what is new first")
    p = add("show", "Show the messages of CHAT (an address, a chat id or a name).", show)
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="last N messages (50)")
    p.add_argument("--sync", action="store_true", help="fetch what is new first")
    p = add("send", "Send TEXT to CHAT (an existing chat, or an address for a new one).", send)
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--file", action="append", type=Path, default=[], metavar="PATH")
    p.add_argument("--account", metavar="ADDRESS", help="send from this account")
    p = add("reply", "Reply to message MSG (its id from 'coi show').", reply)
    p.add_argument("message", metavar="MSG", type=int)
    p.add_argument("text", metavar="TEXT")
    p = add("edit", "Replace the text of your message MSG, for everyone.", edit)
    p.add_argument("message", metavar="MSG", type=int)
    p.add_argument("text", metavar="TEXT")
    p = add("delete", "Delete your message MSG, for everyone.", delete)
    p.add_argument("message", metavar="MSG", type=int)
    p = add("react", "React to MSG with EMOJI ('' removes your reaction).", react)
    p.add_argument("message", metavar="MSG", type=int)
    p.add_argument("emoji", metavar="EMOJI")
    p = add("accept", "Accept the contact request of CHAT.", accept)
    p.add_argument("chat", metavar="CHAT")
    p = add("read", "Mark CHAT read; sends the read receipts that are due.", read)
    p.add_argument("chat", metavar="CHAT")
    p = add(
        "mute",
        "Mute CHAT: its new messages do not notify ('coi watch'), except those that mention"
        " you; your other devices follow.",
        mute,
    )
    p.add_argument("chat", metavar="CHAT")
    p.add_argument(
        "--until", metavar="TIME", help="ISO 8601 time (local unless it says) or 30m, 2h, 1d"
    )
    p = add("unmute", "Unmute CHAT; your other devices follow.", unmute)
    p.add_argument("chat", metavar="CHAT")
    add("sync", "Fetch what is new from every account's server.", sync)
    from coi.cli import groups  # coi group ...: its own module

    groups.register(sub)
    key = sub.add_parser("key", description="The account's OpenPGP key (Autocrypt).")
    keys = key.add_subparsers(dest="key_command", metavar="COMMAND")
    keys.required = True
    k_exp = keys.add_parser(
        "export", parents=[common], help="write the key pair to FILE (mode 0600): keep it secret"
    )
    k_exp.add_argument("file", metavar="FILE", type=Path)
    k_exp.add_argument("--account", metavar="ADDRESS")
    k_exp.set_defaults(handler=lambda args: run_command(args, key_export))
    k_imp = keys.add_parser(
        "import", parents=[common], help="use a key pair exported on another device"
    )
    k_imp.add_argument("file", metavar="FILE", type=Path)
    k_imp.add_argument("--account", metavar="ADDRESS")
    k_imp.set_defaults(handler=lambda args: run_command(args, key_import))
    p = add(
        "watch", "Stay connected and print new messages, edits and receipts (Ctrl-C ends).", watch
    )
    p.add_argument(
        "--notify-only",
        action="store_true",
        help="print only new messages that notify: none from muted chats unless they mention you",
    )
    cli_extras.register(sub)
    from coi.cli import contacts  # imports this module: registered last

    contacts.register(sub)


# -- plumbing ---------------------------------------------------------------------------


async def account_add(client: Client, args: argparse.Namespace) -> int:
    address = args.address.strip()
    if "@" not in address:
        raise ClientError(f"{address!r} is not a mail address")
    security = Security(args.security)
    imap_port, smtp_port = default_ports(security)
    domain = address.rpartition("@")[2]
    imap = parse_endpoint(args.imap or domain, imap_port)
    smtp = parse_endpoint(args.smtp or imap.host, smtp_port)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():  # getpass would read it in clear, with a warning
        raise ClientError("no terminal to ask for the password: use --password-stdin")
    else:
        password = getpass.getpass(f"password for {address}: ")
    if not password:
        raise ClientError("empty password")
    settings = AccountSettings(
        address=address,
        imap=imap,
        smtp=smtp,
        security=security,
        accept_invalid_cert=args.accept_invalid_cert,
        filter=FilterMode(args.filter),
        name=args.name,
        read_receipts=args.read_receipts,
        encrypt_only=args.encrypt_only,
    )
    account = await client.add_account(settings, password)
    kind = "COI server" if account.server_kind == "coi" else "plain IMAP server (fallback mode)"
    line = f"added {account.address}: {kind}, filter {settings.filter.value}"
    data: dict[str, Any] = {"address": account.address, "server": account.server_kind}
    # a mail client fetches what is waiting once an account is set up, so that
    # 'coi chats' shows it at once; the account stays added if this first sync fails
    try:
        report = (await client.sync(account, progress=_progress(args)))[account.address]
    except ClientError as exc:
        data["first_sync"] = str(exc)
        line += f"; the first sync failed ({exc}): 'coi sync' tries again"
    else:
        data["first_sync"] = {"new": report.new}
        line += f"; {report.new} message{'' if report.new == 1 else 's'} fetched"
    emit(args, data, line)
    return 0


def account_list(client: Client, args: argparse.Namespace) -> int:
    accounts = client.accounts()
    data = [
        {
            "address": a.address,
            "imap": str(a.settings.imap),
            "smtp": str(a.settings.smtp),
            "security": a.settings.security.value,
            "filter": a.settings.filter.value,
            "server": a.server_kind,
            "last_sync": a.last_sync,
        }
        for a in accounts
    ]
    lines = [
        f"{a.address}  imap {a.settings.imap}  smtp {a.settings.smtp}  {a.settings.security.value}"
        f"  filter {a.settings.filter.value}  {a.server_kind or '?'} server"
        for a in accounts
    ]
    emit(args, data, "\n".join(lines) or NO_ACCOUNT)
    return 0


def account_remove(client: Client, args: argparse.Namespace) -> int:
    client.remove_account(args.address)
    emit(args, {"removed": args.address}, f"removed {args.address} (its mail stays on the server)")
    return 0


async def _sync_first(client: Client, args: argparse.Namespace) -> None:
    if args.sync and client.accounts():
        await client.sync(progress=_progress(args))


async def chats(client: Client, args: argparse.Namespace) -> int:
    await _sync_first(client, args)
    found = client.chats()
    lines = []
    for c in found:
        mark = " [contact request: 'coi accept " + str(c.id) + "']" if c.request else ""
        unread = f" ({c.unread} unread)" if c.unread else ""
        title = f"{c.name} <{c.peer}>" if c.name and c.peer else c.title
        muted = f" [{mute_note(c)}]" if c.muted() else ""
        lines.append(
            f"{c.id}: {title}{unread}{muted}{mark}  {format_time(c.last_arrived)}"
            f" {_preview(c.last_text)}"
        )
    empty = "no chats yet" if client.accounts() else NO_ACCOUNT
    emit(args, [chat_view(c) for c in found], "\n".join(lines) or empty)
    return 0


def _preview(text: str, width: int = 72) -> str:
    """The last message on one line of the chat list (an email's text has many)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


async def show(client: Client, args: argparse.Namespace) -> int:
    await _sync_first(client, args)
    chat = chat_or_fail(client, args.chat)
    rows = client.messages(chat, args.limit)
    header = f"chat {chat.id}: {chat.title}" + (
        " (contact request)" if chat.request else ""
    )
    text = "\n".join([header, *(message_line(client, m) for m in rows)])
    emit(args, {"chat": chat_view(chat), "messages": [message_view(client, m) for m in rows]}, text)
    return 0


async def send(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account) if args.account else None
    return await sent(client, args, client.send(args.chat, args.text, tuple(args.file), account))


async def reply(client: Client, args: argparse.Namespace) -> int:
    return await sent(client, args, client.reply(args.message, args.text))


async def edit(client: Client, args: argparse.Namespace) -> int:
    return await sent(client, args, client.edit(args.message, args.text))


async def delete(client: Client, args: argparse.Namespace) -> int:
    return await sent(client, args, client.delete(args.message))


async def react(client: Client, args: argparse.Namespace) -> int:
    return await sent(client, args, client.react(args.message, args.emoji))


async def accept(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    client.accept(chat)
    if chat.peer:  # accepting is the user's yes to storing the contact (coi-client-spec)
        account = client.store.account_by_id(chat.account_id)
        assert account is not None
        try:
            await client.save_contacts(account, [(chat.peer, chat.name or None, None)])
        except ClientError as exc:
            print(f"coi: accepted, but the contact was not stored: {exc}", file=sys.stderr)
    emit(args, {"accepted": chat.id}, f"accepted chat {chat.id} ({chat.peer or chat.name})")
    return 0


async def read(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    receipts = await client.read(chat)
    emit(
        args,
        {"chat": chat.id, "receipts_sent": receipts},
        f"chat {chat.id} read; {receipts} read receipts sent",
    )
    return 0


async def mute(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    until = cli_extras.parse_until(args.until) if args.until else None
    synced = await client.mute(chat, until)
    return _muted(client, args, chat.id, synced)


async def unmute(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    synced = await client.mute(chat, muted=False)
    return _muted(client, args, chat.id, synced)


def _muted(client: Client, args: argparse.Namespace, chat_id: int, synced: bool) -> int:
    chat = client.store.chat(chat_id)
    assert chat is not None
    where = "" if synced else " (on this device only: the contact is not stored)"
    if not synced and not chat.peer:
        where = " (on this device only for now)"
    state = mute_note(chat) or "unmuted"
    emit(args, {**chat_view(chat), "synced": synced}, f"chat {chat.id}: {state}{where}")
    return 0


def _progress(args: argparse.Namespace) -> Callable[[str, int, int], None]:
    """A progress bar on stderr for a long sync, when it is a terminal and not --json."""
    tty = sys.stderr.isatty() and not args.json

    def progress(folder: str, done: int, total: int) -> None:
        if tty and total >= 50:
            width = 30
            filled = width * done // total
            sys.stderr.write(
                f"\r{folder:<20} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            )
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return progress


async def sync(client: Client, args: argparse.Namespace) -> int:
    reports = await client.sync(progress=_progress(args))
    data = {
        a: {"new": r.new, "changed": r.changed, "removed": r.removed} for a, r in reports.items()
    }
    lines = [
        f"{a}: {r.new} new, {r.changed} changed, {r.removed} removed" for a, r in reports.items()
    ]
    emit(args, data, "\n".join(lines) or NO_ACCOUNT)
    return 0


async def watch(client: Client, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    def on_event(event: ClientEvent) -> None:
        if args.notify_only and not event.notify:
            return
        about = event.target or event.message
        row = client.store.message(about) if about is not None else None
        if args.json:
            data: dict[str, Any] = {
                "event": event.kind,
                "account": event.account,
                "chat": event.chat_id,
                "muted": event.muted,
                "notify": event.notify,
            }
            if row is not None:
                data["message"] = message_view(client, row)
            print(json.dumps(data, ensure_ascii=False), flush=True)
            return
        if row is None:
            print(f"{event.kind}", flush=True)
            return
        label = {"new": "", "edit": "edited ", "delete": "deleted ", "reaction": "reaction on ",
                 "receipt": "read receipt for "}.get(event.kind, event.kind + " ")  # fmt: skip
        muted = " (muted)" if event.muted and not event.notify else ""
        print(f"[chat {row.chat_id}{muted}] {label}{message_line(client, row)}", flush=True)

    def on_status(line: str) -> None:
        print(f"coi: {line}", file=sys.stderr, flush=True)

    if not args.json and client.accounts():  # else watch says there is none to watch
        print("watching; Ctrl-C ends", file=sys.stderr, flush=True)
    await client.watch(on_event, stop, on_status)
    return 0


def key_export(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account)
    data = client.export_key(account)
    try:
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClientError(f"{args.file} exists: choose a new file name") from None
    except OSError as exc:
        raise ClientError(f"cannot write {args.file}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    emit(args, {"file": str(args.file)}, f"key of {account.address} written to {args.file}")
    return 0


def key_import(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account)
    fingerprint = client.import_key(account, read_input(args.file))
    emit(args, {"fingerprint": fingerprint}, f"{account.address} now uses key {fingerprint}")
    return 0
