"""Storage messages in ``<root>/Contacts`` besides contacts: our profile and our groups,
so that another device of the same account learns them.

# coi-client-spec: User Profile Storage Message, Group Storage Message

``ContactBook.sync`` hands every message there that is no contact storage message to
``apply``: our own profile storage message goes to ``coi.client.profiles`` (the profile
is then the same on every device), our own group storage message makes or updates the
group (name, members, whether we left: we are among its participants unless we left).

A group created or changed on this device is marked (``mark``); the next sync stores
its group storage message (``store_marked``): an ``h-group`` with the id, the name and
every participant (us too while we are a member) with the hash of its address, the body
encrypted to our own key (like contacts), ``Chat-Version`` and ``Chat-Content: group``
outside.  The message stored before for the same group is expunged, by its UID.  The
newer Date wins: an older storage message never undoes a newer change.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from coi.chat.compose import compose_bytes
from coi.chat.contacts import address_hash
from coi.chat.headers import new_message_id
from coi.chat.model import Address, Card, ChatMessage, GroupInfo, MessageKind
from coi.client import groups, notify, profiles
from coi.client.store import Account, LocalStore
from coi.client.stored import remove_stored, seal_to_self
from coi.crypto import KeyPair
from coi.imap.client import ImapClient

log = logging.getLogger(__name__)


def is_storage(msg: ChatMessage) -> bool:
    """A profile or group storage message (not a contact)."""
    return msg.kind in (MessageKind.PROFILE, MessageKind.GROUP)


# -- applying what another device stored ------------------------------------------------


def apply(
    store: LocalStore,
    account: Account,
    files_dir: Path,
    uidvalidity: int,
    uid: int,
    msg: ChatMessage,
) -> None:
    """Applies our own profile or group storage message found at ``uid``."""
    me = account.address.lower()
    if msg.sender is None or msg.sender.addr.lower() != me:
        return  # only our own storage messages are applied
    if msg.kind is MessageKind.PROFILE and msg.profiles:
        profiles.received(store, account, msg, files_dir)
        info = profiles.own(store, account)
        when = msg.date.timestamp() if msg.date else 0.0
        if info is not None and int(info.updated) == int(when):  # the one in effect
            with store.transaction() as db:
                db.execute(
                    "UPDATE profile_card SET storage_uidvalidity=?, storage_uid=?"
                    " WHERE account_id=? AND addr=?",
                    (uidvalidity, uid, account.id, me),
                )
    elif msg.kind is MessageKind.GROUP and msg.group_info is not None and msg.group_info.id:
        _apply_group(store, account, files_dir, uidvalidity, uid, msg, msg.group_info)


def _apply_group(
    store: LocalStore,
    account: Account,
    files_dir: Path,
    uidvalidity: int,
    uid: int,
    msg: ChatMessage,
    info: GroupInfo,
) -> None:
    me = account.address.lower()
    key = groups.KEY_PREFIX + str(info.id)
    date = float(int(msg.date.timestamp())) if msg.date else 0.0
    known = store.db.execute(
        "SELECT c.id, s.uid, s.uidvalidity, s.date FROM chat c"
        " LEFT JOIN group_storage s ON s.chat_id = c.id WHERE c.account_id=? AND c.key=?",
        (account.id, key),
    ).fetchone()
    if known is not None and known[1] is not None:
        if int(known[1]) == uid and int(known[2]) == uidvalidity:
            return  # the one this device stored
        if date < float(known[3]):
            return  # older than what we know
    name = " ".join(info.name.split())
    chat_id = store.chat_for(account.id, key, "", name or str(info.id), False)
    store.accept_chat(chat_id)
    everyone = {e.strip().lower() for c in info.participants for e in c.emails if e.strip()}
    with store.transaction() as db:
        if name:
            db.execute("UPDATE chat SET name=? WHERE id=?", (name, chat_id))
        if me in everyone:
            db.execute("DELETE FROM group_left WHERE chat_id=?", (chat_id,))
        else:
            db.execute("INSERT OR IGNORE INTO group_left (chat_id) VALUES (?)", (chat_id,))
        db.execute(
            "INSERT INTO group_storage (chat_id, uidvalidity, uid, date, dirty)"
            " VALUES (?, ?, ?, ?, 0) ON CONFLICT DO UPDATE SET uidvalidity=excluded.uidvalidity,"
            " uid=excluded.uid, date=excluded.date, dirty=0",
            (chat_id, uidvalidity, uid, date),
        )
    store.set_members(chat_id, sorted(everyone - {me}))
    description = " ".join(info.description.split())
    groups.set_details(store, chat_id, description=description)  # the storage message says all
    if info.photo:
        groups.save_photo(store, chat_id, info.photo, files_dir)
    if info.notification is not None:  # muted or unmuted on another device
        notify.apply_notification(store, account.id, key, info.notification, date)


# -- storing what this device changed ---------------------------------------------------


def mark(store: LocalStore, chat_id: int) -> None:
    """The group changed here: its storage message is stored at the next sync."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO group_storage (chat_id, dirty) VALUES (?, 1)"
            " ON CONFLICT DO UPDATE SET dirty=1",
            (chat_id,),
        )


def group_message(
    store: LocalStore, account: Account, chat_id: int, own: KeyPair | None, when: datetime
) -> bytes:
    """The group storage message for the group ``chat_id``, encrypted to ``own`` when given."""
    chat = store.chat(chat_id)
    assert chat is not None
    gid = chat.key[len(groups.KEY_PREFIX) :]
    me = account.address.lower()
    everyone = set(store.members(chat_id))
    if not groups.has_left(store, chat_id):
        everyone.add(me)
    cards = tuple(Card(emails=(a,), address_hash=address_hash(a)) for a in sorted(everyone))
    date = when.replace(microsecond=0)
    msg = ChatMessage(
        kind=MessageKind.GROUP,
        message_id=new_message_id(me.rpartition("@")[2] or "localhost"),
        sender=Address(account.address, account.settings.name),
        recipients=(Address(account.address),),
        date=date,
        subject="Group",
        group_info=GroupInfo(
            gid,
            chat.name,
            groups.details(store, chat_id)[0],
            groups.photo_url(store, chat_id),
            participants=cards,
            notification=notify.notification(store, account.id, chat.key),
        ),
    )
    raw = compose_bytes(msg)
    if own is None:
        return raw
    outside = [("Chat-Version", "1.0"), ("Chat-Content", "group")]
    return seal_to_self(account, raw, msg.message_id, format_datetime(date), own, outside)


async def store_marked(
    store: LocalStore, account: Account, imap: ImapClient, folder: str, own: KeyPair | None
) -> int:
    """Stores the storage message of every group changed here; returns how many."""
    rows = store.db.execute(
        "SELECT s.chat_id, s.uidvalidity, s.uid FROM group_storage s JOIN chat c"
        " ON c.id = s.chat_id WHERE s.dirty=1 AND c.account_id=?",
        (account.id,),
    ).fetchall()
    for chat_id, old_validity, old_uid in rows:
        now = datetime.fromtimestamp(int(time.time()), UTC)
        raw = group_message(store, account, int(chat_id), own, now)
        result = await imap.append(folder, raw, flags=["\\Seen"])
        validity = result.uidvalidity if result is not None else 0
        uid = result.uids[-1] if result is not None and result.uids else 0
        with store.transaction() as db:
            db.execute(
                "UPDATE group_storage SET uidvalidity=?, uid=?, date=?, dirty=0 WHERE chat_id=?",
                (validity or 0, uid, now.timestamp(), chat_id),
            )
        if old_uid and validity and int(old_validity) == validity:
            await remove_stored(imap, folder, str(int(old_uid)), validity)
    return len(rows)
