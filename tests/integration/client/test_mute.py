"""Muted chats, on coi serve and on Debian's Dovecot.

alice mutes her 1:1 chat with bob (a stored contact) and a group: their new messages do
not notify ('coi watch' reports them with notify false), except one that mentions her.
Her second device follows through the contact and group storage messages in
<root>/Contacts (``p-notification``), the mute's end time included; an unmute on the
second device reaches the first.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.helpers import devices
from tests.integration.client.test_cli_chat import add, coi
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.client import groups
from coi.client.client import Client, ClientError, ClientEvent
from coi.client.store import Chat
from coi.client.watch import _report

ALICE, BOB = "alice@example.org", "bob@example.org"


async def wake(client: Client) -> list[tuple[str, bool, bool]]:
    """One wake of 'coi watch': (text, muted, notify) of each new message."""
    [acc] = client.accounts()
    events: list[ClientEvent] = []
    async with client.connected(acc) as sync:
        await _report(sync, client, events.append)
    out = []
    for e in events:
        if e.kind == "new" and e.message is not None:
            row = client.store.message(e.message)
            assert row is not None
            out.append((row.text, e.muted, e.notify))
    return out


def chat_of(client: Client, key: str) -> Chat:
    row = client.store.db.execute("SELECT id FROM chat WHERE key=?", (key,)).fetchone()
    assert row is not None, key
    chat = client.store.chat(int(row[0]))
    assert chat is not None
    return chat


async def scenario(make: object) -> None:
    assert callable(make)
    alice: Client = await make("alice", ALICE)
    alice2: Client = await make("alice2", ALICE)
    bob: Client = await make("bob", BOB)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))  # second device, same key

    await bob.send(ALICE, "hi alice")
    assert await wake(alice) == [("hi alice", False, True)]
    await alice.save_contacts(acc, [(BOB, "Bob", None)])  # accepted and stored
    one = alice.find_chat(BOB)
    assert one is not None

    # muted: no notification, but a mention of alice notifies
    assert await alice.mute(one) is True  # stored in bob's contact storage message
    await bob.send(ALICE, "are you there?")
    await bob.send(ALICE, "@Alice:alice@example.org lunch?")
    assert await wake(alice) == [
        ("are you there?", True, False),
        ("@Alice:alice@example.org lunch?", True, True),
    ]
    await alice2.sync()
    mirrored = alice2.find_chat(BOB)
    assert mirrored is not None and mirrored.muted() and mirrored.muted_until == 0

    # a group muted until a time: the second device has the same end
    group = alice.create_group("Crew", [BOB])
    await alice.send(str(group.id), "welcome to the crew")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    assert await alice.mute(group, until) is True  # in the group storage message
    await alice2.sync()
    group2 = chat_of(alice2, group.key)
    assert group2.muted() and group2.muted_until == until.timestamp()
    assert not group2.muted(now=until.timestamp() + 1)  # it ends
    await bob.sync()
    bob_group = chat_of(bob, group.key)
    bob.accept(bob_group)
    await bob.send(str(bob_group.id), "news from bob")
    await bob.send(str(bob_group.id), "@all meeting at 5")
    assert await wake(alice) == [
        ("news from bob", True, False),
        ("@all meeting at 5", True, True),
    ]

    # unmuted on the second device: the first follows
    assert await alice2.mute(mirrored, muted=False) is True
    assert await alice2.mute(group2, muted=False) is True
    await alice.sync()
    assert not chat_of(alice, one.key).muted() and not chat_of(alice, group.key).muted()
    await bob.send(ALICE, "back again")
    assert await wake(alice) == [("back again", False, True)]

    # an end in the past is a mistake
    past = datetime.now(UTC) - timedelta(minutes=1)
    try:
        await alice.mute(group, past)
    except ClientError as exc:
        assert "past" in str(exc)
    else:
        raise AssertionError("a mute ending in the past was accepted")
    assert groups.group_id(group)


async def test_mute_on_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    await scenario(devices(tmp_path, env.imap.port, env.submission_port, PASSWORDS))


async def test_mute_on_dovecot(plain_mail: PlainMailServer, tmp_path: Path) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    await scenario(make)


async def test_mute_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    """`coi mute`/`coi unmute`, the chat list and --json; a contact not stored keeps the
    mute on this device; mistakes are one line."""
    a, b = tmp_path / "a", tmp_path / "b"
    for profile, who in ((a, ALICE), (b, BOB)):
        code, _, err = await add(env, profile, who, PASSWORDS[who])
        assert code == 0, err
    assert (await coi(b, "send", ALICE, "hi alice"))[0] == 0
    assert (await coi(a, "sync"))[0] == 0
    code, out, err = await coi(a, "mute", BOB, "--until", "2h")
    assert code == 0, err
    assert "muted until" in out and "on this device only" in out
    code, out, _ = await coi(a, "chats")
    assert "[muted until " in out
    code, out, _ = await coi(a, "chats", "--json")
    [chat] = json.loads(out)
    assert chat["muted"] is True and chat["muted_until"] > time.time() + 3600
    code, out, err = await coi(a, "unmute", BOB, "--json")
    assert code == 0, err
    assert json.loads(out)["muted"] is False
    code, out, _ = await coi(a, "chats")
    assert "muted" not in out
    code, _, err = await coi(a, "mute", BOB, "--until", "soon")
    assert code == 1 and err.count("\n") == 1 and "--until" in err
    code, _, err = await coi(a, "mute", "nobody@example.org")
    assert code == 1 and err.count("\n") == 1
