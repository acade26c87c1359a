"""Server-side blocking: an in-memory index of blocked sender hashes, per user.

# coi-client-spec: Contact Storage Messages (COI-Blocked, COI-From-Hash)
A contact storage message in `<root>/Contacts` that carries `COI-Blocked` blocks every
address whose SHA3-256 hash (`coi.chat.contacts.address_hash`) is in its `COI-From-Hash`
headers.

Invariants: a user's entry is built once, on the first delivery to that user, from the
Contacts folder; afterwards it follows the store's change events (MessagesAdded /
MessagesExpunged on that folder; any mailbox created, deleted or renamed drops the entry
so it is rebuilt on next use). Events are published on the event loop after commit, so a
contact added or expunged before a delivery starts is seen by that delivery. Nothing
scans the folder per message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from coi.chat.contacts import address_hash
from coi.store.events import (
    ChangesMissed,
    Event,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
)
from coi.store.protocol import MailStore

_HEADER_LIMIT = 64 * 1024


def blocked_hashes(raw: bytes) -> frozenset[str]:
    """The hashes a contact storage message blocks (empty unless it carries COI-Blocked)."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 2] if end >= 0 else raw[:_HEADER_LIMIT]
    message = BytesHeaderParser(policy=compat32).parsebytes(head[:_HEADER_LIMIT])
    if message.get("COI-Blocked") is None:
        return frozenset()
    values = message.get_all("COI-From-Hash") or []
    return frozenset(str(v).strip().lower() for v in values if str(v).strip())


@dataclass
class _UserIndex:
    folder: str
    mailbox_id: int | None
    by_uid: dict[int, frozenset[str]] = field(default_factory=dict)
    unwatch: Callable[[], None] | None = None

    def blocked(self) -> set[str]:
        out: set[str] = set()
        for hashes in self.by_uid.values():
            out |= hashes
        return out


class BlockIndex:
    def __init__(self, store: MailStore) -> None:
        self.store = store
        self._users: dict[int, _UserIndex] = {}

    def close(self) -> None:
        for entry in self._users.values():
            if entry.unwatch is not None:
                entry.unwatch()
        self._users.clear()

    def is_blocked(self, user_id: int, contacts_folder: str, sender: str) -> bool:
        if not sender:
            return False
        entry = self._entry(user_id, contacts_folder)
        digest = address_hash(sender)
        return any(digest in hashes for hashes in entry.by_uid.values())

    def blocked(self, user_id: int, contacts_folder: str) -> set[str]:
        return self._entry(user_id, contacts_folder).blocked()

    def _entry(self, user_id: int, folder: str) -> _UserIndex:
        entry = self._users.get(user_id)
        if entry is not None and entry.folder == folder:
            return entry
        if entry is not None and entry.unwatch is not None:
            entry.unwatch()
        mailbox = self.store.get_mailbox(user_id, folder)
        entry = _UserIndex(folder, mailbox.id if mailbox is not None else None)
        if entry.mailbox_id is not None:
            self._load(entry, self.store.uids(entry.mailbox_id))
        entry.unwatch = self.store.events.watch_user(
            user_id, lambda event: self._on_event(user_id, event)
        )
        self._users[user_id] = entry
        return entry

    def _load(self, entry: _UserIndex, uids: Iterable[int]) -> None:
        assert entry.mailbox_id is not None
        rows = self.store.rows(entry.mailbox_id, list(uids))
        for uid, row in rows.items():
            blob = self.store.blob(row.blob_id)
            if blob is None:
                continue
            hashes = blocked_hashes(blob[0])
            if hashes:
                entry.by_uid[uid] = hashes

    def _on_event(self, user_id: int, event: Event) -> None:
        entry = self._users.get(user_id)
        if entry is None:
            return
        if isinstance(event, MailboxCreated | MailboxDeleted | MailboxRenamed | ChangesMissed):
            if entry.unwatch is not None:
                entry.unwatch()
            del self._users[user_id]  # rebuilt on next use
        elif isinstance(event, MessagesAdded) and event.mailbox_id == entry.mailbox_id:
            self._load(entry, event.uids)
        elif isinstance(event, MessagesExpunged) and event.mailbox_id == entry.mailbox_id:
            for uid in event.uids:
                entry.by_uid.pop(uid, None)
