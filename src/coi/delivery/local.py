"""Local delivery: classify, route and store one message for one local user.

Invariants: the COI filter and blocking are decided *before* anything is stored
(coi-server-spec: Configure Message Filtering), so only the target mailbox sees a
MessagesAdded event. `deliver` returns only after the store's append is durable; callers
send their 250 after it returns and never before.
"""

from __future__ import annotations

import logging
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from coi.chat.detect import is_chat_message_bytes
from coi.delivery.blocking import BlockIndex
from coi.delivery.facts import DeliveryFacts
from coi.delivery.routing import (
    CoiSettingsSource,
    DisabledCoiSource,
    Route,
    route,
    route_sent,
)
from coi.mail.prepare import prepare_async
from coi.store import quota
from coi.store.errors import MailboxExists
from coi.store.events import Delivered
from coi.store.model import Mailbox, User
from coi.store.protocol import Store
from coi.store.sentcopies import message_id

log = logging.getLogger("coi.delivery")


def split_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def header_block(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw


def from_addresses(raw: bytes) -> list[str]:
    """Addresses in the From header(s), lowercased."""
    message = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    values = [str(v) for v in message.get_all("From") or []]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


class LocalDelivery:
    def __init__(
        self,
        store: Store,
        domains: tuple[str, ...] = (),
        settings: CoiSettingsSource | None = None,
        detect_encrypted: bool = True,
        recipient_delimiter: str = "+",
        postmaster: str = "",
        default_quota: int = 0,
    ) -> None:
        self.default_quota = default_quota
        self.store = store
        self.recipient_delimiter = recipient_delimiter
        self.postmaster = postmaster.strip().lower()
        self.domains = tuple(d.lower() for d in domains)
        self.settings: CoiSettingsSource = settings or DisabledCoiSource()
        # coi_detect_encrypted: also file PGP/MIME mail with Subject "[...]" as chat
        self.detect_encrypted = detect_encrypted
        self.blocks = BlockIndex(store)
        # COI settings and target mailboxes, kept by the store's events (delivery/facts.py)
        self.facts = DeliveryFacts(store, self.settings)

    def close(self) -> None:
        self.blocks.close()
        self.facts.close()

    def is_local_domain(self, address: str) -> bool:
        """One of `--domain`; without any configured, a domain some user here has."""
        domain = split_domain(address)
        if self.domains:
            return domain in self.domains
        return any(split_domain(u.address) == domain for u in self.store.list_users())

    def local_user(self, address: str) -> User | None:
        """The user mail to ``address`` goes to: the user of that address, an alias, the
        user of a sub-address (``user+tag@``), the domain's catch-all (``@domain``), and
        for ``postmaster@`` and ``abuse@`` a local domain's postmaster, which must always
        be deliverable (RFC 5321 §4.5.1, RFC 2142 §2)."""
        address = address.strip().lower()
        found = self.store.get_user(address) or self.store.alias_target(address)
        if found is not None:
            return found
        local, _, domain = address.rpartition("@")
        if not local or not domain:
            return None
        if self.recipient_delimiter and self.recipient_delimiter in local:
            base = local.split(self.recipient_delimiter, 1)[0] + "@" + domain
            found = self.store.get_user(base) or self.store.alias_target(base)
            if found is not None:
                return found
        found = self.store.alias_target("@" + domain)
        if found is None and local in ("postmaster", "abuse") and self.is_local_domain(address):
            found = self.postmaster_of(domain)
        return found

    async def read_recipient(self, address: str) -> tuple[User, tuple[int, int]] | None:
        """The local user of `address` (aliases followed, as `local_user`) and its
        quota `usage`: one round trip for a user's own address (RCPT, for each recipient)."""
        found = await self.store.read_recipient(address.strip().lower(), self.default_quota)
        if found is not None:
            return found
        user = self.local_user(address)
        return None if user is None else (user, await self.usage(user))

    def postmaster_of(self, domain: str) -> User | None:
        """``postmaster`` from the config, else the domain's first user (docs/deploy.md)."""
        if self.postmaster:
            found = self.store.get_user(self.postmaster)
            if found is not None:
                return found
        users = [u for u in self.store.list_users() if split_domain(u.address) == domain]
        return min(users, key=lambda u: u.id) if users else None

    def is_local(self, address: str) -> bool:
        """Delivered here rather than relayed: one of our domains, or a user we have."""
        return self.is_local_domain(address) or self.local_user(address) is not None

    def is_chat(self, raw: bytes) -> bool:
        """The delivery-time classification (coi.chat.detect with this server's setting)."""
        return is_chat_message_bytes(header_block(raw), detect_encrypted=self.detect_encrypted)

    async def deliver(
        self, user: User, raw: bytes, sender: str, *, quota_checked: bool = False
    ) -> Route:
        """Files an incoming message for `user`; returns once it is durable.
        `quota_checked`: the caller found that `raw` fits (`usage`), so it is not read again."""
        settings = await self.facts.settings(user.id)
        is_chat = self.is_chat(raw)
        blocked = False
        if settings.enabled:
            # COI-From-Hash names From addresses; the envelope sender (lists, forwarders,
            # bounces) is not what the user blocked
            blocked = any(
                self.blocks.is_blocked(user.id, settings.contacts_mailbox, address)
                for address in from_addresses(raw)
            )
        target = route(settings, is_chat, blocked)
        if not quota_checked:  # raises OverQuota
            await quota.check(self.store, user.id, self.default_quota, len(raw))
        await self._store(user, target, raw)
        log.info(
            "delivered user=%s mailbox=%s chat=%s blocked=%s size=%d",
            user.address,
            target.mailbox,
            is_chat,
            blocked,
            len(raw),
        )
        return target

    async def usage(self, user: User) -> tuple[int, int]:
        """(limit, octets used) of the user's quota (0: no limit); see `quota.exceeds`."""
        return await self.store.read_usage(user.id, self.default_quota)

    async def store_sent(self, user: User, raw: bytes, sent_folder: str | None = None) -> Route:
        """Keeps the sender's own copy of a submitted message, \\Seen."""
        settings = await self.facts.settings(user.id)
        is_chat = self.is_chat(raw)
        target = route_sent(settings, is_chat, sent_folder or self._sent_name(user))
        # raises OverQuota; awaited: a networked store serves other sessions meanwhile
        await quota.check(self.store, user.id, self.default_quota, len(raw))
        mailbox_id, uid = await self._store(user, target, raw)
        msgid = message_id(raw)
        if msgid is not None:  # a client's own copy of it is not stored again (APPEND)
            self.store.sent_copies.remember(user.id, mailbox_id, msgid, uid)
        return target

    def _sent_name(self, user: User) -> str:
        for mailbox in self.store.list_mailboxes(user.id):
            if mailbox.special_use == "\\Sent":
                return mailbox.name
        return "Sent"

    async def _store(self, user: User, target: Route, raw: bytes) -> tuple[int, int]:
        """(mailbox id, UID) of the stored message."""
        mailbox = await self.mailbox_for(user.id, target)
        flags = (*target.keywords, *(("\\Seen",) if target.seen else ()))
        message = await prepare_async(raw, flags, None)
        _, uids = await self.store.append(mailbox.id, [message], origin=Delivered(target.push))
        return mailbox.id, uids[0]

    async def mailbox_for(self, user_id: int, target: Route) -> Mailbox:
        mailbox = await self.facts.mailbox(user_id, target.mailbox)
        if mailbox is not None:
            return mailbox
        # coi-server-spec: the server MUST create <root>/Chats if missing; SHOULD subscribe it
        special = "\\Sent" if target.mailbox == "Sent" else ""
        try:
            mailbox = await self.store.create_mailbox(user_id, target.mailbox, special)
        except MailboxExists:
            mailbox = self.store.get_mailbox(user_id, target.mailbox)
            if mailbox is None:
                raise
            return mailbox
        await self.store.set_subscribed(user_id, target.mailbox, True)
        return mailbox
