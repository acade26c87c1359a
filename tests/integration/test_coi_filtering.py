"""COI filtering and server-side blocking end to end: deliver over LMTP, observe over IMAP."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from tests.conftest import LineClient
from tests.integration.conftest import MailEnv

from coi.chat.contacts import address_hash
from coi.store.coi import CoiSettings
from coi.store.events import Delivered, Event, MessagesAdded

ALICE = "alice@example.org"
CAROL = "carol@remote.example"


def mail(sender: str = CAROL, chat: bool = False, subject: str = "hi") -> bytes:
    extra = "Chat-Version: 1.0\r\nMessage-ID: <chat$1@remote.example>\r\n" if chat else ""
    return (
        f"From: <{sender}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n{extra}\r\nbody\r\n"
    ).encode()


def _lmtp(port: int, sender: str, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.ehlo("mta.example")
        assert lmtp.mail(sender)[0] == 250
        assert lmtp.rcpt(ALICE)[0] == 250
        code, text = lmtp.data(raw)
        assert code == 250, text


async def lmtp(env: MailEnv, raw: bytes, sender: str = CAROL) -> None:
    await asyncio.to_thread(_lmtp, env.lmtp_port, sender, raw)


async def imap(env: MailEnv) -> LineClient:
    client = await LineClient.connect(env.imap)
    await client.login(ALICE)
    return client


async def fetch_flags(client: LineClient, mailbox: str) -> list[str]:
    lines = await client.command(f'f1 EXAMINE "{mailbox}"')
    assert lines[-1].startswith(b"f1 OK"), lines
    lines = await client.command("f2 FETCH 1:* (FLAGS)")
    return [line.decode().strip() for line in lines if b"FETCH" in line and line.startswith(b"*")]


async def test_active_filter_files_chats_without_waking_inbox_idle(mail_env: MailEnv) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
    watcher = await imap(mail_env)
    assert (await watcher.command("s SELECT INBOX"))[-1].startswith(b"s OK")
    await watcher.send("i IDLE\r\n")
    assert (await watcher.line()).startswith(b"+ ")
    await lmtp(mail_env, mail(chat=True))
    with pytest.raises(TimeoutError):
        await watcher.line(timeout=0.5)  # coi-server-spec: IDLE on INBOX must not wake
    await lmtp(mail_env, mail(subject="plain mail"))
    assert (await watcher.line()).strip() == b"* 1 EXISTS"
    await watcher.send("DONE\r\n")
    await watcher.until_tagged("i")
    client = await imap(mail_env)
    chats = await fetch_flags(client, "COI/Chats")
    assert len(chats) == 1 and "$Chat" in chats[0]
    inbox = await fetch_flags(client, "INBOX")
    assert len(inbox) == 1 and "$Chat" not in inbox[0]
    lsub = await client.command('l LSUB "" "COI/*"')
    assert any(b"COI/Chats" in line for line in lsub)
    for c in (watcher, client):
        await c.close()


@pytest.mark.parametrize(
    ("settings", "keyword"),
    [
        (CoiSettings(enabled=True, message_filter="seen"), True),
        (CoiSettings(enabled=True, message_filter="none"), True),
        (CoiSettings(enabled=False, message_filter="active"), False),
    ],
)
async def test_other_modes_keep_chats_in_inbox(
    mail_env: MailEnv, settings: CoiSettings, keyword: bool
) -> None:
    await mail_env.set_coi(ALICE, settings)
    await lmtp(mail_env, mail(chat=True))
    client = await imap(mail_env)
    inbox = await fetch_flags(client, "INBOX")
    assert len(inbox) == 1 and ("$Chat" in inbox[0]) == keyword
    if settings.enabled:  # enabling made the folder (coi-server-spec), but nothing is filed there
        lines = await client.command('s STATUS "COI/Chats" (MESSAGES)')
        assert lines[0] == b"* STATUS COI/Chats (MESSAGES 0)\r\n"
    await client.close()


async def test_blocked_contact_diverts_until_expunged(mail_env: MailEnv) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
    added: list[MessagesAdded] = []

    def record(event: Event) -> None:
        if isinstance(event, MessagesAdded) and isinstance(event.origin, Delivered):
            added.append(event)

    mail_env.imap.store.events.watch_all(record)
    client = await imap(mail_env)
    # enabling COI created COI/Contacts (coi-server-spec: Configure COI Usage)
    # the index is built on the first delivery, then follows APPEND/EXPUNGE events
    await lmtp(mail_env, mail(subject="before"))
    contact = (
        "From: <alice@example.org>\r\nSubject: contact\r\n"
        f"COI-From-Hash: {address_hash('Carol@Remote.Example')}\r\nCOI-Blocked: yes\r\n"
        "Content-Type: text/plain\r\n\r\ncard\r\n"
    ).encode()
    await client.send(f'a APPEND "COI/Contacts" {{{len(contact)}+}}\r\n'.encode() + contact)
    await client.send(b"\r\n")
    assert (await client.until_tagged("a"))[-1].startswith(b"a OK")
    await lmtp(mail_env, mail(chat=True, subject="blocked chat"))
    # blocking follows the From address, not the envelope sender
    await lmtp(mail_env, mail(sender="dave@remote.example", subject="not blocked"), CAROL)
    await lmtp(mail_env, mail(subject="blocked, envelope differs"), "list@remote.example")
    blocked = await fetch_flags(client, "Blocked")
    assert len(blocked) == 2 and "$Chat" in blocked[0] and "$Chat" not in blocked[1]
    pushes = [e.origin.push for e in added if isinstance(e.origin, Delivered)]
    assert pushes == [True, False, True, False]
    # expunging the contact message unblocks the next delivery
    assert (await client.command('s SELECT "COI/Contacts"'))[-1].startswith(b"s OK")
    assert (await client.command("t STORE 1 +FLAGS (\\Deleted)"))[-1].startswith(b"t OK")
    assert (await client.command("e EXPUNGE"))[-1].startswith(b"e OK")
    await lmtp(mail_env, mail(subject="after unblock"))
    inbox = await fetch_flags(client, "INBOX")
    assert len(inbox) == 3  # before, not blocked, after unblock
    assert len(await fetch_flags(client, "Blocked")) == 2
    await client.close()


async def test_seen_mode_moves_chat_once_seen(mail_env: MailEnv) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="seen"))
    await lmtp(mail_env, mail(chat=True))
    await lmtp(mail_env, mail(subject="plain"))
    client = await imap(mail_env)
    assert (await client.command("s SELECT INBOX"))[-1].startswith(b"s OK")
    assert (await client.command("t STORE 1:2 +FLAGS (\\Seen)"))[-1].startswith(b"t OK")
    store = mail_env.imap.store
    user_id = mail_env.user_id(ALICE)
    for _ in range(100):
        chats = store.get_mailbox(user_id, "COI/Chats")
        if chats is not None and len(store.uids(chats.id)) == 1:
            break
        await asyncio.sleep(0.05)
    client2 = await imap(mail_env)
    moved = await fetch_flags(client2, "COI/Chats")
    assert len(moved) == 1 and "$Chat" in moved[0] and "\\Seen" in moved[0]
    inbox = await fetch_flags(client2, "INBOX")
    assert len(inbox) == 1 and "$Chat" not in inbox[0]
    for c in (client, client2):
        await c.close()
