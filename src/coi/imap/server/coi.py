"""COI server behaviour (coi-server-spec): configuration through METADATA, the COI folders,
indirect enabling and disabling, and the `seen` message filter.

Invariants: the configuration is the user's METADATA server entries (read through
`coi.store.coi.coi_settings`, the same function delivery uses); `mailbox-root` is server
configuration and read-only for clients. Enabling COI creates <root>/Contacts and
<root>/Chats (Chats subscribed) in the same writer job that stores the entry, so both are
durable before the tagged OK. CREATE/DELETE/RENAME of <root>/Chats change `enabled` in the
same job as the mailbox change. The seen mover subscribes to committed FlagsChanged events
(nothing polls) and moves the messages after that commit, as its own store job; sessions
then see EXPUNGE/EXISTS like for any other change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from coi.config import ServerConfig
from coi.imap.server.errors import CommandNo
from coi.imap.server.session import Session
from coi.store.coi import (
    CHAT_KEYWORD,
    CONFIG_PREFIX,
    ENABLED,
    MAILBOX_ROOT,
    MESSAGE_FILTER,
    MESSAGE_FILTERS,
    CoiSettings,
    coi_settings,
)
from coi.store.events import REMOTE, Event, FlagsChanged
from coi.store.model import SEEN, Flags
from coi.store.protocol import MetadataUpdate, Store

__all__ = ["MAILBOX_ROOT", "SeenMover", "check_setmetadata", "settings"]

log = logging.getLogger("coi.imap.coi")
_CHAT = CHAT_KEYWORD.lower()


def settings(session: Session) -> CoiSettings:
    return coi_settings(session.store, session.user_id, session.config.coi_mailbox_root)


def _show(value: bytes) -> str:
    text = value[:64].decode("utf-8", "replace")
    return "".join(ch if " " <= ch != "\x7f" else "?" for ch in text)


def check_setmetadata(
    session: Session, mailbox_id: int, entries: dict[str, bytes | None]
) -> list[tuple[str, bool]]:
    """Validates the COI configuration entries among `entries` (NO [CANNOT] when wrong);
    returns the (mailbox, subscribe) pairs to create with them."""
    if mailbox_id != 0:
        return []
    touched = sorted(n for n in entries if n == CONFIG_PREFIX or n.startswith(CONFIG_PREFIX + "/"))
    if not touched:
        return []
    for name in touched:
        value = entries[name]
        if name == ENABLED:
            # coi-server-spec: Configure COI Usage, only "yes" (case-sensitive) or NIL
            if value is not None and value != b"yes":
                raise CommandNo(f'invalid value for {ENABLED}: "{_show(value)}"', "CANNOT")
        elif name == MESSAGE_FILTER:
            # coi-server-spec: Configure Message Filtering, case-sensitive values
            if value is not None and value.decode("latin-1") not in MESSAGE_FILTERS:
                raise CommandNo(f"invalid value for {MESSAGE_FILTER}: {_show(value)}", "CANNOT")
        else:  # mailbox-root is server configuration; nothing else is defined here
            raise CommandNo(f"unable to set {name}", "CANNOT")
    current = settings(session)
    ensure: list[tuple[str, bool]] = []
    if entries.get(ENABLED) == b"yes":
        # coi-server-spec: before the tagged OK, create Contacts and Chats (subscribed)
        ensure += [(current.contacts_mailbox, False), (current.chats_mailbox, True)]
    elif entries.get(MESSAGE_FILTER) in (b"active", b"seen"):
        # coi-server-spec: with filter active or seen, <root>/Chats MUST exist
        ensure.append((current.chats_mailbox, True))
    return ensure


def on_create(session: Session, name: str) -> MetadataUpdate:
    """Creating <root>/Chats enables COI (coi-server-spec: Indirectly Disabling and Enabling)."""
    return [(ENABLED, b"yes")] if name == settings(session).chats_mailbox else []


def on_delete(session: Session, name: str) -> MetadataUpdate:
    """Deleting <root>/Chats disables COI."""
    return [(ENABLED, None)] if name == settings(session).chats_mailbox else []


def on_rename(session: Session, old: str, new: str) -> MetadataUpdate:
    """Moving Chats (or a superior of it) under the trash disables COI, any other rename of
    it is refused; a rename that makes a <root>/Chats enables COI."""
    chats = settings(session).chats_mailbox
    if chats == old or chats.startswith(old + "/"):
        moved_to = new + chats[len(old) :]
        if not _in_trash(session, moved_to):
            raise CommandNo(f"{chats} can only be deleted or moved to the trash", "CANNOT")
        return [(ENABLED, None)]
    if chats == new or chats.startswith(new + "/"):
        source = old + chats[len(new) :]
        if session.store.get_mailbox(session.user_id, source) is not None:
            return [(ENABLED, b"yes")]
    return []


async def complete_enable(session: Session, changes: MetadataUpdate) -> None:
    """An indirect enable is an enable: Contacts and Chats exist (Chats subscribed) before
    the tagged OK, as with SETMETADATA."""
    if (ENABLED, b"yes") in changes:
        current = settings(session)
        folders = [(current.contacts_mailbox, False), (current.chats_mailbox, True)]
        await session.store.set_metadata(session.user_id, 0, (), ensure_mailboxes=folders)


def _in_trash(session: Session, name: str) -> bool:
    mailboxes = session.store.list_mailboxes(session.user_id)
    trash = [m.name for m in mailboxes if m.special_use == "\\Trash"] or ["Trash"]
    return any(name.startswith(t + "/") for t in trash)


class SeenMover:
    """Filter `seen`: a `$Chat` message in INBOX that has \\Seen moves to <root>/Chats
    (coi-server-spec: Configure Message Filtering)."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._unwatch: Callable[[], None] = store.events.watch_all(self._on_event)

    def close(self) -> None:
        self._unwatch()
        for task in self._tasks:
            task.cancel()

    def _on_event(self, event: Event) -> None:
        # another process's change is moved by that process (docs/scale-out.md): one
        # move per change however many processes share the store
        if not isinstance(event, FlagsChanged) or event.origin is REMOTE:
            return
        previous = event.previous or (Flags(),) * len(event.changes)
        uids = [  # \Seen just set on a $Chat message
            uid
            for (uid, flags, _), old in zip(event.changes, previous, strict=True)
            if flags.bits & SEEN
            and not old.bits & SEEN
            and any(k.lower() == _CHAT for k in flags.keywords)
        ]
        if not uids:
            return
        mailbox = self.store.mailbox_by_id(event.mailbox_id)
        if mailbox is None or mailbox.name != "INBOX":
            return
        current = coi_settings(self.store, event.user_id, self.config.coi_mailbox_root)
        if not current.moves_when_seen:
            return
        task = asyncio.get_running_loop().create_task(
            self._move(event.user_id, event.mailbox_id, uids, current.chats_mailbox)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _move(self, user_id: int, inbox_id: int, uids: list[int], chats: str) -> None:
        try:
            target = self.store.get_mailbox(user_id, chats)
            if target is None or target.noselect:
                await self.store.set_metadata(user_id, 0, (), ensure_mailboxes=[(chats, True)])
                target = self.store.get_mailbox(user_id, chats)
            if target is not None:
                await self.store.copy(inbox_id, uids, target.id, move=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("seen filter: moving %d message(s) to %s failed", len(uids), chats)
