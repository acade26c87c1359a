"""User profiles: ours (name, status, avatar) and what contacts tell us of theirs.

# coi-client-spec: User Profile Messages
* Our profile lives in the store and, as a profile storage message, in ``<root>/Contacts``;
  our name also goes into From (``AccountSettings.name``).
* Variants per category (User Profile Storage Message): ``profile_variant`` holds ours
  (the default, without categories, stays in ``profile_card``); the storage message has
  one ``Chat-Content: profile; categories=...`` part per variant and the default last.
  A contact gets the first variant sharing a category with its ``p-category``, else the
  default; a group message carries the variant all its members get, else the default.
  A new variant starts as a copy of the default; later changes to either stay apart.
* The profile part rides along with the first user message to each contact and with the
  first one after a change (``profile_sent`` keeps which variant and version each contact
  got, so a changed variant or a contact moved to another category gets it again).  The
  part sent never names its categories.
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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from coi.chat.contacts import split_categories
from coi.chat.headers import new_message_id
from coi.chat.model import Address, Card, ChatMessage, MessageKind, Profile
from coi.client import contacts
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
    categories: tuple[str, ...] = ()  # ours: the variant's categories, () for the default

    @property
    def key(self) -> str:
        """The variant's key in ``profile_variant`` and ``profile_sent`` ('' default)."""
        return ",".join(self.categories)


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


def variants(store: LocalStore, account: Account) -> list[ProfileInfo]:
    """Our per-category variants, in their order (the default not included)."""
    rows = store.db.execute(
        "SELECT categories, name, status, avatar, version, updated FROM profile_variant"
        " WHERE account_id=? ORDER BY position, categories",
        (account.id,),
    ).fetchall()
    me = account.address.lower()
    out: list[ProfileInfo] = []
    for r in rows:
        out.append(ProfileInfo(me, str(r[1]), str(r[2]), str(r[3]), int(r[4]), float(r[5]),
                               split_categories(str(r[0]))))  # fmt: skip
    return out


def variant_for(
    store: LocalStore, account: Account, addr: str, known: list[ProfileInfo] | None = None
) -> ProfileInfo | None:
    """The variant ``addr`` gets: the first sharing a category with its stored contact,
    else the default; None when we have no profile."""
    default = own(store, account)
    if default is None:
        return None
    mine = contacts.categories_of(store, account.id, addr)
    if mine:
        for variant in variants(store, account) if known is None else known:
            if mine & {c.casefold() for c in variant.categories}:
                return variant
    return default


def _save_variant(store: LocalStore, account: Account, info: ProfileInfo) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO profile_variant (account_id, categories, position, name, status,"
            " avatar, version, updated) VALUES (?, ?, (SELECT coalesce(max(position), 0) + 1"
            " FROM profile_variant WHERE account_id=?), ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET name=excluded.name, status=excluded.status, avatar=excluded.avatar,"
            " version=excluded.version, updated=excluded.updated",
            (account.id, info.key, account.id, info.name, info.status, info.avatar,
             info.version, info.updated),
        )  # fmt: skip


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


def _stem(categories: tuple[str, ...]) -> str:
    """The avatar file's name: ``avatar``, or one per variant."""
    if not categories:
        return "avatar"
    return "avatar-" + hashlib.sha256(",".join(categories).encode()).hexdigest()[:12]


def set_own(
    store: LocalStore,
    account: Account,
    files_dir: Path,
    name: str | None = None,
    status: str | None = None,
    avatar: Path | None = None,
    remove_avatar: bool = False,
    categories: tuple[str, ...] = (),
) -> ProfileInfo:
    """Changes our profile (only what is given), or with ``categories`` the variant for
    them (made from a copy of the default when new); the next message to each contact
    it is for carries it.  ``files_dir`` is the account's files directory."""
    default = own(store, account) or ProfileInfo(account.address, account.settings.name)
    current = default
    stem = _stem(categories)
    if categories:
        key = ",".join(categories)
        current = next((v for v in variants(store, account) if v.key == key), None) or replace(
            default, categories=categories, version=0, avatar=""
        )
        if not current.version and default.avatar and avatar is None and not remove_avatar:
            try:  # a copy, so that changing the default's avatar leaves the variant's
                copied = Path(default.avatar).read_bytes()
            except OSError:
                pass
            else:
                kind = mimetypes.guess_type(default.avatar)[0] or "image/png"
                current = replace(
                    current, avatar=_write(_image_path(files_dir / "profile", stem, kind), copied)
                )
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
        path = _write(_image_path(files_dir / "profile", stem, content_type), data)
    elif remove_avatar:
        if path:
            Path(path).unlink(missing_ok=True)
        path = ""
    now = time.time()
    info = ProfileInfo(
        account.address.lower(),
        current.name if name is None else name.strip(),
        current.status if status is None else status.strip(),
        path,
        current.version + 1,
        now,
        categories,
    )
    if categories:
        _save_variant(store, account, info)
        # the default row exists (a profile to store) and dates the storage message
        _save(store, account, replace(default, addr=account.address.lower(), updated=now,
                                      version=max(default.version, 1)))  # fmt: skip
        return info
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


def storage_message(
    account: Account, info: ProfileInfo, others: Sequence[ProfileInfo] = ()
) -> ChatMessage:
    """The profile storage message: a part per variant (``others``), the default ``info``
    last (coi-client-spec: User Profile Storage Message)."""
    parts = [Profile(card(v), v.categories) for v in others]
    me = Address(account.address, info.name)
    return ChatMessage(
        kind=MessageKind.PROFILE,
        message_id=new_message_id(account.address.rpartition("@")[2]),
        sender=me,
        recipients=(Address(account.address),),
        date=datetime.fromtimestamp(int(info.updated), UTC),
        subject="Profile",
        profiles=(*parts, Profile(card(info))),
    )


def contacts_folder(account: Account, delimiter: str) -> str:
    return f"{account.mailbox_root}{delimiter}Contacts"


# -- sending --------------------------------------------------------------------------


def _peers(account: Account, msg: ChatMessage) -> list[str]:
    me = account.address.lower()
    return sorted({a.addr.lower() for a in (*msg.recipients, *msg.cc)} - {me})


def _got(store: LocalStore, account: Account, peers: list[str]) -> dict[str, tuple[str, int, bool]]:
    """Per peer: the variant and version of ours it got last, and whether we ask for its."""
    marks = ",".join("?" * len(peers))
    return {
        str(r[0]).lower(): (str(r[1]), int(r[2]), bool(r[3]))
        for r in store.db.execute(
            f"SELECT addr, variant, version, request FROM profile_sent WHERE account_id=?"
            f" AND addr IN ({marks})",
            (account.id, *peers),
        )
    }


def _choice(
    store: LocalStore, account: Account, peers: list[str]
) -> tuple[dict[str, ProfileInfo], ProfileInfo | None]:
    """The variant each peer gets, and the one a message to all of them carries: theirs
    when they share it, else the default (a part every recipient sees)."""
    known = variants(store, account)
    chosen: dict[str, ProfileInfo] = {}
    for peer in peers:
        variant = variant_for(store, account, peer, known)
        if variant is not None:
            chosen[peer] = variant
    keys = {v.key for v in chosen.values()}
    if not chosen:
        return chosen, None
    if len(keys) == 1:
        return chosen, next(iter(chosen.values()))
    return chosen, own(store, account)


def prepare(store: LocalStore, account: Account, msg: ChatMessage) -> ChatMessage:
    """Adds our profile part when a recipient lacks the latest version of the variant it
    gets, and a profilerequest when we asked for one (hook in ``Client._send``)."""
    if msg.kind not in USER_KINDS:
        return msg
    peers = _peers(account, msg)
    if not peers:
        return msg
    got = _got(store, account, peers)
    chosen, part = _choice(store, account, peers)
    carries = (part.key, part.version) if part is not None else None
    # stale: a peer has neither its own variant's latest version nor what this carries
    stale = any(
        got.get(p, ("", 0, False))[:2] not in ((v.key, v.version), carries)
        for p, v in chosen.items()
    )
    if part is not None and not msg.profiles and stale:
        msg = replace(msg, profiles=(Profile(card(part)),))
    if any(g[2] for g in got.values()):
        msg = replace(msg, requests_profile=True)
    return msg


def with_avatar_header(store: LocalStore, account: Account, msg: ChatMessage, raw: bytes) -> bytes:
    """Delta Chat reads avatars from ``Chat-User-Avatar: base64:...``: added next to our
    profile part (the avatar of the variant it carries)."""
    decoded = _decode_data_url(msg.profiles[0].card.photo) if msg.profiles else None
    if decoded is None:
        return raw
    data = base64.b64encode(decoded[1]).decode()
    folded = "\r\n ".join(data[i : i + 76] for i in range(0, len(data), 76))
    return f"Chat-User-Avatar: base64:{folded}\r\n".encode() + raw


def sent(store: LocalStore, account: Account, msg: ChatMessage) -> None:
    """After a successful send: who has our profile now, which requests went out."""
    peers = _peers(account, msg)
    _, part = _choice(store, account, peers) if peers else ({}, None)
    with store.transaction() as db:
        for peer in peers:
            db.execute(
                "INSERT OR IGNORE INTO profile_sent (account_id, addr) VALUES (?, ?)",
                (account.id, peer),
            )
            if msg.profiles and part is not None:
                db.execute(
                    "UPDATE profile_sent SET variant=?, version=? WHERE account_id=? AND addr=?",
                    (part.key, part.version, account.id, peer),
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
        own_profile = msg.kind is MessageKind.PROFILE and bool(msg.profiles)
        # from our other device
        if own_profile and _apply(store, account, addr, msg, files_dir / "profile", "avatar"):
            _apply_variants(store, account, msg, files_dir / "profile")
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


def _same_avatar(path: str, new: tuple[str, bytes] | str | None) -> bool:
    if new is None:
        return True
    if isinstance(new, str):
        return not path
    try:
        return bool(path) and Path(path).read_bytes() == new[1]
    except OSError:
        return False


def _apply_variants(store: LocalStore, account: Account, msg: ChatMessage, directory: Path) -> None:
    """Our variants as another device stored them: a changed one gets a new version (so
    contacts get it again from this device too), those no longer there go."""
    old = {v.key: v for v in variants(store, account)}
    keep: list[str] = []
    with store.transaction() as db:
        for position, profile in enumerate(p for p in msg.profiles if p.categories):
            categories = tuple(c.lower() for c in profile.categories)
            current = old.get(",".join(categories)) or ProfileInfo(
                account.address.lower(), categories=categories
            )
            decoded = _decode_data_url(profile.card.photo)
            avatar: tuple[str, bytes] | str = decoded if decoded is not None else ""
            same = (
                (profile.card.name, profile.card.status) == (current.name, current.status)
                and _same_avatar(current.avatar, avatar)
                and current.version > 0
            )
            path = current.avatar
            if not same:
                if isinstance(avatar, tuple):
                    path = _write(_image_path(directory, _stem(categories), avatar[0]), avatar[1])
                elif path:
                    Path(path).unlink(missing_ok=True)
                    path = ""
            db.execute(
                "INSERT INTO profile_variant (account_id, categories, position, name, status,"
                " avatar, version, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO"
                " UPDATE SET position=excluded.position, name=excluded.name,"
                " status=excluded.status, avatar=excluded.avatar, version=excluded.version,"
                " updated=excluded.updated",
                (account.id, current.key, position + 1, profile.card.name, profile.card.status,
                 path, current.version + (0 if same else 1),
                 msg.date.timestamp() if msg.date else time.time()),
            )  # fmt: skip
            keep.append(current.key)
        for key, gone in old.items():
            if key not in keep:
                if gone.avatar:
                    Path(gone.avatar).unlink(missing_ok=True)
                db.execute(
                    "DELETE FROM profile_variant WHERE account_id=? AND categories=?",
                    (account.id, key),
                )


def _apply(
    store: LocalStore, account: Account, addr: str, msg: ChatMessage, directory: Path, stem: str
) -> bool:
    """Applies the profile in ``msg``; False when it is older than what we know."""
    assert msg.sender is not None
    profile = next((p for p in msg.profiles if not p.categories), None) or (
        msg.profiles[0] if msg.profiles else None
    )
    avatar = _avatar_from_header(msg)
    name = msg.sender.name
    if profile is None and not name and avatar is None:
        return False
    current = get(store, account, addr) or ProfileInfo(addr)
    date = msg.date.timestamp() if msg.date else time.time()
    if date < current.updated:
        return False  # older than what we know
    ours = addr == account.address.lower()
    status, path = current.status, current.avatar
    if profile is not None:
        name = profile.card.name or name
        status = profile.card.status
        decoded = _decode_data_url(profile.card.photo)
        if decoded is not None:
            avatar = decoded
        elif not profile.card.photo and avatar is None:
            avatar = ""
    # our profile changed on another device: contacts get it again from this one too
    changed = (name or current.name, status) != (current.name, current.status) or not (
        _same_avatar(path, avatar)
    )
    if isinstance(avatar, tuple):
        path = _write(_image_path(directory, stem, avatar[0]), avatar[1])
    elif avatar == "":
        if path:
            Path(path).unlink(missing_ok=True)
        path = ""
    name = name or current.name
    version = current.version + 1 if ours and (changed or not current.version) else current.version
    _save(store, account, ProfileInfo(addr, name, status, path, version, date))
    if ours:
        if name:
            store.update_account_settings(account.id, replace(account.settings, name=name))
        return True
    if name:  # a contact (and chat) we have; a stranger's name makes no contact row
        with store.transaction() as db:
            db.execute(
                "UPDATE contact SET name=? WHERE account_id=? AND addr=?", (name, account.id, addr)
            )
            db.execute(
                "UPDATE chat SET name=? WHERE account_id=? AND peer=?", (name, account.id, addr)
            )
    return True


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
