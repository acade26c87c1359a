"""Contacts in <root>/Contacts and blocking, on coi serve and on Debian's Dovecot.

alice stores bob as a contact on one device and sees him on her second device; she
blocks him: his new mail goes to Blocked (filed by coi serve, or by her client on
Dovecot) and his chat disappears; unblocking brings it back with what came meanwhile.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.helpers import boxes, devices, dump, new_client
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.chat.model import Card, ContactStorage
from coi.client.client import Client, ClientEvent
from coi.client.contacts import contact_message
from coi.client.watch import _report

ALICE, BOB = "alice@example.org", "bob@example.org"



def subjects(heads: list[bytes]) -> list[str]:
    found = (re.search(rb"^Subject: (.*?)\r?$", h, re.M | re.I) for h in heads)
    return [m[1].decode() for m in found if m]


async def scenario(
    make: object, imap: tuple[str, int], password: str, contacts_folder: str, tmp: Path
) -> None:
    assert callable(make)
    alice: Client = await make("alice", ALICE)
    alice2: Client = await make("alice2", ALICE)
    bob: Client = await make("bob", BOB)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))  # second device, same key

    # a contact stored on one device shows on the other after sync; an edit replaces it
    await alice.save_contacts(acc, [(BOB, "Bob", None)])
    await alice.save_contacts(acc, [(BOB, "Bobby", None)])
    await alice2.sync()
    [row] = alice2.contacts(acc2)
    assert (row.addr, row.name, row.blocked) == (BOB, "Bobby", False)
    stored = await asyncio.to_thread(boxes, *imap, ALICE, password)
    [head] = stored[contacts_folder]  # one message per contact, body encrypted
    assert b"COI-From-Hash: " in head and b"multipart/encrypted" in head
    assert b"Bobby" not in head

    await bob.send(ALICE, "hi alice")
    await alice.sync()
    # a stored contact is no stranger: no contact request
    assert dump(alice) == "chat bob@example.org\n  bob@example.org: hi alice\n"

    # blocked: bob's chat is gone and his new mail goes to Blocked, never shown
    await alice2.block(acc2, BOB)
    await bob.send(ALICE, "are you there?")
    events: list[ClientEvent] = []
    async with alice.connected(acc) as sync:  # what 'coi watch' does on each wake
        await _report(sync, alice, events.append)
    # nothing of bob's; on Dovecot a bare "removed" (his mail left INBOX for Blocked)
    assert all(e.kind == "removed" and e.chat_id is None for e in events)
    assert alice.contacts(acc)[0].blocked
    assert alice.chats() == [] and dump(alice) == "\n"
    await alice2.sync()
    assert dump(alice2) == "\n"
    server = await asyncio.to_thread(boxes, *imap, ALICE, password)
    assert len(server["Blocked"]) >= 1
    assert all(b"bob@example.org" in h for h in server["Blocked"])
    assert not any(b"From: <bob@example.org>" in h for h in server["INBOX"])

    # unblocked: the chat is back with what arrived meanwhile
    await alice.block(acc, BOB, False)
    await alice2.sync()
    expected = (
        "chat bob@example.org\n  bob@example.org: hi alice\n  bob@example.org: are you there?\n"
    )
    assert dump(alice) == expected
    assert dump(alice2) == expected
    server = await asyncio.to_thread(boxes, *imap, ALICE, password)
    assert server.get("Blocked", []) == []

    assert await alice.remove_contact(acc, BOB) == 1
    await alice2.sync()
    assert alice2.contacts(acc2) == []


async def test_contacts_and_blocking_on_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    make = devices(tmp_path, env.imap.port, env.submission_port, PASSWORDS)
    imap = ("127.0.0.1", env.imap.port)
    await scenario(make, imap, PASSWORDS[ALICE], "COI/Contacts", tmp_path)


async def test_contacts_and_blocking_on_dovecot(
    plain_mail: PlainMailServer, tmp_path: Path
) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    imap = (plain_mail.imap_host, plain_mail.imap_port)
    await scenario(make, imap, plain_mail.users[ALICE], "COI.Contacts", tmp_path)


async def test_duplicates_are_merged_at_sync(env: MailEnv, tmp_path: Path) -> None:
    """coi-client-spec: Merging Contact Storage Messages: two messages for bob (from two
    devices) become one, the newer one's fields and every COI-TokenIn kept."""
    alice = await new_client(
        tmp_path, "alice", ALICE, PASSWORDS[ALICE], env.imap.port, env.submission_port
    )
    [acc] = alice.accounts()
    old = ContactStorage(card=Card(name="Bob", emails=(BOB,)), tokens_in=("token-old",))
    new = ContactStorage(card=Card(name="Robert", emails=(BOB,)), tokens_in=("token-new",))
    raws = [
        contact_message(acc, old, None, datetime(2026, 1, 1, tzinfo=UTC)),
        contact_message(acc, new, None, datetime(2026, 2, 1, tzinfo=UTC)),
    ]

    def append() -> None:
        imap = imaplib.IMAP4("127.0.0.1", env.imap.port)
        imap.login(ALICE, PASSWORDS[ALICE])
        for raw in raws:
            imap.append("COI/Contacts", r"(\Seen)", None, raw)
        imap.logout()

    await asyncio.to_thread(append)
    await alice.sync()
    [row] = alice.contacts(acc)
    assert (row.addr, row.name) == (BOB, "Robert")
    async with alice.connected(acc) as sync:  # an unchanged folder costs one SELECT
        assert not await sync.contact_book().sync()
    assert alice.contacts(acc) == [row]
    server = await asyncio.to_thread(boxes, "127.0.0.1", env.imap.port, ALICE, PASSWORDS[ALICE])
    [head] = server["COI/Contacts"]
    assert b"COI-TokenIn: token-old" in head and b"COI-TokenIn: token-new" in head
    assert b"multipart/encrypted" in head


async def test_block_warns_when_the_last_message_had_no_dkim(env: MailEnv, tmp_path: Path) -> None:
    """coi-client-spec: Blocking Contacts: the sender's last message is checked for a DKIM
    header; without one `coi block` warns (one line) and blocks all the same."""
    from tests.integration.client.test_cli_chat import add, coi

    a, b = tmp_path / "a", tmp_path / "b"
    for profile, who in ((a, ALICE), (b, BOB)):
        code, _, err = await add(env, profile, who, PASSWORDS[who])
        assert code == 0, err
    assert (await coi(b, "send", ALICE, "hi alice"))[0] == 0  # not DKIM-signed here
    signed = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=coi; h=from; bh=x; b=y\r\n"
        b"From: <carol@example.net>\r\nTo: <alice@example.org>\r\nSubject: hi\r\n"
        b"Message-ID: <chat$carol.1@example.net>\r\nChat-Version: 1.0\r\n"
        b"Date: Mon, 4 Dec 2023 15:51:37 +0100\r\n\r\nhi from carol\r\n"
    )

    def append() -> None:
        imap = imaplib.IMAP4("127.0.0.1", env.imap.port)
        imap.login(ALICE, PASSWORDS[ALICE])
        imap.append("INBOX", None, None, signed)
        imap.logout()

    await asyncio.to_thread(append)
    assert (await coi(a, "sync"))[0] == 0
    code, out, err = await coi(a, "block", BOB)
    assert code == 0 and "blocked" in out
    assert err.count("\n") == 1 and "no DKIM signature" in err and BOB in err
    code, out, err = await coi(a, "block", "carol@example.net")
    assert code == 0 and err == ""
    code, out, err = await coi(a, "block", "dave@example.net")  # never wrote: nothing to check
    assert code == 0 and err == ""
