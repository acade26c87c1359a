"""Which conversation a message belongs to.

# coi-client-spec: Group Messages
Groups are found from the ``Message-ID`` (``chat$group.<id>.<unique>``), or for
replies from plain mail programs from the first ``References`` id; Delta Chat
names them in ``Chat-Group-ID``.  Everything else is a 1:1 conversation with
the other party.
"""

from __future__ import annotations

import hashlib

from coi.chat.headers import group_id_from_message_id
from coi.chat.model import Address, ChatMessage, GroupRef


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
