"""A stale re-add is ignored (coi-client-spec: Processing Group Participants Changes), on
coi serve and on Debian's Dovecot.

carol leaves alice's group while bob, who has not synced since, writes to the group:
his message (To: carol, answering a message older than carol's groupleft) would add her
back; alice and carol ignore that.  An add answering a newer message (alice adding
carol again) stands, and so does bob's next message.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import PASSWORDS, _hash
from tests.integration.client.helpers import Devices, devices
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.cli.common import DEFAULT_MAILBOXES
from coi.client.client import Client
from coi.client.store import Chat

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


def only_chat(client: Client) -> Chat:
    [chat] = client.chats()
    return chat


async def scenario(make: Devices) -> None:
    alice, bob = await make("alice", ALICE), await make("bob", BOB)
    carol = await make("carol", CAROL)
    group = alice.create_group("Crew", [BOB, CAROL])
    await alice.send(str(group.id), "hello")
    await bob.sync()
    await carol.sync()
    bob_group, carol_group = only_chat(bob), only_chat(carol)
    bob.accept(bob_group)
    carol.accept(carol_group)
    await asyncio.sleep(1.1)  # Date has whole seconds: "hello" is older than the leave

    await carol.leave_group(carol_group)
    await alice.sync()
    assert alice.group_info(group).members == (BOB,)
    # bob has not synced: his message still goes to carol and answers "hello"
    await bob.send(str(bob_group.id), "anyone there?")
    await alice.sync()
    assert alice.group_info(group).members == (BOB,)  # the stale re-add is ignored
    assert [m.text for m in alice.messages(group)][-1] == "anyone there?"
    await carol.sync()
    assert carol.group_info(carol_group).left
    await bob.sync()
    assert bob.group_info(bob_group).members == (ALICE,)

    # a re-add answering a newer message stands, on every side
    await alice.add_member(group, CAROL)
    await bob.sync()
    await carol.sync()
    assert bob.group_info(bob_group).members == (ALICE, CAROL)
    assert not carol.group_info(carol_group).left
    await bob.send(str(bob_group.id), "welcome back")
    await alice.sync()
    await carol.sync()
    assert alice.group_info(group).members == (BOB, CAROL)
    assert carol.group_info(carol_group).members == (ALICE, BOB)


async def test_stale_readd_ignored_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    await env.imap.store.add_user(CAROL, _hash("carol-secret"), DEFAULT_MAILBOXES)
    passwords = {**PASSWORDS, CAROL: "carol-secret"}
    await scenario(devices(tmp_path, env.imap.port, env.submission_port, passwords))


async def test_stale_readd_ignored_dovecot(plain_mail: PlainMailServer, tmp_path: Path) -> None:
    await scenario(devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users))
