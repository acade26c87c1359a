"""Group management: renaming, adding and removing members, leaving, and applying
what others changed (# coi-client-spec: Group Messages and its subsections).

Every change is a group message to the members before and after it, so a removed
member learns of the removal.  Delta Chat applies changes only from its headers
(``Chat-Group-Name-Changed`` with the old name beside the new ``Chat-Group-Name``,
``Chat-Group-Member-Added``/``-Removed`` with one address each; a member it does not
know yet needs an Autocrypt-Gossip key, which ``e2e.Keyring.seal`` adds for every
recipient); COI reads the same headers, the Subject, ``groupinfo`` parts and
``groupleft``.  Incoming, a message's To list only ever adds members: removals come
from the headers and ``groupleft`` alone.  Changes are recorded as visible system
lines (message kind ``system``) so a chat tells what happened.
"""

from __future__ import annotations

import mimetypes
import re
import time
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from coi.chat import builders
from coi.chat.headers import group_id_from_message_id, strip_reply_prefixes
from coi.chat.model import Address, Card, ChatMessage, Dialect, GroupInfo, GroupRef, MessageKind
from coi.client.store import Account, Chat, LocalStore, MessageRow

if TYPE_CHECKING:
    from coi.client.client import Client

KEY_PREFIX = "group:"
_CHAT_KINDS = frozenset({MessageKind.TEXT, MessageKind.MEDIA})
SYSTEM_KIND = "system"


@dataclass(frozen=True, slots=True)
class GroupView:
    """What ``coi group info`` shows."""

    chat_id: int
    group_id: str
    name: str
    members: tuple[str, ...]  # without us
    left: bool  # we left or were removed
    description: str = ""
    avatar: str = ""  # the image's path, "" for none


@dataclass(frozen=True, slots=True)
class Change:
    """What one incoming or outgoing message did to a group."""

    chat_id: int
    line: str = ""  # the system line to show; "" for an ordinary message


# -- local state ------------------------------------------------------------------------


def group_id(chat: Chat) -> str:
    from coi.client.client import ClientError

    if not chat.key.startswith(KEY_PREFIX):
        raise ClientError(f"chat {chat.id} is not a group")
    return chat.key[len(KEY_PREFIX) :]


def has_left(store: LocalStore, chat_id: int) -> bool:
    return (
        store.db.execute("SELECT 1 FROM group_left WHERE chat_id=?", (chat_id,)).fetchone()
        is not None
    )


def _set_left(store: LocalStore, chat_id: int, left: bool) -> None:
    with store.transaction() as db:
        if left:
            db.execute("INSERT OR IGNORE INTO group_left (chat_id) VALUES (?)", (chat_id,))
        else:
            db.execute("DELETE FROM group_left WHERE chat_id=?", (chat_id,))


def _pending(store: LocalStore, chat_id: int, what: str, on: bool) -> None:
    with store.transaction() as db:
        if on:
            db.execute("INSERT OR IGNORE INTO group_pending VALUES (?, ?)", (chat_id, what))
        else:
            db.execute("DELETE FROM group_pending WHERE chat_id=? AND what=?", (chat_id, what))


def with_pending(store: LocalStore, chat: Chat, msg: ChatMessage) -> ChatMessage:
    """Our next user message to a group asks for the group information when we rebuilt
    the group from a message, and carries it when someone asked, or when it is the
    first message of the group.

    # coi-client-spec: Request Group Information; Group Information Message Part ("When
    creating a new group, COI clients SHOULD include the group description in the first
    user generated message")
    """
    pending = {
        str(r[0])
        for r in store.db.execute("SELECT what FROM group_pending WHERE chat_id=?", (chat.id,))
    }
    if not store.messages(chat.id, 1):
        pending.add("info")
    if "request" in pending:
        msg = replace(msg, requests_group_info=True)
    if "info" in pending and msg.group is not None and msg.sender is not None:
        everyone = sorted({*store.members(chat.id), msg.sender.addr.lower()})
        cards = tuple(Card(emails=(a,)) for a in everyone)
        description = details(store, chat.id)[0]
        msg = replace(
            msg, group_info=GroupInfo(msg.group.id, msg.group.name, description, participants=cards)
        )
    return msg


def info(store: LocalStore, chat: Chat) -> GroupView:
    chat = store.chat(chat.id) or chat  # the name as it is now
    description, avatar = details(store, chat.id)
    return GroupView(
        chat.id, group_id(chat), chat.name, tuple(store.members(chat.id)),
        has_left(store, chat.id), description, avatar,
    )  # fmt: skip


# -- description and avatar (# coi-client-spec: Processing Group Description and Avatar Changes)


def details(store: LocalStore, chat_id: int) -> tuple[str, str]:
    """The group's description and avatar path ("" when none)."""
    row = store.db.execute(
        "SELECT description, avatar FROM group_details WHERE chat_id=?", (chat_id,)
    ).fetchone()
    return ("", "") if row is None else (str(row[0]), str(row[1]))


def set_details(
    store: LocalStore, chat_id: int, description: str | None = None, avatar: str | None = None
) -> None:
    """Changes what is given (None keeps it)."""
    old_description, old_avatar = details(store, chat_id)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO group_details (chat_id, description, avatar) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET description=excluded.description, avatar=excluded.avatar",
            (
                chat_id,
                old_description if description is None else description,
                old_avatar if avatar is None else avatar,
            ),
        )


def photo_url(store: LocalStore, chat_id: int) -> str:
    """The avatar as the ``data:`` URL an h-group's ``u-photo`` carries ("" for none)."""
    from coi.client.profiles import _data_url

    return _data_url(details(store, chat_id)[1])


def save_photo(store: LocalStore, chat_id: int, url: str, files_dir: Path) -> bool:
    """Keeps the avatar of a ``u-photo`` data URL under ``files_dir``; False if unusable."""
    from coi.client.profiles import MAX_AVATAR, _decode_data_url, _image_path, _write

    decoded = _decode_data_url(url)
    if decoded is None or len(decoded[1]) > MAX_AVATAR or not decoded[0].startswith("image/"):
        return False
    content_type, data = decoded
    path = _image_path(files_dir / "groups", f"group-{chat_id}", content_type)
    set_details(store, chat_id, avatar=_write(path, data))
    return True


def _apply_details(
    store: LocalStore, chat_id: int, info: GroupInfo, files_dir: Path | None
) -> None:
    """What a groupinfo part or group storage message says of description and avatar;
    absent ones keep what we know (Delta Chat and older messages carry neither)."""
    description = " ".join(info.description.split())
    if description:
        set_details(store, chat_id, description=description)
    if info.photo and files_dir is not None:
        save_photo(store, chat_id, info.photo, files_dir)


def check_can_send(store: LocalStore, chat: Chat) -> None:
    """Called before sending to a group chat."""
    from coi.client.client import ClientError

    if chat.key.startswith(KEY_PREFIX) and has_left(store, chat.id):
        raise ClientError(f"you are no longer a member of group {chat.id} ({chat.name})")


# -- sending ----------------------------------------------------------------------------


def _context(client: Client, chat: Chat) -> tuple[Account, Address, str, list[str]]:
    gid = group_id(chat)
    check_can_send(client.store, chat)
    acc = client.store.account_by_id(chat.account_id)
    assert acc is not None
    return acc, Address(acc.address, acc.settings.name), gid, client.store.members(chat.id)


def _message(
    me: Address,
    to: list[str],
    text: str,
    gid: str,
    name: str,
    after: list[str],
    description: str = "",
    photo: str = "",
) -> ChatMessage:
    """A group change to ``to``; its ``groupinfo`` part lists the members ``after`` it,
    us included (# coi-client-spec: Processing Group Participants Changes), and the
    description (and the avatar when it changes)."""
    msg = builders.new_message(
        me, tuple(Address(a) for a in sorted(set(to))), text, GroupRef(gid, name)
    )
    everyone = sorted({*after, me.addr.lower()})
    info = GroupInfo(
        gid, name, description, photo, participants=tuple(Card(emails=(a,)) for a in everyone)
    )
    return replace(msg, read_receipt_to=None, group_info=info)


async def rename(client: Client, chat: Chat, name: str) -> MessageRow:
    from coi.client.client import ClientError

    chat = client.store.chat(chat.id) or chat

    acc, me, gid, members = _context(client, chat)
    name = " ".join(name.split())
    if not name:
        raise ClientError("a group needs a name")
    text = f'Group name changed from "{chat.name}" to "{name}".'
    msg = _message(me, members, text, gid, name, members, details(client.store, chat.id)[0])
    msg = replace(
        msg,
        system_event="group-name-changed",
        chat_headers=(("chat-group-name-changed", chat.name),),
    )
    return await _sent(client, acc, chat, msg)


def _address(addr: str) -> str:
    from coi.client.client import ClientError

    addr = addr.strip().lower()
    if "@" not in addr or " " in addr:
        raise ClientError(f"{addr!r} is not a mail address")
    return addr


async def add_member(client: Client, chat: Chat, addr: str) -> MessageRow:
    from coi.client.client import ClientError

    acc, me, gid, members = _context(client, chat)
    addr = _address(addr)
    if addr == acc.address.lower() or addr in members:
        raise ClientError(f"{addr} is already in the group")
    after = [*members, addr]
    msg = _message(
        me, after, f"Member {addr} added.", gid, chat.name, after, details(client.store, chat.id)[0]
    )
    return await _sent(
        client, acc, chat, replace(msg, system_event="member-added", members_added=(addr,))
    )


async def remove_member(client: Client, chat: Chat, addr: str) -> MessageRow:
    from coi.client.client import ClientError

    acc, me, gid, members = _context(client, chat)
    addr = _address(addr)
    if addr not in members:
        raise ClientError(f"{addr} is not in the group")
    # to everyone before the change: the removed member learns of it too
    after = [m for m in members if m != addr]
    msg = _message(
        me,
        members,
        f"Member {addr} removed.",
        gid,
        chat.name,
        after,
        details(client.store, chat.id)[0],
    )
    msg = replace(msg, system_event="member-removed", members_removed=(addr,))
    return await _sent(client, acc, chat, msg)


async def describe(client: Client, chat: Chat, text: str) -> MessageRow:
    """A new description, told to the members in a groupinfo part.

    # coi-client-spec: Processing Group Description and Avatar Changes
    """
    from coi.client.client import ClientError

    chat = client.store.chat(chat.id) or chat
    acc, me, gid, members = _context(client, chat)
    text = " ".join(text.split())
    if not text:
        raise ClientError("give the group a description")
    line = f'Group description changed to "{text}".'
    msg = _message(me, members, line, gid, chat.name, members, text)
    return await _sent(client, acc, chat, msg)


async def set_avatar(client: Client, chat: Chat, path: Path) -> MessageRow:
    """A new group avatar, told to the members in a groupinfo part's ``u-photo``."""
    from coi.client.client import ClientError
    from coi.client.profiles import MAX_AVATAR, _data_url

    chat = client.store.chat(chat.id) or chat
    acc, me, gid, members = _context(client, chat)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    if size > MAX_AVATAR:
        raise ClientError(
            f"{path} has {size} bytes: a group avatar travels in messages, keep it under"
            f" {MAX_AVATAR // 1024} kB"
        )
    if not (mimetypes.guess_type(path.name)[0] or "").startswith("image/"):
        raise ClientError(f"{path} is no image")
    photo = _data_url(str(path))
    description = details(client.store, chat.id)[0]
    msg = _message(me, members, "Group avatar changed.", gid, chat.name, members, description,
                   photo)  # fmt: skip
    return await _sent(client, acc, chat, msg)


async def leave(client: Client, chat: Chat) -> MessageRow:
    acc, me, gid, members = _context(client, chat)
    msg = replace(_message(me, members, "Group left.", gid, chat.name, []), group_info=None)
    # groupleft for COI (Reply-To: the others, set by compose), the removal of the
    # sender for Delta Chat
    msg = replace(
        msg, kind=MessageKind.GROUP_LEFT, system_event="member-removed",
        members_removed=(acc.address.lower(),),
    )  # fmt: skip
    return await _sent(client, acc, chat, msg)


async def _sent(client: Client, acc: Account, chat: Chat, msg: ChatMessage) -> MessageRow:
    """Sends a change, then stores the group storage message for our other devices."""
    from coi.client import storage

    row = await client._send(acc, msg)
    storage.mark(client.store, chat.id)
    await client.store_groups(acc)
    return row


# -- receiving --------------------------------------------------------------------------


def _header_group(msg: ChatMessage) -> bool:
    """The message itself names its group (not only through a References id)."""
    return group_id_from_message_id(msg.message_id) is not None or any(
        name.lower() == "chat-group-id" for name, _ in msg.chat_headers
    )


def _mailing_list(raw: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return (
        BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n").get("List-Id") is not None
    )


def list_headers(raw: bytes) -> tuple[str, str] | None:
    """(List-Id phrase or id, posting address) of mailing list mail, None for other mail."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    list_id = headers.get("List-Id")
    if list_id is None:
        return None
    phrase, _, ident = str(list_id).partition("<")
    name = " ".join(phrase.replace('"', "").split()) or ident.rstrip(">").strip()
    post = str(headers.get("List-Post", ""))
    found = re.search(r"<mailto:([^>?]+)", post, re.IGNORECASE)
    return name, (found.group(1).strip().lower() if found else "")


def list_chat(
    store: LocalStore, account_id: int, me: str, msg: ChatMessage, raw: bytes
) -> tuple[str, str] | None:
    """(list address, list name) when ``msg`` belongs to a mailing list's chat: a 1:1 chat
    with the list's address.  Mailing list mail goes there; so does the copy a member
    also sent us directly, found by the first References id (a message of that list's
    chat) and the list's address in To or Cc, so that only the list's message shows.

    # coi-client-spec: Group Messaging and Mailing Lists
    """
    sender = msg.sender.addr.lower() if msg.sender else ""
    recipients = [a.addr.lower() for a in (*msg.recipients, *msg.cc)]
    listed = list_headers(raw)
    if listed is not None:
        name, post = listed
        address = post or next((r for r in recipients if r not in (me, sender)), "")
        return (address, name) if address and sender != me else None
    if not msg.references or sender == me:
        return None
    row = store.db.execute(
        "SELECT m.raw, c.peer, c.name FROM message m JOIN chat c ON c.id = m.chat_id"
        " WHERE m.account_id=? AND m.message_id=?",
        (account_id, msg.references[0]),
    ).fetchone()
    if row is None or not row[1] or str(row[1]).lower() not in recipients:
        return None
    if list_headers(bytes(row[0])) is None:
        return None
    return str(row[1]).lower(), str(row[2])


def private_reply(
    store: LocalStore, account_id: int, me: str, msg: ChatMessage, raw: bytes
) -> ChatMessage:
    """The message without its group when it is no group message after all.

    * Mailing list mail (List-Id) is never a group (# coi-client-spec: Group Messaging
      and Mailing Lists).
    * A reply found in a group only by its References that leaves out members besides
      its sender is a "reply" rather than "reply all": it goes to the 1:1 chat with the
      sender (# coi-client-spec: Processing Group Participants Changes).
    """
    if _mailing_list(raw):
        return replace(msg, group=None) if msg.group is not None else msg
    if msg.group is None:
        # an ad-hoc group: mail among several people without a group id is one chat,
        # keyed by its subject and participants (as Delta Chat does)
        sender = msg.sender.addr.lower() if msg.sender else ""
        others = {a.addr.lower() for a in (*msg.recipients, *msg.cc)} | {sender}
        if msg.kind in _CHAT_KINDS and len(others - {me}) >= 2:
            return replace(msg, group=GroupRef(None, strip_reply_prefixes(msg.subject)))
        return msg
    if not msg.group.id or _header_group(msg):
        return msg
    row = store.db.execute(
        "SELECT id FROM chat WHERE account_id=? AND key=?", (account_id, KEY_PREFIX + msg.group.id)
    ).fetchone()
    if row is None:
        return msg
    sender = msg.sender.addr.lower() if msg.sender else ""
    present = {a.addr.lower() for a in (*msg.recipients, *msg.cc)} | {sender}
    dropped = [m for m in store.members(int(row[0])) if m not in present and m != me]
    return replace(msg, group=None) if dropped else msg


def _renamed(msg: ChatMessage) -> str | None:
    """The old name when the message announces a rename."""
    for name, value in msg.chat_headers:
        if name.lower() == "chat-group-name-changed":
            return value.strip()
    return None


def _record_left(store: LocalStore, chat_id: int, removed: set[str], msg: ChatMessage) -> None:
    """Keeps when each member left (groupleft or removal): the Date of the latest."""
    if not removed:
        return
    at = msg.date.timestamp() if msg.date else time.time()
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO member_left (chat_id, addr, at) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET at=max(at, excluded.at)",
            [(chat_id, addr, at) for addr in sorted(removed)],
        )


def _stale_adds(
    store: LocalStore, account_id: int, chat_id: int, msg: ChatMessage, candidates: set[str]
) -> set[str]:
    """Members this message would add back although it answers a message older than their
    leaving: such a re-add is ignored.  The answered message is In-Reply-To, else the last
    References id; when it is unknown here the add stands.

    # coi-client-spec: Processing Group Participants Changes ("check if the Reply-To header
    of the adding message refers to a message older than the groupleft message")
    """
    if not candidates:
        return set()
    left = {
        str(r[0]).lower(): float(r[1])
        for r in store.db.execute("SELECT addr, at FROM member_left WHERE chat_id=?", (chat_id,))
    }
    relevant = {c for c in candidates if c in left}
    answered = msg.in_reply_to or (msg.references[-1] if msg.references else None)
    if not relevant or not answered:
        return set()
    row = store.db.execute(
        "SELECT raw FROM message WHERE account_id=? AND message_id=?", (account_id, answered)
    ).fetchone()
    date = _date_of(bytes(row[0])) if row is not None else None
    if date is None:
        return set()
    return {c for c in relevant if date < left[c]}


def _date_of(raw: bytes) -> float | None:
    """The Date header of a stored message (its sort key may have moved later)."""
    value = BytesHeaderParser(policy=compat32).parsebytes(raw).get("Date")
    try:
        return parsedate_to_datetime(str(value)).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def is_change(msg: ChatMessage) -> bool:
    """A group message that changes the group (shown as a system line)."""
    return bool(
        msg.group is not None
        and msg.group.id
        and (
            msg.kind is MessageKind.GROUP_LEFT
            or msg.members_added
            or msg.members_removed
            or _renamed(msg) is not None
        )
    )


def apply(
    store: LocalStore, account_id: int, me: str, msg: ChatMessage, files_dir: Path | None = None
) -> Change | None:
    """Applies a message with a group id to its group; None for other messages; a group
    avatar is kept under ``files_dir``.

    # coi-client-spec: Changing Group Definitions and Processing Changes
    """
    group = msg.group
    if group is None or not group.id:
        return None
    sender = msg.sender.addr.lower() if msg.sender else ""
    outgoing = sender == me
    key = KEY_PREFIX + group.id
    known = store.db.execute(
        "SELECT id, name FROM chat WHERE account_id=? AND key=?", (account_id, key)
    ).fetchone()
    # a group first heard of from a stranger is a contact request, like a 1:1 chat
    request = known is None and not outgoing and not store.is_known(account_id, sender)
    chat_id = store.chat_for(account_id, key, "", group.name, request)
    if outgoing:
        store.accept_chat(chat_id)
    members = set(store.members(chat_id))
    before = set(members)
    added = {a.lower() for a in msg.members_added}
    removed = {a.lower() for a in msg.members_removed}
    if msg.kind is MessageKind.GROUP_LEFT:
        removed.add(sender)
    everyone = {a.addr.lower() for a in (*msg.recipients, *msg.cc)} | (
        {sender} if sender else set()
    )
    trusted = outgoing or known is None or not members or sender in members or me in added
    if msg.group_info is not None and msg.group_info.participants and trusted:
        listed = {e.lower() for c in msg.group_info.participants for e in c.emails}
        members = listed  # a COI groupinfo part lists everyone
    elif trusted:
        members |= everyone  # the To list adds, never removes
    members |= added
    members -= removed
    if not outgoing:  # a re-add answering a message older than the member's leaving
        stale = _stale_adds(store, account_id, chat_id, msg, (members | added) - before)
        members -= stale
        added -= stale
    members.discard(me)
    store.set_members(chat_id, sorted(members))
    _record_left(store, chat_id, removed, msg)
    if msg.group_info is not None and trusted:
        _apply_details(store, chat_id, msg.group_info, files_dir)
    if known is None and not outgoing and msg.references:
        _pending(store, chat_id, "request", True)  # we missed the group's start
    if msg.requests_group_info and not outgoing:
        _pending(store, chat_id, "info", True)
    if outgoing and msg.requests_group_info:
        _pending(store, chat_id, "request", False)
    if outgoing and msg.group_info is not None and msg.group_info.participants:
        _pending(store, chat_id, "info", False)
    if me in added:
        _set_left(store, chat_id, False)
    if me in removed:
        _set_left(store, chat_id, True)
    old = _renamed(msg)
    new_name = " ".join(group.name.split())
    implicit = msg.dialect is not Dialect.DELTA_CHAT and msg.kind is not MessageKind.GROUP_LEFT
    renames = new_name and trusted and (old is not None or implicit) and known is not None
    if renames and str(known[1]) != new_name:
        with store.transaction() as db:
            db.execute("UPDATE chat SET name=? WHERE id=?", (new_name, chat_id))
    return Change(chat_id, _line(msg, sender, old, new_name, added, removed))


def _line(
    msg: ChatMessage, sender: str, old: str | None, name: str, added: set[str], removed: set[str]
) -> str:
    if msg.kind is MessageKind.GROUP_LEFT or (removed == {sender} and sender):
        return "left the group"
    if removed:
        return "removed " + ", ".join(sorted(removed))
    if added:
        return "added " + ", ".join(sorted(added))
    if old is not None:
        return f'renamed "{old}" to "{name}"'
    return ""
