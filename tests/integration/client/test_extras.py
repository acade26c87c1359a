"""Profiles, a pin with expiry, a poll, a location and export between two coi clients,
on coi serve and on Debian's Dovecot."""

from __future__ import annotations

import asyncio
import base64
import json
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.helpers import new_client
from tests.integration.client.test_chat_plain import client as plain_client
from tests.integration.client.test_chat_plain import mailboxes
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.chat.parse import parse
from coi.client import extras
from coi.client.client import Client

ALICE, BOB = "alice@example.org", "bob@example.org"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def scenario(alice: Client, bob: Client, tmp_path: Path) -> None:
    # profiles: alice's goes with her first message; bob asks for hers again with his own
    avatar = tmp_path / "alice.png"
    avatar.write_bytes(PNG)
    await alice.set_profile(name="Alice Angel", status="weekend here I come", avatar=avatar)
    first = await alice.send(BOB, "hi bob")
    assert parse(alice.store.raw(first.id)).sender.name == "Alice Angel"  # type: ignore[union-attr]
    await bob.sync()
    info = bob.contact_profile(ALICE)
    assert (info.name, info.status) == ("Alice Angel", "weekend here I come")
    assert Path(info.avatar).read_bytes() == PNG
    [chat] = bob.chats()
    assert chat.name == "Alice Angel"
    bob.accept(chat)
    await bob.set_profile(name="Bob Builder", status="can we fix it?")
    asked = await bob.request_profile(ALICE, "who is this?")
    sent = parse(bob.store.raw(asked.id))
    assert sent.requests_profile and sent.profiles[0].card.name == "Bob Builder"
    await alice.sync()
    assert alice.contact_profile(BOB).status == "can we fix it?"
    answer = await alice.send(BOB, "it's me")
    assert parse(alice.store.raw(answer.id)).profiles  # the request answered
    later = await alice.send(BOB, "still me")
    assert not parse(alice.store.raw(later.id)).profiles  # bob has the latest version

    # a pin with an expiry, a poll with two voters and a close, a location
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    pinned = await alice.pin(first.id, until)
    poll = await alice.create_poll(BOB, "Movie night?", ["E.T.", "Alien"], single=True)
    await alice.vote(poll.id, [1])
    await bob.sync()
    [bpoll] = [m for m in bob.messages(chat) if m.kind == "poll"]
    await bob.vote(bpoll.id, [2])
    await alice.sync()
    await alice.close_poll(poll.id)
    await alice.send_location(BOB, 53.07516, 8.80777, "Let's meet here.")
    await bob.sync()

    pin = extras.active_pin(bob.store, chat.id)
    assert pin is not None and pin.until == until.timestamp()
    assert bob.message(pin.message).text == "hi bob"
    assert extras.active_pin(bob.store, chat.id, now=until.timestamp() + 1) is None
    assert pinned.text == "hi bob"
    for client, row in ((alice, alice.message(poll.id)), (bob, bob.message(bpoll.id))):
        found = extras.poll_result(client.store, row)
        assert found is not None
        assert found[1].counts == (1, 1) and found[1].closed
    [where] = [m for m in bob.messages(chat) if m.kind == "location"]
    assert where.text == "Let's meet here."
    assert "location 53.07516, 8.80777" in extras.notes(bob.store, where)[0]

    # export in all three formats
    text = bob.export(chat, "text").decode()
    assert "Alice Angel: hi bob" in text and "votes: 1. E.T.: 1, 2. Alien: 1 (closed)" in text
    data = json.loads(bob.export(chat, "json"))
    assert data["messages"][0]["text"] == "hi bob"
    assert any(m.get("poll", {}).get("closed") for m in data["messages"])
    path = tmp_path / "bob.mbox"
    path.write_bytes(bob.export(chat, "mbox"))
    box = list(mailbox.mbox(path))
    rows = bob.messages(chat)
    assert len(box) == len(rows) >= 7
    assert [m["Message-ID"] for m in box] == [f"<{r.message_id}>" for r in rows]


async def test_profiles_pin_poll_location_export_on_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    ports = (env.imap.port, env.submission_port)
    alice = await new_client(tmp_path, "alice", ALICE, PASSWORDS[ALICE], *ports)
    bob = await new_client(tmp_path, "bob", BOB, PASSWORDS[BOB], *ports)
    await scenario(alice, bob, tmp_path)


async def test_profiles_pin_poll_location_export_on_dovecot(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    alice = await plain_client(plain_mail, tmp_path, "alice", ALICE)
    bob = await plain_client(plain_mail, tmp_path, "bob", BOB)
    await scenario(alice, bob, tmp_path)
    await alice.set_profile(status="back at work")  # replaces the storage message
    boxes = await asyncio.to_thread(mailboxes, plain_mail, ALICE)
    [stored] = boxes["COI.Contacts"]  # the profile storage message, encrypted to alice
    opened = alice.keyring(alice.account()).open(stored)
    assert opened.encrypted
    [profile] = parse(opened.raw).profiles
    assert (profile.card.name, profile.card.status) == ("Alice Angel", "back at work")


async def test_commands_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    from tests.integration.client.test_cli_chat import add, coi

    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await add(env, b, BOB, PASSWORDS[BOB]))[0] == 0
    avatar = tmp_path / "alice.png"
    avatar.write_bytes(PNG)
    code, out, err = await coi(
        a, "profile", "set", "--name", "Alice Angel", "--avatar", str(avatar)
    )
    assert code == 0 and "Alice Angel" in out, err
    code, out, err = await coi(a, "poll", "create", BOB, "Movie?", "E.T.", "Alien", "--json")
    assert code == 0, err
    poll = json.loads(out)["id"]
    code, out, err = await coi(a, "poll", "vote", str(poll), "2")
    assert code == 0 and "votes: 1. E.T.: 0, 2. Alien: 1" in out, err
    code, out, err = await coi(a, "location", BOB, "53.07516", "8.80777", "--text", "here")
    assert code == 0 and "location 53.07516, 8.80777" in out, err
    code, out, err = await coi(a, "pin", str(poll), "--until", "2h")
    assert code == 0 and "pinned until" in out, err
    assert (await coi(b, "sync"))[0] == 0
    code, out, err = await coi(b, "profile", "show", ALICE)
    assert code == 0 and "Alice Angel" in out and "avatar: " in out, err
    code, out, err = await coi(b, "show", ALICE)
    assert "votes: 1. E.T.: 0, 2. Alien: 1" in out and "pinned until" in out, out
    mbox = tmp_path / "chat.mbox"
    code, out, err = await coi(b, "export", ALICE, "--format", "mbox", "--output", str(mbox))
    assert code == 0, err
    assert len(list(mailbox.mbox(mbox))) == 3
