"""Where an arriving message goes: pure functions, no I/O.

# coi-server-spec: Configure Message Filtering
The filter is applied *before* the message is stored, so an IDLE on INBOX never wakes
for a COI message that `message-filter active` files into `<root>/Chats`.

The per-user COI configuration (enabled / message-filter / mailbox-root) lives in the
store's METADATA (`coi.store.coi`); delivery reads it through `CoiSettingsSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from coi.store.coi import (
    DEFAULT_ROOT,
    CoiSettings,
    MetadataReader,
    coi_settings,
    read_coi_settings,
)

CHAT_KEYWORD = "$Chat"  # coi-server-spec: "the server MUST mark the message with $Chat"
BLOCKED_MAILBOX = "Blocked"
COI_DISABLED = CoiSettings()


class CoiSettingsSource(Protocol):
    """Anything that can tell a user's COI settings."""

    def coi_settings(self, user_id: int) -> CoiSettings: ...

    async def read_coi_settings(self, user_id: int) -> CoiSettings:
        """`coi_settings` with the read awaited (delivery)."""
        ...


class DisabledCoiSource:
    """COI off for everyone: nothing is filtered (for delivery without METADATA)."""

    def coi_settings(self, user_id: int) -> CoiSettings:
        return COI_DISABLED

    async def read_coi_settings(self, user_id: int) -> CoiSettings:
        return COI_DISABLED


class StoreCoiSource:
    """The users' COI settings as stored in their METADATA (read per delivery: one query)."""

    def __init__(self, store: MetadataReader, default_root: str = DEFAULT_ROOT) -> None:
        self.store = store
        self.default_root = default_root

    def coi_settings(self, user_id: int) -> CoiSettings:
        return coi_settings(self.store, user_id, self.default_root)

    async def read_coi_settings(self, user_id: int) -> CoiSettings:
        return await read_coi_settings(self.store, user_id, self.default_root)


@dataclass(frozen=True, slots=True)
class Route:
    mailbox: str
    keywords: tuple[str, ...] = ()
    push: bool = True
    seen: bool = False


def route(settings: CoiSettings, is_chat: bool, blocked: bool) -> Route:
    """Target of an incoming message for one recipient."""
    if not settings.enabled:
        return Route("INBOX")  # COI off: nothing is filtered, nothing is blocked
    keywords = (CHAT_KEYWORD,) if is_chat else ()
    if blocked:
        return Route(BLOCKED_MAILBOX, keywords, push=False)
    if is_chat and settings.message_filter == "active":
        return Route(settings.chats_mailbox, keywords)
    # "seen" files into INBOX; coi.imap.server.coi.SeenMover moves it once \Seen is set
    return Route("INBOX", keywords)


def route_sent(settings: CoiSettings, is_chat: bool, sent: str) -> Route:
    """Target of the sender's own copy of a submitted message (always \\Seen, never pushed)."""
    if settings.enabled and is_chat:
        mailbox = settings.chats_mailbox if settings.message_filter == "active" else sent
        return Route(mailbox, (CHAT_KEYWORD,), push=False, seen=True)
    return Route(sent, (), push=False, seen=True)
