"""Baseline: two real Delta Chat cores (2.65.0) chat encrypted through coi serve and through
Debian's Dovecot (tests/plainserver.py), keys exchanged by vCard. See tests/deltachat_peer.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.deltachat_peer import DcAccount, DeltaChatPeer, unavailable
from tests.integration.conftest import MailEnv, start_mail, stop_mail
from tests.plainserver import PlainMailServer

_reason = unavailable()
pytestmark = [
    pytest.mark.skipif(
        _reason is not None and not os.environ.get("CI"),
        reason=f"Delta Chat peer: {_reason}",
    ),
    pytest.mark.timeout(90),
]

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[DeltaChatPeer]:
    async with DeltaChatPeer.start(tmp_path / "dc") as dc:
        yield dc


@pytest.fixture
async def coi_mail(tmp_path: Path) -> AsyncIterator[MailEnv]:
    env = await start_mail(tmp_path / "coi")
    try:
        yield env
    finally:
        await stop_mail(env)


async def introduce(a: DcAccount, b: DcAccount) -> None:
    await b.import_vcard(await a.make_vcard())
    await a.import_vcard(await b.make_vcard())


async def chat_both_ways(alice: DcAccount, bob: DcAccount) -> None:
    await introduce(alice, bob)
    await alice.send_text(BOB, "hello bob, from alice")
    got = await bob.wait_for_message("hello bob, from alice")
    assert got.sender == ALICE
    assert got.encrypted, got.raw
    await bob.send_text(got.chat_id, "hello alice, bob here")
    back = await alice.wait_for_message("hello alice, bob here")
    assert back.sender == BOB
    assert back.encrypted, back.raw


async def test_encrypted_chat_through_coi_serve(coi_mail: MailEnv, peer: DeltaChatPeer) -> None:
    imap = ("127.0.0.1", coi_mail.imap.tls_port, "ssl")
    smtp = ("127.0.0.1", coi_mail.submissions_port, "ssl")
    alice = await peer.add_account(ALICE, PASSWORDS[ALICE], imap=imap, smtp=smtp)
    bob = await peer.add_account(BOB, PASSWORDS[BOB], imap=imap, smtp=smtp)
    await chat_both_ways(alice, bob)


async def test_encrypted_chat_through_dovecot(
    plain_mail: PlainMailServer, peer: DeltaChatPeer
) -> None:
    imap = ("127.0.0.1", plain_mail.imaps_port, "ssl")
    smtp = ("127.0.0.1", plain_mail.smtp_port, "plain")
    users = plain_mail.users
    alice = await peer.add_account(ALICE, users[ALICE], imap=imap, smtp=smtp)
    bob = await peer.add_account(BOB, users[BOB], imap=imap, smtp=smtp)
    await chat_both_ways(alice, bob)
