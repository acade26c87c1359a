"""Delta Chat's encrypted messages over LMTP: the encrypted rule of coi.chat.detect gives
them $Chat, COI/Chats filing and blocking like any chat message (coi_detect_encrypted)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import MailEnv, start_mail, stop_mail
from tests.integration.test_coi_filtering import ALICE, fetch_flags, imap, lmtp

from coi.chat.contacts import address_hash
from coi.store.coi import CoiSettings
from coi.store.events import Delivered, Event, MessagesAdded

BOB = "bob@example.org"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "chat" / "deltachat" / "e2ee-one_to_one.eml"


def encrypted_from_bob() -> bytes:
    """The Delta Chat sample (outer header: no Chat-Version, no chat$ id), sent by Bob.

    Its To stays `"hidden-recipients": ;` as Delta Chat writes it; LMTP names Alice.
    """
    raw = SAMPLE.read_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert b"Chat-Version" not in head and b"chat$" not in head and b"Autocrypt" not in head
    assert b"Subject: [...]\n" in head and b"multipart/encrypted" in head
    raw = raw.replace(b"From: <alice@example.org>", f"From: <{BOB}>".encode(), 1)
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # as sent over the wire


async def test_encrypted_deltachat_message_is_filed_as_chat(mail_env: MailEnv) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
    await lmtp(mail_env, encrypted_from_bob(), BOB)
    client = await imap(mail_env)
    chats = await fetch_flags(client, "COI/Chats")
    assert len(chats) == 1 and "$Chat" in chats[0]
    lines = await client.command("s STATUS INBOX (MESSAGES)")
    assert lines[0] == b"* STATUS INBOX (MESSAGES 0)\r\n"
    await client.close()


async def test_switched_off_the_encrypted_message_is_email(tmp_path: Path) -> None:
    env = await start_mail(tmp_path, coi_detect_encrypted=False)
    try:
        await env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
        await lmtp(env, encrypted_from_bob(), BOB)
        client = await imap(env)
        inbox = await fetch_flags(client, "INBOX")
        assert len(inbox) == 1 and "$Chat" not in inbox[0]
        await client.close()
    finally:
        await stop_mail(env)


async def test_blocked_deltachat_sender_encrypted_message_goes_to_blocked(
    mail_env: MailEnv,
) -> None:
    await mail_env.set_coi(ALICE, CoiSettings(enabled=True, message_filter="active"))
    added: list[MessagesAdded] = []

    def record(event: Event) -> None:
        if isinstance(event, MessagesAdded) and isinstance(event.origin, Delivered):
            added.append(event)

    mail_env.imap.store.events.watch_all(record)
    client = await imap(mail_env)
    # the contact's storage headers are outside (coi-client-spec), so the server reads them
    contact = (
        f"From: <{ALICE}>\r\nSubject: contact\r\n"
        f"COI-From-Hash: {address_hash(BOB)}\r\nCOI-Blocked: yes\r\n"
        "Content-Type: text/plain\r\n\r\ncard\r\n"
    ).encode()
    await client.send(f'a APPEND "COI/Contacts" {{{len(contact)}+}}\r\n'.encode() + contact)
    await client.send(b"\r\n")
    assert (await client.until_tagged("a"))[-1].startswith(b"a OK")
    # From stays in clear outside the encryption, so blocking still finds Bob
    await lmtp(mail_env, encrypted_from_bob(), BOB)
    blocked = await fetch_flags(client, "Blocked")
    assert len(blocked) == 1 and "$Chat" in blocked[0]
    lines = await client.command('s STATUS "COI/Chats" (MESSAGES)')
    assert lines[0] == b"* STATUS COI/Chats (MESSAGES 0)\r\n"
    assert [e.origin.push for e in added if isinstance(e.origin, Delivered)] == [False]
    await client.close()
