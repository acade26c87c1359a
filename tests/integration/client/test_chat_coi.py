"""alice and bob chat through our COI server, each with the coi client library."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.integration.client.helpers import dump, new_client
from tests.integration.conftest import MailEnv

from coi.client.client import Client, SendFailed

ALICE, BOB = "alice@example.org", "bob@example.org"




async def pair(env: MailEnv, root: Path) -> tuple[Client, Client]:
    ports = (env.imap.port, env.submission_port)
    alice = await new_client(root, "alice", ALICE, PASSWORDS[ALICE], *ports)
    bob = await new_client(root, "bob", BOB, PASSWORDS[BOB], *ports)
    return alice, bob


async def test_account_add_enables_coi(env: MailEnv, tmp_path: Path) -> None:
    alice, _ = await pair(env, tmp_path)
    [account] = alice.accounts()
    assert account.server_kind == "coi" and account.mailbox_root == "COI"


async def test_one_to_one_chat_both_ways(env: MailEnv, tmp_path: Path) -> None:
    alice, bob = await pair(env, tmp_path)
    sent = await alice.send(BOB, "hi bob")
    assert sent.state == "sent" and sent.outgoing
    await bob.sync()
    [chat] = bob.chats()
    assert chat.peer == ALICE and chat.request  # first message from an unknown sender
    bob.accept(chat)
    [incoming] = bob.messages(chat)
    await bob.reply(incoming.id, "hi alice")
    await bob.send(ALICE, "file for you", (_file(tmp_path),))
    await alice.sync()
    [achat] = alice.chats()
    assert not achat.request  # alice wrote first
    texts = [m.text for m in alice.messages(achat)]
    assert texts == ["hi bob", "hi alice", "file for you"]
    # Autocrypt: alice's first message went in clear with her key; bob's answers are
    # encrypted to her and signed by him
    states = [(m.encrypted, m.verified) for m in alice.messages(achat)]
    assert states == [(False, False), (True, True), (True, True)]
    [incoming] = bob.messages(chat)[:1]
    assert not incoming.encrypted
    [with_file] = [m for m in alice.messages(achat) if m.text == "file for you"]
    [att] = alice.store.attachments(with_file.id)
    assert Path(att.path).read_bytes() == _file(tmp_path).read_bytes()
    assert att.filename == "data.bin"


async def test_edit_twice_delete_react_receipt_and_second_device(
    env: MailEnv, tmp_path: Path
) -> None:
    alice, bob = await pair(env, tmp_path)
    first = await alice.send(BOB, "helo")
    await alice.edit(first.id, "hello")
    await alice.edit(first.id, "hello bob")
    [(_, _), (edit1, _), (edit2, _)] = alice.store.edit_ids(first.id)
    second_edit = alice.store.message_by_mid(alice.accounts()[0].id, edit2)
    assert second_edit is not None
    raw = alice.store.raw(second_edit.id)
    assert f"Chat-Edit: <{first.message_id}>".encode() in raw  # Delta Chat follows this
    assert f"In-Reply-To: <{edit1}>".encode() in raw  # coi-client-spec: the last edit
    doomed = await alice.send(BOB, "oops")
    await alice.delete(doomed.id)
    await bob.sync()
    [chat] = bob.chats()
    bob.accept(chat)
    shown = bob.messages(chat)
    assert [(m.text, m.edited, m.deleted) for m in shown] == [
        ("hello bob", True, False),
        ("", True, True),
    ]
    await bob.react(shown[0].id, "👍")
    assert await bob.read(chat) == 2  # both asked for receipts, bob allows them
    assert await bob.read(chat) == 0  # never twice
    await alice.sync()
    second = await new_client(
        tmp_path, "alice2", ALICE, PASSWORDS[ALICE], env.imap.port, env.submission_port
    )
    await second.sync()  # alice's own messages went out encrypted: unreadable here yet
    assert "cannot decrypt" in dump(second)
    # the key moves to the second device (coi key export / coi key import)
    [account], [account2] = alice.accounts(), second.accounts()
    second.import_key(account2, alice.export_key(account))
    expected = (
        "chat bob@example.org\n"
        "  me: hello bob  [edited; 👍 by bob@example.org; read by bob@example.org]\n"
        "  me:   [edited; deleted; read by bob@example.org]\n"
    )
    assert dump(alice) == expected
    assert dump(second) == expected
    await bob.sync()
    assert "request" not in dump(bob)


async def test_plain_email_lands_in_the_persons_chat(env: MailEnv, tmp_path: Path) -> None:
    alice, bob = await pair(env, tmp_path)
    await alice.send(BOB, "chat first")
    mail = EmailMessage()
    mail["From"] = "Alice <alice@example.org>"
    mail["To"] = BOB
    mail["Subject"] = "old school"
    mail.set_content("Hello from a mail program.\n\n-- \nAlice\n")

    def submit() -> None:  # a mail program, in a thread: the server runs on this loop
        with smtplib.SMTP("127.0.0.1", env.submission_port) as smtp:
            smtp.login(ALICE, PASSWORDS[ALICE])
            smtp.send_message(mail)

    await asyncio.to_thread(submit)
    del mail["Subject"]
    mail["Subject"] = "Re: old school"  # a reply's subject only repeats the thread's
    await asyncio.to_thread(submit)
    await bob.sync()
    [chat] = bob.chats()
    messages = bob.messages(chat)
    assert [m.is_email for m in messages] == [False, True, True]
    # the subject of an email is shown before its text, as Delta Chat does
    assert messages[1].text == "old school – Hello from a mail program."
    assert messages[2].text == "Hello from a mail program."
    assert chat.last_text == "Hello from a mail program."


async def test_refused_message_is_marked_failed(env: MailEnv, tmp_path: Path) -> None:
    alice, _ = await pair(env, tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 300_000)
    with pytest.raises(SendFailed, match=r"552|size"):
        await alice.send(BOB, "too big", (big,))
    [chat] = alice.chats()
    [failed] = alice.messages(chat)
    assert failed.state == "failed" and failed.error


async def test_unchanged_resync_fetches_nothing(env: MailEnv, tmp_path: Path) -> None:
    alice, bob = await pair(env, tmp_path)
    for i in range(5):
        await alice.send(BOB, f"message {i}")
    first = await bob.sync()
    assert first[BOB].new == 5
    again = await bob.sync()
    assert again[BOB].new == 0 and again[BOB].changed == 0 and again[BOB].removed == 0


def _file(root: Path) -> Path:
    path = root / "data.bin"
    if not path.exists():
        path.write_bytes(bytes(range(256)) * 300 + b"\r\n.\r\nend")
    return path


async def test_mentions_are_highlighted(env: MailEnv, tmp_path: Path) -> None:
    from coi.cli.chat_common import message_line

    alice, bob = await pair(env, tmp_path)
    group = alice.create_group("Team", [BOB])
    await alice.send(str(group.id), "@Bob:bob@example.org please look")
    await alice.send(str(group.id), "@all lunch?")
    await alice.send(str(group.id), "no one in particular")
    await bob.sync()
    [chat] = bob.chats()
    lines = [message_line(bob, m) for m in bob.messages(chat)]
    assert ["MENTIONS YOU" in line for line in lines] == [True, True, False]


async def test_a_group_not_decryptable_here_is_named_once_it_is(
    env: MailEnv, tmp_path: Path
) -> None:
    """A second device without the key sees an encrypted group message under a
    placeholder title (its name is inside the encryption), and the name once it can
    decrypt it."""
    alice, bob = await pair(env, tmp_path)
    await alice.send(BOB, "hi")  # Autocrypt: the keys go both ways
    await bob.sync()
    [chat] = bob.chats()
    bob.accept(chat)
    await bob.send(ALICE, "hi back")
    await alice.sync()
    group = alice.create_group("Family", [BOB])
    sent = await alice.send(str(group.id), "hello family")
    assert sent.state == "sent"
    second = await new_client(
        tmp_path, "bob2", BOB, PASSWORDS[BOB], env.imap.port, env.submission_port
    )
    await second.sync()
    [unnamed] = [c for c in second.chats() if not c.peer]
    assert unnamed.title == "(unnamed group)"
    [account], [account2] = bob.accounts(), second.accounts()
    second.import_key(account2, bob.export_key(account))
    [named] = [c for c in second.chats() if not c.peer]
    assert named.title == "Family"
