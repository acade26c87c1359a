"""The client spec's semantics applied to the local store, one message at a time.

Pure with respect to the network: sync hands in raw bytes and where they arrived,
sending hands in what it composed.  Rules implemented here:

* One chat per conversation (``coi.chat.groups.conversation_of``); plain email from a
  person lands in that person's chat, marked as email.
* Edits and deletes (# coi-client-spec: Edit and Delete Messages) apply only when the
  sender is the original's sender; each version is kept, the latest (by arrival) is
  shown; one that arrives before its original waits for it.
* Reactions (Delta Chat's RFC 9078 form): one per sender and message, empty removes.
* Read receipts (RFC 8098, batched ones included) mark our message read by the reader;
  our own receipt from another device marks the message shown here too.
* Contact requests: a conversation started by an unknown sender waits until accepted.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coi.chat.groups import conversation_of
from coi.chat.model import Attachment, ChatMessage, Dialect, MessageKind
from coi.chat.parse import parse
from coi.client import extras, groups, profiles
from coi.client.store import Account, LocalStore, MessageRow

VISIBLE_KINDS = frozenset(
    {MessageKind.TEXT, MessageKind.MEDIA, MessageKind.LOCATION, MessageKind.POLL,
     MessageKind.EXTENSION}  # an extension shows its text part (coi-client-spec)
)  # fmt: skip
ENCRYPTED_TEXT = "[encrypted message: this client cannot decrypt it yet]"


@dataclass(frozen=True, slots=True)
class Opened:
    """An incoming message after decryption (coi.client.e2e): what to parse, and how it came."""

    raw: bytes
    encrypted: bool = False
    verified: bool = False  # signed by the key known for its From address


Opener = Callable[[bytes], Opened]


@dataclass(frozen=True, slots=True)
class Applied:
    """What one message did to the store; sync turns it into a client event."""

    message: int  # row id
    event: str  # new, edit, delete, reaction, receipt, hidden, known
    chat_id: int | None
    target: int | None = None  # the message an edit/delete/reaction/receipt changed


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A file name that cannot leave its directory or hide itself."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    base = base[:120]
    return base or fallback


def _save_attachments(
    store: LocalStore, message: int, attachments: tuple[Attachment, ...], directory: Path
) -> None:
    if not attachments:
        return
    directory.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    rows: list[tuple[int, str, str, int, str]] = []
    for attachment in attachments:
        name = safe_filename(attachment.filename)
        stem, dot, ext = name.rpartition(".")
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
        used.add(candidate)
        path = directory / candidate
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            f.write(attachment.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        rows.append((message, candidate, attachment.content_type, len(attachment.data), str(path)))
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO attachment (message, filename, content_type, size, path)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def _display_text(msg: ChatMessage, mailing_list: bool = False) -> str:
    if msg.encrypted and not msg.text:
        return ENCRYPTED_TEXT
    text = msg.text  # quotes and signatures of plain mail are in folded_text
    if not text and msg.kind is MessageKind.MEDIA:
        names = [a.filename or a.content_type for a in msg.attachments]
        text = ", ".join(names)
    subject = " ".join(msg.subject.split())
    if msg.dialect is Dialect.EMAIL and subject and (mailing_list or not _routine(subject)):
        # an email's subject says what it is about: shown before its text, as Delta Chat
        # does (docs/client.md: "Email in chats"); "Re: ..." only repeats a thread's
        return f"{subject} – {text}" if text else subject
    return text


def _routine(subject: str) -> bool:
    """A reply's or forward's subject ("Re:", "AW:", "Fwd:", ...: a colon at 2 or 3), or
    a chat program's ("Chat: ...")."""
    return subject.find(":") in (2, 3) or "Chat:" in subject


def _chat_key_and_peer(msg: ChatMessage, me: str) -> tuple[str, str, str]:
    key = conversation_of(msg, me)
    peer = key.partition(":")[2] if key.startswith("contact:") else ""
    name = msg.group.name if msg.group is not None else ""
    if not name and peer:
        sender = msg.sender
        if sender is not None and sender.addr.lower() == peer and sender.name:
            name = sender.name
        for r in msg.recipients:
            if r.addr.lower() == peer and r.name:
                name = r.name
    return key, peer, name


class Applier:
    """Applies messages of one account to the store."""

    def __init__(
        self, store: LocalStore, account: Account, files_dir: Path, opener: Opener | None = None
    ) -> None:
        self.store = store
        self.account = account
        self.me = account.address.lower()
        self.files_dir = files_dir / str(account.id)
        self.opener = opener

    # -- incoming -------------------------------------------------------------------

    def incoming(self, raw: bytes, arrived: float) -> Applied:
        """A message found on the server; known ones (by Message-ID) are not added twice."""
        opened = self.opener(raw) if self.opener is not None else Opened(raw)
        raw = opened.raw
        msg = parse(raw)
        # Delta Chat's pre-message and full message are one message, keyed by the full
        # message's id (the one its edits and reactions name)
        mid = msg.full_message_id or msg.message_id or _fallback_id(raw)
        known = self.store.message_by_mid(self.account.id, mid)
        if known is not None:
            if known.outgoing and known.state in ("sending", "failed"):
                with self.store.transaction() as db:  # it reached the server after all
                    db.execute("UPDATE message SET state='sent', error='' WHERE id=?", (known.id,))
            if msg.full_message_id == msg.message_id and msg.attachments and known.visible:
                self._complete(known.id, msg, raw)
                return Applied(known.id, "edit", known.chat_id, known.id)
            self._to_list_chat(known, msg, raw)
            return Applied(known.id, "known", known.chat_id)
        applied = self._insert(msg, mid, raw, arrived, opened)
        profiles.received(self.store, self.account, msg, self.files_dir)
        return applied

    def _to_list_chat(self, known: MessageRow, msg: ChatMessage, raw: bytes) -> None:
        """The list's copy of a post whose direct copy came first: the post moves to the
        list's chat, so it shows once, there (coi-client-spec: Group Messaging and
        Mailing Lists)."""
        if known.outgoing or not known.visible or groups.list_headers(raw) is None:
            return
        found = groups.list_chat(self.store, self.account.id, self.me, msg, raw)
        if found is None:
            return
        peer, name = found
        sender = msg.sender.addr.lower() if msg.sender else ""
        request = not self.store.is_known(self.account.id, peer or sender)
        chat_id = self.store.chat_for(self.account.id, f"contact:{peer}", peer, name, request)
        if chat_id != known.chat_id:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE message SET chat_id=?, raw=? WHERE id=?", (chat_id, raw, known.id)
                )

    def _complete(self, row: int, msg: ChatMessage, raw: bytes) -> None:
        """The full message after its pre-message: its files and text replace the stand-in."""
        if self.store.attachments(row):
            return
        with self.store.transaction() as db:
            db.execute(
                "UPDATE message SET kind=?, text=?, raw=? WHERE id=?",
                (msg.kind.value, _display_text(msg), raw, row),
            )
        _save_attachments(self.store, row, msg.attachments, self.files_dir / str(row))

    def _insert(
        self, msg: ChatMessage, mid: str, raw: bytes, arrived: float, opened: Opened
    ) -> Applied:
        msg = groups.private_reply(self.store, self.account.id, self.me, msg, raw)
        in_list = groups.list_chat(self.store, self.account.id, self.me, msg, raw)
        sender = msg.sender.addr.lower() if msg.sender else ""
        outgoing = sender == self.me
        # system messages (Delta Chat's member changes, key updates...) carry machine text
        visible = not msg.system_event and (
            msg.kind in VISIBLE_KINDS or (msg.encrypted and msg.kind is MessageKind.TEXT)
        )
        if self.account.settings.encrypt_only and not opened.encrypted:
            visible = visible and msg.dialect is Dialect.EMAIL  # chat mail in clear: hidden
        chat_id: int | None = None
        kind, text = msg.kind.value, _display_text(msg, in_list is not None)
        change = None
        if (visible or groups.is_change(msg)) and not (
            self.account.settings.encrypt_only and not opened.encrypted
        ):
            change = groups.apply(self.store, self.account.id, self.me, msg, self.files_dir)
        if change is not None and change.line:  # a group change: one system line
            visible, chat_id, kind, text = True, change.chat_id, groups.SYSTEM_KIND, change.line
        elif visible:
            key, peer, name = _chat_key_and_peer(msg, self.me)
            if in_list is not None:  # a mailing list: a 1:1 chat with the list's address
                peer, name = in_list
                key = f"contact:{peer}"
            request = False
            if not outgoing and (peer or key.startswith("adhoc:")):
                request = not self.store.is_known(self.account.id, peer or sender)
            if outgoing and peer:
                self.store.remember_contact(self.account.id, peer, name, accepted=True)
            chat_id = self.store.chat_for(self.account.id, key, peer, name, request)
            if outgoing and peer:
                self.store.accept_chat(chat_id)  # we wrote to them: no request any more
            if not peer and change is None:  # ad-hoc: everyone the message went to, less us
                everyone = [msg.sender, *msg.recipients, *msg.cc] if msg.sender else []
                members = {a.addr.lower() for a in everyone} - {self.me}
                members -= {a.lower() for a in msg.members_removed}
                if members:
                    self.store.set_members(chat_id, sorted(members))
                if outgoing:
                    self.store.accept_chat(chat_id)
        date = msg.date.timestamp() if msg.date else arrived
        parents = sorted({*msg.references, *([msg.in_reply_to] if msg.in_reply_to else [])})
        if visible:
            arrived, date = self._after_parents(parents, arrived, date)
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO message (account_id, chat_id, message_id, kind, sender, sender_name,"
                " outgoing, text, subject, is_email, visible, arrived, seq, date_header,"
                " in_reply_to, target, state, receipt_to, raw, encrypted, verified)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.account.id, chat_id, mid, kind, sender,
                    msg.sender.name if msg.sender else "", int(outgoing), text,
                    msg.subject, int(msg.dialect is Dialect.EMAIL), int(visible), arrived,
                    self.store.next_seq(), date,
                    msg.in_reply_to or "", msg.target_message_id or "",
                    "sent" if outgoing else "received",
                    msg.read_receipt_to.addr if msg.read_receipt_to else "", raw,
                    int(opened.encrypted), int(opened.verified),
                ),
            )  # fmt: skip
            row = int(cur.lastrowid or 0)
            if visible:
                db.executemany(
                    "INSERT OR IGNORE INTO parent (message, mid) VALUES (?, ?)",
                    [(row, p) for p in parents],
                )
                self._children_after(db, mid, arrived, date)
        if visible:
            _save_attachments(self.store, row, msg.attachments, self.files_dir / str(row))
            extras.applied(self.store, row, msg, chat_id, arrived)
            self._apply_waiting(row, mid, sender)
            return Applied(row, "new", chat_id)
        return self._apply_action(row, msg, sender, arrived)

    def _after_parents(
        self, parents: list[str], arrived: float, date: float
    ) -> tuple[float, float]:
        """Sort keys no earlier than those of the stored messages this one references."""
        if not parents:
            return arrived, date
        marks = ",".join("?" * len(parents))
        row = self.store.db.execute(
            f"SELECT max(arrived), max(date_header) FROM message WHERE account_id=? AND visible=1"
            f" AND message_id IN ({marks})",
            (self.account.id, *parents),
        ).fetchone()
        if row is None or row[0] is None:
            return arrived, date
        return max(arrived, float(row[0])), max(date, float(row[1]))

    def _children_after(
        self, db: sqlite3.Connection, mid: str, arrived: float, date: float
    ) -> None:
        """Messages stored earlier that reference this one move behind it (a second device
        can meet a reply in one folder before its parent in another)."""
        children = db.execute(
            "SELECT m.id FROM parent p JOIN message m ON m.id = p.message WHERE p.mid=?"
            " AND m.account_id=? AND (m.arrived < ? OR (m.arrived = ? AND m.date_header <= ?))",
            (mid, self.account.id, arrived, arrived, date),
        ).fetchall()
        for (child,) in children:
            db.execute(
                "UPDATE message SET arrived=?, date_header=max(date_header, ?), seq=? WHERE id=?",
                (arrived, date, self.store.next_seq(), int(child)),
            )

    def _apply_action(self, row: int, msg: ChatMessage, sender: str, arrived: float) -> Applied:
        kind = msg.kind
        if kind in (MessageKind.EDIT, MessageKind.DELETE):
            target = self._resolve_target(msg.target_message_id)
            if target is None:
                return self._wait_for(row, msg.target_message_id or "")
            return self._edit(row, target, msg, sender, arrived)
        if kind is MessageKind.REACTION and msg.target_message_id:
            target = self._resolve_target(msg.target_message_id)
            if target is None:
                return self._wait_for(row, msg.target_message_id)
            with self.store.transaction() as db:
                if msg.reaction:
                    db.execute(
                        "INSERT INTO reaction (message, sender, emoji, at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT DO UPDATE SET emoji=excluded.emoji, at=excluded.at"
                        " WHERE excluded.at >= at",
                        (target, sender, msg.reaction, arrived),
                    )
                else:
                    db.execute(
                        "DELETE FROM reaction WHERE message=? AND sender=? AND at <= ?",
                        (target, sender, arrived),
                    )
            return Applied(row, "reaction", self._chat_of(target), target)
        if kind is MessageKind.READ_RECEIPT and msg.receipt is not None:
            return self._receipt(row, msg, sender, arrived)
        poll = extras.poll_of(self.store, self.account.id, msg)  # a vote or close changes it
        if poll is not None:
            return Applied(row, "vote", poll.chat_id, poll.id)
        return Applied(row, "hidden", None)

    def _resolve_target(self, message_id: str | None) -> int | None:
        """The visible message an action is about, following chains of edits."""
        seen: set[str] = set()
        while message_id and message_id not in seen:
            seen.add(message_id)
            target = self.store.message_by_mid(self.account.id, message_id)
            if target is None:
                return None
            if target.visible:
                return target.id
            message_id = target.target
        return None

    def _chat_of(self, message: int) -> int | None:
        row = self.store.message(message)
        return None if row is None else row.chat_id

    def _edit(self, row: int, target: int, msg: ChatMessage, sender: str, at: float) -> Applied:
        original = self.store.message(target)
        assert original is not None
        if original.sender.lower() != sender:  # spec: "from the same sender"
            return Applied(row, "hidden", None)
        deleted = msg.kind is MessageKind.DELETE
        with self.store.transaction() as db:
            if not db.execute("SELECT 1 FROM edit WHERE message=?", (target,)).fetchone():
                db.execute(  # the original text is the first version
                    "INSERT INTO edit (message, by_message, text, deleted, at) VALUES (?,?,?,0,?)",
                    (target, original.message_id, original.text, original.arrived),
                )
            db.execute(
                "INSERT OR IGNORE INTO edit (message, by_message, text, deleted, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (target, msg.message_id, "" if deleted else _display_text(msg), int(deleted), at),
            )
            latest = db.execute(
                "SELECT text FROM edit WHERE message=? AND deleted=0 ORDER BY at DESC, rowid DESC"
                " LIMIT 1",
                (target,),
            ).fetchone()
            any_delete = db.execute(
                "SELECT 1 FROM edit WHERE message=? AND deleted=1", (target,)
            ).fetchone()
            db.execute(
                "UPDATE message SET text=?, edited=1, deleted=? WHERE id=?",
                # a deleted message shows no text; its versions stay in the history
                (
                    "" if any_delete or not latest else str(latest[0]),
                    int(any_delete is not None),
                    target,
                ),
            )
        return Applied(row, "delete" if deleted else "edit", original.chat_id, target)

    def _wait_for(self, row: int, target: str) -> Applied:
        """An action whose message has not arrived (yet): applied when it does."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO waiting (message, target) VALUES (?, ?)", (row, target)
            )
        return Applied(row, "hidden", None)

    def _apply_waiting(self, row: int, mid: str, sender: str) -> None:
        """Edits, deletes, reactions and receipts that arrived before their message."""
        waiting = self.store.db.execute(
            "SELECT m.id, m.raw, m.arrived FROM waiting w JOIN message m ON m.id = w.message"
            " WHERE w.target=? AND m.account_id=? ORDER BY m.arrived, m.seq",
            (mid, self.account.id),
        ).fetchall()
        if not waiting:
            return
        with self.store.transaction() as db:
            db.execute("DELETE FROM waiting WHERE target=?", (mid,))
        for wid, raw, arrived in waiting:
            msg = parse(bytes(raw))
            wsender = msg.sender.addr.lower() if msg.sender else ""
            self._apply_action(int(wid), msg, wsender, float(arrived))
            if msg.message_id:  # an edit of this edit may be waiting too (COI edit chains)
                self._apply_waiting(int(wid), msg.message_id, wsender)

    def _receipt(self, row: int, msg: ChatMessage, sender: str, at: float) -> Applied:
        assert msg.receipt is not None
        ids = msg.receipt.message_ids  # Delta Chat batches: Additional-Message-IDs
        target: int | None = None
        with self.store.transaction() as db:
            for mid in ids:
                found = self.store.message_by_mid(self.account.id, mid)
                if found is None:
                    db.execute(
                        "INSERT OR IGNORE INTO waiting (message, target) VALUES (?, ?)", (row, mid)
                    )
                    continue
                target = found.id
                if sender == self.me:  # we read it on another device
                    db.execute("UPDATE message SET shown=1, mdn_sent=1 WHERE id=?", (found.id,))
                elif found.outgoing:
                    db.execute(
                        "INSERT OR IGNORE INTO receipt (message, reader, at) VALUES (?, ?, ?)",
                        (found.id, sender, at),
                    )
        chat = self._chat_of(target) if target is not None else None
        return Applied(row, "receipt", chat, target)

    # -- outgoing -------------------------------------------------------------------

    def outgoing(
        self, msg: ChatMessage, raw: bytes, arrived: float, encrypted: bool = False
    ) -> Applied:
        """A message we are about to send (``raw`` before encryption): recorded first, as
        'sending'."""
        applied = self._insert(msg, msg.message_id, raw, arrived, Opened(raw, encrypted, encrypted))
        with self.store.transaction() as db:
            db.execute("UPDATE message SET state='sending' WHERE id=?", (applied.message,))
        return applied

    def broken(self, raw: bytes, arrived: float, reason: str) -> Applied:
        """A message that could not be applied: kept hidden, so it is not fetched again."""
        mid = _fallback_id(raw)
        known = self.store.message_by_mid(self.account.id, mid)
        if known is not None:
            return Applied(known.id, "known", None)
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO message (account_id, message_id, kind, visible, arrived, seq, error,"
                " raw) VALUES (?, ?, 'broken', 0, ?, ?, ?, ?)",
                (self.account.id, mid, arrived, self.store.next_seq(), reason[:500], raw),
            )
        return Applied(int(cur.lastrowid or 0), "hidden", None)

    def reopen_undecryptable(self) -> int:
        """Applies again the messages that came before we had the key to read them (a key
        imported from another device); returns how many could be read now."""
        rows = self.store.db.execute(
            "SELECT id, arrived FROM message WHERE account_id=? AND encrypted=1 AND text=?",
            (self.account.id, ENCRYPTED_TEXT),
        ).fetchall()
        reopened = 0
        for row, arrived in rows:
            raw = self.store.raw(int(row))
            opened = self.opener(raw) if self.opener is not None else Opened(raw)
            if opened.raw is raw:
                continue  # still unreadable
            places = self.store.locations(int(row))
            self.forget([int(row)])
            applied = self.incoming(raw, float(arrived))
            for folder, uid, flags in places:
                self.store.add_location(applied.message, folder.id, uid, flags, 0)
            reopened += 1
        return reopened

    def set_state(self, message: int, state: str, error: str = "") -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE message SET state=?, error=? WHERE id=?", (state, error, message))

    def forget(self, messages: list[int]) -> None:
        """Messages expunged on the server by another device."""
        paths: list[str] = []
        with self.store.transaction() as db:
            for message in messages:
                paths += [
                    str(r[0])
                    for r in db.execute("SELECT path FROM attachment WHERE message=?", (message,))
                ]
                db.execute("DELETE FROM message WHERE id=?", (message,))
        for path in paths:
            Path(path).unlink(missing_ok=True)


def _fallback_id(raw: bytes) -> str:
    """A stable id for a message without Message-ID, so a resync does not duplicate it."""
    return "coi-local-" + hashlib.sha256(raw).hexdigest()[:32]
