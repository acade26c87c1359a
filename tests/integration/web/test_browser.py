"""coi web in a real browser: Debian's Chromium, headless, driven by Playwright.

alice, bob and carol log in from separate browser contexts (separate cookie jars, as
separate people's browsers) to the app in hosted mode beside our mail server.
Screenshots go to $COI_ARTIFACTS/web (default build/test-artifacts/web).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from cryptography.hazmat.primitives import serialization
from tests.conftest import PASSWORDS
from tests.integration.web.conftest import CAROL, WebEnv
from tests.integration.web.test_api import HOSTILE_HTML, PNG
from tests.push_endpoint import Endpoint

from coi.webpush.crypto import b64url_encode

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/bootstrap)"
)
ALICE, BOB = "alice@example.org", "bob@example.org"
ARTIFACTS = Path(os.environ.get("COI_ARTIFACTS", "build/test-artifacts")) / "web"
WAIT = 20_000  # ms: a message goes browser -> app -> SMTP -> LMTP -> IMAP IDLE -> app -> browser


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def open_app(
    chromium: Any, env: WebEnv, address: str, *, viewport: dict[str, int] | None = None, **kw: Any
) -> Any:
    context = await chromium.new_context(
        viewport=viewport or {"width": 1100, "height": 720}, accept_downloads=True, **kw
    )
    page = await context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    await page.goto(env.url + "/")
    await page.fill("input[name=address]", address)
    await page.fill("input[name=password]", env.password(address))
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#app-view:not([hidden])", timeout=WAIT)
    return page


def chat_item(page: Any, text: str) -> Any:
    return page.locator(".chat-item", has_text=text)


def message(page: Any, text: str) -> Any:
    return page.locator("#messages .msg", has_text=text)


async def send(page: Any, text: str) -> None:
    await page.fill("#compose-text", text)
    await page.press("#compose-text", "Enter")
    await message(page, text).wait_for(timeout=WAIT)


@pytest.mark.timeout(300)
async def test_two_people_chat_live_with_files_edits_reactions_groups_and_blocking(
    webenv: WebEnv, chromium: Any, tmp_path: Path
) -> None:
    alice = await open_app(chromium, webenv, ALICE)
    bob = await open_app(chromium, webenv, BOB)

    # alice starts a chat; bob's list shows it live, without a reload
    await alice.click("#new-chat")
    await alice.fill("#dialog input[name=to]", BOB)
    await alice.fill("#dialog textarea[name=text]", "Hi Bob, this is Alice")
    await alice.click("#dialog-ok")
    await message(alice, "Hi Bob, this is Alice").wait_for(timeout=WAIT)
    await chat_item(bob, ALICE).wait_for(timeout=WAIT)
    await chat_item(bob, ALICE).click()
    await message(bob, "Hi Bob, this is Alice").wait_for(timeout=WAIT)
    await send(bob, "Hello Alice!")
    await message(alice, "Hello Alice!").wait_for(timeout=WAIT)

    # files: an image (previewed) and a document (downloaded)
    doc = tmp_path / "notes.txt"
    doc.write_text("meeting at noon\n")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    await alice.set_input_files("#file-input", [str(image), str(doc)])
    await alice.fill("#compose-text", "two files")
    await alice.press("#compose-text", "Enter")
    await message(alice, "two files").wait_for(timeout=WAIT)
    with_files = message(bob, "two files")
    await with_files.wait_for(timeout=WAIT)
    preview = with_files.locator("img")
    await preview.wait_for(timeout=WAIT)
    await bob.wait_for_function(
        "img => img.complete && img.naturalWidth === 1", arg=await preview.element_handle()
    )
    for attempt in range(3):
        # a live update that changes the chat (alice reading bob's message) rebuilds the
        # list, and a click landing on the old link is lost: the user clicks again
        try:
            async with bob.expect_download(timeout=10_000) as download_info:
                await with_files.locator("a", has_text="notes.txt").click()
            break
        except playwright_api.TimeoutError:
            if attempt == 2:
                raise
    download = await download_info.value
    assert download.suggested_filename == "notes.txt"
    assert Path(await download.path()).read_text() == "meeting at noon\n"

    # edit, react, delete
    original = message(alice, "Hi Bob, this is Alice")
    await original.hover()
    await original.get_by_role("button", name="Edit").click()
    await alice.fill("#compose-text", "Hi Bob, this is Alice (edited)")
    await alice.press("#compose-text", "Enter")
    edited = message(bob, "Hi Bob, this is Alice (edited)")
    await edited.wait_for(timeout=WAIT)
    assert "edited" in await edited.locator(".meta").inner_text()
    await edited.hover()
    await edited.get_by_role("button", name="React 👍").click()
    await message(alice, "(edited)").locator(".reaction", has_text="👍").wait_for(timeout=WAIT)
    oops = "this was a mistake"
    await send(alice, oops)
    await message(bob, oops).wait_for(timeout=WAIT)
    alice.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await message(alice, oops).hover()
    await message(alice, oops).get_by_role("button", name="Delete").click()
    await bob.locator(".msg.deleted").wait_for(timeout=WAIT)
    assert await message(bob, oops).count() == 0
    await shot(alice, "chat-desktop-alice")
    await shot(bob, "chat-desktop-bob")

    # a group with carol
    carol = await open_app(chromium, webenv, CAROL)
    await alice.click("#new-group")
    await alice.fill("#dialog input[name=name]", "Weekend")
    await alice.fill("#dialog input[name=members]", f"{BOB}, {CAROL}")
    await alice.fill("#dialog textarea[name=text]", "Who is in for Saturday?")
    await alice.click("#dialog-ok")
    await chat_item(carol, "Weekend").wait_for(timeout=WAIT)
    await chat_item(carol, "Weekend").click()
    await send(carol, "Me!")
    await message(alice, "Me!").wait_for(timeout=WAIT)
    assert await alice.locator("#chat-subtitle").inner_text() == "3 members"
    await shot(carol, "group-carol")

    # alice blocks bob: his next message never shows; unblocking brings the chat back
    await alice.click("#open-contacts")
    await alice.fill("#dialog input[name=address]", BOB)
    await alice.check("#dialog input[name=blocked]")
    await alice.click("#dialog-ok")
    await chat_item(alice, ALICE.replace("alice", "bob")).wait_for(state="detached", timeout=WAIT)
    await chat_item(bob, ALICE).click()
    await send(bob, "are you there?")
    await asyncio.sleep(2)
    assert await chat_item(alice, BOB).count() == 0
    await alice.click("#open-contacts")
    contact = alice.locator("#dialog .contacts li", has_text=BOB)
    await contact.get_by_role("button", name="unblock").click()
    await chat_item(alice, BOB).wait_for(timeout=WAIT)
    await chat_item(alice, BOB).click()
    await message(alice, "are you there?").wait_for(timeout=WAIT)
    for page in (alice, bob, carol):
        assert page.errors == []


@pytest.mark.timeout(180)
async def test_phone_sized_screen_and_keyboard_only(webenv: WebEnv, chromium: Any) -> None:
    alice = await open_app(chromium, webenv, ALICE)
    await alice.click("#new-chat")
    await alice.fill("#dialog input[name=to]", BOB)
    await alice.fill("#dialog textarea[name=text]", "ping from alice")
    await alice.click("#dialog-ok")
    await message(alice, "ping from alice").wait_for(timeout=WAIT)

    context = await chromium.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone = await context.new_page()
    await phone.goto(webenv.url + "/")
    await phone.bring_to_front()
    # log in with the keyboard alone: the address field has focus, Tab, type, Enter
    await phone.wait_for_selector("input[name=address]:focus")
    await phone.keyboard.type(BOB)
    await phone.keyboard.press("Tab")
    await phone.keyboard.type(PASSWORDS[BOB])
    await phone.keyboard.press("Enter")
    item = chat_item(phone, ALICE)
    await item.wait_for(timeout=WAIT)
    assert not await phone.locator("#chat-view").is_visible()  # one column: the list
    await item.focus()
    await phone.keyboard.press("Enter")
    await message(phone, "ping from alice").wait_for(timeout=WAIT)
    assert not await phone.locator("#sidebar").is_visible()  # one column: the chat
    assert await phone.evaluate("document.activeElement.id") == "compose-text"
    await phone.keyboard.type("pong from bob's phone")
    await phone.keyboard.press("Enter")
    await message(alice, "pong from bob's phone").wait_for(timeout=WAIT)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the screen
    await shot(phone, "chat-phone-bob")
    await phone.locator("#back").click()
    await item.wait_for(timeout=WAIT)
    await shot(phone, "list-phone-bob")


@pytest.mark.timeout(180)
async def test_hostile_message_html_is_inert_in_the_browser(webenv: WebEnv, chromium: Any) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = BOB, ALICE, "newsletter"
    mail.set_content("plain version")
    mail.add_alternative(
        HOSTILE_HTML + '<img src="x" onerror="window.pwned=1"><p id="marker">end</p>',
        subtype="html",
    )
    await aiosmtplib.send(
        mail, hostname="127.0.0.1", port=webenv.mail.submission_port, start_tls=False,
        username=BOB, password=PASSWORDS[BOB],
    )  # fmt: skip
    alice = await open_app(chromium, webenv, ALICE)
    requests: list[str] = []
    dialogs: list[str] = []
    alice.on("request", lambda r: requests.append(r.url))
    alice.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    await chat_item(alice, BOB).wait_for(timeout=WAIT)
    await chat_item(alice, BOB).click()
    await message(alice, "plain version").get_by_role("button", name="Show formatted").click()
    await shot(alice, "hostile-html")
    box = alice.locator(".msg .html")
    await box.locator("b", has_text="bold").wait_for(timeout=WAIT)
    await alice.wait_for_timeout(1000)
    assert await alice.evaluate("window.pwned") is None
    assert dialogs == []
    assert [u for u in requests if "evil.example" in u] == []
    assert await box.locator("script, iframe, form, svg, style, [onclick], [style]").count() == 0
    overlay = box.get_by_text("overlay")
    assert await overlay.evaluate("e => getComputedStyle(e).position") == "static"
    assert await box.locator("a", has_text="click").get_attribute("href") is None
    await shot(alice, "hostile-html")


@pytest.mark.timeout(180)
async def test_web_push_subscribe_validate_notify_and_unsubscribe(
    push_webenv: WebEnv, push_endpoint: Endpoint, chromium: Any
) -> None:
    """The browser's push service is stood in for by the local one: the page's
    PushManager.subscribe returns a subscription at it (the keys are the test's), the
    COI server pushes there, and the test delivers what arrived, decrypted as a browser
    would, to the service worker through the DevTools protocol."""
    env = push_webenv
    point = push_endpoint.ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    fake = {
        "endpoint": push_endpoint.url + "/push/browser",
        "expirationTime": None,
        "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(push_endpoint.auth)},
    }
    context = await chromium.new_context()
    await context.grant_permissions(["notifications"], origin=env.url)
    await context.add_init_script(
        "PushManager.prototype.subscribe = async function () {"
        f" const json = {json.dumps(fake)};"
        " return { endpoint: json.endpoint, toJSON: () => json, unsubscribe: async () => true };"
        "}; PushManager.prototype.getSubscription = async function () { return null; };"
    )
    page = await context.new_page()
    await page.goto(env.url + "/")
    await page.fill("input[name=address]", ALICE)
    await page.fill("input[name=password]", env.password(ALICE))
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#app-view:not([hidden])", timeout=WAIT)
    await page.evaluate("navigator.serviceWorker.ready")
    cdp = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    await page.wait_for_function("navigator.serviceWorker.controller !== null || true")

    await page.click("#open-settings")
    await page.get_by_role("button", name="Enable notifications on this device").click()
    validation = await _pushed(push_endpoint, 0)
    assert "validation" in json.loads(validation)
    registration = next(r["registrationId"] for r in registrations if not r["isDeleted"])

    async def deliver(data: bytes) -> None:
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": env.url + "/", "registrationId": registration, "data": data.decode()},
        )

    await deliver(validation)
    subs = await _until_subscriptions(env, lambda s: s and all(v["validated"] for v in s))
    assert [v["client"] for v in subs] == ["coi web"]

    # bob writes; the server pushes; the service worker shows it
    bob_mail = EmailMessage()
    bob_mail["From"], bob_mail["To"] = BOB, ALICE
    bob_mail["Subject"], bob_mail["Chat-Version"] = "Message from bob", "1.0"
    bob_mail.set_content("Are you coming tonight?")
    await aiosmtplib.send(
        bob_mail, hostname="127.0.0.1", port=env.mail.submission_port, start_tls=False,
        username=BOB, password=PASSWORDS[BOB],
    )  # fmt: skip
    notice = json.loads(await _pushed(push_endpoint, 1))
    assert notice["from-email"] == BOB
    # delivered again when nothing shows within 10 s, as a push service retries: on a busy
    # machine Chromium has once dropped a delivery to a service worker it was restarting;
    # the notification's tag makes a repeat replace, not add
    shown = []
    for _ in range(3):
        await deliver(json.dumps(notice).encode())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while not (shown := await page.evaluate(NOTIFICATIONS)):
                    await asyncio.sleep(0.1)
        if shown:
            break
    assert shown == [[BOB, "Are you coming tonight?", BOB]]

    # logging out removes the subscription at the server
    await page.keyboard.press("Escape")  # the settings dialog
    await page.click("#logout")
    await page.wait_for_selector("#login-view:not([hidden])", timeout=WAIT)
    assert await _until_subscriptions(env, lambda s: s == []) == []


NOTIFICATIONS = """navigator.serviceWorker.ready.then(r => r.getNotifications())
    .then(n => n.map(x => [x.title, x.body, x.data.chat]))"""


async def _pushed(endpoint: Endpoint, index: int) -> bytes:
    async with asyncio.timeout(WAIT / 1000):
        while len(endpoint.received) <= index:
            await asyncio.sleep(0.05)
    return endpoint.received[index][1]


async def _until_subscriptions(env: WebEnv, done: Any) -> list[dict[str, Any]]:
    store = env.mail.imap.store
    user = env.mail.user_id(ALICE)
    prefix = "/private/vendor/vendor.dovecot/webpush/subscriptions"
    async with asyncio.timeout(WAIT / 1000):
        while True:
            found = store.get_metadata(user, 0, [prefix], depth="1")
            subs = [json.loads(v) for k, v in found.items() if k != prefix]
            if done(subs):
                return subs
            await asyncio.sleep(0.1)


def test_the_push_key_is_what_browsers_take() -> None:
    """The VAPID PEM (compressed point, as the server publishes it) becomes the
    uncompressed point, base64url, that PushManager.subscribe wants."""
    from coi.client.push import application_server_key
    from coi.webpush.crypto import generate_vapid_key, public_key_pem

    key = generate_vapid_key()
    got = application_server_key(public_key_pem(key).encode())
    raw = base64.urlsafe_b64decode(got + "=" * (-len(got) % 4))
    assert raw == key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@pytest.mark.timeout(180)
async def test_installable_and_files_by_drag_and_drop(webenv: WebEnv, chromium: Any) -> None:
    alice = await open_app(chromium, webenv, ALICE)
    await alice.evaluate("navigator.serviceWorker.ready")
    cdp = await alice.context.new_cdp_session(alice)
    found = (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"]
    # the browser would offer to install it as an app (a test profile is incognito)
    assert [e["errorId"] for e in found if e["errorId"] != "in-incognito"] == []
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and '"display": "standalone"' in manifest["data"]

    await alice.click("#new-chat")
    await alice.fill("#dialog input[name=to]", BOB)
    await alice.fill("#dialog textarea[name=text]", "a file follows")
    await alice.click("#dialog-ok")
    await message(alice, "a file follows").wait_for(timeout=WAIT)
    drop = await alice.evaluate_handle(
        """() => { const t = new DataTransfer();
                   t.items.add(new File(["dropped text\\n"], "dropped.txt", {type: "text/plain"}));
                   return t; }"""
    )
    await alice.dispatch_event("#chat-view", "drop", {"dataTransfer": drop})
    await alice.locator("#compose-files .chip", has_text="dropped.txt").wait_for()
    await alice.press("#compose-text", "Enter")  # files alone, no text
    await message(alice, "dropped.txt").wait_for(timeout=WAIT)
    bob = await open_app(chromium, webenv, BOB)
    await chat_item(bob, ALICE).click()
    await message(bob, "dropped.txt").wait_for(timeout=WAIT)
