"""The client library's API: what the command line, the web app and bots use.

Every local change is first sent (SMTP, STORE, APPEND), then recorded from what
the server confirmed (DESIGN.md: Client sync).  An outgoing message is recorded as
``sending`` before SMTP starts; one left so by a crash is marked failed, never sent
again on its own, so nothing the user sent once goes out twice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import mimetypes
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime
from pathlib import Path
from typing import TypeVar

import aiosmtplib

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.contacts import address_hash
from coi.chat.headers import chat_references, new_group_id
from coi.chat.model import (
    Address,
    Attachment,
    ChatMessage,
    GroupRef,
    Location,
    MessageKind,
    Pin,
    Poll,
    PollOption,
)
from coi.chat.parse import parse
from coi.chat.polls import poll_text
from coi.client import contacts as contact_book
from coi.client import extras, groups, notify, profiles, push, storage
from coi.client.apply import Applied, Applier
from coi.client.e2e import Keyring, MissingKeys
from coi.client.profile import (
    AccountSettings,
    FilterMode,
    Profile,
    ProfileError,
    Security,
    is_loopback,
)
from coi.client.store import Account, Chat, LocalStore, MessageRow
from coi.client.sync import AccountSync, Progress, SyncReport, tls_context
from coi.client.vcard import make_vcard, parse_vcards
from coi.crypto import CryptoError, KeyPair, public_key_info
from coi.imap.client import ImapClient, ImapError, TlsFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERRUPTED = "interrupted while sending: it may not have been sent; send it again if needed"
NO_ACCOUNT = "no account yet: add one with 'coi account add ADDRESS'"


class ClientError(Exception):
    """A failure the user can act on; the message is one line saying what happened."""


class SendFailed(ClientError):
    """The SMTP server refused the message; it stays in the chat marked failed."""


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Something ``watch`` saw happen: new, edit, delete, reaction, receipt, removed.

    ``notify``: a new incoming message that should notify (its chat is not muted, or it
    mentions us: coi.client.notify); ``muted``: its chat is muted now."""

    kind: str
    account: str
    chat_id: int | None
    message: int | None
    target: int | None = None
    muted: bool = False
    notify: bool = False


class Client:
    """One profile: its accounts, their chats and messages."""

    def __init__(self, profile_dir: Path | None = None) -> None:
        self.profile = Profile(profile_dir)
        self.profile.ensure()
        self.store = LocalStore(self.profile.store_path)
        for message in self.store.interrupted_sends():
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE message SET state='failed', error=? WHERE id=?",
                    (INTERRUPTED, message),
                )

    def close(self) -> None:
        self.store.close()

    # -- accounts ---------------------------------------------------------------------

    def accounts(self) -> list[Account]:
        return self.store.accounts()

    def account(self, address: str | None = None) -> Account:
        """The named account, or the only one."""
        accounts = self.store.accounts()
        if address is not None:
            found = self.store.account_by_address(address)
            if found is None:
                raise ClientError(f"no account {address} in this profile ('coi account list')")
            return found
        if not accounts:
            raise ClientError(NO_ACCOUNT)
        if len(accounts) > 1:
            raise ClientError("this profile has several accounts: choose one with --account")
        return accounts[0]

    async def add_account(self, settings: AccountSettings, password: str) -> Account:
        """Checks the settings by logging in and setting up the folders, then keeps them."""
        if settings.security is Security.PLAIN:
            for endpoint in (settings.imap, settings.smtp):
                if not is_loopback(endpoint.host):
                    raise ClientError(
                        f"--security plain sends the password unencrypted: it is allowed only"
                        f" to loopback addresses, not {endpoint.host}"
                    )
        existing = self.store.account_by_address(settings.address)
        if existing is not None:
            raise ClientError(
                f"{settings.address} is already in this profile: 'coi account remove' it first"
            )
        account = self.store.add_account(settings)
        keyring = Keyring(self.profile, self.store, account)
        try:
            self.profile.save_password(settings.address, password)
            sync = AccountSync(self.store, self.profile, account)
            try:
                await _imap_call(account, sync.connect(password))
            finally:
                await sync.close()
            keyring.ensure_own()  # Autocrypt: one key per account, made once
        except BaseException:
            self.store.remove_account(account.id)
            self.profile.remove_password(settings.address)
            keyring.remove_own()
            raise
        return self.store.account_by_id(account.id) or account

    def remove_account(self, address: str) -> None:
        account = self.account(address)
        for path in self.store.remove_account(account.id):
            Path(path).unlink(missing_ok=True)
        self.profile.remove_password(account.address)
        Keyring(self.profile, self.store, account).remove_own()

    async def update_settings(
        self,
        account: Account,
        *,
        name: str | None = None,
        filter: FilterMode | None = None,
        read_receipts: bool | None = None,
        encrypt_only: bool | None = None,
    ) -> Account:
        """Changes the account's settings; a new filter mode is told to a COI server at
        once (coi-server-spec: Configure Message Filtering), None keeps what is set."""
        old = account.settings
        new = replace(
            old,
            name=old.name if name is None else name.strip(),
            filter=old.filter if filter is None else filter,
            read_receipts=old.read_receipts if read_receipts is None else read_receipts,
            encrypt_only=old.encrypt_only if encrypt_only is None else encrypt_only,
        )
        self.store.update_account_settings(account.id, new)
        updated = self.store.account_by_id(account.id) or account
        if new.filter != old.filter:
            async with self.connected(updated):  # connecting sets the server's filter
                pass
        return updated

    def keyring(self, account: Account) -> Keyring:
        """The account's keys; an account from before encryption gets its key now."""
        keyring = Keyring(self.profile, self.store, account)
        keyring.ensure_own()
        return keyring

    def account_sync(self, account: Account) -> AccountSync:
        keyring = self.keyring(account)
        sync = AccountSync(self.store, self.profile, account, keyring.open)
        sync.own_key = keyring.own  # contacts merged at sync stay encrypted
        return sync

    # -- keys and vCards ----------------------------------------------------------------

    def export_key(self, account: Account) -> bytes:
        """The account's key pair, for the user's other devices (keep it secret)."""
        own = self.keyring(account).own()
        data = {
            "address": account.address,
            "secret": base64.b64encode(own.secret).decode(),
            "public": base64.b64encode(own.public).decode(),
        }
        return json.dumps(data, indent=1).encode() + b"\n"

    def import_key(self, account: Account, data: bytes) -> str:
        """Replaces the account's key pair with an exported one (another device's)."""
        try:
            parsed = json.loads(data)
            secret = base64.b64decode(parsed["secret"], validate=True)
            public = base64.b64decode(parsed["public"], validate=True)
            info = public_key_info(public)
        except (ValueError, KeyError, TypeError, CryptoError) as exc:
            raise ClientError(f"not a key exported by 'coi key export': {exc}") from None
        if account.address.lower() not in (a.lower() for a in info.addresses):
            owners = ", ".join(info.addresses)
            raise ClientError(f"that key is for {owners}, not {account.address}")
        keyring = Keyring(self.profile, self.store, account)
        keyring.save_own(KeyPair(secret, public, info.fingerprint))
        Applier(self.store, account, self.profile.files_dir, keyring.open).reopen_undecryptable()
        contact_book.forget_unread(self.store, account.id)  # read again at the next sync
        return info.fingerprint

    def vcard(self, account: Account, address: str | None = None) -> str:
        """A vCard with the key: our own by default, or a contact's we know a key for."""
        keyring = self.keyring(account)
        if address is None or address.lower() == account.address.lower():
            return make_vcard(account.address, account.settings.name, keyring.own().public)
        key = keyring.peer_key(address.lower())
        if key is None:
            raise ClientError(f"no key known for {address}")
        return make_vcard(address, "", key)

    def import_vcards(self, account: Account, text: str) -> list[tuple[str, str]]:
        """Contacts from vCards: their keys kept, and they count as accepted contacts."""
        found = parse_vcards(text)
        if not found:
            raise ClientError("no vCard with a mail address in that file")
        keyring = self.keyring(account)
        imported: list[tuple[str, str]] = []
        for contact in found:
            fingerprint = ""
            if contact.key is not None:
                try:
                    fingerprint = keyring.import_key(contact.addr, contact.key)
                except CryptoError as exc:
                    raise ClientError(f"the key for {contact.addr} is not usable: {exc}") from None
            self.store.remember_contact(account.id, contact.addr.lower(), contact.name, True)
            imported.append((contact.addr, fingerprint))
        return imported

    @asynccontextmanager
    async def connected(self, account: Account) -> AsyncIterator[AccountSync]:
        sync = self.account_sync(account)
        password = self.profile.load_password(account.address)
        try:
            await _imap_call(account, sync.connect(password))
            yield sync
        finally:
            await sync.close()

    # -- sync ---------------------------------------------------------------------------

    async def sync(
        self, account: Account | None = None, progress: Progress | None = None
    ) -> dict[str, SyncReport]:
        reports: dict[str, SyncReport] = {}
        for acc in [account] if account else self.store.accounts():
            async with self.connected(acc) as sync:
                reports[acc.address] = await _imap_call(acc, sync.sync(progress))
        return reports

    async def watch(
        self,
        on_event: Callable[[ClientEvent], None],
        stop: asyncio.Event,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """Stays connected (one task per account) and reports changes until ``stop``."""
        from coi.client.watch import watch_account

        tasks = [
            asyncio.create_task(watch_account(self, acc, on_event, stop, on_status))
            for acc in self.store.accounts()
        ]
        if not tasks:
            raise ClientError(NO_ACCOUNT)
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # -- chats ----------------------------------------------------------------------

    def chats(self, account: Account | None = None) -> list[Chat]:
        """Chats with something to show; a blocked contact's never (coi.client.contacts)."""
        blocked: dict[int, set[str]] = {}
        return [
            c
            for c in self.store.chats(account.id if account else None)
            if not c.peer
            or address_hash(c.peer)
            not in blocked.setdefault(
                c.account_id, contact_book.blocked_hashes(self.store, c.account_id)
            )
        ]

    def hidden(self, chat: Chat | int | None) -> bool:
        """The chat of a blocked contact: not listed, no watch events."""
        found = self.store.chat(chat) if isinstance(chat, int) else chat
        return found is not None and contact_book.is_blocked(
            self.store, found.account_id, found.peer
        )

    def find_chat(self, spec: str, account: Account | None = None) -> Chat | None:
        """CHAT as the user types it: a chat id, an address or a name."""
        if spec.isdigit():
            chat = self.store.chat(int(spec))
            if chat is not None:
                return chat
        accounts = [account] if account else self.store.accounts()
        for acc in accounts:
            chat = self.store.chat_by_peer(acc.id, spec)
            if chat is not None:
                return chat
        named = [
            c
            for c in self.store.find_chats_by_name(spec)
            if account is None or c.account_id == account.id
        ]
        if len(named) > 1:
            raise ClientError(f"{spec!r} names several chats: use the chat id ('coi chats')")
        return named[0] if named else None

    def messages(self, chat: Chat, limit: int | None = None) -> list[MessageRow]:
        return self.store.messages(chat.id, limit)

    def message(self, message: int) -> MessageRow:
        row = self.store.message(message)
        if row is None or not row.visible:
            raise ClientError(f"no message {message} ('coi show CHAT' lists their ids)")
        return row

    def accept(self, chat: Chat) -> None:
        self.store.accept_chat(chat.id)

    # -- contacts (coi.client.contacts) ------------------------------------------------

    def contacts(self, account: Account) -> list[contact_book.ContactRow]:
        """The contact list as last synced from ``<root>/Contacts``."""
        return contact_book.contact_rows(self.store, account.id)

    async def save_contacts(
        self,
        account: Account,
        entries: list[tuple[str, str | None, bool | None]],
        categories: tuple[str, ...] | None = None,
    ) -> list[contact_book.ContactRow]:
        """Stores (address, name, blocked) in the Contacts folder, None keeping what is
        there, and ``categories`` (p-category) for each when given; then syncs, so a plain
        server's blocked mail is filed at once and an unblocked sender's mail moved back
        from Blocked shows."""
        saved: list[contact_book.ContactRow] = []
        async with self.connected(account) as sync:
            if "contacts" not in sync.folders:
                raise ClientError(f"{account.address}: the server has no {sync.contacts_name}")
            book = sync.contact_book()
            for addr, name, blocked in entries:
                try:
                    saved.append(
                        await _imap_call(
                            account, book.save(addr, name, blocked, categories=categories)
                        )
                    )
                except ValueError as exc:
                    raise ClientError(str(exc)) from None
                if blocked is False and not contact_book.is_blocked(self.store, account.id, addr):
                    await _imap_call(account, contact_book.release(sync.imap, addr))
            await _imap_call(account, sync.sync())
        return saved

    async def remove_contact(self, account: Account, addr: str) -> int:
        async with self.connected(account) as sync:
            if "contacts" not in sync.folders:
                raise ClientError(f"{account.address}: the server has no {sync.contacts_name}")
            removed = await _imap_call(account, sync.contact_book().remove(addr))
            if removed and not contact_book.is_blocked(self.store, account.id, addr):
                await _imap_call(account, contact_book.release(sync.imap, addr))
            await _imap_call(account, sync.sync())
        return removed

    async def block(self, account: Account, addr: str, blocked: bool = True) -> None:
        await self.save_contacts(account, [(addr, None, blocked)])

    async def dkim_signed(self, account: Account, addr: str) -> bool | None:
        """Whether the last message received from ``addr`` had a ``DKIM-Signature``
        header; None when nothing was received from it.  The copy on the server is read
        when ours lacks it (an encrypted message is kept decrypted, without the outer
        header).

        # coi-client-spec: Blocking Contacts ("check the last received message of that
        contact for a DKIM header ... warn the user")
        """
        row = self.store.db.execute(
            "SELECT id, raw FROM message WHERE account_id=? AND outgoing=0 AND sender=?"
            " COLLATE NOCASE ORDER BY arrived DESC, seq DESC LIMIT 1",
            (account.id, addr.strip().lower()),
        ).fetchone()
        if row is None:
            return None
        if _has_dkim(bytes(row[1])):
            return True
        where = self.store.locations(int(row[0]))
        if not where:
            return False
        folder, uid, _ = where[0]
        try:
            async with self.connected(account) as sync:
                assert sync.imap is not None
                await sync.imap.select(folder.name, readonly=True)
                fetched = await sync.imap.uid_fetch(str(uid), "(UID BODY.PEEK[HEADER])")
        except (ClientError, ImapError, OSError) as exc:
            log.warning("cannot read the server's copy for its DKIM header: %s", exc)
            return False
        for item in fetched:
            if item.uid == uid:
                try:
                    return _has_dkim(item.body("HEADER"))
                except KeyError:  # the server sent no header
                    return False
        return False

    # -- muting (coi.client.notify) -------------------------------------------------------

    async def mute(self, chat: Chat, until: datetime | None = None, muted: bool = True) -> bool:
        """Mutes CHAT (until ``until``) or unmutes it; then stores the setting for our
        other devices: a group's storage message, or the stored contact of a 1:1 chat.
        Returns False when it stays on this device (a contact not stored, an ad-hoc group
        without id, or the server unreachable).

        # coi-client-spec: Group Storage Message, Contact Storage Message Body (p-notification)
        """
        acc = self.store.account_by_id(chat.account_id)
        assert acc is not None
        end = until.timestamp() if until is not None else 0.0
        if muted and until is not None and end <= time.time():
            raise ClientError("--until is in the past")
        notify.set_mute(self.store, acc.id, chat.key, muted, end)
        setting = notify.notification(self.store, acc.id, chat.key)
        if chat.key.startswith(groups.KEY_PREFIX):
            storage.mark(self.store, chat.id)
            return bool(await self.store_groups(acc))
        if not chat.peer or not contact_book.rows_for(self.store, acc.id, chat.peer):
            return False
        try:
            async with self.connected(acc) as sync:
                if "contacts" not in sync.folders:
                    return False
                book = sync.contact_book()
                await _imap_call(acc, book.save(chat.peer, notification=setting))
        except ClientError as exc:
            log.warning("muted here; not stored for other devices yet: %s", exc)
            return False
        return True

    # -- sending ----------------------------------------------------------------------

    async def send(
        self,
        to: str,
        text: str,
        files: tuple[Path, ...] = (),
        account: Account | None = None,
        change: Callable[[ChatMessage], ChatMessage] | None = None,
    ) -> MessageRow:
        """A new message to CHAT (an existing chat) or to an address (a new 1:1 chat)."""
        chat = self.find_chat(to, account)
        acc = (self.store.account_by_id(chat.account_id) if chat else None) or self.account(
            account.address if account else None
        )
        if chat is None and "@" not in to:
            raise ClientError(f"no chat {to!r}: give an address to start one")
        peer = chat.peer if chat else to.strip()
        me = Address(acc.address, acc.settings.name)
        if peer:
            msg = builders.new_message(me, (Address(peer),), text)
        else:
            assert chat is not None
            msg = self._group_message(chat, me, text)
        if chat is not None:
            last = self.store.messages(chat.id, 1)
            if last:
                first = self.store.messages_first(chat.id)
                refs = chat_references(
                    (first.message_id,) if first and first.message_id != last[0].message_id else (),
                    last[0].message_id,
                )
                # References thread it (coi-client-spec: first and last); In-Reply-To is
                # kept for replies, which quote the message they answer
                msg = replace(msg, references=refs)
        attachments = tuple(_attachment(path) for path in files)
        if attachments:
            msg = replace(msg, kind=MessageKind.MEDIA, attachments=attachments)
        if change is not None:  # a poll, a location... (coi.client.extras)
            msg = change(msg)
        return await self._send(acc, msg)

    def create_group(self, name: str, members: list[str], account: Account | None = None) -> Chat:
        """A new group chat (coi-client-spec: Group Messages); its first message tells the
        members, with the group's id and name in the headers Delta Chat reads too."""
        acc = account or self.account()
        addrs = sorted({m.strip().lower() for m in members} - {acc.address.lower()})
        if not name.strip() or not addrs:
            raise ClientError("a group needs a name and at least one member besides you")
        bad = [a for a in addrs if "@" not in a]
        if bad:
            raise ClientError(f"{bad[0]!r} is not a mail address")
        key = f"group:{new_group_id()}"
        chat_id = self.store.chat_for(acc.id, key, "", name.strip(), False)
        self.store.set_members(chat_id, addrs)
        storage.mark(self.store, chat_id)  # for our other devices: 'store_groups', sync
        chat = self.store.chat(chat_id)
        assert chat is not None
        return chat

    async def store_groups(self, account: Account | None = None) -> int:
        """Stores the group storage messages of the groups changed here (each sync does
        too); returns how many.  Offline, they wait for the next sync."""
        acc = account or self.account()
        try:
            async with self.connected(acc) as sync:
                if "contacts" not in sync.folders:
                    return 0
                book = sync.contact_book()
                stored = storage.store_marked(
                    self.store, acc, book.imap, book.folder.name, book.own
                )
                return await _imap_call(acc, stored)
        except (ClientError, ImapError, OSError) as exc:
            log.warning("group changes not stored for other devices yet: %s", exc)
            return 0

    # group management: coi.client.groups
    async def rename_group(self, chat: Chat, name: str) -> MessageRow:
        return await groups.rename(self, chat, name)

    async def add_member(self, chat: Chat, addr: str) -> MessageRow:
        return await groups.add_member(self, chat, addr)

    async def remove_member(self, chat: Chat, addr: str) -> MessageRow:
        return await groups.remove_member(self, chat, addr)

    async def describe_group(self, chat: Chat, text: str) -> MessageRow:
        return await groups.describe(self, chat, text)

    async def set_group_avatar(self, chat: Chat, path: Path) -> MessageRow:
        return await groups.set_avatar(self, chat, path)

    async def leave_group(self, chat: Chat) -> MessageRow:
        return await groups.leave(self, chat)

    def group_info(self, chat: Chat) -> groups.GroupView:
        return groups.info(self.store, chat)

    def _group_message(self, chat: Chat, me: Address, text: str) -> ChatMessage:
        groups.check_can_send(self.store, chat)
        members = self.store.members(chat.id)
        if not chat.key.startswith("group:") or not members:
            raise ClientError(f"chat {chat.id} has no members to send to")
        group = GroupRef(chat.key.partition(":")[2], chat.name)
        msg = builders.new_message(me, tuple(Address(m) for m in members), text, group=group)
        return groups.with_pending(self.store, chat, msg)

    async def reply(self, message: int, text: str) -> MessageRow:
        original, acc = self._original(message)
        me = Address(acc.address, acc.settings.name)
        return await self._send(acc, builders.reply(original, me, text, quote=True))

    async def edit(self, message: int, text: str) -> MessageRow:
        original, acc = self._own(message)
        return await self._send(acc, builders.edit(original, text, self._last_edit(message)))

    async def delete(self, message: int) -> MessageRow:
        original, acc = self._own(message)
        return await self._send(acc, builders.delete(original, self._last_edit(message)))

    def _last_edit(self, message: int) -> ChatMessage | None:
        """The latest edit of ``message``: a new edit's In-Reply-To names it (coi-client-spec:
        "Multiple edits SHOULD reference the last edited message"); Chat-Edit names the
        original, which is what Delta Chat follows."""
        row = self.store.message(message)
        assert row is not None
        for by_message, _ in reversed(self.store.edit_ids(message)):
            if by_message == row.message_id:
                continue
            edit = self.store.message_by_mid(row.account_id, by_message)
            if edit is not None and edit.kind == MessageKind.EDIT.value:
                return parse(self.store.raw(edit.id))
        return None

    async def react(self, message: int, emoji: str) -> MessageRow:
        original, acc = self._original(message)
        me = Address(acc.address, acc.settings.name)
        return await self._send(acc, builders.react(original, me, emoji))

    def _original(self, message: int) -> tuple[ChatMessage, Account]:
        row = self.message(message)
        acc = self.store.account_by_id(row.account_id)
        assert acc is not None
        return parse(self.store.raw(message)), acc

    def _own(self, message: int) -> tuple[ChatMessage, Account]:
        original, acc = self._original(message)
        if not self.message(message).outgoing:
            raise ClientError(f"message {message} is not yours: only your own can be changed")
        return original, acc

    def _seal(self, acc: Account, msg: ChatMessage, raw: bytes) -> tuple[bytes, bool]:
        recipients = sorted({a.addr for a in (*msg.recipients, *msg.cc)})
        date = format_datetime(msg.date) if msg.date else format_datetime(datetime.now(UTC))
        try:
            return self.keyring(acc).seal(raw, recipients, msg.message_id, date)
        except MissingKeys as exc:
            raise ClientError(str(exc)) from None

    async def _send(self, acc: Account, msg: ChatMessage) -> MessageRow:
        msg = profiles.prepare(self.store, acc, msg)  # our profile, a profilerequest
        raw = profiles.with_avatar_header(self.store, acc, msg, compose_bytes(msg))
        wire, encrypted = self._seal(acc, msg, raw)  # encrypted when all keys are known
        applier = Applier(self.store, acc, self.profile.files_dir)
        sent_at = float(int(time.time()))  # whole seconds, as INTERNALDATE
        applied = applier.outgoing(msg, raw, sent_at, encrypted=encrypted)
        recipients = sorted({a.addr for a in (*msg.recipients, *msg.cc)})
        try:
            await self._smtp(acc, msg.sender.addr if msg.sender else acc.address, recipients, wire)
        except SendFailed as exc:
            applier.set_state(applied.message, "failed", str(exc))
            raise
        applier.set_state(applied.message, "sent")
        profiles.sent(self.store, acc, msg)
        if acc.server_kind == "plain":  # a COI server files the submitted copy itself
            try:
                async with self.connected(acc) as sync:
                    await sync.append_sent(applied.message, wire, sent_at)
            except (ClientError, ImapError, OSError) as exc:
                log.warning("sent, but the copy for other devices was not stored: %s", exc)
        return self._visible_row(applied)

    def _visible_row(self, applied: Applied) -> MessageRow:
        row = self.store.message(applied.target or applied.message)
        assert row is not None
        return row

    async def _smtp(self, acc: Account, sender: str, recipients: list[str], raw: bytes) -> None:
        s = acc.settings
        password = self.profile.load_password(acc.address)
        context: ssl.SSLContext | None = (
            None if s.security is Security.PLAIN else tls_context(s.accept_invalid_cert)
        )
        try:
            await aiosmtplib.send(
                raw,
                sender=sender,
                recipients=recipients,
                hostname=s.smtp.host,
                port=s.smtp.port,
                username=s.address,
                password=password,
                use_tls=s.security is Security.SSL,
                start_tls=s.security is Security.STARTTLS,
                tls_context=context,
                validate_certs=not s.accept_invalid_cert,
                timeout=60,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reasons = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise SendFailed(f"the server refused the recipients: {reasons}") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SendFailed(
                f"SMTP login to {s.smtp} failed ({exc.code} {exc.message}): check the password"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"the server refused the message: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"cannot send through {s.smtp}: {exc}") from None

    # -- profiles, pins, polls, locations (coi.client.profiles, coi.client.extras) -------

    async def set_profile(
        self,
        name: str | None = None,
        status: str | None = None,
        avatar: Path | None = None,
        remove_avatar: bool = False,
        account: Account | None = None,
        categories: tuple[str, ...] = (),
    ) -> profiles.ProfileInfo:
        """Changes our profile, or its variant for ``categories``: kept here, stored in
        <root>/Contacts, sent with the next message to each contact it is for
        (coi-client-spec: User Profile Storage Message)."""
        acc = account or self.account()
        try:
            info = profiles.set_own(self.store, acc, self.profile.files_dir / str(acc.id),
                                    name, status, avatar, remove_avatar, categories)  # fmt: skip
        except profiles.ProfileError as exc:
            raise ClientError(str(exc)) from None
        acc = self.store.account_by_id(acc.id) or acc
        default = profiles.own(self.store, acc) or info
        msg = profiles.storage_message(acc, default, profiles.variants(self.store, acc))
        wire, _ = self._seal(acc, msg, compose_bytes(msg))  # encrypted to ourselves
        async with self.connected(acc) as sync:
            assert sync.imap is not None
            await _imap_call(
                acc, profiles.append_storage(sync.imap, self.store, acc, sync.delimiter, wire)
            )
        return info

    def contact_profile(
        self, address: str | None = None, account: Account | None = None
    ) -> profiles.ProfileInfo:
        acc = account or self.account()
        addr = (address or acc.address).strip().lower()
        info = profiles.get(self.store, acc, addr)
        if info is None:
            if addr == acc.address.lower():
                return profiles.ProfileInfo(addr, acc.settings.name)
            raise ClientError(f"no profile known for {addr}")
        return info

    def profile_variants(self, account: Account | None = None) -> list[profiles.ProfileInfo]:
        """Our profile's variants per category (coi-client-spec: User Profile Storage
        Message); the default is ``contact_profile()``."""
        return profiles.variants(self.store, account or self.account())

    async def request_profile(self, to: str, text: str) -> MessageRow:
        """A message to CHAT that asks for the contact's profile (profilerequest)."""
        chat = self.find_chat(to)
        peer = chat.peer if chat is not None else to.strip().lower()
        acc = self.store.account_by_id(chat.account_id) if chat is not None else self.account()
        if not peer or acc is None:
            raise ClientError("a profile request goes to one contact, not to a group")
        profiles.want(self.store, acc, peer)
        return await self.send(to, text, account=acc)

    async def pin(self, message: int, until: datetime | None = None) -> MessageRow:
        """Pins MSG for everyone: a pinned copy of its text answering it
        (coi-client-spec: Pinned Messages)."""
        original, acc = self._original(message)
        me = Address(acc.address, acc.settings.name)
        text = original.text or self.message(message).text
        msg = replace(builders.reply(original, me, text), pin=Pin(until))
        return await self._send(acc, msg)

    def unpin(self, chat: Chat) -> int:
        return extras.unpin(self.store, chat.id)

    async def create_poll(
        self, to: str, question: str, options: list[str], single: bool = False,
        once: bool = False,
    ) -> MessageRow:  # fmt: skip
        if len(options) < 2:
            raise ClientError("a poll needs at least two options")
        poll = Poll(question, tuple(PollOption(o) for o in options), "", not single, once)
        text = poll_text(poll)
        return await self.send(
            to, text, change=lambda m: replace(m, kind=MessageKind.POLL, poll=poll, text=text)
        )

    async def vote(self, message: int, choices: list[int]) -> MessageRow:
        """Votes for options ``choices`` (1-based) of poll MSG; none withdraws."""
        original, acc = self._original(message)
        if original.poll is None:
            raise ClientError(f"message {message} is no poll")
        if any(not 1 <= c <= len(original.poll.options) for c in choices):
            raise ClientError(f"the options are 1 to {len(original.poll.options)}")
        me = Address(acc.address, acc.settings.name)
        msg = builders.vote(original, me, tuple(c - 1 for c in choices))
        await self._send(acc, msg)
        return self.message(message)

    async def close_poll(self, message: int) -> MessageRow:
        original, acc = self._own(message)
        found = extras.poll_result(self.store, self.message(message))
        if original.poll is None or found is None:
            raise ClientError(f"message {message} is no poll")
        await self._send(acc, builders.close_poll(original, found[1].counts))
        return self.message(message)

    async def send_location(
        self, to: str, latitude: float, longitude: float, text: str = ""
    ) -> MessageRow:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ClientError("latitude is -90 to 90, longitude -180 to 180")
        where = Location(latitude, longitude)
        return await self.send(
            to, text, change=lambda m: replace(m, kind=MessageKind.LOCATION, location=where)
        )

    def export(self, chat: Chat, fmt: str) -> bytes:
        return extras.export(self.store, chat, fmt)

    # -- Web Push (coi.client.push) ---------------------------------------------------

    async def push_key(self, account: Account) -> str:
        """The server's VAPID key as a browser's ``applicationServerKey``."""
        async with self.connected(account) as sync:
            assert sync.imap is not None
            try:
                return await _imap_call(account, push.vapid_key(sync.imap))
            except push.PushUnavailable as exc:
                raise ClientError(f"{account.address}: {exc}") from None

    async def push_change(
        self,
        account: Account,
        change: Callable[[ImapClient], Awaitable[None]],
    ) -> None:
        """Runs one subscription change (``push.subscribe``, ``validate``, ``unsubscribe``)
        on a connection of ``account``; the server's refusal comes back as one line."""
        async with self.connected(account) as sync:
            assert sync.imap is not None
            try:
                await _imap_call(account, change(sync.imap))
            except ValueError as exc:
                raise ClientError(str(exc)) from None

    # -- reading ----------------------------------------------------------------------

    async def read(self, chat: Chat) -> int:
        """Marks the chat's messages shown; sends the read receipts that are due.

        # coi-client-spec: Sending Read Receipts: only if the user enabled them, only
        for messages that asked, never to ourselves, never twice ($MDNSent).
        """
        acc = self.store.account_by_id(chat.account_id)
        assert acc is not None
        rows = self.store.unshown(chat.id)
        if not rows:
            return 0
        me = Address(acc.address, acc.settings.name)
        sent = 0
        async with self.connected(acc) as sync:
            for row in rows:
                flags = {f for _, _, fl in self.store.locations(row.id) for f in fl.split()}
                due = (
                    acc.settings.read_receipts
                    and row.receipt_to
                    and row.receipt_to.lower() != acc.address.lower()
                    and not row.mdn_sent
                    and "$MDNSent" not in flags
                )
                add = ["\\Seen"]
                if due:
                    original = parse(self.store.raw(row.id))
                    receipt = builders.read_receipt(original, me)
                    to = sorted({a.addr for a in receipt.recipients})
                    wire, _ = self._seal(acc, receipt, compose_bytes(receipt))
                    await self._smtp(acc, acc.address, to, wire)
                    add.append("$MDNSent")  # spec: set after sending the receipt
                    sent += 1
                await _imap_call(acc, sync.set_flags(row.id, add))
                self.store.mark_shown(row.id, mdn_sent=bool(due))
        return sent


def _attachment(path: Path) -> Attachment:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Attachment(content_type, data, path.name, len(data))


async def _imap_call(account: Account, call: Awaitable[T]) -> T:
    """Turns IMAP and network failures into one line naming the account and server."""
    try:
        return await call
    except TlsFailed as exc:
        hint = ""
        if "certificate" in str(exc) and not account.settings.accept_invalid_cert:
            hint = "; if the server uses a self-signed certificate you trust: --accept-invalid-cert"
        raise ClientError(f"{account.address}: {exc}{hint}") from None
    except ImapError as exc:
        raise ClientError(f"{account.address} ({account.settings.imap}): {exc}") from None
    except ProfileError as exc:
        raise ClientError(str(exc)) from None
    except OSError as exc:
        raise ClientError(f"{account.address} ({account.settings.imap}): {exc}") from None


def _has_dkim(raw: bytes) -> bool:
    """A ``DKIM-Signature`` field in the header of ``raw`` (RFC 6376 §3.5)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    fields = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    return fields["DKIM-Signature"] is not None
