"""Muted chats, and which new messages notify.

# coi-client-spec: Contact Storage Message Body (``p-notification``), Group Storage
# Message (``p-notification``), Mentions in Group Messages

A chat is muted here (``coi mute``) and the setting travels to our other devices in the
storage message that describes the chat: a group's group storage message, a 1:1 chat's
contact storage message (when the contact is stored; else it stays on this device).
Both carry it as ``p-notification``: ``enabled=false`` while muted, with coi's own key
``x-coi-until`` when the mute ends at a time; ``enabled=true`` once unmuted.  Read back,
``enabled=false`` or a ``filters`` list without ``message`` (mentions only) is muted.

The table ``mute`` is keyed by the chat's key (``contact:ADDR``, ``group:ID``) so that a
setting synced from the Contacts folder may arrive before its chat; the newer setting
wins (``changed``).  A new incoming message notifies unless its chat is muted, and a
message that mentions us (``@Name:our-address`` or ``@all``) notifies even then (spec:
RECOMMENDED).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from coi.chat.mentions import find_mentions
from coi.chat.model import Notification
from coi.client.store import Chat, LocalStore, MessageRow


def set_mute(
    store: LocalStore,
    account_id: int,
    key: str,
    muted: bool,
    until: float = 0.0,
    changed: float | None = None,
) -> bool:
    """Records a mute (until ``until``, 0: until unmuted) or an unmute made at ``changed``
    (now by default); an older setting than the one known is ignored.  True if applied.

    Whole seconds, as the Date of the storage messages that carry it: of two settings
    in one second, the one applied last (synced later) wins."""
    changed = float(int(time.time())) if changed is None else changed
    with store.transaction() as db:
        row = db.execute(
            "SELECT changed FROM mute WHERE account_id=? AND key=?", (account_id, key)
        ).fetchone()
        if row is not None and float(row[0]) > changed:
            return False
        db.execute(
            "INSERT INTO mute (account_id, key, muted, until, changed) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO UPDATE SET muted=excluded.muted, until=excluded.until,"
            " changed=excluded.changed",
            (account_id, key, int(muted), until if muted else 0.0, changed),
        )
    return True


def notification(store: LocalStore, account_id: int, key: str) -> Notification | None:
    """The ``p-notification`` to store for the chat ``key``; None when never set here."""
    row = store.db.execute(
        "SELECT muted, until FROM mute WHERE account_id=? AND key=?", (account_id, key)
    ).fetchone()
    if row is None:
        return None
    muted, until = bool(row[0]), float(row[1])
    if muted and until and until <= time.time():
        muted = False  # the mute ended
    if not muted:
        return Notification(enabled=True)
    return Notification(enabled=False, until=datetime.fromtimestamp(until, UTC) if until else None)


def apply_notification(
    store: LocalStore, account_id: int, key: str, setting: Notification, changed: float
) -> bool:
    """Applies a ``p-notification`` read from a storage message dated ``changed``."""
    until = setting.until.timestamp() if setting.muted and setting.until is not None else 0.0
    return set_mute(store, account_id, key, setting.muted, until, changed)


def mentions_me(store: LocalStore, row: MessageRow) -> bool:
    """An incoming message with ``@Name:addr`` naming us, or ``@all``.

    # coi-client-spec: Mentions in Group Messages
    """
    if row.outgoing or "@" not in row.text:
        return False
    account = store.account_by_id(row.account_id)
    me = account.address.lower() if account else ""
    return any(x.is_all or (x.addr or "").lower() == me for x in find_mentions(row.text))


def notifies(store: LocalStore, chat: Chat | None, row: MessageRow | None, event: str) -> bool:
    """A new incoming message notifies unless its chat is muted; a mention of us always."""
    if event != "new" or row is None or row.outgoing or not row.visible:
        return False
    if chat is None or not chat.muted():
        return True
    return mentions_me(store, row)
