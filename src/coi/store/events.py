"""Typed change events: published after the change is committed, in commit order.

Sessions (pending untagged responses, IDLE), the WebPush dispatcher and the COI mover
subscribe here; nothing polls. `origin` names the session that caused the change so
it can leave out echoes of its own actions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from coi.store.model import Flags

log = logging.getLogger("coi.store")


@dataclass(frozen=True, slots=True)
class Delivered:
    """The `origin` of MessagesAdded events caused by mail delivery (LMTP, submission's local
    recipients), as opposed to a client's APPEND/COPY/MOVE: only these may trigger a push,
    and not when delivery says no (a blocked sender, the user's own sent copy)."""

    push: bool


class RemoteOrigin:
    """The `origin` of events another process caused (PostgreSQL: coi.store.postgres.notify
    replays them here). That process runs the jobs that must run once per change (Web Push,
    the COI seen-mover); this one only tells its sessions."""

    def __repr__(self) -> str:
        return "REMOTE"


REMOTE = RemoteOrigin()


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    user_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int
    origin: object | None = None
    # each new message's flags, when the writer had them at hand: a listener that keeps
    # flags (a selected mailbox's state) then need not read the new rows
    flags: tuple[Flags, ...] | None = None


@dataclass(frozen=True, slots=True)
class MessagesExpunged:
    user_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int
    origin: object | None = None


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    user_id: int
    mailbox_id: int
    changes: tuple[tuple[int, Flags, int], ...]  # (uid, new flags, modseq)
    origin: object | None = None
    previous: tuple[Flags, ...] = ()  # the flags before, in the order of `changes`


@dataclass(frozen=True, slots=True)
class MailboxCreated:
    user_id: int
    mailbox_id: int
    name: str


@dataclass(frozen=True, slots=True)
class MailboxDeleted:
    user_id: int
    mailbox_id: int
    name: str


@dataclass(frozen=True, slots=True)
class MailboxRenamed:
    user_id: int
    mailbox_id: int
    old_name: str
    new_name: str


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    user_id: int
    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """METADATA entries set or removed (RFC 5464); mailbox_id 0 means server entries."""

    user_id: int
    mailbox_id: int
    entries: tuple[str, ...]  # entry names, sorted
    origin: object | None = None


@dataclass(frozen=True, slots=True)
class UserGone:
    """The user was deleted, or `moved` to another shard (coi.store.postgres.moving):
    whoever serves them (a session, in any process) lets go."""

    user_id: int
    moved: bool = False


@dataclass(frozen=True, slots=True)
class ChangesMissed:
    """Changes may have been committed without their events reaching this process
    (PostgreSQL: its LISTEN connection was lost and is back). Every listener gets it,
    once: whoever keeps state from events reads it again (a selected mailbox's state
    tells its sessions what changed) or drops it."""


MailboxEvent = MessagesAdded | MessagesExpunged | FlagsChanged
Event = (
    MailboxEvent
    | ChangesMissed
    | MailboxCreated
    | MailboxDeleted
    | MailboxRenamed
    | SubscriptionChanged
    | MetadataChanged
    | UserGone
)
Listener = Callable[[Event], None]


class EventBus:
    """Routes events to listeners of one mailbox, of one user, or of everything."""

    def __init__(self) -> None:
        self._by_mailbox: dict[int, list[Listener]] = {}
        self._by_user: dict[int, list[Listener]] = {}
        self._global: list[Listener] = []

    def publish(self, event: Event) -> None:
        """Calls every listener the event concerns. One that fails is logged and the others
        still get it: the write that published it must still be answered (its caller waits
        for the publication), and every other session still hears of the change."""
        if isinstance(event, ChangesMissed):  # to every listener, once each
            tables = (self._by_mailbox, self._by_user)
            listeners = [one for table in tables for many in table.values() for one in many]
            listeners += self._global
        else:
            listeners = []
            if isinstance(event, MessagesAdded | MessagesExpunged | FlagsChanged):
                listeners += self._by_mailbox.get(event.mailbox_id, ())
            listeners += self._by_user.get(event.user_id, ())
            listeners += self._global
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s", type(event).__name__)

    def watch_mailbox(self, mailbox_id: int, listener: Listener) -> Callable[[], None]:
        return _add(self._by_mailbox, mailbox_id, listener)

    def watches_mailbox(self, mailbox_id: int) -> bool:
        """Whether anybody watches this mailbox's changes (who needs them in order)."""
        return mailbox_id in self._by_mailbox

    def watch_user(self, user_id: int, listener: Listener) -> Callable[[], None]:
        return _add(self._by_user, user_id, listener)

    def watch_all(self, listener: Listener) -> Callable[[], None]:
        self._global.append(listener)
        return lambda: self._global.remove(listener)


def _add(table: dict[int, list[Listener]], key: int, listener: Listener) -> Callable[[], None]:
    table.setdefault(key, []).append(listener)

    def remove() -> None:
        listeners = table.get(key)
        if listeners is not None and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del table[key]

    return remove
