"""Fixtures for coi web: our mail server and the web app on loopback, in the test's loop,
with users alice, bob and carol logging in through the app as browsers would."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.conftest import PASSWORDS, _hash
from tests.integration.conftest import MailEnv, start_mail, stop_mail
from tests.push_endpoint import Endpoint as PushService

from coi.cli.common import DEFAULT_MAILBOXES
from coi.client.profile import AccountSettings, Endpoint, Security
from coi.web.accounts import HostedAccounts
from coi.web.app import create_app
from coi.webpush.service import WebPushService

CAROL = "carol@example.org"
CAROL_PASSWORD = "carol-secret"


@dataclasses.dataclass
class WebEnv:
    mail: MailEnv
    url: str
    root: Path
    runner: web.AppRunner

    def password(self, address: str) -> str:
        return CAROL_PASSWORD if address == CAROL else PASSWORDS[address]


class Browser:
    """An HTTP session as the app's JavaScript makes it: cookie, CSRF header, Origin."""

    def __init__(self, env: WebEnv) -> None:
        self.env = env
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, address: str, password: str | None = None) -> dict[str, Any]:
        async with self.http.post(
            self.env.url + "/api/login",
            json={"address": address, "password": password or self.env.password(address)},
            headers={"Origin": self.env.url},
        ) as response:
            data: dict[str, Any] = await response.json()
            assert response.status == 200, data
        self.csrf = data["csrf"]
        return data

    async def call(
        self,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        form: aiohttp.FormData | None = None,
    ) -> Any:
        headers = {"X-CSRF-Token": self.csrf, "Origin": self.env.url}
        if body is None and form is None:
            request = self.http.get(self.env.url + path)
        elif form is not None:
            request = self.http.post(self.env.url + path, data=form, headers=headers)
        else:
            request = self.http.post(self.env.url + path, json=body, headers=headers)
        async with request as response:
            data = await response.json()
            assert response.status == status, (response.status, data)
            return data

    async def close(self) -> None:
        await self.http.close()


async def start_web(mail: MailEnv, root: Path) -> WebEnv:
    template = AccountSettings(
        address="",
        imap=Endpoint("127.0.0.1", mail.imap.port),
        smtp=Endpoint("127.0.0.1", mail.submission_port),
        security=Security.PLAIN,
    )
    app = create_app(HostedAccounts(root, template), root)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return WebEnv(mail, f"http://127.0.0.1:{port}", root, runner)


@pytest.fixture
async def webenv(tmp_path: Path) -> AsyncIterator[WebEnv]:
    mail = await start_mail(tmp_path / "server", max_message_size=2_000_000)
    await mail.imap.store.add_user(CAROL, _hash(CAROL_PASSWORD), DEFAULT_MAILBOXES)
    env = await start_web(mail, tmp_path / "web")
    try:
        yield env
    finally:
        await env.runner.cleanup()
        await stop_mail(mail)


@pytest.fixture
async def push_webenv(tmp_path: Path, push_endpoint: PushService) -> AsyncIterator[WebEnv]:
    """As ``webenv``, with the server's WebPush sending to the local push service."""
    mail = await start_mail(
        tmp_path / "server",
        imap_overrides={
            "webpush_allow_private": True,
            "webpush_ca_file": push_endpoint.ca_file,
        },
    )
    keys = mail.imap.server.webpush_keys
    assert keys is not None
    webpush = WebPushService(mail.imap.server.config, mail.imap.store, keys)
    webpush.start()
    env = await start_web(mail, tmp_path / "web")
    try:
        yield env
    finally:
        await env.runner.cleanup()
        await webpush.stop()
        await stop_mail(mail)


@pytest.fixture
async def browsers(webenv: WebEnv) -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for b in made:
        await b.close()
