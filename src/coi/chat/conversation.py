"""Applying edits, deletes and reactions: what a conversation shows.

# coi-client-spec: Edit and Delete Messages
A pure fold over messages in arrival order.  Only the original sender may
edit or delete; later edits may point at the previous edit instead of the
original ("Multiple edits SHOULD reference the last edited message").  An edit
or delete whose target is unknown, or whose sender is not the original sender,
is shown as an ordinary message: that is what the spec asks for unknown
targets and it never lets a stranger rewrite somebody else's words.

Delta Chat's pre-message and full message are one message, shown under the
full message's id (which edits and reactions name): whichever half comes
second only fills in the kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from coi.chat.model import ChatMessage, MessageKind

# Kinds that never show up as a bubble of their own.
_INVISIBLE = frozenset(
    {
        MessageKind.READ_RECEIPT,
        MessageKind.CONTACT,
        MessageKind.PROFILE,
        MessageKind.GROUP,
        MessageKind.POLL_VOTE,
        MessageKind.SYSTEM,
    }
)


@dataclass(frozen=True, slots=True)
class VisibleMessage:
    """One message as the user sees it now, with what it used to say."""

    message_id: str
    sender: str
    text: str
    kind: MessageKind
    edited: bool = False
    deleted: bool = False
    history: tuple[str, ...] = ()
    reactions: tuple[tuple[str, str], ...] = ()  # (sender, reaction), one per sender


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Visible messages in order, plus which message ids stand for which original."""

    messages: tuple[VisibleMessage, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # edit message id -> original message id

    def get(self, message_id: str) -> VisibleMessage | None:
        original = dict(self.aliases).get(message_id, message_id)
        for message in self.messages:
            if message.message_id == original:
                return message
        return None


def _sender(message: ChatMessage) -> str:
    return message.sender.addr.lower() if message.sender else ""


def apply_messages(state: ConversationState, incoming: Iterable[ChatMessage]) -> ConversationState:
    """Return the state after ``incoming`` arrived; ``state`` is left untouched."""
    order: list[str] = [m.message_id for m in state.messages]
    shown: dict[str, VisibleMessage] = {m.message_id: m for m in state.messages}
    aliases: dict[str, str] = dict(state.aliases)
    for message in incoming:
        half = shown.get(message.full_message_id or "")
        if half is not None and half.sender == _sender(message):
            if message.message_id == message.full_message_id:  # the file, after the text
                shown[half.message_id] = replace(half, kind=message.kind)
            else:  # the pre-message (text) after the full message
                shown[half.message_id] = replace(half, text=half.text or message.text)
                aliases[message.message_id] = half.message_id
            continue
        if message.message_id and (message.message_id in shown or message.message_id in aliases):
            continue  # the same message fetched twice
        target_id = message.target_message_id
        original_id = aliases.get(target_id, target_id) if target_id else None
        original = shown.get(original_id) if original_id else None
        if message.kind is MessageKind.REACTION:
            if original is not None:
                others = tuple(r for r in original.reactions if r[0] != _sender(message))
                mine = ((_sender(message), message.reaction),) if message.reaction else ()
                shown[original.message_id] = replace(original, reactions=others + mine)
            continue
        if (
            message.kind in (MessageKind.EDIT, MessageKind.DELETE)
            and original is not None
            and original.sender == _sender(message)
            and original_id is not None
        ):
            deleting = message.kind is MessageKind.DELETE or not message.text.strip()
            shown[original_id] = replace(
                original,
                text="" if deleting else message.text,
                edited=original.edited or not deleting,
                deleted=deleting,
                history=(*original.history, original.text),
            )
            aliases[message.message_id] = original_id
            continue
        if message.kind in _INVISIBLE:
            continue
        key = message.full_message_id or message.message_id or f"#{len(order)}"
        if message.message_id and key != message.message_id:
            aliases[message.message_id] = key  # a pre-message: its own id names it too
        order.append(key)
        shown[key] = VisibleMessage(key, _sender(message), message.text, message.kind)
    return ConversationState(tuple(shown[k] for k in order), tuple(aliases.items()))
