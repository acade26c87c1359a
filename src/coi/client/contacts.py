"""The contact list, kept on the server as contact storage messages; blocking.

# coi-client-spec: Contact Storage Messages, Blocking Contacts, Merging Contact Storage Messages
One message per contact in ``<root>/Contacts`` (APPENDed \\Seen, never sent by SMTP).
``COI-From-Hash``, ``COI-Blocked`` and the tokens stay in the clear header, where a COI
server reads them (``coi.delivery.blocking``); the body is encrypted to our own key
(spec: SHOULD), so a device without the account's key sees hashes and the blocked flag
but no names.  An edit APPENDs the new message and expunges the old; messages sharing a
``COI-From-Hash`` are merged (``coi.chat.contacts.merge_contacts``) at sync.  Our
profile and group storage messages there go to ``on_storage`` (``coi.client.storage``)
and are kept as rows with neither address nor hash.

The local table ``stored_contact`` mirrors the folder (one row per UID); every sync of
the folder compares UIDs, so a change made on one device arrives on the others.

Blocking: a sender is blocked when any stored contact carrying ``COI-Blocked`` has the
hash of its address, exactly as the COI server decides.  On a COI server the server
files the sender's new mail into ``Blocked``; on a plain server the client moves it there
from INBOX and Chats at each sync.  ``Blocked`` is synced read-only: its messages are kept
locally but the chat of a blocked sender is hidden (``coi chats``, ``watch``); unblocking
shows the chat again, with what arrived meanwhile, and the messages stay in ``Blocked``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime

from coi.chat.compose import compose_bytes
from coi.chat.contacts import (
    StoredContact,
    address_hash,
    merge_contacts,
    normalize_address,
    split_categories,
)
from coi.chat.headers import new_message_id
from coi.chat.model import Address, Card, ChatMessage, ContactStorage, MessageKind, Notification
from coi.chat.parse import parse
from coi.client import notify
from coi.client.store import Account, Folder, LocalStore
from coi.client.stored import remove_stored, seal_to_self
from coi.crypto import KeyPair
from coi.imap.client import ImapClient

log = logging.getLogger(__name__)

FETCH_ITEMS = "(UID INTERNALDATE BODY.PEEK[])"
Opener = Callable[[bytes], bytes]  # raw -> the clear message (decrypted when we can)


@dataclass(frozen=True, slots=True)
class ContactRow:
    account_id: int
    uid: int
    addr: str  # first address of the card ('' when the body could not be read)
    name: str
    blocked: bool
    hashes: tuple[str, ...]
    emails: tuple[str, ...]
    date: float
    categories: tuple[str, ...] = ()  # p-category (coi-client-spec: Contact Storage Message Body)


# -- local table --------------------------------------------------------------------


def _row(r: tuple[object, ...]) -> ContactRow:
    return ContactRow(
        int(r[0]), int(r[1]), str(r[2]), str(r[3]), bool(r[4]),  # type: ignore[call-overload]
        tuple(str(r[5]).split()), tuple(str(r[6]).split()), float(r[7]),  # type: ignore[arg-type]
        split_categories(str(r[8])),
    )  # fmt: skip


_COLUMNS = "account_id, uid, addr, name, blocked, hashes, emails, date, categories"


def contact_rows(store: LocalStore, account_id: int) -> list[ContactRow]:
    rows = store.db.execute(
        # rows with neither address nor hash are other messages in the folder (our profile)
        f"SELECT {_COLUMNS} FROM stored_contact WHERE account_id=? AND (addr != '' OR hashes != '')"
        " ORDER BY name COLLATE NOCASE, addr",
        (account_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def rows_for(store: LocalStore, account_id: int, addr: str) -> list[ContactRow]:
    digest = address_hash(addr)
    return [r for r in contact_rows(store, account_id) if digest in r.hashes]


def categories_of(store: LocalStore, account_id: int, addr: str) -> frozenset[str]:
    """The categories of the stored contact of ``addr`` (case-folded), for choosing the
    profile variant it gets (coi-client-spec: User Profile Storage Message)."""
    return frozenset(c.casefold() for r in rows_for(store, account_id, addr) for c in r.categories)


def blocked_hashes(store: LocalStore, account_id: int) -> set[str]:
    """Every hash a stored contact with ``COI-Blocked`` names (as the COI server reads it)."""
    out: set[str] = set()
    for (hashes,) in store.db.execute(
        "SELECT hashes FROM stored_contact WHERE account_id=? AND blocked=1", (account_id,)
    ):
        out.update(str(hashes).split())
    return out


def is_blocked(store: LocalStore, account_id: int, addr: str) -> bool:
    return bool(addr) and address_hash(addr) in blocked_hashes(store, account_id)


def forget_unread(store: LocalStore, account_id: int) -> None:
    """Forgets the rows whose body was not read (no key yet) and the other storage
    messages: the next sync fetches and reads them again (after a key import)."""
    with store.transaction() as db:
        db.execute("DELETE FROM stored_contact WHERE account_id=? AND emails=''", (account_id,))


def read_contact(raw: bytes, opener: Opener | None) -> tuple[ContactStorage, float]:
    """A contact storage message: what it says, and its Date (0 when missing)."""
    clear = opener(raw) if opener is not None else raw
    return _read(raw, clear, parse(clear))


def _read(raw: bytes, clear: bytes, msg: ChatMessage) -> tuple[ContactStorage, float]:
    outer = parse(raw) if clear is not raw else msg
    contact = msg.contact or outer.contact or ContactStorage()
    if not contact.from_hashes and outer.contact is not None:
        contact = replace(contact, from_hashes=outer.contact.from_hashes)
    if outer.contact is not None and outer.contact.blocked:
        contact = replace(contact, blocked=True)  # the outer header is what servers act on
    when = msg.date or outer.date
    return contact, when.timestamp() if when else 0.0


def _store_row(
    store: LocalStore, account_id: int, uid: int, contact: ContactStorage, date: float, raw: bytes
) -> None:
    emails = tuple(normalize_address(e) for e in contact.card.emails if e.strip())
    hashes = contact.from_hashes or tuple(address_hash(e) for e in emails)
    store.db.execute(
        "INSERT OR REPLACE INTO stored_contact"
        " (account_id, uid, addr, name, blocked, hashes, emails, date, raw, categories)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            account_id,
            uid,
            emails[0] if emails else "",
            contact.card.name,
            int(contact.blocked),
            " ".join(h.lower() for h in hashes),
            " ".join(emails),
            date,
            raw,
            ",".join(contact.card.categories),
        ),
    )
    if not contact.blocked:  # stored on some device: the user's yes, so no contact request
        for email in emails:
            store.remember_contact(account_id, email, contact.card.name, True)
    if contact.card.notification is not None and date:  # muted on some device
        for email in emails:
            notify.apply_notification(
                store, account_id, f"contact:{email}", contact.card.notification, date
            )


# -- messages -----------------------------------------------------------------------


def contact_message(
    account: Account, contact: ContactStorage, own: KeyPair | None, when: datetime | None = None
) -> bytes:
    """The contact storage message to APPEND: the body encrypted to ``own`` when given,
    ``COI-From-Hash``/``COI-Blocked``/tokens and Chat-Content outside."""
    me = Address(account.address, account.settings.name)
    date = (when or datetime.now(UTC)).replace(microsecond=0)
    msg = ChatMessage(
        kind=MessageKind.CONTACT,
        message_id=new_message_id(account.address.rpartition("@")[2] or "localhost"),
        sender=me,
        recipients=(Address(account.address),),
        date=date,
        subject="Contact",
        contact=contact,
    )
    raw = compose_bytes(msg)
    if own is None:
        return raw
    hashes = contact.from_hashes or tuple(address_hash(e) for e in contact.card.emails)
    outside: list[tuple[str, str]] = [("Chat-Version", "1.0"), ("Chat-Content", "contact")]
    outside += [("COI-From-Hash", h) for h in hashes]
    if contact.blocked:
        outside.append(("COI-Blocked", "yes"))
    outside += [("COI-TokenIn", t) for t in contact.tokens_in]
    outside += [("COI-TokenOut", t) for t in contact.tokens_out]
    return seal_to_self(account, raw, msg.message_id, format_datetime(date), own, outside)


# -- the folder ---------------------------------------------------------------------


class ContactBook:
    """One account's Contacts folder over a connected IMAP client."""

    def __init__(
        self,
        store: LocalStore,
        account: Account,
        imap: ImapClient,
        folder: Folder,
        opener: Opener | None = None,
        own: KeyPair | None = None,
    ) -> None:
        self.store = store
        self.account = account
        self.imap = imap
        self.folder = folder
        self.opener = opener
        self.own = own
        # our profile and group storage messages there: (UIDVALIDITY, UID, message)
        self.on_storage: Callable[[int, int, ChatMessage], None] | None = None

    async def sync(self, merge: bool = True) -> bool:
        """Mirrors the folder into ``stored_contact``; True when anything changed."""
        imap, folder, acc = self.imap, self.folder, self.account.id
        info = await imap.select(folder.name)
        uidvalidity = info.uidvalidity or 0
        changed = False
        if uidvalidity != folder.uidvalidity:
            with self.store.transaction() as db:
                db.execute("DELETE FROM stored_contact WHERE account_id=?", (acc,))
            self.store.reset_folder(folder.id, uidvalidity)
            changed = True
        known = {
            int(r[0])
            for r in self.store.db.execute(
                "SELECT uid FROM stored_contact WHERE account_id=?", (acc,)
            )
        }
        unchanged = info.uidnext and info.uidnext == folder.uidnext and info.exists == len(known)
        if unchanged and not changed:  # nothing added, nothing expunged: no SEARCH
            return False
        present = set(await imap.uid_search("ALL"))
        gone = known - present
        if gone:
            with self.store.transaction() as db:
                db.executemany(
                    "DELETE FROM stored_contact WHERE account_id=? AND uid=?",
                    [(acc, uid) for uid in gone],
                )
            changed = True
        new = sorted(present - known)
        if new:
            fetched = await imap.uid_fetch(",".join(map(str, new)), FETCH_ITEMS)
            wanted = set(new)
            with self.store.transaction():
                for item in fetched:
                    # an unsolicited FETCH (another device's flag change) names a message
                    # we did not ask for, with no body (RFC 3501 §7.4.2)
                    if item.uid is None or item.uid not in wanted:
                        continue
                    raw = item.body("") or b""
                    try:
                        clear = self.opener(raw) if self.opener is not None else raw
                        msg = parse(clear)
                        if msg.kind in (MessageKind.PROFILE, MessageKind.GROUP):
                            # no contact: a row with neither address nor hash
                            contact, date = ContactStorage(), 0.0
                            if self.on_storage is not None:
                                self.on_storage(uidvalidity, item.uid, msg)
                        else:
                            contact, date = _read(raw, clear, msg)
                    except Exception as exc:  # one unreadable message must not stop the sync
                        log.warning("contact UID %d unreadable: %s", item.uid, exc)
                        continue
                    _store_row(self.store, acc, item.uid, contact, date, raw)
            changed = True
        self.store.save_folder_state(folder.id, info.uidnext or 0, info.highestmodseq or 0)
        self.folder = self.store.folder(acc, folder.name, "contacts")
        if merge and await self._merge_duplicates():
            await self.sync(merge=False)
            changed = True
        return changed

    async def _merge_duplicates(self) -> bool:
        """spec: Merging Contact Storage Messages: one message per hash, the newest wins."""
        rows = contact_rows(self.store, self.account.id)
        groups = _groups(rows)
        did = False
        for uids in groups:
            if len(uids) < 2:
                continue
            if any(not r.emails for r in rows if r.uid in uids):
                continue  # a body we cannot read (no key here): left to a device that can
            stored = [
                StoredContact(self._contact(r.uid), datetime.fromtimestamp(r.date, UTC), r.uid)
                for r in rows
                if r.uid in uids
            ]
            newest = max(r.date for r in rows if r.uid in uids)
            await self._replace(
                sorted(uids), merge_contacts(stored), datetime.fromtimestamp(newest, UTC)
            )
            did = True
        return did

    def _contact(self, uid: int) -> ContactStorage:
        row = self.store.db.execute(
            "SELECT raw FROM stored_contact WHERE account_id=? AND uid=?", (self.account.id, uid)
        ).fetchone()
        return read_contact(bytes(row[0]), self.opener)[0] if row else ContactStorage()

    async def _replace(
        self, old: list[int], contact: ContactStorage | None, when: datetime | None = None
    ) -> None:
        """APPENDs ``contact`` (when given), then expunges ``old``: an edit never loses it."""
        if contact is not None:
            raw = contact_message(self.account, contact, self.own, when)
            await self.imap.append(self.folder.name, raw, flags=["\\Seen"])
        if old:
            await remove_stored(self.imap, self.folder.name, ",".join(map(str, old)))

    async def save(
        self,
        addr: str,
        name: str | None = None,
        blocked: bool | None = None,
        notification: Notification | None = None,
        categories: tuple[str, ...] | None = None,
    ) -> ContactRow:
        """Adds or changes the contact for ``addr`` (None keeps what is stored);
        ``notification`` is the chat's mute setting (coi.client.notify); ``categories``
        its ``p-category`` (coi-client-spec: Contact Storage Message Body)."""
        addr = normalize_address(addr)
        if "@" not in addr:
            raise ValueError(f"{addr!r} is not a mail address")
        await self.sync()
        existing = rows_for(self.store, self.account.id, addr)
        if existing:
            stored = [
                StoredContact(self._contact(r.uid), datetime.fromtimestamp(r.date, UTC), r.uid)
                for r in existing
            ]
            current = merge_contacts(stored)
        else:
            current = ContactStorage(card=Card(emails=(addr,)), from_hashes=(address_hash(addr),))
        card = current.card
        if not card.emails:
            card = replace(card, emails=(addr,))
        if name is not None:
            card = replace(card, name=name)
        if notification is not None:
            card = replace(card, notification=notification)
        if categories is not None:
            card = replace(card, categories=categories)
        updated = replace(
            current, card=card, blocked=current.blocked if blocked is None else blocked
        )
        if existing and updated == current:
            return existing[0]
        await self._replace([r.uid for r in existing], updated)
        await self.sync(merge=False)
        found = rows_for(self.store, self.account.id, addr)
        if not found:
            raise RuntimeError("the contact was stored but is not in the folder")
        return found[0]

    async def remove(self, addr: str) -> int:
        existing = rows_for(self.store, self.account.id, addr)
        await self._replace([r.uid for r in existing], None)
        await self.sync(merge=False)
        return len(existing)


def _groups(rows: Iterable[ContactRow]) -> list[set[int]]:
    """UIDs linked by a shared hash (directly or through others): union-find."""
    parent: dict[int, int] = {}

    def find(uid: int) -> int:
        while parent[uid] != uid:
            parent[uid] = parent[parent[uid]]
            uid = parent[uid]
        return uid

    owner: dict[str, int] = {}
    for row in rows:
        parent.setdefault(row.uid, row.uid)
        for digest in row.hashes:
            if digest in owner:
                parent[find(row.uid)] = find(owner[digest])
            else:
                owner[digest] = row.uid
    out: dict[int, set[int]] = {}
    for uid in parent:
        out.setdefault(find(uid), set()).add(uid)
    return list(out.values())


# -- plain servers: the client files blocked mail -------------------------------------


async def file_blocked(
    store: LocalStore, imap: ImapClient, folder: Folder, blocked_folder: str = "Blocked"
) -> list[int]:
    """Moves the blocked senders' mail in ``folder`` (INBOX or Chats) to Blocked; returns
    the UIDs moved (coi-client-spec: Blocking Contacts, "unless the IMAP server is COI
    compliant")."""
    blocked = blocked_hashes(store, folder.account_id)
    if not blocked:
        return []
    rows = store.db.execute(
        "SELECT l.uid, m.sender FROM location l JOIN message m ON m.id = l.message"
        " WHERE l.folder_id=? AND m.outgoing=0",
        (folder.id,),
    ).fetchall()
    uids = sorted(int(uid) for uid, sender in rows if address_hash(str(sender)) in blocked)
    if uids:
        await imap.uid_move(",".join(map(str, uids)), blocked_folder)
        store.remove_uids(folder.id, uids)
    return uids


async def release(imap: ImapClient | None, addr: str, blocked_folder: str = "Blocked") -> int:
    """Unblocked: moves the sender's mail from Blocked back to INBOX, where the next sync
    shows it (Blocked itself is never synced). Returns how many were moved."""
    if imap is None:
        raise RuntimeError("not connected")
    listed = await imap.list("", blocked_folder)
    if not any(e.name == blocked_folder for e in listed):
        return 0
    await imap.select(blocked_folder)
    digest = address_hash(addr)
    quoted = normalize_address(addr).replace("\\", "").replace('"', "")
    found = await imap.uid_search(f'FROM "{quoted}"')  # a substring match: checked below
    if not found:
        return 0
    heads = await imap.uid_fetch(",".join(map(str, sorted(found))), "(UID BODY.PEEK[HEADER])")
    uids: list[int] = []
    for item in heads:
        head = item.body("HEADER") or b""
        sender = parse(head + b"\r\n").sender
        if item.uid is not None and sender is not None and address_hash(sender.addr) == digest:
            uids.append(item.uid)
    if uids:
        await imap.uid_move(",".join(map(str, sorted(uids))), "INBOX")
    return len(uids)
