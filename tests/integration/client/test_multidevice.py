"""Two devices of alice share her profile and her groups through <root>/Contacts
(profile and group storage messages), on coi serve and on Debian's Dovecot.

Device 1 sets her profile; device 2 reads it back.  Device 1 creates a group and sends
nothing: device 2 learns the group (name, members) from its group storage message.
Device 2 renames it and leaves it; device 1 follows, and one storage message per group
stays in the folder.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.helpers import boxes, devices
from tests.integration.client.test_cli_chat import add, coi
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.client import extras, groups
from coi.client.client import Client

ALICE, BOB = "alice@example.org", "bob@example.org"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def group_chat(client: Client, gid: str) -> int | None:
    row = client.store.db.execute(
        "SELECT id FROM chat WHERE key=?", (groups.KEY_PREFIX + gid,)
    ).fetchone()
    return None if row is None else int(row[0])


def storage_heads(stored: dict[str, list[bytes]], folder: str, kind: bytes) -> list[bytes]:
    return [h for h in stored.get(folder, []) if b"Chat-Content: " + kind in h]


async def scenario(
    make: object, imap: tuple[str, int], password: str, contacts_folder: str, tmp: Path
) -> None:
    assert callable(make)
    alice: Client = await make("alice", ALICE)
    alice2: Client = await make("alice2", ALICE)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))  # second device, same key

    # our profile, set on device 1, is the same on device 2 after a sync
    avatar = tmp / "me.png"
    avatar.write_bytes(PNG)
    await alice.set_profile(name="Alice Angel", status="weekend here I come", avatar=avatar)
    await alice.set_profile(status="back at work")  # replaces the storage message
    await alice2.sync()
    info = alice2.contact_profile()
    assert (info.name, info.status) == ("Alice Angel", "back at work")
    assert Path(info.avatar).read_bytes() == PNG
    assert alice2.store.account_by_id(acc2.id).settings.name == "Alice Angel"  # type: ignore[union-attr]
    assert alice2.contacts(acc2) == []  # no contact row for it

    # a group made on device 1, no message sent yet: device 2 has it after a sync
    chat = alice.create_group("Crew", [BOB])
    gid = groups.group_id(chat)
    await alice.sync()  # stores the group storage message
    await alice2.sync()
    found = group_chat(alice2, gid)
    assert found is not None
    chat2 = alice2.store.chat(found)
    assert chat2 is not None
    view = alice2.group_info(chat2)
    assert (view.name, view.members, view.left) == ("Crew", (BOB,), False)

    # renamed on device 2: device 1 follows; one storage message per group stays
    await alice2.rename_group(chat2, "New crew")
    await alice.sync()
    assert alice.group_info(chat).name == "New crew"
    stored = await asyncio.to_thread(boxes, *imap, ALICE, password)
    assert len(storage_heads(stored, contacts_folder, b"group")) == 1
    [head] = storage_heads(stored, contacts_folder, b"group")
    assert b"multipart/encrypted" in head and b"Crew" not in head  # body encrypted
    assert alice.contacts(acc) == []

    # a third device that synced before it had the key reads the storage messages again
    # once the key is imported
    alice3: Client = await make("alice3", ALICE)
    [acc3] = alice3.accounts()
    await alice3.sync()
    assert alice3.contact_profile().status == ""
    alice3.import_key(acc3, alice.export_key(acc))
    await alice3.sync()
    found3 = group_chat(alice3, gid)
    assert found3 is not None
    chat3 = alice3.store.chat(found3)
    assert chat3 is not None
    view3 = alice3.group_info(chat3)
    assert (view3.name, view3.members, view3.left) == ("New crew", (BOB,), False)
    assert alice3.contact_profile().status == "back at work"

    # left on device 2: the others know we left
    await alice2.leave_group(chat2)
    await alice.sync()
    await alice3.sync()
    assert alice.group_info(chat).left
    assert alice3.group_info(chat3).left
    stored = await asyncio.to_thread(boxes, *imap, ALICE, password)
    assert len(storage_heads(stored, contacts_folder, b"group")) == 1


async def test_profile_and_groups_on_two_devices_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    make = devices(tmp_path, env.imap.port, env.submission_port, PASSWORDS)
    imap = ("127.0.0.1", env.imap.port)
    await scenario(make, imap, PASSWORDS[ALICE], "COI/Contacts", tmp_path)


async def test_profile_and_groups_on_two_devices_dovecot(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    imap = (plain_mail.imap_host, plain_mail.imap_port)
    await scenario(make, imap, plain_mail.users[ALICE], "COI.Contacts", tmp_path)


async def test_profile_and_group_from_the_shell_on_two_devices(
    env: MailEnv, tmp_path: Path
) -> None:
    """`coi profile set` and `coi group create` on one device; `coi sync` on the other."""
    one, two = tmp_path / "one", tmp_path / "two"
    for device in (one, two):
        code, _, err = await add(env, device, ALICE, PASSWORDS[ALICE])
        assert code == 0, err
    key = tmp_path / "alice.key"
    assert (await coi(one, "key", "export", str(key)))[0] == 0
    code, _, err = await coi(two, "key", "import", str(key))
    assert code == 0, err
    code, _, err = await coi(one, "profile", "set", "--name", "Alice Angel", "--status", "hi")
    assert code == 0, err
    code, out, err = await coi(one, "group", "create", "Crew", BOB, "--json")
    assert code == 0, err
    assert (await coi(two, "sync"))[0] == 0
    code, out, err = await coi(two, "profile", "show", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["name"], shown["status"]) == ("Alice Angel", "hi")
    code, out, err = await coi(two, "group", "info", "Crew", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["name"] == "Crew" and info["members"] == [BOB]


def extras_dump(client: Client) -> str:
    """Every chat's messages with their pin and poll tally, without ids: equal on two
    devices that see the same state."""
    lines: list[str] = []
    for chat in sorted(client.chats(), key=lambda c: c.peer or c.name):
        lines.append(f"chat {chat.peer or chat.name}")
        for m in client.messages(chat):
            notes = "; ".join(extras.notes(client.store, m))
            who = "me" if m.outgoing else m.sender
            lines.append(f"  {who}: {m.text}" + (f"  [{notes}]" if notes else ""))
    return "\n".join(lines) + "\n"


async def pins_and_polls(make: object) -> None:
    """A pin with an expiry and a poll's tallies are the same on alice's second device;
    a vote changed there counts on the first."""
    assert callable(make)
    alice: Client = await make("alice", ALICE)
    alice2: Client = await make("alice2", ALICE)
    bob: Client = await make("bob", BOB)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))

    first = await alice.send(BOB, "hi bob")
    await bob.sync()
    [chat] = bob.chats()
    bob.accept(chat)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    await alice.pin(first.id, until)
    poll = await bob.create_poll(ALICE, "Movie night?", ["E.T.", "Alien"], single=True)
    await alice.sync()
    [apoll] = [m for m in alice.messages(alice.chats()[0]) if m.kind == "poll"]
    await alice.vote(apoll.id, [1])
    await bob.vote(poll.id, [2])
    await alice.sync()
    await alice2.sync()
    for device in (alice, alice2):
        [c] = device.chats()
        pin = extras.active_pin(device.store, c.id)
        assert pin is not None and pin.until == until.timestamp()
        assert device.message(pin.message).text == "hi bob"
    assert extras_dump(alice2) == extras_dump(alice)
    assert "votes: 1. E.T.: 1, 2. Alien: 1]" in extras_dump(alice2)

    # alice changes her vote on the second device; bob closes the poll
    [poll2] = [m for m in alice2.messages(alice2.chats()[0]) if m.kind == "poll"]
    await alice2.vote(poll2.id, [2])
    await bob.sync()
    await bob.close_poll(poll.id)
    await alice.sync()
    await alice2.sync()
    question = bob.message(poll.id).text
    golden = (
        "chat bob@example.org\n"
        "  me: hi bob\n"
        f"  me: hi bob  [pinned until {until.isoformat()}]\n"
        f"  bob@example.org: {question}  [votes: 1. E.T.: 0, 2. Alien: 2 (closed)]\n"
    )
    assert extras_dump(alice) == golden
    assert extras_dump(alice2) == golden


async def test_pins_and_polls_on_a_second_device_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    await pins_and_polls(devices(tmp_path, env.imap.port, env.submission_port, PASSWORDS))


async def test_pins_and_polls_on_a_second_device_dovecot(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    await pins_and_polls(make)
