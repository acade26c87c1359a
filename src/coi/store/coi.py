"""A user's COI configuration (coi-server-spec: Getting COI Namespace Configuration,
Configure COI Usage, Configure Message Filtering), read from their METADATA server entries.

Pure and backend-independent: the IMAP server (SETMETADATA, the "seen" mover) and
delivery (filing chat messages) all read the settings through `coi_settings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

CONFIG_PREFIX = "/private/vendor/vendor.dovecot/coi/config"
ENABLED = CONFIG_PREFIX + "/enabled"
MAILBOX_ROOT = CONFIG_PREFIX + "/mailbox-root"
MESSAGE_FILTER = CONFIG_PREFIX + "/message-filter"
MESSAGE_FILTERS = ("none", "active", "seen")
DEFAULT_ROOT = "COI"
CHAT_KEYWORD = "$Chat"


@dataclass(frozen=True, slots=True)
class CoiSettings:
    enabled: bool = False  # the `enabled` entry is present and exactly "yes"
    message_filter: str = "none"  # "none", "active" or "seen"
    root: str = DEFAULT_ROOT  # <MAILBOX-ROOT>, e.g. "COI"

    @property
    def chats_mailbox(self) -> str:
        return f"{self.root}/Chats"

    @property
    def contacts_mailbox(self) -> str:
        return f"{self.root}/Contacts"

    @property
    def files_at_delivery(self) -> bool:
        """Filter `active`: chat messages go to `chats_mailbox` at delivery, not INBOX."""
        return self.enabled and self.message_filter == "active"

    @property
    def moves_when_seen(self) -> bool:
        """Filter `seen`: a chat message stays in INBOX until it gets \\Seen, then moves."""
        return self.enabled and self.message_filter == "seen"


class MetadataReader(Protocol):
    def get_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]: ...

    async def read_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]: ...


def settings_from_entries(
    entries: Mapping[str, bytes], default_root: str = DEFAULT_ROOT
) -> CoiSettings:
    """Settings from the stored server entries under CONFIG_PREFIX."""
    # coi-server-spec: "Any other value than `yes` SHOULD be interpreted as COI being disabled"
    enabled = entries.get(ENABLED) == b"yes"
    message_filter = entries.get(MESSAGE_FILTER, b"none").decode("ascii", "replace")
    if message_filter not in MESSAGE_FILTERS:
        message_filter = "none"
    # the root is server configuration; an administrator may store a per-user value
    root = entries.get(MAILBOX_ROOT, b"").decode("utf-8", "replace") or default_root
    return CoiSettings(enabled, message_filter, root)


async def read_coi_settings(
    store: MetadataReader, user_id: int, default_root: str = DEFAULT_ROOT
) -> CoiSettings:
    """`coi_settings` with the read awaited (delivery)."""
    entries = await store.read_metadata(user_id, 0, [CONFIG_PREFIX], "1")
    return settings_from_entries(entries, default_root)


def coi_settings(
    store: MetadataReader, user_id: int, default_root: str = DEFAULT_ROOT
) -> CoiSettings:
    """The user's COI settings; pass the server's `ServerConfig.coi_mailbox_root`."""
    return settings_from_entries(store.get_metadata(user_id, 0, [CONFIG_PREFIX], "1"), default_root)
