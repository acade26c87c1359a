"""coi web's HTTP API over real sockets: our mail server, the app in hosted mode, and
aiohttp as the browser (the browser itself: test_browser.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from aiohttp import web
from tests.conftest import PASSWORDS
from tests.integration.client.helpers import new_client
from tests.integration.conftest import start_mail, stop_mail
from tests.integration.web.conftest import CAROL, Browser, WebEnv, start_web

from coi.store.coi import MESSAGE_FILTER
from coi.web.accounts import PersonalAccounts
from coi.web.api import KEEPALIVE_SECONDS, safe_filename
from coi.web.app import create_app

ALICE, BOB = "alice@example.org", "bob@example.org"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005"
    "0001e9fa0f0a0000000049454e44ae426082"
)


async def logged_in(env: WebEnv, browsers: list[Browser], address: str) -> Browser:
    b = Browser(env)
    browsers.append(b)
    await b.login(address)
    return b


async def until(check: Any, timeout: float = 15.0) -> Any:
    """Polls ``check`` (an async callable) until it returns something true."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.1)


async def synced_chat(b: Browser, peer: str) -> dict[str, Any]:
    """The chat with ``peer`` once the app's client has fetched it."""

    async def find() -> dict[str, Any] | None:
        for chat in await b.call("/api/chats"):
            if chat["peer"] == peer:
                return dict(chat)
        return None

    async with b.http.get(b.env.url + "/api/events") as events:  # connects the client
        await events.content.readline()
        return dict(await until(find))


async def test_login_needs_the_right_password_and_the_api_a_session(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    b = Browser(webenv)
    browsers.append(b)
    async with b.http.post(
        webenv.url + "/api/login", json={"address": ALICE, "password": "wrong"}
    ) as response:
        assert response.status == 401
        assert await response.json() == {"error": "wrong address or password"}
    async with b.http.get(webenv.url + "/api/chats") as response:
        assert response.status == 401
    me = await b.login(ALICE)
    assert me["address"] == ALICE and me["accounts"][0]["server"] == "coi"
    assert await b.call("/api/chats") == []


async def test_state_changes_need_the_csrf_token_and_our_origin(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    url = webenv.url + "/api/send"
    async with alice.http.post(url, json={"to": BOB, "text": "x"}) as response:
        assert response.status == 403
        assert "CSRF" in (await response.json())["error"]
    headers = {"X-CSRF-Token": alice.csrf, "Origin": "http://evil.example"}
    async with alice.http.post(url, json={"to": BOB, "text": "x"}, headers=headers) as response:
        assert response.status == 403
        assert await response.json() == {"error": "cross-site request refused"}
    async with alice.http.get(webenv.url + "/api/me") as response:
        assert response.headers["Cache-Control"] == "no-store"
    async with alice.http.get(webenv.url + "/") as response:
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
    cookie = next(iter(alice.http.cookie_jar))
    assert cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_chat_both_ways_with_replies_edits_reactions_and_live_events(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    bob = await logged_in(webenv, browsers, BOB)
    sent = await alice.call("/api/send", {"to": BOB, "text": "hello bob"})
    assert sent["outgoing"] and sent["state"] == "sent"
    chat = await synced_chat(bob, ALICE)
    assert chat["last"] == "hello bob" and chat["unread"] == 1
    async with bob.http.get(webenv.url + "/api/events") as events:
        await events.content.readline()  # retry: ...
        first = (await bob.call(f"/api/chats/{chat['id']}"))["messages"][0]
        reply = await bob.call("/api/send", {"reply_to": str(first["id"]), "text": "hi alice"})
        assert reply["parent"]["text"] == "hello bob"
        line = await _next_event(events)
        assert line["kind"] == "new" and line["chat"] == chat["id"]
        await alice.call(f"/api/messages/{sent['id']}/edit", {"text": "hello, bob"})
        await alice.call(f"/api/messages/{sent['id']}/react", {"emoji": "👍"})

        async def changed() -> list[dict[str, Any]] | None:
            msgs = (await bob.call(f"/api/chats/{chat['id']}"))["messages"]
            done = msgs[0]["edited"] and msgs[0]["text"] == "hello, bob" and msgs[0]["reactions"]
            return msgs if done else None

        msgs = await until(changed)
        assert msgs[0]["reactions"] == {ALICE: "👍"}
        assert (await _next_event(events))["kind"] in ("edit", "reaction", "new")
    await bob.call(f"/api/chats/{chat['id']}/mute", {"muted": True})
    assert (await bob.call("/api/chats"))[0]["muted"]
    await bob.call(f"/api/chats/{chat['id']}/mute", {"muted": False})
    assert not (await bob.call("/api/chats"))[0]["muted"]
    read = await bob.call(f"/api/chats/{chat['id']}/read", {})
    assert read == {"receipts_sent": 0}  # read receipts are off by default
    assert (await bob.call("/api/chats"))[0]["unread"] == 0
    deleted = await alice.call(f"/api/messages/{sent['id']}/delete", {})
    assert deleted["deleted"]


async def _next_event(events: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            line = await events.content.readline()
            if line.startswith(b"data: "):
                event: dict[str, Any] = json.loads(line[6:])
                if event["kind"] != "status":
                    return event


async def test_files_download_as_attachments_and_only_images_preview_inline(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    bob = await logged_in(webenv, browsers, BOB)
    form = aiohttp.FormData()
    form.add_field("to", BOB)
    form.add_field("text", "two files")
    form.add_field("file", PNG, filename="dot.png", content_type="image/png")
    form.add_field("file", b"<script>alert(1)</script>", filename="evil.html")
    sent = await alice.call("/api/send", form=form)
    assert [f["name"] for f in sent["files"]] == ["dot.png", "evil.html"]
    chat = await synced_chat(bob, ALICE)
    message = (await bob.call(f"/api/chats/{chat['id']}"))["messages"][0]
    png, html = message["files"]
    assert png["inline"] and not html["inline"] and "path" not in png
    async with bob.http.get(webenv.url + png["url"]) as response:
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="dot.png"')
        assert await response.read() == PNG
    async with bob.http.get(webenv.url + png["url"] + "?inline=1") as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["Content-Disposition"].startswith("inline;")
    async with bob.http.get(webenv.url + html["url"] + "?inline=1") as response:
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in response.headers["Content-Security-Policy"]


async def test_one_user_never_reaches_another_users_messages(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    bob = await logged_in(webenv, browsers, BOB)
    carol = await logged_in(webenv, browsers, CAROL)
    form = aiohttp.FormData()
    form.add_field("to", BOB)
    form.add_field("file", PNG, filename="private.png", content_type="image/png")
    sent = await alice.call("/api/send", form=form)
    # carol's profile has no chat and no message: alice's ids find nothing there
    await carol.call(f"/api/chats/{sent['chat']}", status=404)
    await carol.call(f"/api/messages/{sent['id']}/html", status=404)
    async with carol.http.get(webenv.url + sent["files"][0]["url"]) as response:
        assert response.status == 404
    await carol.call(f"/api/messages/{sent['id']}/delete", {}, status=404)
    assert await carol.call("/api/chats") == []
    assert (await bob.call("/api/me"))["address"] == BOB


async def test_message_html_is_sanitised(webenv: WebEnv, browsers: list[Browser]) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = BOB, ALICE, "newsletter"
    mail.set_content("plain version")
    mail.add_alternative(HOSTILE_HTML, subtype="html")
    await aiosmtplib.send(
        mail, hostname="127.0.0.1", port=webenv.mail.submission_port, start_tls=False,
        username=BOB, password=PASSWORDS[BOB],
    )  # fmt: skip
    chat = await synced_chat(alice, BOB)
    message = (await alice.call(f"/api/chats/{chat['id']}"))["messages"][0]
    assert message["email"]
    html = (await alice.call(f"/api/messages/{message['id']}/html"))["html"]
    assert "<b>bold</b>" in html and 'href="https://example.org/"' in html
    for bad in ("<script", "onerror", "onclick", "style", "evil.example", "javascript:", "<form"):
        assert bad not in html, (bad, html)


HOSTILE_HTML = """<html><head><style>body{display:none}</style></head><body>
<p onclick="steal()">Hello <b>bold</b> <a href="https://example.org/">link</a></p>
<script>alert(1)</script><img src="https://evil.example/track.png" alt="tracker" onerror="x()">
<a href="javascript:alert(2)">click</a><div style="position:fixed;top:0">overlay</div>
<form action="https://evil.example/"><input name="password"></form>
<svg onload="alert(3)"></svg><iframe src="https://evil.example/"></iframe></body></html>
"""


async def test_groups_contacts_and_blocking(webenv: WebEnv, browsers: list[Browser]) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    bob = await logged_in(webenv, browsers, BOB)
    made = await alice.call(
        "/api/groups", {"name": "Trip", "members": [BOB, CAROL], "text": "hello group"}
    )
    group = await alice.call(f"/api/chats/{made['chat']}")
    assert group["chat"]["group"] and sorted(group["members"]) == [BOB, CAROL]
    await alice.call(f"/api/chats/{made['chat']}/rename", {"name": "Trip 2027"})
    await alice.call(f"/api/chats/{made['chat']}/members", {"remove": CAROL})
    group = await alice.call(f"/api/chats/{made['chat']}")
    assert group["chat"]["name"] == "Trip 2027" and group["members"] == [BOB]
    await alice.call("/api/contacts", {"address": CAROL, "name": "Carol"})
    await alice.call("/api/contacts", {"address": BOB, "blocked": True})
    contacts = {c["address"]: c for c in await alice.call("/api/contacts")}
    assert contacts[CAROL]["name"] == "Carol" and contacts[BOB]["blocked"]
    await bob.call("/api/send", {"to": ALICE, "text": "you blocked me"})
    await alice.call("/api/contacts", {"address": BOB, "blocked": False})
    chat = await synced_chat(alice, BOB)
    assert chat["last"] == "you blocked me"


async def test_sessions_survive_a_restart_and_end_at_logout(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    await alice.call("/api/send", {"to": BOB, "text": "before the restart"})
    await webenv.runner.cleanup()
    again = await start_web(webenv.mail, webenv.root)
    webenv.runner, alice.env = again.runner, again
    try:
        chats = await alice.call("/api/chats")
        assert chats[0]["last"] == "before the restart"
        await alice.call("/api/logout", {})
        await alice.call("/api/chats", status=401)
    finally:
        pass


def test_upload_names_lose_directories_and_control_characters() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\x\\a\x00b\u202e.txt") == "ab.txt"
    assert safe_filename("..") == "file"
    assert safe_filename(".hidden") == "hidden"


async def test_failed_logins_slow_down_the_next_attempt(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    b = Browser(webenv)
    browsers.append(b)
    url = webenv.url + "/api/login"
    headers = {"Origin": webenv.url}
    for _ in range(2):
        async with b.http.post(
            url, json={"address": ALICE, "password": "guess"}, headers=headers
        ) as response:
            assert response.status == 401
    loop = asyncio.get_running_loop()
    started = loop.time()
    await b.login(ALICE)  # the right password too waits: the throttle doesn't know it yet
    assert loop.time() - started >= 0.9


async def test_personal_mode_serves_an_existing_profile(
    webenv: WebEnv, browsers: list[Browser], tmp_path: Path
) -> None:
    """``coi web`` on a profile made by ``coi account add``: its accounts log in with the
    password stored there, and the app shows that profile's chats."""
    mail = webenv.mail
    client = await new_client(
        tmp_path, "mine", ALICE, PASSWORDS[ALICE], mail.imap.port, mail.submission_port
    )
    await client.send(BOB, "sent from the command line")
    client.close()
    app = create_app(PersonalAccounts(tmp_path / "mine"), tmp_path / "mine")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    personal = WebEnv(mail, f"http://127.0.0.1:{port}", tmp_path / "mine", runner)
    try:
        b = Browser(personal)
        browsers.append(b)
        async with b.http.post(
            personal.url + "/api/login",
            json={"address": BOB, "password": PASSWORDS[BOB]},
            headers={"Origin": personal.url},
        ) as response:
            assert response.status == 401  # bob is no account of this profile
        await b.login(ALICE)
        chats = await b.call("/api/chats")
        assert [c["last"] for c in chats] == ["sent from the command line"]
    finally:
        await runner.cleanup()


async def test_settings_reach_the_server_and_search_finds_chats(
    webenv: WebEnv, browsers: list[Browser]
) -> None:
    alice = await logged_in(webenv, browsers, ALICE)
    await alice.call("/api/send", {"to": BOB, "text": "about the picnic"})
    await alice.call("/api/send", {"to": CAROL, "text": "about the meeting"})
    assert [c["peer"] for c in await alice.call("/api/chats?q=picnic")] == [BOB]
    assert [c["peer"] for c in await alice.call("/api/chats?q=carol")] == [CAROL]
    await alice.call("/api/settings", {"filter": "sideways"}, status=400)
    await alice.call(
        "/api/settings", {"filter": "active", "read_receipts": True, "encrypt_only": False}
    )
    me = (await alice.call("/api/me"))["accounts"][0]
    assert me["filter"] == "active" and me["read_receipts"] and not me["encrypt_only"]
    stored = webenv.mail.imap.store.get_metadata(webenv.mail.user_id(ALICE), 0, [MESSAGE_FILTER])
    assert stored == {MESSAGE_FILTER: b"active"}  # told to the COI server at once


async def test_stopping_the_app_ends_open_event_streams_at_once(tmp_path: Path) -> None:
    """An open tab's event stream does not hold the web server's stop until its next
    keepalive (KEEPALIVE_SECONDS, when it would find the tab gone): it ends at once."""
    mail = await start_mail(tmp_path / "server")
    env = await start_web(mail, tmp_path / "web")
    b = Browser(env)
    try:
        await b.login(ALICE)
        async with b.http.get(env.url + "/api/events") as events:
            await events.content.readline()  # retry: ...
            started = time.monotonic()
            await asyncio.wait_for(env.runner.cleanup(), KEEPALIVE_SECONDS)
            assert time.monotonic() - started < KEEPALIVE_SECONDS / 4
            with contextlib.suppress(aiohttp.ClientPayloadError):
                await events.content.read()  # the stream has ended
            assert events.content.at_eof()
    finally:
        await b.close()
        await stop_mail(mail)
