"""Chats and messages as plain data: what ``--json`` prints and what ``coi web`` sends to
the browser, made in one place so both show the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coi.client import extras, notify
from coi.client.contacts import ContactRow
from coi.client.store import Chat, MessageRow

if TYPE_CHECKING:
    from coi.client.client import Client


def chat_view(chat: Chat) -> dict[str, Any]:
    muted = chat.muted()
    return {
        "id": chat.id,
        "peer": chat.peer,
        "name": chat.name,
        "title": chat.title,
        "request": chat.request,
        "unread": chat.unread,
        "last": chat.last_text,
        "last_time": chat.last_arrived,
        "muted": muted,
        "muted_until": (chat.muted_until or None) if muted else None,  # None: until unmuted
    }


def contact_view(row: ContactRow) -> dict[str, Any]:
    """A stored contact; ``categories`` is its p-category (coi-client-spec: Contact Storage
    Message Body)."""
    return {
        "address": row.addr,
        "name": row.name,
        "blocked": row.blocked,
        "categories": list(row.categories),
    }


def message_view(client: Client, m: MessageRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "chat": m.chat_id,
        "message_id": m.message_id,
        "from": m.sender,
        "name": m.sender_name,
        "outgoing": m.outgoing,
        "kind": m.kind,
        "text": m.text,
        "time": m.arrived,
        "email": m.is_email,
        "state": m.state,
        "error": m.error,
        "edited": m.edited,
        "deleted": m.deleted,
        "mentions_me": mentions_me(client, m),
        "encrypted": m.encrypted,
        "verified": m.verified,
        "reply_to": m.in_reply_to,
        "parent": parent_view(client, m),
        "reactions": dict(client.store.reactions(m.id)),
        "read_by": client.store.receipts(m.id),
        "files": [
            {"name": a.filename, "type": a.content_type, "size": a.size, "path": a.path}
            for a in client.store.attachments(m.id)
        ],
        **extras.details(client.store, m),  # pinned, poll, location, extension
    }


def parent_view(client: Client, m: MessageRow) -> dict[str, Any] | None:
    """The message ``m`` answers, as a quote shows it; None when it is not in a chat."""
    if not m.in_reply_to:
        return None
    parent = client.store.message_by_mid(m.account_id, m.in_reply_to)
    if parent is None or not parent.visible or parent.id == m.id:
        return None
    return {
        "id": parent.id,
        "from": parent.sender,
        "name": parent.sender_name,
        "outgoing": parent.outgoing,
        "text": "" if parent.deleted else parent.text[:300],
    }


def mentions_me(client: Client, m: MessageRow) -> bool:
    """coi-client-spec: Mentions in Group Messages: ``@Name:addr`` naming us, or ``@all``."""
    return notify.mentions_me(client.store, m)
