"""One account's sync with its IMAP server.

# coi-client-spec: Checking for Server Side COI Support, Folders, Manual Message Filtering
On connect: CAPABILITY; on a COI server read ``mailbox-root`` and enable COI with
the chosen filter through METADATA (coi-server-spec: Configure COI Usage); on a plain
server create and subscribe ``<root>/Chats``, ``<root>/Contacts`` and ``Blocked``
and file chat messages ourselves.

Each folder (INBOX, ``<root>/Chats``, Sent) is synced incrementally from the state
kept in the local store: QRESYNC when offered (an unchanged folder costs one SELECT),
otherwise CHANGEDSINCE (CONDSTORE) or a flags diff, and a UID SEARCH for expunges.
A UIDVALIDITY change drops the folder's UIDs and fetches it again; messages are
matched by Message-ID, so nothing is duplicated.  Folder state is saved only after
the messages below it are stored, so a sync cut off anywhere resumes where it left.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from coi.chat.detect import is_chat_message_bytes
from coi.chat.parse import parse
from coi.client import contacts as contact_book
from coi.client import storage
from coi.client.apply import Applied, Applier, Opener
from coi.client.profile import FilterMode, Profile, Security
from coi.client.store import Account, Folder, LocalStore
from coi.crypto import KeyPair
from coi.imap.client import ImapClient, QresyncArgs
from coi.imap.wire.responses import FetchData, ListEntry
from coi.store.coi import CONFIG_PREFIX, DEFAULT_ROOT, ENABLED, MAILBOX_ROOT, MESSAGE_FILTER

log = logging.getLogger(__name__)

BLOCKED = "Blocked"
FETCH_BATCH = 100  # messages per UID FETCH of bodies
FETCH_ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"

Progress = Callable[[str, int, int], None]  # folder, done, total


@dataclass
class SyncReport:
    new: int = 0
    changed: int = 0
    removed: int = 0
    applied: list[Applied] = field(default_factory=list)
    bytes_read: int = 0  # IMAP bytes received during this sync (login and set-up not counted)
    bytes_written: int = 0  # IMAP bytes sent during this sync


def tls_context(accept_invalid_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if accept_invalid_cert:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_imap(account: Account, password: str, timeout: float = 30.0) -> ImapClient:
    """Connects and logs in, as the account's settings say."""
    s = account.settings
    client = await ImapClient.connect(
        s.imap.host,
        s.imap.port,
        security=s.security.value,
        ssl_context=None if s.security is Security.PLAIN else tls_context(s.accept_invalid_cert),
        timeout=timeout,
    )
    try:
        await client.login(s.address, password)
    except BaseException:
        await client.close()
        raise
    return client


def _flags_text(flags: tuple[str, ...] | frozenset[str] | list[str]) -> str:
    return " ".join(sorted(flags))


class AccountSync:
    """Syncs one account into the local store over one IMAP connection."""

    def __init__(
        self, store: LocalStore, profile: Profile, account: Account, opener: Opener | None = None
    ) -> None:
        self.store = store
        self.profile = profile
        self.account = account
        self.applier = Applier(store, account, profile.files_dir, opener)
        self.imap: ImapClient | None = None
        self.delimiter = "/"
        self.folders: dict[str, Folder] = {}  # role -> folder
        self._qresync_enabled = False
        self._filed = False  # INBOX moved messages to Chats during this sync
        self._removed_any = False  # UIDs left a folder: look for messages gone everywhere
        self._selected: str | None = None
        self.own_key: Callable[[], KeyPair] | None = None  # encrypts contacts (merging)

    async def connect(self, password: str) -> ImapClient:
        self.imap = await open_imap(self.account, password)
        self._qresync_enabled = False
        await self.setup()
        return self.imap

    async def close(self) -> None:
        if self.imap is not None:
            imap, self.imap = self.imap, None
            try:
                async with asyncio.timeout(5):
                    await imap.logout()
            except Exception:  # the connection is going away anyway
                await imap.close()

    # -- set-up ---------------------------------------------------------------------

    async def setup(self) -> None:
        imap = self._imap()
        entries = await imap.list("", "*")
        if entries:
            self.delimiter = entries[0].delimiter or "/"
        if imap.has("COI"):
            root, changed = await self._setup_coi()
            kind = "coi"
        else:
            root = DEFAULT_ROOT
            changed = await self._setup_plain(entries, root)
            kind = "plain"
        if (kind, root) != (self.account.server_kind, self.account.mailbox_root):
            self.store.set_server_kind(self.account.id, kind, root)
            self.account = self.store.account_by_id(self.account.id) or self.account
            self.applier.account = self.account
        if changed:  # folders may have been made: list again
            entries = await imap.list("", "*")
        names = {e.name for e in entries}
        chats = self.chats_name
        self.folders = {"inbox": self.store.folder(self.account.id, "INBOX", "inbox")}
        if chats in names:
            self.folders["chats"] = self.store.folder(self.account.id, chats, "chats")
        if self.contacts_name in names:  # coi-client-spec: Contact Storage Messages
            self.folders["contacts"] = self.store.folder(
                self.account.id, self.contacts_name, "contacts"
            )
        sent = _special(entries, "\\Sent") or ("Sent" if "Sent" in names else None)
        if sent is not None:
            self.folders["sent"] = self.store.folder(self.account.id, sent, "sent")

    @property
    def chats_name(self) -> str:
        return f"{self.account.mailbox_root}{self.delimiter}Chats"

    @property
    def contacts_name(self) -> str:
        return f"{self.account.mailbox_root}{self.delimiter}Contacts"

    async def _setup_coi(self) -> tuple[str, bool]:
        """coi-server-spec: Getting COI Namespace Configuration, Configure COI Usage.

        Returns the mailbox root and whether the configuration was changed."""
        imap = self._imap()
        config = await imap.getmetadata("", [CONFIG_PREFIX], depth="1")
        raw_root = config.get(MAILBOX_ROOT)
        root = raw_root.decode("utf-8", "replace") if raw_root else DEFAULT_ROOT
        wanted = self.account.settings.filter.value.encode()
        updates: dict[str, bytes | None] = {}
        if config.get(ENABLED) != b"yes":
            updates[ENABLED] = b"yes"
        if (config.get(MESSAGE_FILTER) or b"none") != wanted:
            updates[MESSAGE_FILTER] = wanted
        if updates:
            await imap.setmetadata("", updates)
        return root, bool(updates)

    async def _setup_plain(self, entries: list[ListEntry], root: str) -> bool:
        """coi-client-spec: Folders. Created and subscribed once, on a server without COI
        (a folder the user unsubscribed later stays so); True when one was made."""
        imap = self._imap()
        names = {e.name for e in entries}
        made = False
        for name in (f"{root}{self.delimiter}Chats", f"{root}{self.delimiter}Contacts", BLOCKED):
            if name not in names:
                await imap.create(name)
                await imap.subscribe(name)
                made = True
        return made

    def _imap(self) -> ImapClient:
        if self.imap is None:
            raise RuntimeError("not connected")
        return self.imap

    # -- sync -----------------------------------------------------------------------

    async def sync(self, progress: Progress | None = None) -> SyncReport:
        """Brings every synced folder up to date.

        Our own copies (Sent, Chats) first, so that a reply in INBOX meets the message
        it answers; Chats again when INBOX filed messages there (fallback mode)."""
        report = SyncReport()
        imap = self._imap()
        read0, written0 = imap.bytes_read, imap.bytes_written
        if "contacts" in self.folders:  # first: who is blocked decides what INBOX shows
            book = self.contact_book()
            await book.sync()
            await storage.store_marked(  # groups changed here, for our other devices
                self.store, self.account, imap, book.folder.name, book.own
            )
        for role in ("sent", "chats", "inbox"):
            folder = self.folders.get(role)
            if folder is not None:
                await self.sync_folder(folder, report, progress)
        if self._filed and "chats" in self.folders:
            self._filed = False
            await self.sync_folder(self.folders["chats"], report, progress)
        if self._removed_any:  # a message gone from every folder was deleted elsewhere
            self._removed_any = False
            orphans = self.store.orphans(self.account.id)
            if orphans:
                self.applier.forget(orphans)
                report.removed += len(orphans)
        self.store.mark_synced(self.account.id)
        report.bytes_read = imap.bytes_read - read0
        report.bytes_written = imap.bytes_written - written0
        return report

    @property
    def selected(self) -> str | None:
        """The folder the last sync step left selected."""
        return self._selected

    async def sync_folder(
        self, folder: Folder, report: SyncReport, progress: Progress | None = None
    ) -> None:
        imap = self._imap()
        self._selected = folder.name
        qresync = bool(imap.has("QRESYNC") and folder.uidvalidity and folder.highestmodseq)
        if imap.has("QRESYNC") and not self._qresync_enabled:
            await imap.enable("QRESYNC")  # RFC 7162 §3.2.3: before SELECT (QRESYNC ...)
            self._qresync_enabled = True
        info = await imap.select(
            folder.name,
            condstore=imap.has("CONDSTORE"),
            qresync=QresyncArgs(folder.uidvalidity, folder.highestmodseq) if qresync else None,
        )
        uidvalidity = info.uidvalidity or 0
        uidnext = info.uidnext or 0
        saved_uidnext = folder.uidnext
        top = self.store.max_uid(folder.id)
        if uidvalidity != folder.uidvalidity:
            if folder.uidvalidity:
                log.info("UIDVALIDITY of %s changed: fetching it again", folder.name)
            self.store.reset_folder(folder.id, uidvalidity)
            saved_uidnext, top, qresync = 0, 0, False
            self._removed_any = True
        touched: set[int] = set()
        if top:
            if qresync:  # the server said what changed: nothing to compare locally
                removed, changes = list(info.vanished), list(info.fetches)
            else:
                removed, changes = await self._diff(folder, self.store.folder_uids(folder.id), top)
            if removed and self.store.remove_uids(folder.id, removed):
                self._removed_any = True
            flag_changes = [
                (f.uid, _flags_text(f.flags), f.modseq or 0)
                for f in changes
                if f.uid is not None and f.uid <= top and f.flags is not None
            ]
            report.changed += len(self.store.set_flags(folder.id, flag_changes))
            touched.update(uid for uid, _, _ in flag_changes)
        if not uidnext or uidnext != saved_uidnext:
            touched.update(await self._fetch_new(folder, top, report, progress))
        if folder.role == "inbox" and touched:
            await self._file_chats(folder, touched)
        plain = self.account.server_kind == "plain"  # a COI server files blocked mail itself
        if plain and folder.role in ("inbox", "chats"):
            self._removed_any |= bool(await contact_book.file_blocked(self.store, imap, folder))
        self.store.save_folder_state(folder.id, uidnext, info.highestmodseq or 0)
        self.folders[folder.role] = self.store.folder(self.account.id, folder.name, folder.role)

    async def _diff(
        self, folder: Folder, known: dict[int, str], top: int
    ) -> tuple[list[int], list[FetchData]]:
        """Without QRESYNC: UIDs still there, and flags changed (CHANGEDSINCE when offered)."""
        imap = self._imap()
        present = set(await imap.uid_search(f"UID 1:{top}"))
        removed = [uid for uid in known if uid not in present]
        changes: list[FetchData]
        if imap.has("CONDSTORE") and folder.highestmodseq:
            changes = await imap.uid_fetch(
                f"1:{top}", "(UID FLAGS)", changedsince=folder.highestmodseq
            )
        else:
            every = await imap.uid_fetch(f"1:{top}", "(UID FLAGS)")
            changes = [
                f for f in every if f.uid in known and _flags_text(f.flags or ()) != known[f.uid]
            ]
        return removed, changes

    async def _fetch_new(
        self, folder: Folder, top: int, report: SyncReport, progress: Progress | None
    ) -> list[int]:
        imap = self._imap()
        uids = sorted(u for u in await imap.uid_search(f"UID {top + 1}:*") if u > top)
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            fetched = await imap.uid_fetch(",".join(map(str, batch)), FETCH_ITEMS)
            with self.store.transaction():  # one commit (and fsync) per batch
                for item in sorted(fetched, key=lambda f: f.uid or 0):
                    if item.uid is not None and item.uid > top:
                        self._store_fetched(folder, item, report)
            if progress is not None:
                progress(folder.name, min(start + FETCH_BATCH, len(uids)), len(uids))
        return uids

    def _store_fetched(self, folder: Folder, item: FetchData, report: SyncReport) -> None:
        assert item.uid is not None
        raw = item.body("") or b""
        arrived = item.internaldate.timestamp() if item.internaldate else 0.0
        try:
            with self.store.transaction():  # a savepoint: a failure leaves nothing half-done
                applied = self.applier.incoming(raw, arrived)
        except Exception as exc:  # a message we cannot store must not stop the sync
            log.warning("message UID %d in %s could not be read: %s", item.uid, folder.name, exc)
            applied = self.applier.broken(raw, arrived, str(exc))
        self.store.add_location(
            applied.message, folder.id, item.uid, _flags_text(item.flags or ()), item.modseq or 0
        )
        if applied.event != "known":
            report.new += 1
            report.applied.append(applied)

    async def _file_chats(self, inbox: Folder, candidates: set[int]) -> None:
        """coi-client-spec: Manual Message Filtering, on a plain server only.

        ``none`` (the default) moves nothing: other chat clients (Delta Chat) read INBOX.
        ``active`` moves chat messages to Chats and our own mail sent elsewhere to Sent,
        marked read; ``seen`` moves chat messages once they are \\Seen.
        """
        mode = self.account.settings.filter
        if self.account.server_kind != "plain" or mode is FilterMode.NONE:
            return
        chats = self.folders.get("chats")
        if chats is None:
            return
        imap = self._imap()
        me = self.account.address.lower()
        moves: dict[str, list[int]] = {}
        present = self.store.folder_uids(inbox.id)
        for uid in sorted(candidates & present.keys()):
            row = self.store.db.execute(
                "SELECT m.raw, m.outgoing FROM location l JOIN message m ON m.id = l.message"
                " WHERE l.folder_id=? AND l.uid=?",
                (inbox.id, uid),
            ).fetchone()
            if row is None:
                continue
            raw, outgoing = bytes(row[0]), bool(row[1])
            chat = is_chat_message_bytes(raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
            seen = "\\Seen" in present[uid].split()
            target: str | None = None
            if outgoing and not _addressed_to(raw, me):  # ours, sent to others
                if not seen:
                    await imap.uid_store(str(uid), "+FLAGS", ["\\Seen"])
                sent = self.folders.get("sent")
                if chat and mode is FilterMode.ACTIVE:
                    target = chats.name
                elif sent is not None:
                    target = sent.name
            elif chat and (mode is FilterMode.ACTIVE or seen):
                target = chats.name
            if target:
                moves.setdefault(target, []).append(uid)
        for target, uids in moves.items():
            await imap.uid_move(",".join(map(str, uids)), target)
            self.store.remove_uids(inbox.id, uids)
            self._filed = self._removed_any = True

    def contact_book(self, own: KeyPair | None = None) -> contact_book.ContactBook:
        opener = self.applier.opener
        book = contact_book.ContactBook(
            self.store,
            self.account,
            self._imap(),
            self.store.folder(self.account.id, self.folders["contacts"].name, "contacts"),
            (lambda raw: opener(raw).raw) if opener is not None else None,
            own or (self.own_key() if self.own_key is not None else None),
        )
        files = self.applier.files_dir
        book.on_storage = lambda validity, uid, msg: storage.apply(
            self.store, self.account, files, validity, uid, msg
        )
        return book

    # -- updates ----------------------------------------------------------------------

    async def set_flags(self, message: int, add: list[str]) -> None:
        """STOREs flags on every copy of ``message``; the store records what the
        server confirmed."""
        imap = self._imap()
        for folder, uid, _ in self.store.locations(message):
            await imap.select(folder.name, condstore=imap.has("CONDSTORE"))
            self._selected = folder.name
            fetched = await imap.uid_store(str(uid), "+FLAGS", add, silent=False)
            self.store.set_flags(
                folder.id,
                [
                    (f.uid, _flags_text(f.flags), f.modseq or 0)
                    for f in fetched
                    if f.uid and f.flags
                ],
            )

    async def append_sent(self, message: int, raw: bytes, sent_at: float) -> None:
        """Plain server: the copy other devices see (coi-client-spec: Folders)."""
        imap = self._imap()
        chats = self.folders.get("chats")
        if chats is None:
            return
        date = datetime.fromtimestamp(sent_at, UTC)  # INTERNALDATE: when we sent it
        result = await imap.append(chats.name, raw, flags=["\\Seen", "$Chat"], date=date)
        if result is not None and result.uidvalidity == chats.uidvalidity:
            for uid in result.uids:
                self.store.add_location(message, chats.id, uid, "$Chat \\Seen", 0)


def _special(entries: list[ListEntry], use: str) -> str | None:
    for entry in entries:
        if any(flag.lower() == use.lower() for flag in entry.flags):
            return entry.name
    return None


def _addressed_to(raw: bytes, me: str) -> bool:
    msg = parse(raw)
    return any(a.addr.lower() == me for a in (*msg.recipients, *msg.cc))
