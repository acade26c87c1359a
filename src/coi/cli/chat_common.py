"""What the chat commands share: options, running a command on a ``Client`` with one-line
errors, printing (human or ``--json``) and rendering messages."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from coi.client import extras
from coi.client.client import Client, ClientError
from coi.client.profile import PROFILE_ENV, ProfileError
from coi.client.store import Chat, MessageRow
from coi.client.views import mentions_me, message_view


def command(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    text: str,
    handler: Callable[..., Any],
    *,
    listed: bool = True,
) -> argparse.ArgumentParser:
    """A chat command: the shared options, run through ``run_command``. Top-level ones are
    not ``listed`` (``coi --help`` lists them from CLIENT_COMMANDS)."""
    if listed:
        parser = parent.add_parser(name, parents=[common], description=text, help=text)
    else:
        parser = parent.add_parser(name, parents=[common], description=text)
    parser.set_defaults(handler=lambda args: run_command(args, handler))
    return parser


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help=f"profile directory (default: ${PROFILE_ENV} or the user's data directory)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def run_command(args: argparse.Namespace, handler: Callable[..., Any]) -> int:
    try:
        client = Client(args.profile)
    except (ProfileError, ClientError) as exc:
        print(f"coi: {exc}", file=sys.stderr)
        return 1
    try:
        result = handler(client, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except (ClientError, ProfileError) as exc:
        print(f"coi: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
    elif text:
        print(text)


def chat_or_fail(client: Client, spec: str) -> Chat:
    chat = client.find_chat(spec)
    if chat is None:
        raise ClientError(f"no chat {spec!r}: 'coi chats' lists them")
    return chat


def format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def mute_note(chat: Chat) -> str:
    """ "muted" or "muted until TIME" ("" when not muted)."""
    if not chat.muted():
        return ""
    return f"muted until {format_time(chat.muted_until)}" if chat.muted_until else "muted"


def message_line(client: Client, m: MessageRow) -> str:
    who = "me" if m.outgoing else (m.sender_name or m.sender)
    text = "(deleted)" if m.deleted else m.text
    line = f"#{m.id} {format_time(m.arrived)} {who}: {text}"
    if m.in_reply_to:
        parent = client.store.message_by_mid(m.account_id, m.in_reply_to)
        if parent is not None and parent.visible and parent.id != m.id:
            line = f"#{m.id} {format_time(m.arrived)} {who} (reply to #{parent.id}): {text}"
    notes: list[str] = extras.notes(client.store, m)  # pinned, poll tally, location...
    if mentions_me(client, m):
        notes.append("MENTIONS YOU")
    if m.encrypted:
        notes.append("encrypted" if m.verified or m.outgoing else "encrypted, unverified")
    if m.edited and not m.deleted:
        notes.append("edited")
    if m.is_email:
        notes.append("email")
    if m.outgoing:
        readers = client.store.receipts(m.id)
        if m.state == "failed":
            notes.append(f"FAILED: {m.error}")
        elif m.state == "sending":
            notes.append("sending")
        elif readers:
            notes.append("read")
        else:
            notes.append("sent")
    for sender, emoji in client.store.reactions(m.id):
        notes.append(f"{emoji} {sender}")
    for a in client.store.attachments(m.id):
        notes.append(f"file {a.filename} ({a.size} bytes): {a.path}")
    if notes:
        line += "  [" + "; ".join(notes) + "]"
    return line


# -- commands -------------------------------------------------------------------------


async def sent(
    client: Client, args: argparse.Namespace, call: Coroutine[Any, Any, MessageRow]
) -> int:
    row = await call
    emit(args, message_view(client, row), message_line(client, row))
    return 0


def read_input(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
