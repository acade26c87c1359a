"""The client's fallback mode: alice and bob on Debian's Dovecot, a server without COI."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from pathlib import Path

from tests.integration.client.helpers import boxes, dump, new_client
from tests.plainserver import PlainMailServer

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address
from coi.client.client import Client
from coi.client.profile import FilterMode

ALICE, BOB = "alice@example.org", "bob@example.org"


async def client(
    server: PlainMailServer, root: Path, name: str, address: str, **kw: object
) -> Client:
    return await new_client(
        root, name, address, server.users[address], server.imap_port, server.smtp_port,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def mailboxes(server: PlainMailServer, address: str) -> dict[str, list[bytes]]:
    """Mailbox -> raw messages, read with imaplib (what any other client would see)."""
    return boxes(server.imap_host, server.imap_port, address, server.users[address], part="")


async def test_fallback_sets_up_folders(plain_mail: PlainMailServer, tmp_path: Path) -> None:
    alice = await client(plain_mail, tmp_path, "alice", ALICE)
    [account] = alice.accounts()
    assert account.server_kind == "plain"
    boxes = await asyncio.to_thread(mailboxes, plain_mail, ALICE)
    assert {"COI.Chats", "COI.Contacts", "Blocked"} <= boxes.keys()


async def test_chat_both_ways_with_copies_for_other_devices(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    alice = await client(plain_mail, tmp_path, "alice", ALICE)
    bob = await client(plain_mail, tmp_path, "bob", BOB)
    first = await alice.send(BOB, "hi bob, on a plain server")
    await bob.sync()
    [chat] = bob.chats()
    assert chat.request
    bob.accept(chat)
    [incoming] = bob.messages(chat)
    await bob.reply(incoming.id, "hi alice")
    await alice.edit(first.id, "hi bob, edited")
    await alice.edit(first.id, "hi bob, edited twice")
    await bob.sync()
    await bob.react(bob.messages(chat)[0].id, "🎉")
    assert await bob.read(chat) == 1
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(bytes(range(256)) * 1000)
    await bob.send(ALICE, "a file", (picture,))
    await alice.sync()  # alice has seen bob's messages when she writes (same second: seq decides)
    doomed = await alice.send(BOB, "wrong chat")
    await alice.delete(doomed.id)
    await alice.sync()
    expected = (
        "chat bob@example.org\n"
        "  me: hi bob, edited twice  [edited; 🎉 by bob@example.org; read by bob@example.org]\n"
        "  bob@example.org: hi alice  [reply to 'hi bob, edited twice']\n"
        "  bob@example.org: a file  [file picture.jpg 256000]\n"
        "  me:   [edited; deleted]\n"
    )
    assert dump(alice) == expected
    [with_file] = [m for m in alice.messages(alice.chats()[0]) if m.text == "a file"]
    [att] = alice.store.attachments(with_file.id)
    assert Path(att.path).read_bytes() == picture.read_bytes()
    # a second device sees the same, from the copies alice's client APPENDed
    second = await client(plain_mail, tmp_path, "alice2", ALICE)
    second.import_key(second.accounts()[0], alice.export_key(alice.accounts()[0]))
    await second.sync()
    assert dump(second) == expected
    boxes = await asyncio.to_thread(mailboxes, plain_mail, ALICE)
    # alice's messages, her two edits and the delete, all \Seen
    assert len(boxes["COI.Chats"]) == 5


async def test_active_filter_files_chat_messages(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    bob = await client(plain_mail, tmp_path, "bob", BOB, filter=FilterMode.ACTIVE)
    msg = builders.new_message(Address(ALICE), (Address(BOB),), "a chat message")
    await asyncio.to_thread(plain_mail.deliver, compose_bytes(msg), [BOB], ALICE)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = ALICE, BOB, "not a chat"
    mail.set_content("classic mail\n")
    await asyncio.to_thread(plain_mail.deliver, mail.as_bytes(), [BOB], ALICE)
    report = (await bob.sync())[BOB]
    assert report.new == 2
    boxes = await asyncio.to_thread(mailboxes, plain_mail, BOB)
    assert [b"a chat message" in m for m in boxes["COI.Chats"]] == [True]
    assert [b"classic mail" in m for m in boxes["INBOX"]] == [True]
    again = (await bob.sync())[BOB]
    assert again.new == 0  # the moved message is the same message
    [chat] = bob.chats()
    assert [m.text for m in bob.messages(chat)] == ["a chat message", "not a chat – classic mail"]


async def test_plain_email_client_writes_into_the_chat(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    bob = await client(plain_mail, tmp_path, "bob", BOB)
    await bob.send(ALICE, "hello alice")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = ALICE, BOB, "Re: hello"
    mail.set_content("Answer from Thunderbird.\n\n> hello alice\n")

    def submit() -> None:
        with smtplib.SMTP(plain_mail.imap_host, plain_mail.smtp_port) as smtp:
            smtp.login(ALICE, plain_mail.users[ALICE])
            smtp.send_message(mail)

    await asyncio.to_thread(submit)
    await bob.sync()
    [chat] = bob.chats()
    assert not chat.request
    [_mine, theirs] = bob.messages(chat)
    assert theirs.is_email and theirs.text.startswith("Answer from Thunderbird.")
