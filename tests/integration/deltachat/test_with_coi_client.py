"""alice on the coi client, bob on a real Delta Chat (2.65), through coi serve."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.deltachat_peer import DcAccount, DeltaChatPeer, MessageSnapshot, unavailable
from tests.integration.client.helpers import new_client
from tests.integration.conftest import MailEnv, start_mail, stop_mail

from coi.client.client import Client

_reason = unavailable()
pytestmark = [
    pytest.mark.skipif(
        _reason is not None and not os.environ.get("CI"),
        reason=f"Delta Chat peer: {_reason}",
    ),
    pytest.mark.timeout(120),
]

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[MailEnv]:
    env = await start_mail(tmp_path / "coi")
    try:
        yield env
    finally:
        await stop_mail(env)


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[DeltaChatPeer]:
    async with DeltaChatPeer.start(tmp_path / "dc") as dc:
        yield dc


async def pair(env: MailEnv, peer: DeltaChatPeer, tmp_path: Path) -> tuple[Client, DcAccount]:
    alice = await new_client(
        tmp_path, "alice", ALICE, PASSWORDS[ALICE], env.imap.port, env.submission_port
    )
    imap = ("127.0.0.1", env.imap.tls_port, "ssl")
    smtp = ("127.0.0.1", env.submissions_port, "ssl")
    bob = await peer.add_account(BOB, PASSWORDS[BOB], imap=imap, smtp=smtp)
    [account] = alice.accounts()
    alice.import_vcards(account, await bob.make_vcard())  # as "coi contact import"
    await bob.import_vcard(alice.vcard(account))  # as Delta Chat's "import contact"
    return alice, bob


async def synced_until(client: Client, done: object, timeout: float = 30.0) -> None:
    """Syncs until ``done()`` holds (Delta Chat sends in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await client.sync()
        if done():  # type: ignore[operator]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the expected change did not arrive")
        await asyncio.sleep(0.3)


async def test_text_both_ways_encrypted(env: MailEnv, peer: DeltaChatPeer, tmp_path: Path) -> None:
    alice, bob = await pair(env, peer, tmp_path)
    sent = await alice.send(BOB, "hello bob, from the coi client")
    assert sent.encrypted
    got: MessageSnapshot = await bob.wait_for_message("hello bob, from the coi client")
    assert got.sender == ALICE and got.encrypted, got.raw
    await bob.send_text(got.chat_id, "hello alice, from Delta Chat", quote=got.id)
    await synced_until(alice, lambda: sum(len(alice.messages(c)) for c in alice.chats()) == 2)
    [chat] = alice.chats()
    mine, theirs = alice.messages(chat)
    assert theirs.text == "hello alice, from Delta Chat"
    assert theirs.encrypted and theirs.verified
    assert theirs.in_reply_to == mine.message_id
    assert not chat.request  # we imported bob's vCard: a known contact
