"""Where an arriving message goes: pure functions, no I/O.

# coi-server-spec: Configure Message Filtering
The filter is applied *before* the message is stored, so an IDLE on INBOX never wakes
for a COI message that `message-filter active` files into `<root>/Chats`.

The per-user COI configuration (enabled / message-filter / mailbox-root) lives in the
store's METADATA. Delivery only sees it through `CoiSettingsSource`, so the METADATA
implementation can be plugged in without touching this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

MessageFilter = Literal["none", "active", "seen"]
CHAT_KEYWORD = "$Chat"  # coi-server-spec: "the server MUST mark the message with $Chat"
BLOCKED_MAILBOX = "Blocked"
DEFAULT_ROOT = "COI"


@dataclass(frozen=True, slots=True)
class CoiSettings:
    enabled: bool = False
    message_filter: MessageFilter = "none"
    root: str = DEFAULT_ROOT

    @property
    def chats(self) -> str:
        return f"{self.root}/Chats"

    @property
    def contacts(self) -> str:
        return f"{self.root}/Contacts"


COI_DISABLED = CoiSettings()


class CoiSettingsSource(Protocol):
    """Anything that can tell a user's COI settings (the METADATA store, a test double)."""

    def coi_settings(self, user_id: int) -> CoiSettings: ...


class DisabledCoiSource:
    """The default until METADATA is wired in: COI is off for everyone, nothing is filtered."""

    def coi_settings(self, user_id: int) -> CoiSettings:
        return COI_DISABLED


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
        return Route(settings.chats, keywords)
    # "seen" files into INBOX; the mover takes it to <root>/Chats once \Seen is set
    return Route("INBOX", keywords)


def route_sent(settings: CoiSettings, is_chat: bool, sent: str) -> Route:
    """Target of the sender's own copy of a submitted message (always \\Seen, never pushed)."""
    if settings.enabled and is_chat:
        mailbox = settings.chats if settings.message_filter == "active" else sent
        return Route(mailbox, (CHAT_KEYWORD,), push=False, seen=True)
    return Route(sent, (), push=False, seen=True)
