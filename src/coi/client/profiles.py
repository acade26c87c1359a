"""User profiles: ours (name, status, avatar) and what contacts tell us of theirs.

# coi-client-spec: User Profile Messages
* Our profile lives in the store and, as a profile storage message, in ``<root>/Contacts``;
  our name also goes into From (``AccountSettings.name``).
* The profile part rides along with the first user message to each contact and with the
  first one after a change (``profile_sent`` keeps which version each contact got).
* ``profilerequest``: we ask with our next message to the contact; a request we receive
  makes our next message to the requester carry the profile again.
* Received profiles: a profile part (the variant without categories first), else the
  From display name; Delta Chat's ``Chat-User-Avatar`` (``base64:...``, an attachment
  name, or ``0`` for "removed") gives the avatar.  Older news never replaces newer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from coi.chat.headers import new_message_id
from coi.chat.model import Address, Card, ChatMessage, MessageKind, Profile
from coi.client.store import Account, LocalStore
from coi.client.stored import remove_stored
from coi.imap.client import ImapClient

USER_KINDS = frozenset(
    {MessageKind.TEXT, MessageKind.MEDIA, MessageKind.LOCATION, MessageKind.POLL}
)
MAX_AVATAR = 64 * 1024  # inline in every first message: keep it small


class ProfileError(Exception):
    """A profile the user asked for cannot be made (e.g. an unreadable avatar)."""


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    addr: str
    name: str = ""
    status: str = ""
    avatar: str = ""  # path of the image file, or ""
    version: int = 0  # ours: bumped on each change
    updated: float = 0.0


def get(store: LocalStore, account: Account, addr: str) -> ProfileInfo | None:
    row = store.db.execute(
        "SELECT addr, name, status, avatar, version, updated FROM profile_card"
        " WHERE account_id=? AND addr=?",
        (account.id, addr.lower()),
    ).fetchone()
    if row is None:
        return None
    return ProfileInfo(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]),
                       float(row[5]))  # fmt: skip


def own(store: LocalStore, account: Account) -> ProfileInfo | None:
    return get(store, account, account.address)


def _save(store: LocalStore, account: Account, info: ProfileInfo) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO profile_card (account_id, addr, name, status, avatar, version, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET name=excluded.name,"
            " status=excluded.status, avatar=excluded.avatar, version=excluded.version,"
            " updated=excluded.updated",
            (account.id, info.addr.lower(), info.name, info.status, info.avatar, info.version,
             info.updated),
        )  # fmt: skip


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return str(path)


def _image_path(directory: Path, stem: str, content_type: str) -> Path:
    ext = mimetypes.guess_extension(content_type) or ".img"
    for old in directory.glob(f"{stem}.*") if directory.exists() else ():
        old.unlink(missing_ok=True)
    return directory / f"{stem}{ext}"


def set_own(
    store: LocalStore,
    account: Account,
    files_dir: Path,
    name: str | None = None,
    status: str | None = None,
    avatar: Path | None = None,
    remove_avatar: bool = False,
) -> ProfileInfo:
    """Changes our profile (only what is given); the next message to each contact carries
    it.  ``files_dir`` is the account's files directory."""
    current = own(store, account) or ProfileInfo(account.address, account.settings.name)
    path = current.avatar
    if avatar is not None:
        try:
            data = avatar.read_bytes()
        except OSError as exc:
            raise ProfileError(f"cannot read {avatar}: {exc.strerror}") from None
        if len(data) > MAX_AVATAR:
            raise ProfileError(
                f"{avatar} has {len(data)} bytes: an avatar travels with messages, keep it"
                f" under {MAX_AVATAR // 1024} kB"
            )
        content_type = mimetypes.guess_type(avatar.name)[0] or "image/png"
        if not content_type.startswith("image/"):
            raise ProfileError(f"{avatar} is no image")
        path = _write(_image_path(files_dir / "profile", "avatar", content_type), data)
    elif remove_avatar:
        if path:
            Path(path).unlink(missing_ok=True)
        path = ""
    info = ProfileInfo(
        account.address.lower(),
        current.name if name is None else name.strip(),
        current.status if status is None else status.strip(),
        path,
        current.version + 1,
        time.time(),
    )
    _save(store, account, info)
    if name is not None:  # our name in From too
        store.update_account_settings(account.id, replace(account.settings, name=info.name))
    return info


def _data_url(path: str) -> str:
    if not path:
        return ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    content_type = mimetypes.guess_type(path)[0] or "image/png"
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def card(info: ProfileInfo) -> Card:
    return Card(name=info.name, emails=(info.addr,), photo=_data_url(info.avatar),
                status=info.status)  # fmt: skip


def storage_message(account: Account, info: ProfileInfo) -> ChatMessage:
    """The profile storage message (coi-client-spec: User Profile Storage Message)."""
    me = Address(account.address, info.name)
    return ChatMessage(
        kind=MessageKind.PROFILE,
        message_id=new_message_id(account.address.rpartition("@")[2]),
        sender=me,
        recipients=(Address(account.address),),
        date=datetime.fromtimestamp(int(info.updated), UTC),
        subject="Profile",
        profiles=(Profile(card(info)),),
    )


def contacts_folder(account: Account, delimiter: str) -> str:
    return f"{account.mailbox_root}{delimiter}Contacts"


# -- sending --------------------------------------------------------------------------


def _peers(account: Account, msg: ChatMessage) -> list[str]:
    me = account.address.lower()
    return sorted({a.addr.lower() for a in (*msg.recipients, *msg.cc)} - {me})


def prepare(store: LocalStore, account: Account, msg: ChatMessage) -> ChatMessage:
    """Adds our profile part for contacts that lack its latest version, and a
    profilerequest when we asked for one (hook in ``Client._send``)."""
    if msg.kind not in USER_KINDS:
        return msg
    peers = _peers(account, msg)
    if not peers:
        return msg
    marks = ",".join("?" * len(peers))
    rows = {
        str(r[0]).lower(): (int(r[1]), bool(r[2]))
        for r in store.db.execute(
            f"SELECT addr, version, request FROM profile_sent WHERE account_id=?"
            f" AND addr IN ({marks})",
            (account.id, *peers),
        )
    }
    info = own(store, account)
    if (
        info is not None
        and not msg.profiles
        and any(rows.get(p, (0, False))[0] < info.version for p in peers)
    ):
        msg = replace(msg, profiles=(Profile(card(info)),))
    if any(rows.get(p, (0, False))[1] for p in peers):
        msg = replace(msg, requests_profile=True)
    return msg


def with_avatar_header(store: LocalStore, account: Account, msg: ChatMessage, raw: bytes) -> bytes:
    """Delta Chat reads avatars from ``Chat-User-Avatar: base64:...``: added next to our
    profile part."""
    info = own(store, account)
    if not msg.profiles or info is None or not info.avatar:
        return raw
    try:
        data = base64.b64encode(Path(info.avatar).read_bytes()).decode()
    except OSError:
        return raw
    folded = "\r\n ".join(data[i : i + 76] for i in range(0, len(data), 76))
    return f"Chat-User-Avatar: base64:{folded}\r\n".encode() + raw


def sent(store: LocalStore, account: Account, msg: ChatMessage) -> None:
    """After a successful send: who has our profile now, which requests went out."""
    peers = _peers(account, msg)
    info = own(store, account)
    with store.transaction() as db:
        for peer in peers:
            db.execute(
                "INSERT OR IGNORE INTO profile_sent (account_id, addr) VALUES (?, ?)",
                (account.id, peer),
            )
            if msg.profiles and info is not None:
                db.execute(
                    "UPDATE profile_sent SET version=max(version, ?) WHERE account_id=? AND addr=?",
                    (info.version, account.id, peer),
                )
            if msg.requests_profile:
                db.execute(
                    "UPDATE profile_sent SET request=0 WHERE account_id=? AND addr=?",
                    (account.id, peer),
                )


def want(store: LocalStore, account: Account, addr: str) -> None:
    """Our next message to ``addr`` asks for their profile (profilerequest)."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO profile_sent (account_id, addr, request) VALUES (?, ?, 1)"
            " ON CONFLICT DO UPDATE SET request=1",
            (account.id, addr.lower()),
        )


# -- receiving ------------------------------------------------------------------------


def _decode_data_url(url: str) -> tuple[str, bytes] | None:
    if not url.startswith("data:") or "," not in url:
        return None
    meta, _, payload = url[5:].partition(",")
    content_type = meta.split(";")[0] or "image/png"
    if not meta.endswith(";base64"):
        return None
    try:
        return content_type, base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _avatar_from_header(msg: ChatMessage) -> tuple[str, bytes] | str | None:
    """Delta Chat's Chat-User-Avatar: image, "" when removed, None when absent."""
    value = next((v for k, v in msg.chat_headers if k.lower() == "chat-user-avatar"), None)
    if value is None:
        return None
    value = value.strip()
    if value == "0":
        return ""
    if value.lower().startswith("base64:"):
        try:
            data = base64.b64decode("".join(value[7:].split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        return _sniff(data), data
    for attachment in msg.attachments:  # older Delta Chat: the avatar is an attachment
        if attachment.filename == value and attachment.content_type.startswith("image/"):
            return attachment.content_type, attachment.data
    return None


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def received(store: LocalStore, account: Account, msg: ChatMessage, files_dir: Path) -> None:
    """Applies what an incoming message says about its sender (hook in the Applier);
    ``files_dir`` is the account's files directory."""
    sender = msg.sender
    if sender is None or not sender.addr:
        return
    addr = sender.addr.lower()
    me = account.address.lower()
    if addr == me:
        if msg.kind is MessageKind.PROFILE and msg.profiles:  # from our other device
            _apply(store, account, addr, msg, files_dir / "profile", "avatar")
        return
    if msg.requests_profile:
        with store.transaction() as db:  # our next message to them carries it again
            db.execute(
                "INSERT INTO profile_sent (account_id, addr) VALUES (?, ?)"
                " ON CONFLICT DO UPDATE SET version=0",
                (account.id, addr),
            )
    _apply(store, account, addr, msg, files_dir / "profiles",
           hashlib.sha256(addr.encode()).hexdigest()[:16])  # fmt: skip


def _apply(
    store: LocalStore, account: Account, addr: str, msg: ChatMessage, directory: Path, stem: str
) -> None:
    assert msg.sender is not None
    profile = next((p for p in msg.profiles if not p.categories), None) or (
        msg.profiles[0] if msg.profiles else None
    )
    avatar = _avatar_from_header(msg)
    name = msg.sender.name
    if profile is None and not name and avatar is None:
        return
    current = get(store, account, addr) or ProfileInfo(addr)
    date = msg.date.timestamp() if msg.date else time.time()
    if date < current.updated:
        return  # older than what we know
    status, path = current.status, current.avatar
    if profile is not None:
        name = profile.card.name or name
        status = profile.card.status
        decoded = _decode_data_url(profile.card.photo)
        if decoded is not None:
            avatar = decoded
        elif not profile.card.photo and avatar is None:
            avatar = ""
    if isinstance(avatar, tuple):
        path = _write(_image_path(directory, stem, avatar[0]), avatar[1])
    elif avatar == "":
        if path:
            Path(path).unlink(missing_ok=True)
        path = ""
    name = name or current.name
    ours = addr == account.address.lower()
    # our profile changed on another device: contacts get it again from this one too
    version = current.version + 1 if ours else current.version
    _save(store, account, ProfileInfo(addr, name, status, path, version, date))
    if ours:
        if name:
            store.update_account_settings(account.id, replace(account.settings, name=name))
        return
    if name:  # a contact (and chat) we have; a stranger's name makes no contact row
        with store.transaction() as db:
            db.execute(
                "UPDATE contact SET name=? WHERE account_id=? AND addr=?", (name, account.id, addr)
            )
            db.execute(
                "UPDATE chat SET name=? WHERE account_id=? AND peer=?", (name, account.id, addr)
            )


async def append_storage(
    imap: ImapClient, store: LocalStore, account: Account, delimiter: str, raw: bytes
) -> str:
    """Stores the profile storage message in ``<root>/Contacts`` and removes the one stored
    before (remembered by its UID, so contact storage messages there stay); returns the
    folder."""
    folder = contacts_folder(account, delimiter)
    me = account.address.lower()
    row = store.db.execute(
        "SELECT storage_uidvalidity, storage_uid FROM profile_card WHERE account_id=? AND addr=?",
        (account.id, me),
    ).fetchone()
    result = await imap.append(folder, raw, flags=["\\Seen"])
    if result is None or not result.uids:
        return folder
    with store.transaction() as db:
        db.execute(
            "UPDATE profile_card SET storage_uidvalidity=?, storage_uid=? WHERE account_id=?"
            " AND addr=?",
            (result.uidvalidity, result.uids[-1], account.id, me),
        )
    if row is not None and row[1] and int(row[0]) == result.uidvalidity:
        await remove_stored(imap, folder, str(int(row[1])), int(row[0]))
    return folder
