"""A group's description and avatar (coi-client-spec: Group Storage Message, Group
Information Message Part, Processing Group Description and Avatar Changes).

alice describes her group and gives it an avatar: bob reads both from the groupinfo
parts of her messages; her second device from those and from the group storage message,
which carries description, avatar (``u-photo``) and notification setting.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.helpers import devices
from tests.integration.client.test_cli_chat import add, coi
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.chat.parse import parse
from coi.client import storage
from coi.client.client import Client, ClientError
from coi.client.store import Chat

ALICE, BOB = "alice@example.org", "bob@example.org"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def chat_of(client: Client, key: str) -> Chat:
    row = client.store.db.execute("SELECT id FROM chat WHERE key=?", (key,)).fetchone()
    assert row is not None, key
    chat = client.store.chat(int(row[0]))
    assert chat is not None
    return chat


async def scenario(make: object, tmp: Path) -> None:
    assert callable(make)
    alice: Client = await make("alice", ALICE)
    alice2: Client = await make("alice2", ALICE)
    bob: Client = await make("bob", BOB)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))

    group = alice.create_group("Crew", [BOB])
    # the first message carries a groupinfo part (coi-client-spec: Group Information
    # Message Part, "in the first user generated message"); the next one does not
    welcome = await alice.send(str(group.id), "welcome")
    first = parse(alice.store.raw(welcome.id)).group_info
    assert first is not None and first.name == "Crew"
    assert sorted(e for c in first.participants for e in c.emails) == [ALICE, BOB]
    after = await alice.send(str(group.id), "say hi")
    assert parse(alice.store.raw(after.id)).group_info is None
    await alice.describe_group(group, "A fun place to hang out")
    picture = tmp / "crew.png"
    picture.write_bytes(PNG)
    await alice.set_group_avatar(group, picture)
    await alice.rename_group(group, "The crew")  # keeps the description
    await alice.mute(group)

    # the group storage message says everything the spec lists
    stored = parse(storage.group_message(alice.store, acc, group.id, None, datetime.now(UTC)))
    info = stored.group_info
    assert info is not None and info.id == group.key.partition(":")[2]
    assert (info.name, info.description) == ("The crew", "A fun place to hang out")
    assert info.photo.startswith("data:image/png;base64,")
    assert info.notification is not None and not info.notification.enabled
    assert [c.emails for c in info.participants] == [(ALICE,), (BOB,)]

    # bob, from the groupinfo parts
    await bob.sync()
    [hello, hi] = [m.text for m in bob.messages(chat_of(bob, group.key))][:2]
    assert (hello, hi) == ("welcome", "say hi")  # the part is not shown as text
    view = bob.group_info(chat_of(bob, group.key))
    assert (view.name, view.description) == ("The crew", "A fun place to hang out")
    assert Path(view.avatar).read_bytes() == PNG

    # alice's second device, from the storage message (and her own messages)
    await alice2.sync()
    group2 = chat_of(alice2, group.key)
    view2 = alice2.group_info(group2)
    assert (view2.name, view2.description) == ("The crew", "A fun place to hang out")
    assert Path(view2.avatar).read_bytes() == PNG
    assert group2.muted()

    # changed by bob: alice's devices follow
    bob_group = chat_of(bob, group.key)
    bob.accept(bob_group)
    await bob.describe_group(bob_group, "Now a work place")
    await alice.sync()
    await alice2.sync()
    assert alice.group_info(group).description == "Now a work place"
    assert alice2.group_info(group2).description == "Now a work place"

    # mistakes are one line
    for bad in (lambda: alice.describe_group(group, "  "),
                lambda: alice.set_group_avatar(group, tmp / "missing.png")):  # fmt: skip
        try:
            await bad()
        except ClientError as exc:
            assert "\n" not in str(exc)
        else:
            raise AssertionError("accepted")


async def test_group_description_and_avatar_on_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    await scenario(devices(tmp_path, env.imap.port, env.submission_port, PASSWORDS), tmp_path)


async def test_group_description_and_avatar_on_dovecot(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    await scenario(make, tmp_path)


async def test_group_describe_and_avatar_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    a = tmp_path / "a"
    code, _, err = await add(env, a, ALICE, PASSWORDS[ALICE])
    assert code == 0, err
    code, out, err = await coi(a, "group", "create", "Crew", BOB, "--json")
    assert code == 0, err
    chat = str(json.loads(out)["chat"])
    code, out, err = await coi(a, "group", "describe", chat, "Our place")
    assert code == 0, err
    assert 'Group description changed to "Our place".' in out
    picture = tmp_path / "crew.png"
    picture.write_bytes(PNG)
    code, _, err = await coi(a, "group", "avatar", chat, str(picture))
    assert code == 0, err
    code, out, err = await coi(a, "group", "info", chat, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["description"] == "Our place" and Path(shown["avatar"]).read_bytes() == PNG
    code, out, _ = await coi(a, "group", "info", chat)
    assert "description: Our place" in out
    text = tmp_path / "notes.txt"
    text.write_text("no image")
    code, _, err = await coi(a, "group", "avatar", chat, str(text))
    assert code == 1 and err.count("\n") == 1 and "no image" in err
