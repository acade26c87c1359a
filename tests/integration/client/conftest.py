"""Fixtures for the client's scenario tests: our server with delivery, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.conftest import MailEnv, start_mail, stop_mail


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[MailEnv]:
    """coi serve's IMAP, LMTP and submission (messages over 200 kB refused)."""
    env = await start_mail(tmp_path / "server", max_message_size=200_000)
    try:
        yield env
    finally:
        await stop_mail(env)
