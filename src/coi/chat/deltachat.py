"""Reading the Delta Chat dialect of chat-over-email headers.

Delta Chat (the most used chat-over-email client) marks messages with
``Chat-Version`` too but uses its own headers for groups, edits, deletes and
read receipt requests.  They are mapped into the same model fields that COI
headers fill.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from coi.chat.headers import GROUP_ID_PATTERN, parse_message_ids

DELTA_HEADERS = frozenset(
    {
        "chat-group-id",
        "chat-group-name",
        "chat-group-member-added",
        "chat-group-member-removed",
        "chat-edit",
        "chat-delete",
        "chat-disposition-notification-to",
        "chat-user-avatar",
        "chat-group-member-timestamps",
        "chat-group-member-fpr",
        "chat-webrtc-room",
        "chat-group-avatar",
        "chat-group-name-changed",
        "chat-group-description-changed",
        "chat-group-member-added-fpr",
        "chat-group-member-removed-fpr",
        "chat-group-past-members",
        "chat-webrtc-accepted",
        "secure-join",
        "autocrypt-setup-message",
        "iroh-node-addr",
        "chat-post-message-id",
        "chat-is-post-message",
        "chat-full-message-id",
        "chat-is-full-message",
    }
)

# Chat-Content values of Delta Chat system messages (src/mimefactory.rs); their
# text is a generated line for other mail programs, not what a user wrote.
SYSTEM_CHAT_CONTENT = frozenset(
    {
        "location-streaming-enabled",
        "ephemeral-timer-changed",
        "protection-enabled",
        "protection-disabled",
        "group-avatar-changed",
        "call",
        "call-accepted",
        "call-ended",
        "videochat-invitation",
    }
)

# Headers that make a message a system message, checked in this order (the
# first three after the Chat-Content values above, as Delta Chat does).
_SYSTEM_HEADERS = (
    ("chat-group-member-removed", "member-removed"),
    ("chat-group-member-added", "member-added"),
    ("chat-group-name-changed", "group-name-changed"),
    ("chat-group-description-changed", "group-description-changed"),
    ("autocrypt-setup-message", "autocrypt-setup"),
    ("iroh-node-addr", "webxdc-realtime"),
)


@dataclass(frozen=True, slots=True)
class DeltaFields:
    """What the Delta Chat headers of one message say."""

    group_id: str | None = None
    group_name: str | None = None
    group_description: str | None = None
    member_added: tuple[str, ...] = ()
    member_removed: tuple[str, ...] = ()
    edit_target: str | None = None
    delete_targets: tuple[str, ...] = ()
    receipt_to: str | None = None
    system_event: str = ""
    full_message_id: str | None = None  # pre-message: the full message it announces
    is_full_message: bool = False  # the full message that follows a pre-message


def system_event(first: dict[str, str], chat_contents: AbstractSet[str]) -> str:
    """What a Delta Chat system message announces; "" for a user's message.

    Mirrors Delta Chat's own reading (src/mimeparser.rs, system message
    headers): a Chat-Content value first, then the member and group headers.
    ``Chat-Group-Avatar`` alone is no event: Delta Chat attaches the avatar to
    ordinary messages as well.
    """
    contents = sorted(chat_contents & SYSTEM_CHAT_CONTENT)
    if contents:
        return contents[0]
    step = first.get("secure-join", "").strip().lower()
    if step and step != "vg-member-added":  # that step is the member-added message
        return "securejoin"
    for header, event in _SYSTEM_HEADERS:
        if header in first:
            return event
    return ""


def read_fields(
    first: dict[str, str], chat_contents: AbstractSet[str] = frozenset()
) -> DeltaFields:
    """Interpret Delta Chat headers; ``first`` maps lowercase names to decoded values."""
    group_id = first.get("chat-group-id", "").strip() or None
    if group_id is not None and not GROUP_ID_PATTERN.fullmatch(group_id):
        group_id = None
    edit = parse_message_ids(first.get("chat-edit"))
    # Chat-Post-Message-ID in current Delta Chat, Chat-Full-Message-Id before.
    announced = parse_message_ids(
        first.get("chat-post-message-id") or first.get("chat-full-message-id")
    )
    return DeltaFields(
        group_id=group_id,
        group_name=first.get("chat-group-name"),
        group_description=first.get("chat-group-description") or None,
        member_added=tuple(
            a.strip() for a in first.get("chat-group-member-added", "").split() if a
        ),
        member_removed=tuple(
            a.strip() for a in first.get("chat-group-member-removed", "").split() if a
        ),
        edit_target=edit[0] if edit else None,
        delete_targets=parse_message_ids(first.get("chat-delete")),
        receipt_to=first.get("chat-disposition-notification-to"),
        system_event=system_event(first, chat_contents),
        full_message_id=next(iter(announced), None),
        is_full_message="chat-is-post-message" in first or "chat-is-full-message" in first,
    )


def is_delta_chat(names: set[str]) -> bool:
    """True when the header names show a Delta Chat writer."""
    return bool(names & DELTA_HEADERS) or ("autocrypt" in names and "chat-version" in names)
