"""Fixtures for delivery tests: the IMAP server plus LMTP/submission listeners on loopback."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server

from coi.config import ServerConfig
from coi.delivery.relay import MxResolver, resolve_mx
from coi.delivery.service import DeliveryService
from coi.store.coi import ENABLED, MESSAGE_FILTER, CoiSettings
from coi.tls import ensure_self_signed, server_context


@dataclasses.dataclass
class MailEnv:
    imap: RunningServer
    delivery: DeliveryService

    @property
    def lmtp_port(self) -> int:
        return self.delivery.port("lmtp")

    @property
    def submission_port(self) -> int:
        return self.delivery.port("submission")

    @property
    def submissions_port(self) -> int:
        return self.delivery.port("submissions")

    def user_id(self, address: str) -> int:
        user = self.imap.store.get_user(address)
        assert user is not None
        return user.id

    async def set_coi(self, address: str, settings: CoiSettings) -> None:
        """Stores the settings as METADATA, as a client's SETMETADATA would."""
        entries = [
            (ENABLED, b"yes" if settings.enabled else None),
            (MESSAGE_FILTER, settings.message_filter.encode()),
        ]
        ensure = [(settings.chats_mailbox, True), (settings.contacts_mailbox, False)]
        await self.imap.store.set_metadata(
            self.user_id(address), 0, entries, ensure_mailboxes=ensure if settings.enabled else ()
        )


async def start_mail(
    tmp_path: Path,
    resolver: MxResolver = resolve_mx,
    imap_dir: Path | None = None,
    imap_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> MailEnv:
    """Delivery with its data (queue, DKIM keys) in tmp_path; the store in imap_dir or there."""
    if imap_dir is not None:
        imap_dir.mkdir(parents=True, exist_ok=True)
    imap = await start_server(imap_dir or tmp_path, **(imap_overrides or {}))
    settings: dict[str, Any] = {
        "data_dir": tmp_path,
        "domains": ("example.org",),
        "lmtp": "127.0.0.1:0",
        "submission": "127.0.0.1:0",
        "submissions": "127.0.0.1:0",
        "queue_retry": 0.2,
    }
    settings.update(overrides)
    config = ServerConfig(**settings)
    cert, key = ensure_self_signed(tmp_path, "localhost")
    queue = None
    if os.environ.get("COI_TEST_STORE", "sqlite") == "postgres":  # the queue beside the mail
        from coi.delivery.pgqueue import PgQueue
        from coi.store.postgres.store import PostgresStore

        assert isinstance(imap.store, PostgresStore)
        queue = PgQueue(imap.store)
    delivery = DeliveryService(
        config, imap.store, server_context(cert, key), None, resolver, queue=queue
    )
    await delivery.start()
    return MailEnv(imap, delivery)


async def stop_mail(env: MailEnv) -> None:
    await env.delivery.stop()
    await env.imap.server.stop(grace=2)
    env.imap.store.close()


@pytest.fixture
async def mail_env(tmp_path: Path) -> AsyncIterator[MailEnv]:
    env = await start_mail(tmp_path)
    try:
        yield env
    finally:
        await stop_mail(env)
