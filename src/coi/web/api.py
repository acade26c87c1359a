"""The JSON API the browser app uses: each handler is one call of the client library.

Every id in a path is looked up in the logged-in person's own profile, so naming
someone else's chat or message finds nothing (404).  Changes are published to all the
person's tabs as events, the same kinds ``coi watch`` reports.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from coi.chat.contacts import user_categories
from coi.chat.parse import parse
from coi.client.client import Client
from coi.client.profile import FilterMode
from coi.client.store import Account, Chat, MessageRow
from coi.client.views import chat_view, contact_view, message_view
from coi.web.app import ApiError, read_json, runtime_of
from coi.web.runtime import END_OF_EVENTS
from coi.web.sanitize import sanitize_html

MESSAGES_PAGE = 200
KEEPALIVE_SECONDS = 20.0
_INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/chats", chats)
    r.add_get("/api/chats/{chat}", chat)
    r.add_post("/api/chats/{chat}/read", read)
    r.add_post("/api/chats/{chat}/accept", accept)
    r.add_post("/api/chats/{chat}/rename", rename)
    r.add_post("/api/chats/{chat}/members", members)
    r.add_post("/api/chats/{chat}/leave", leave)
    r.add_post("/api/chats/{chat}/mute", mute)
    r.add_post("/api/send", send)
    r.add_post("/api/groups", create_group)
    r.add_post("/api/messages/{message}/edit", edit)
    r.add_post("/api/messages/{message}/delete", delete)
    r.add_post("/api/messages/{message}/react", react)
    r.add_get("/api/messages/{message}/html", message_html)
    r.add_get("/api/messages/{message}/files/{index}", attachment)
    r.add_get("/api/contacts", contacts)
    r.add_post("/api/contacts", save_contact)
    r.add_post("/api/contacts/remove", remove_contact)
    r.add_get("/api/profile", profile)
    r.add_post("/api/profile", set_profile)
    r.add_get("/api/profiles/{address}/avatar", avatar)
    r.add_post("/api/settings", settings)
    r.add_get("/api/events", events)


# -- lookups --------------------------------------------------------------------------


def _client(request: web.Request) -> Client:
    return runtime_of(request).client


def _int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit() or len(value) > 12:
        raise ApiError(f"{name} must be a number", 404)
    return int(value)


def _chat(request: web.Request) -> Chat:
    found = _client(request).store.chat(_int(request, "chat"))
    if found is None:
        raise ApiError("no such chat", 404)
    return found


def _message(request: web.Request) -> MessageRow:
    row = _client(request).store.message(_int(request, "message"))
    if row is None or not row.visible:
        raise ApiError("no such message", 404)
    return row


def _account(client: Client, data: dict[str, Any]) -> Account | None:
    address = data.get("account")
    return client.account(str(address)) if address else None


def _publish_message(request: web.Request, row: MessageRow, kind: str = "new") -> None:
    runtime_of(request).publish({"kind": kind, "chat": row.chat_id, "message": row.id})


def _view(request: web.Request, row: MessageRow) -> dict[str, Any]:
    client = _client(request)
    data = message_view(client, client.store.message(row.id) or row)
    for n, f in enumerate(data["files"]):
        del f["path"]  # a path on the server means nothing in the browser
        f["url"] = f"/api/messages/{row.id}/files/{n}"
        f["inline"] = f["type"] in _INLINE_IMAGES
    return data


# -- chats ------------------------------------------------------------------------------


async def chats(request: web.Request) -> web.Response:
    client = _client(request)
    query = request.query.get("q", "").strip().lower()
    found = client.chats()
    if query:
        found = [
            c
            for c in found
            if query in c.name.lower() or query in c.peer.lower() or query in c.last_text.lower()
        ]
    return web.json_response([_chat_view(client, c) for c in found])


def _chat_view(client: Client, c: Chat) -> dict[str, Any]:
    data = chat_view(c)
    data["group"] = c.key.startswith("group:") or not c.peer
    data["key"] = c.key
    return data


async def chat(request: web.Request) -> web.Response:
    client = _client(request)
    found = _chat(request)
    rows = client.messages(found, MESSAGES_PAGE)
    data: dict[str, Any] = {
        "chat": _chat_view(client, found),
        "messages": [_view(request, m) for m in rows],
    }
    if data["chat"]["group"]:
        info = client.group_info(found)
        data["members"] = list(info.members)
        data["left"] = info.left
    return web.json_response(data)


async def read(request: web.Request) -> web.Response:
    found = _chat(request)
    sent = await _client(request).read(found)
    runtime_of(request).publish({"kind": "read", "chat": found.id})
    return web.json_response({"receipts_sent": sent})


async def accept(request: web.Request) -> web.Response:
    found = _chat(request)
    _client(request).accept(found)
    runtime_of(request).publish({"kind": "chat", "chat": found.id})
    return web.json_response({"ok": True})


async def rename(request: web.Request) -> web.Response:
    data = await read_json(request)
    row = await _client(request).rename_group(_chat(request), str(data.get("name", "")))
    _publish_message(request, row)
    return web.json_response(_view(request, row))


async def members(request: web.Request) -> web.Response:
    data = await read_json(request)
    client = _client(request)
    found = _chat(request)
    if data.get("add"):
        row = await client.add_member(found, str(data["add"]))
    elif data.get("remove"):
        row = await client.remove_member(found, str(data["remove"]))
    else:
        raise ApiError("say which member to add or remove")
    _publish_message(request, row)
    return web.json_response(_view(request, row))


async def leave(request: web.Request) -> web.Response:
    row = await _client(request).leave_group(_chat(request))
    _publish_message(request, row)
    return web.json_response(_view(request, row))


async def mute(request: web.Request) -> web.Response:
    """``{"muted": true|false}``: kept for the user's other devices where the chat can be
    (coi-client-spec: Notification Settings)."""
    data = await read_json(request)
    found = _chat(request)
    synced = await _client(request).mute(found, muted=bool(data.get("muted", True)))
    runtime_of(request).publish({"kind": "chat", "chat": found.id})
    return web.json_response({"muted": bool(data.get("muted", True)), "synced": synced})


async def create_group(request: web.Request) -> web.Response:
    data = await read_json(request)
    client = _client(request)
    wanted = data.get("members") or []
    if not isinstance(wanted, list):
        raise ApiError("members must be a list of addresses")
    text = str(data.get("text", "")).strip()
    if not text:
        raise ApiError("write a first message: it tells the members about the group")
    found = client.create_group(
        str(data.get("name", "")), [str(m) for m in wanted], _account(client, data)
    )
    await client.store_groups(client.store.account_by_id(found.account_id))
    row = await client.send(str(found.id), text)
    _publish_message(request, row)
    return web.json_response({"chat": found.id, "message": _view(request, row)})


# -- messages -------------------------------------------------------------------------


async def send(request: web.Request) -> web.Response:
    """Text, files or both to a chat (``to``: its id) or an address; ``reply_to`` quotes."""
    client = _client(request)
    fields, files, tmp = await _form(request)
    try:
        to = fields.get("to", "").strip()
        text = fields.get("text", "")
        reply_to = fields.get("reply_to", "")
        if not to and not reply_to:
            raise ApiError("say which chat or address to send to")
        if not text.strip() and not files:
            raise ApiError("nothing to send: write something or attach a file")
        if reply_to and not files:
            if not reply_to.isdigit():
                raise ApiError("reply_to must be a message id")
            row = await client.reply(int(reply_to), text)
        else:
            account = client.account(fields["account"]) if fields.get("account") else None
            row = await client.send(to, text, tuple(files), account)
    finally:
        if tmp is not None:
            tmp.cleanup()
    _publish_message(request, row)
    return web.json_response(_view(request, row))


async def _form(
    request: web.Request,
) -> tuple[dict[str, str], list[Path], tempfile.TemporaryDirectory[str] | None]:
    """The fields and uploaded files of a send; files land in a private temporary
    directory under their own (cleaned) names, which become the attachment names."""
    if not request.content_type.startswith("multipart/"):
        return {k: str(v) for k, v in (await read_json(request)).items()}, [], None
    fields: dict[str, str] = {}
    files: list[Path] = []
    tmp = tempfile.TemporaryDirectory(prefix="coi-web-")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError("nested multipart is not accepted")
            if part.filename is None:
                fields[part.name or ""] = (await part.read(decode=True)).decode("utf-8", "replace")
                continue
            folder = Path(tmp.name) / str(len(files))
            folder.mkdir()
            path = folder / safe_filename(part.filename)
            with path.open("wb") as out:
                while chunk := await part.read_chunk():
                    out.write(chunk)
            files.append(path)
    except BaseException:
        tmp.cleanup()
        raise
    return fields, files, tmp


def safe_filename(name: str) -> str:
    """A file name without directories or control characters, never empty or hidden."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:120] or "file"


async def edit(request: web.Request) -> web.Response:
    data = await read_json(request)
    row = await _client(request).edit(_message(request).id, str(data.get("text", "")))
    _publish_message(request, row, "edit")
    return web.json_response(_view(request, row))


async def delete(request: web.Request) -> web.Response:
    row = await _client(request).delete(_message(request).id)
    _publish_message(request, row, "delete")
    return web.json_response(_view(request, row))


async def react(request: web.Request) -> web.Response:
    data = await read_json(request)
    emoji = str(data.get("emoji", ""))
    if len(emoji) > 16:
        raise ApiError("a reaction is one emoji")
    target = _message(request)
    await _client(request).react(target.id, emoji)
    runtime_of(request).publish({"kind": "reaction", "chat": target.chat_id, "message": target.id})
    return web.json_response(_view(request, target))


async def message_html(request: web.Request) -> web.Response:
    """The message's HTML part, sanitised (coi.web.sanitize); empty when it has none."""
    row = _message(request)
    html = parse(_client(request).store.raw(row.id)).html
    return web.json_response({"html": sanitize_html(html) if html else ""})


async def attachment(request: web.Request) -> web.StreamResponse:
    """A received or sent file: a download by default; common images inline (for
    previews) with a content type we chose, never the sender's."""
    client = _client(request)
    row = _message(request)
    index = _int(request, "index")
    found = client.store.attachments(row.id)
    if index >= len(found):
        raise ApiError("no such file", 404)
    a = found[index]
    path = Path(a.path).resolve()
    if not path.is_relative_to(client.profile.files_dir.resolve()) or not path.is_file():
        raise ApiError("the file is no longer there", 404)
    inline = request.query.get("inline") == "1" and a.content_type in _INLINE_IMAGES
    name = safe_filename(a.filename)
    disposition = "inline" if inline else "attachment"
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    headers = {
        "Content-Type": a.content_type if inline else "application/octet-stream",
        "Content-Disposition": f'{disposition}; filename="{ascii_name}";'
        f" filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    return web.FileResponse(path, headers=headers)


# -- contacts, profile, settings ------------------------------------------------------


def _own_account(request: web.Request, data: dict[str, Any] | None = None) -> Account:
    client = _client(request)
    address = (data or {}).get("account") or request.query.get("account")
    if address:
        return client.account(str(address))
    accounts = client.accounts()
    if not accounts:
        raise ApiError("this profile has no account")
    return accounts[0]


async def contacts(request: web.Request) -> web.Response:
    client = _client(request)
    account = _own_account(request)
    rows = client.contacts(account)
    return web.json_response([contact_view(c) for c in rows if c.addr])


async def save_contact(request: web.Request) -> web.Response:
    """Adds or edits a contact; ``blocked`` blocks or unblocks (coi-client-spec:
    Blocking Contacts)."""
    data = await read_json(request)
    client = _client(request)
    account = _own_account(request, data)
    address = str(data.get("address", "")).strip()
    if "@" not in address:
        raise ApiError("give the contact's mail address")
    name, blocked = data.get("name"), data.get("blocked")
    entry = (
        address,
        None if name is None else str(name),
        None if blocked is None else bool(blocked),
    )
    categories = data.get("categories")
    try:
        if categories is None:
            chosen = None
        elif isinstance(categories, list):
            chosen = user_categories(",".join(map(str, categories)))
        else:
            chosen = user_categories(str(categories))
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    saved = await client.save_contacts(account, [entry], categories=chosen)
    runtime_of(request).publish({"kind": "contacts"})
    return web.json_response([contact_view(c) for c in saved])


async def remove_contact(request: web.Request) -> web.Response:
    data = await read_json(request)
    client = _client(request)
    removed = await client.remove_contact(_own_account(request, data), str(data.get("address")))
    runtime_of(request).publish({"kind": "contacts"})
    return web.json_response({"removed": removed})


async def profile(request: web.Request) -> web.Response:
    client = _client(request)
    account = _own_account(request)
    address = request.query.get("address")
    info = client.contact_profile(address, account)
    return web.json_response(_profile_view(info))


def _profile_view(info: Any) -> dict[str, Any]:
    return {
        "address": info.addr,
        "name": info.name,
        "status": info.status,
        "avatar": f"/api/profiles/{quote(info.addr)}/avatar" if info.avatar else None,
    }


async def set_profile(request: web.Request) -> web.Response:
    """Name, status and avatar (multipart: an ``avatar`` file, or ``remove_avatar``)."""
    client = _client(request)
    fields, files, tmp = await _form(request)
    try:
        account = _own_account(request, dict(fields))
        info = await client.set_profile(
            name=fields.get("name"),
            status=fields.get("status"),
            avatar=files[0] if files else None,
            remove_avatar=fields.get("remove_avatar") == "1",
            account=account,
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return web.json_response(_profile_view(info))


async def avatar(request: web.Request) -> web.StreamResponse:
    client = _client(request)
    info = client.contact_profile(request.match_info["address"], _own_account(request))
    path = Path(info.avatar).resolve() if info.avatar else None
    if path is None or not path.is_relative_to(client.profile.root.resolve()):
        raise ApiError("no avatar", 404)
    if not path.is_file():
        raise ApiError("no avatar", 404)
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".gif": "image/gif", ".webp": "image/webp"}.get(path.suffix.lower())  # fmt: skip
    if kind is None:
        raise ApiError("no avatar", 404)
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-cache"})


async def settings(request: web.Request) -> web.Response:
    data = await read_json(request)
    client = _client(request)
    account = _own_account(request, data)
    mode = data.get("filter")
    try:
        chosen = FilterMode(mode) if mode is not None else None
    except ValueError:
        raise ApiError("filter is none, seen or active") from None

    def flag(name: str) -> bool | None:
        return None if data.get(name) is None else bool(data[name])

    await client.update_settings(
        account,
        name=None if data.get("name") is None else str(data["name"]),
        filter=chosen,
        read_receipts=flag("read_receipts"),
        encrypt_only=flag("encrypt_only"),
    )
    return web.json_response({"ok": True})


# -- live events ----------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: what the client library reports, as it happens."""
    runtime = runtime_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a reverse proxy must not hold events back
        }
    )
    await response.prepare(request)
    async with runtime.listen() as queue:
        await response.write(b"retry: 2000\n\n")
        if runtime.status:
            await _event(response, {"kind": "status", "text": runtime.status})
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    event = await queue.get()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is END_OF_EVENTS:  # the app stops
                break
            await _event(response, event)
    return response


async def _event(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
