"""Reading the Delta Chat dialect of chat-over-email headers.

Delta Chat (the most used chat-over-email client) marks messages with
``Chat-Version`` too but uses its own headers for groups, edits, deletes and
read receipt requests.  They are mapped into the same model fields that COI
headers fill.
"""

from __future__ import annotations

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
    }
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


def read_fields(first: dict[str, str]) -> DeltaFields:
    """Interpret Delta Chat headers; ``first`` maps lowercase names to decoded values."""
    group_id = first.get("chat-group-id", "").strip() or None
    if group_id is not None and not GROUP_ID_PATTERN.fullmatch(group_id):
        group_id = None
    edit = parse_message_ids(first.get("chat-edit"))
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
    )


def is_delta_chat(names: set[str]) -> bool:
    """True when the header names show a Delta Chat writer."""
    return bool(names & DELTA_HEADERS) or ("autocrypt" in names and "chat-version" in names)
