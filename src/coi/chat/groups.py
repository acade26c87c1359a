"""Which conversation a message belongs to.

# coi-client-spec: Group Messages
Groups are found from the ``Message-ID`` (``chat$group.<id>.<unique>``), or for
replies from plain mail programs from the first ``References`` id; Delta Chat
names them in ``Chat-Group-ID``.  Everything else is a 1:1 conversation with
the other party.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from coi.chat.headers import group_id_from_message_id
from coi.chat.model import Address, ChatMessage, Dialect, GroupRef, MessageKind


def find_group_id(
    message_id: str, references: tuple[str, ...], in_reply_to: str | None
) -> str | None:
    for candidate in (message_id, *references[:1], *([in_reply_to] if in_reply_to else [])):
        group_id = group_id_from_message_id(candidate)
        if group_id is not None:
            return group_id
    return None


def conversation_of(message: ChatMessage, me: str | None = None) -> str:
    """A stable key naming the conversation of ``message``.

    ``group:<id>`` for groups; ``adhoc:<hash>`` for groups without id (keyed by
    name and members); ``contact:<addr>`` for 1:1 chats, the other party being
    the sender, or the first recipient when ``me`` sent it.
    """
    group: GroupRef | None = message.group
    if group is not None and group.id:
        return f"group:{group.id}"
    members = sorted(
        {
            a.addr.lower()
            for a in (
                *(message.recipients),
                *(message.cc),
                *([message.sender] if message.sender else []),
            )
        }
    )
    if group is not None:
        digest = hashlib.sha256(
            (group.name + "\n" + "\n".join(members)).encode("utf-8", "replace")
        ).hexdigest()[:16]
        return f"adhoc:{digest}"
    sender = message.sender.addr.lower() if message.sender else ""
    if me is not None and sender == me.lower():
        others: list[Address] = [a for a in message.recipients if a.addr.lower() != me.lower()]
        return f"contact:{others[0].addr.lower() if others else sender}"
    return f"contact:{sender}"


def remaining_members(message: ChatMessage, leaver: str) -> tuple[Address, ...]:
    """Who stays when ``leaver`` leaves: the Reply-To of a ``groupleft`` message."""
    seen: set[str] = set()
    remaining: list[Address] = []
    for address in (
        *message.recipients,
        *message.cc,
        *([message.sender] if message.sender else []),
    ):
        key = address.addr.lower()
        if key != leaver.lower() and key not in seen:
            seen.add(key)
            remaining.append(Address(address.addr))
    return tuple(remaining)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a client knows about one group after the messages it has seen."""

    id: str | None
    name: str = ""
    description: str = ""
    photo: str = ""
    members: tuple[str, ...] = ()  # lowercased addresses, in order of appearance
    left: tuple[str, ...] = ()  # members who sent groupleft, not re-added since


def _addresses(message: ChatMessage) -> list[str]:
    found: list[str] = []
    for address in (
        *([message.sender] if message.sender else []),
        *message.recipients,
        *message.cc,
    ):
        key = address.addr.lower()
        if key not in found:
            found.append(key)
    return found


def apply_group_messages(state: GroupState, messages: Iterable[ChatMessage]) -> GroupState:
    """Fold group messages (arrival order) into the group's name, info and members.

    # coi-client-spec: Changing Group Definitions and Processing Changes
    * the Subject (reply prefixes removed) renames the group, a ``groupinfo``
      part sets description and avatar, the latest one wins;
    * To/Cc define the members of a COI message; Delta Chat's member
      added/removed headers are applied as such;
    * ``groupleft`` (or Delta's removal of the sender) removes the sender;
    * a reply from a plain mail program that would drop members besides the
      sender is taken as "reply" instead of "reply all" and changes nothing.
    """
    name, description, photo = state.name, state.description, state.photo
    members = list(state.members)
    left = list(state.left)
    for message in messages:
        if message.group is None or message.group.id != state.id:
            continue
        sender = message.sender.addr.lower() if message.sender else ""
        if message.kind is MessageKind.GROUP_LEFT:
            members = [m for m in members if m != sender]
            if sender not in left:
                left.append(sender)
            continue
        if message.group.name:
            name = message.group.name
        info = message.group_info
        if info is not None:
            name = info.name or name
            description = info.description or description
            photo = info.photo or photo
        current = _addresses(message)
        if message.members_added or message.members_removed:
            added = [a.lower() for a in message.members_added]
            removed = {a.lower() for a in message.members_removed}
            members = [m for m in members if m not in removed]
            members += [a for a in added if a not in members]
            left = [m for m in left if m not in added]
            continue
        if message.dialect is Dialect.EMAIL:
            dropped = [m for m in members if m not in current and m != sender]
            if dropped:
                continue  # "reply" rather than "reply all": keep the group as it is
        members = current
        left = [m for m in left if m not in current]
    return GroupState(state.id, name, description, photo, tuple(members), tuple(left))
