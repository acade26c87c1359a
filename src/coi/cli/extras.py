"""``coi profile``, ``coi pin``/``unpin``, ``coi poll``, ``coi location``, ``coi export``."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coi.chat.contacts import user_categories
from coi.cli.chat_common import chat_or_fail, command, common_options, emit, sent
from coi.client.client import Client, ClientError
from coi.client.extras import EXPORT_FORMATS
from coi.client.profiles import ProfileInfo

COMMANDS = (
    ("profile", "set and show your profile (name, status, avatar) and your contacts'"),
    ("pin", "pin a message for everyone in its chat (optionally until a time)"),
    ("unpin", "unpin the pinned message of a chat (here only)"),
    ("poll", "create a poll, vote, close it"),
    ("location", "send your position"),
    ("export", "write a chat's history as text, JSON or mbox"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    common = common_options()

    def leaf(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        text: str,
        handler: Any,
    ) -> argparse.ArgumentParser:
        return command(parent, common, name, text, handler)

    profile = sub.add_parser("profile", description="Your profile and your contacts'.")
    prof = profile.add_subparsers(dest="profile_command", metavar="COMMAND")
    prof.required = True
    p = leaf(prof, "set", "change your profile; the next message to each contact carries it",
             profile_set)  # fmt: skip
    p.add_argument("--name", help="your display name (also in From)")
    p.add_argument("--status", help='your status, e.g. "gone fishing" ("" clears it)')
    p.add_argument("--avatar", type=Path, metavar="FILE", help="an image (up to 64 kB)")
    p.add_argument("--no-avatar", action="store_true", help="remove your avatar")
    p.add_argument(
        "--category",
        metavar="NAME",
        help="change the variant for contacts of category NAME (e.g. work, or friend,family)"
        " instead of the default; a new one starts as a copy of the default",
    )
    p.add_argument("--account", metavar="ADDRESS")
    p = leaf(prof, "show", "show your profile, or what ADDRESS told you of theirs", profile_show)
    p.add_argument("address", metavar="ADDRESS", nargs="?")
    p.add_argument("--account", metavar="ADDRESS")
    p = leaf(prof, "request", "send TEXT to CHAT asking for the contact's profile",
             profile_request)  # fmt: skip
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("text", metavar="TEXT")

    def add(name: str, text: str, handler: Any) -> argparse.ArgumentParser:
        return command(sub, common, name, text, handler, listed=False)

    p = add("pin", "Pin MSG for everyone: a pinned copy of it goes to the chat.", pin)
    p.add_argument("message", metavar="MSG", type=int)
    p.add_argument(
        "--until", metavar="TIME", help="ISO 8601 time (local unless it says) or 30m, 2h, 1d"
    )
    p = add("unpin", "Unpin CHAT's pinned message (on this device).", unpin)
    p.add_argument("chat", metavar="CHAT")

    poll = sub.add_parser("poll", description="Polls (docs/polls.md).")
    polls = poll.add_subparsers(dest="poll_command", metavar="COMMAND")
    polls.required = True
    p = leaf(polls, "create", "send a poll to CHAT", poll_create)
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("options", metavar="OPTION", nargs="+")
    p.add_argument("--single", action="store_true", help="one option only (default: several)")
    p.add_argument("--once", action="store_true", help="a vote cannot be changed")
    p = leaf(polls, "vote", "vote for options N (1-based) of poll MSG; none withdraws", poll_vote)
    p.add_argument("message", metavar="MSG", type=int)
    p.add_argument("choices", metavar="N", type=int, nargs="*")
    p = leaf(polls, "close", "close your poll MSG (sends the final counts)", poll_close)
    p.add_argument("message", metavar="MSG", type=int)

    p = add("location", "Send a position (h-geo) to CHAT.", location)
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("latitude", metavar="LAT", type=float)
    p.add_argument("longitude", metavar="LON", type=float)
    p.add_argument("--text", default="", help="a line to go with it")

    p = add("export", "Write CHAT's whole history.", export)
    p.add_argument("chat", metavar="CHAT")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="text")
    p.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")


def parse_until(text: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    relative = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return now + timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClientError(f"--until {text!r}: give an ISO 8601 time or 30m, 2h, 1d") from None
    return when.astimezone() if when.tzinfo is None else when


def _profile_json(info: ProfileInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"address": info.addr, "name": info.name, "status": info.status,
                           "avatar": info.avatar or None}  # fmt: skip
    if info.categories:
        out["categories"] = list(info.categories)
    return out


def _profile_text(info: ProfileInfo) -> str:
    lines = [f"{info.name or '(no name)'} <{info.addr}>"]
    if info.categories:
        lines[0] = f"for {', '.join(info.categories)}: {lines[0]}"
    if info.status:
        lines.append(f"status: {info.status}")
    if info.avatar:
        lines.append(f"avatar: {info.avatar}")
    return "\n".join(lines)


async def profile_set(client: Client, args: argparse.Namespace) -> int:

    account = client.account(args.account) if args.account else None
    if args.name is None and args.status is None and args.avatar is None and not args.no_avatar:
        raise ClientError("nothing to change: give --name, --status, --avatar or --no-avatar")
    try:
        categories = user_categories(args.category) if args.category is not None else ()
    except ValueError as exc:
        raise ClientError(f"--category: {exc}") from None
    if args.category is not None and not categories:
        raise ClientError("--category: give a category name, e.g. work")
    info = await client.set_profile(
        args.name, args.status, args.avatar, args.no_avatar, account=account,
        categories=categories,
    )  # fmt: skip
    emit(args, _profile_json(info), _profile_text(info))
    return 0


def profile_show(client: Client, args: argparse.Namespace) -> int:

    account = client.account(args.account) if args.account else None
    info = client.contact_profile(args.address, account)
    data, text = _profile_json(info), _profile_text(info)
    if args.address is None:  # ours: the variants per category too
        variants = client.profile_variants(account)
        data["variants"] = [_profile_json(v) for v in variants]
        text = "\n".join([text, *(_profile_text(v) for v in variants)])
    emit(args, data, text)
    return 0


async def profile_request(client: Client, args: argparse.Namespace) -> int:

    return await sent(client, args, client.request_profile(args.chat, args.text))


async def pin(client: Client, args: argparse.Namespace) -> int:

    until = parse_until(args.until) if args.until else None
    return await sent(client, args, client.pin(args.message, until))


def unpin(client: Client, args: argparse.Namespace) -> int:

    chat = chat_or_fail(client, args.chat)
    count = client.unpin(chat)
    emit(args, {"chat": chat.id, "unpinned": count}, f"chat {chat.id}: unpinned")
    return 0


async def poll_create(client: Client, args: argparse.Namespace) -> int:

    call = client.create_poll(args.chat, args.question, args.options, args.single, args.once)
    return await sent(client, args, call)


async def poll_vote(client: Client, args: argparse.Namespace) -> int:

    return await sent(client, args, client.vote(args.message, args.choices))


async def poll_close(client: Client, args: argparse.Namespace) -> int:

    return await sent(client, args, client.close_poll(args.message))


async def location(client: Client, args: argparse.Namespace) -> int:

    call = client.send_location(args.chat, args.latitude, args.longitude, args.text)
    return await sent(client, args, call)


def export(client: Client, args: argparse.Namespace) -> int:

    chat = chat_or_fail(client, args.chat)
    data = client.export(chat, args.format)
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        raise ClientError(f"cannot write {args.output}: {exc.strerror}") from None
    if not args.json:
        print(f"chat {chat.id}: {args.output}", file=sys.stderr)
    return 0
