"""`coi group ...`: create, rename, add, remove, describe, avatar, leave, info.

On coi.client.groups."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coi.cli.chat_common import (
    chat_or_fail,
    command,
    common_options,
    emit,
    message_line,
)
from coi.client.client import Client
from coi.client.store import MessageRow
from coi.client.views import message_view


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()
    group = sub.add_parser("group", description="Group chats: create, rename, members, leave.")
    grp = group.add_subparsers(dest="group_command", metavar="COMMAND")
    grp.required = True

    def add(name: str, text: str, handler: Callable[..., Any]) -> argparse.ArgumentParser:
        return command(grp, common, name, text, handler)

    p = add(
        "create",
        "create a group chat; its first message ('coi send ID TEXT') tells the members",
        create,
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("members", metavar="MEMBER", nargs="+", help="mail addresses")
    p.add_argument("--account", metavar="ADDRESS")
    p = add("rename", "rename GROUP (the members are told)", rename)
    p.add_argument("chat", metavar="GROUP")
    p.add_argument("name", metavar="NAME")
    p = add("add", "add ADDRESS to GROUP (everyone, the new member too, is told)", add_member)
    p.add_argument("chat", metavar="GROUP")
    p.add_argument("address", metavar="ADDRESS")
    p = add("remove", "remove ADDRESS from GROUP (the removed member is told too)", remove)
    p.add_argument("chat", metavar="GROUP")
    p.add_argument("address", metavar="ADDRESS")
    p = add("describe", "set GROUP's description (the members are told)", describe)
    p.add_argument("chat", metavar="GROUP")
    p.add_argument("text", metavar="TEXT")
    p = add(
        "avatar", "set GROUP's avatar to the image FILE, up to 64 kB (members are told)", avatar
    )
    p.add_argument("chat", metavar="GROUP")
    p.add_argument("file", metavar="FILE", type=Path)
    p = add("leave", "leave GROUP (the members are told)", leave)
    p.add_argument("chat", metavar="GROUP")
    p = add("info", "print the group's id, name, description, avatar and members", info)
    p.add_argument("chat", metavar="GROUP")


async def create(client: Client, args: argparse.Namespace) -> int:
    account = client.account(args.account) if args.account else None
    chat = client.create_group(args.name, args.members, account)
    # the group storage message, for our other devices (else at the next sync)
    await client.store_groups(client.store.account_by_id(chat.account_id))
    members = client.store.members(chat.id)
    emit(
        args,
        {"chat": chat.id, "name": chat.name, "members": members},
        f"group {chat.id} {chat.name!r} with {', '.join(members)}: 'coi send {chat.id} TEXT'",
    )
    return 0


def sent(client: Client, args: argparse.Namespace, row: MessageRow) -> int:
    emit(args, message_view(client, row), message_line(client, row))
    return 0


async def rename(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.rename_group(chat, args.name))


async def add_member(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.add_member(chat, args.address))


async def remove(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.remove_member(chat, args.address))


async def describe(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.describe_group(chat, args.text))


async def avatar(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.set_group_avatar(chat, args.file))


async def leave(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    return sent(client, args, await client.leave_group(chat))


def info(client: Client, args: argparse.Namespace) -> int:
    chat = chat_or_fail(client, args.chat)
    view = client.group_info(chat)
    data = {
        "chat": view.chat_id,
        "id": view.group_id,
        "name": view.name,
        "members": list(view.members),
        "left": view.left,
        "description": view.description,
        "avatar": view.avatar or None,
    }
    state = " (you left)" if view.left else ""
    lines = [f"group {view.chat_id} {view.name!r}{state}", f"id {view.group_id}"]
    if view.description:
        lines.append(f"description: {view.description}")
    if view.avatar:
        lines.append(f"avatar: {view.avatar}")
    text = "\n".join([*lines, *(f"  {m}" for m in view.members)])
    emit(args, data, text)
    return 0
