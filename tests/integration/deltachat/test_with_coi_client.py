"""alice on the coi client, bob on a real Delta Chat (2.65), through coi serve and through
Debian's Dovecot (the client's fallback mode)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.deltachat_peer import DcAccount, DeltaChatPeer, MessageSnapshot, unavailable
from tests.integration.client.helpers import dump, new_client
from tests.integration.conftest import start_mail, stop_mail
from tests.plainserver import PlainMailServer

from coi.auth.passwords import hash_password
from coi.cli.common import DEFAULT_MAILBOXES
from coi.client.client import Client

_reason = unavailable()
pytestmark = [
    pytest.mark.skipif(
        _reason is not None and not os.environ.get("CI"),
        reason=f"Delta Chat peer: {_reason}",
    ),
    pytest.mark.timeout(120),
]

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


@dataclass(frozen=True)
class Server:
    """Where both chat: coi serve, or Debian's Dovecot (the client's fallback mode)."""

    client_ports: tuple[int, int]  # plain IMAP, SMTP (loopback)
    dc_imap: tuple[str, int, str]
    dc_smtp: tuple[str, int, str]
    passwords: dict[str, str]


@pytest.fixture(params=["coi", "dovecot"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    if request.param == "dovecot":
        plain: PlainMailServer = request.getfixturevalue("plain_mail")
        yield Server(
            (plain.imap_port, plain.smtp_port),
            ("127.0.0.1", plain.imaps_port, "ssl"),
            ("127.0.0.1", plain.smtp_port, "plain"),
            plain.users,
        )
        return
    mail = await start_mail(tmp_path / "coi")
    carol_password = "carol-secret"
    await mail.imap.store.add_user(CAROL, hash_password(carol_password), DEFAULT_MAILBOXES)
    try:
        yield Server(
            (mail.imap.port, mail.submission_port),
            ("127.0.0.1", mail.imap.tls_port, "ssl"),
            ("127.0.0.1", mail.submissions_port, "ssl"),
            {**PASSWORDS, CAROL: carol_password},
        )
    finally:
        await stop_mail(mail)


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[DeltaChatPeer]:
    async with DeltaChatPeer.start(tmp_path / "dc") as dc:
        yield dc


async def pair(env: Server, peer: DeltaChatPeer, tmp_path: Path) -> tuple[Client, DcAccount]:
    alice = await new_client(tmp_path, "alice", ALICE, env.passwords[ALICE], *env.client_ports)
    bob = await peer.add_account(BOB, env.passwords[BOB], imap=env.dc_imap, smtp=env.dc_smtp)
    [account] = alice.accounts()
    alice.import_vcards(account, await bob.make_vcard())  # as "coi contact import"
    await bob.import_vcard(alice.vcard(account))  # as Delta Chat's "import contact"
    return alice, bob


async def synced_until(
    client: Client, done: object, timeout: float = 120.0, nudge: DcAccount | None = None
) -> None:
    """Syncs until ``done()`` holds. Delta Chat sends in the background and retries with
    a back-off, which on a loaded machine (browser tests beside it) took over 60 s once,
    and once more than 120 s: waiting for what `nudge` (its account) sends, its core is
    told every few seconds that the network is up, as an app does when it comes back."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    nudged = loop.time()
    while True:
        await client.sync()
        if done():  # type: ignore[operator]
            return
        if loop.time() > deadline:
            raise TimeoutError("the expected change did not arrive")
        if nudge is not None and loop.time() - nudged > 5:
            await nudge.network_is_up()
            nudged = loop.time()
        await asyncio.sleep(0.3)


async def test_text_both_ways_encrypted(env: Server, peer: DeltaChatPeer, tmp_path: Path) -> None:
    alice, bob = await pair(env, peer, tmp_path)
    sent = await alice.send(BOB, "hello bob, from the coi client")
    assert sent.encrypted
    got: MessageSnapshot = await bob.wait_for_message("hello bob, from the coi client")
    assert got.sender == ALICE and got.encrypted, got.raw
    await bob.send_text(got.chat_id, "hello alice, from Delta Chat", quote=got.id)
    await synced_until(
        alice, lambda: sum(len(alice.messages(c)) for c in alice.chats()) == 2, nudge=bob
    )
    [chat] = alice.chats()
    mine, theirs = alice.messages(chat)
    assert theirs.text == "hello alice, from Delta Chat"
    assert theirs.encrypted and theirs.verified
    assert theirs.in_reply_to == mine.message_id
    assert not chat.request  # we imported bob's vCard: a known contact


def texts(client: Client) -> list[str]:
    return [m.text for chat in client.chats() for m in client.messages(chat)]


async def gone(bob: DcAccount, msg_id: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while any(m.id == msg_id and not m.is_info for m in await bob.all_messages()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"message {msg_id} still shown")
        await asyncio.sleep(0.2)


async def test_edits_delete_reactions_receipts_and_files(
    env: Server, peer: DeltaChatPeer, tmp_path: Path
) -> None:
    alice, bob = await pair(env, peer, tmp_path)
    await bob.set_config("mdns_enabled", "1")
    first = await alice.send(BOB, "helo bob")
    got = await bob.wait_for_message("helo bob")
    await bob.accept_chat(got.chat_id)  # Delta Chat asks its user first, as we do
    # two edits: Delta Chat honours the second only when it names the original
    await alice.edit(first.id, "hello bob")
    await alice.edit(first.id, "hello bob!")
    edited = await bob.wait_for_message(lambda m: m.id == got.id and m.text == "hello bob!")
    assert edited.is_edited
    doomed = await alice.send(BOB, "wrong chat, sorry")
    shown = await bob.wait_for_message("wrong chat, sorry")
    await alice.delete(doomed.id)
    await gone(bob, shown.id)
    # reactions both ways
    await bob.react(got.id, "👍")
    await synced_until(alice, lambda: alice.store.reactions(first.id) == [(BOB, "👍")], nudge=bob)
    await bob.send_text(got.chat_id, "react to this")
    await synced_until(alice, lambda: "react to this" in texts(alice), nudge=bob)
    [theirs] = [m for m in alice.messages(alice.chats()[0]) if m.text == "react to this"]
    await alice.react(theirs.id, "🎉")
    await bob.wait_for_message(lambda m: m.text == "react to this" and m.reactions == {"🎉": 1})
    # a read receipt from Delta Chat (it sends them for messages it has shown)
    await bob.mark_seen(got.id)
    await synced_until(alice, lambda: alice.store.receipts(first.id) == [BOB], nudge=bob)
    # files both ways, byte for byte
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(bytes(range(256)) * 400)
    await alice.send(BOB, "a picture", (picture,))
    arrived = await bob.wait_for_message("a picture")
    assert arrived.file is not None and Path(arrived.file).read_bytes() == picture.read_bytes()
    document = tmp_path / "notes.txt"
    document.write_bytes(b"line one\r\nline two\n\x00binary tail\xff")
    await bob.send_file(got.chat_id, document, "notes for you")
    await synced_until(alice, lambda: "notes for you" in texts(alice), nudge=bob)
    [notes] = [m for m in alice.messages(alice.chats()[0]) if m.text == "notes for you"]
    [att] = alice.store.attachments(notes.id)
    assert Path(att.path).read_bytes() == document.read_bytes()
    assert notes.encrypted and notes.verified
    # and our read receipt reaches Delta Chat: its message shows as read (state 28)
    assert await alice.read(alice.chats()[0]) >= 1
    await bob.wait_for_message(lambda m: m.text == "notes for you" and m.state == 28)


async def test_group_of_three_with_gossip(
    env: Server, peer: DeltaChatPeer, tmp_path: Path
) -> None:
    """alice (coi) makes a group with bob (Delta Chat) and carol (coi). Only alice has met
    both: bob and carol learn each other's keys from alice's Autocrypt-Gossip."""
    alice, bob = await pair(env, peer, tmp_path)
    carol = await new_client(tmp_path, "carol", CAROL, env.passwords[CAROL], *env.client_ports)
    [acc_a], [acc_c] = alice.accounts(), carol.accounts()
    alice.import_vcards(acc_a, carol.vcard(acc_c))
    carol.import_vcards(acc_c, alice.vcard(acc_a))
    group = alice.create_group("Three of us", [BOB, CAROL])
    sent = await alice.send(str(group.id), "hello group")
    assert sent.encrypted
    got = await bob.wait_for_message("hello group")
    assert got.encrypted
    # the first message's groupinfo part (coi-client-spec: Group Information Message Part)
    # stays out of Delta Chat's text; like any multipart/alternative it gets the "show
    # full message" button (hasHtml)
    assert got.raw["viewType"] == "Text" and got.file is None and not got.is_info
    contacts = await bob.rpc("get_chat_contacts", got.chat_id)
    addresses = {(await bob.rpc("get_contact", c))["address"] for c in contacts}
    assert addresses == {ALICE, BOB, CAROL}
    await bob.accept_chat(got.chat_id)
    await bob.send_text(got.chat_id, "hi both")
    await synced_until(carol, lambda: "hi both" in texts(carol), nudge=bob)
    await synced_until(alice, lambda: "hi both" in texts(alice), nudge=bob)
    [cgroup] = carol.chats()
    assert cgroup.name == "Three of us"
    assert carol.store.members(cgroup.id) == [ALICE, BOB]
    assert [m.text for m in carol.messages(cgroup)] == ["hello group", "hi both"]
    assert all(m.encrypted and m.verified for m in carol.messages(cgroup))
    reply = await carol.send(str(cgroup.id), "carol here")
    assert reply.encrypted  # carol had bob's key from the gossip
    back = await bob.wait_for_message("carol here")
    assert back.chat_id == got.chat_id and back.encrypted
    await synced_until(alice, lambda: "carol here" in texts(alice))
    [agroup] = alice.chats()
    assert [m.text for m in alice.messages(agroup)] == ["hello group", "hi both", "carol here"]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("Delta Chat did not show the change")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(420)  # eight waits for Delta Chat's background sends, each up to 120 s
async def test_group_management_both_ways(
    env: Server, peer: DeltaChatPeer, tmp_path: Path
) -> None:
    """alice (coi) renames, removes and adds carol (coi); bob (Delta Chat) renames, removes
    and adds carol, then leaves: each side sees the other's changes."""
    alice, bob = await pair(env, peer, tmp_path)
    carol = await new_client(tmp_path, "carol", CAROL, env.passwords[CAROL], *env.client_ports)
    [acc_a], [acc_c] = alice.accounts(), carol.accounts()
    alice.import_vcards(acc_a, carol.vcard(acc_c))
    carol.import_vcards(acc_c, alice.vcard(acc_a))
    group = alice.create_group("Three of us", [BOB, CAROL])
    await alice.send(str(group.id), "hello group")
    got = await bob.wait_for_message("hello group")
    await bob.accept_chat(got.chat_id)
    dc_chat = got.chat_id
    by_address = {
        (await bob.rpc("get_contact", c))["address"]: c
        for c in await bob.rpc("get_chat_contacts", dc_chat)
    }

    async def dc_members() -> set[str]:
        ids = await bob.rpc("get_chat_contacts", dc_chat)
        return {(await bob.rpc("get_contact", c))["address"] for c in ids}

    async def dc_name() -> str:
        return str((await bob.rpc("get_basic_chat_info", dc_chat))["name"])

    # coi's changes, seen by Delta Chat
    await alice.rename_group(group, "coi name")
    await until(lambda: _is(dc_name(), "coi name"))
    await alice.remove_member(alice.find_chat(str(group.id)) or group, CAROL)
    await until(lambda: _is(dc_members(), {ALICE, BOB}))
    await synced_until(carol, lambda: carol.chats() and carol.group_info(carol.chats()[0]).left)
    await alice.add_member(group, CAROL)
    await until(lambda: _is(dc_members(), {ALICE, BOB, CAROL}))
    [cgroup] = carol.chats()
    await synced_until(carol, lambda: not carol.group_info(cgroup).left)
    # Delta Chat's changes, seen by coi
    await bob.rpc("set_chat_name", dc_chat, "DC name")
    await synced_until(alice, lambda: alice.group_info(group).name == "DC name", nudge=bob)
    await bob.rpc("remove_contact_from_chat", dc_chat, by_address[CAROL])
    await synced_until(alice, lambda: alice.group_info(group).members == (BOB,), nudge=bob)
    await synced_until(carol, lambda: carol.group_info(cgroup).left, nudge=bob)
    await bob.rpc("add_contact_to_chat", dc_chat, by_address[CAROL])
    await synced_until(alice, lambda: alice.group_info(group).members == (BOB, CAROL), nudge=bob)
    await synced_until(carol, lambda: not carol.group_info(cgroup).left, nudge=bob)
    await bob.rpc("leave_group", dc_chat)
    await synced_until(alice, lambda: alice.group_info(group).members == (CAROL,), nudge=bob)
    await synced_until(carol, lambda: carol.group_info(cgroup).members == (ALICE,), nudge=bob)
    assert dump(alice) == GROUP_DUMP
    assert dump(carol) == GROUP_DUMP.replace("  me:", f"  {ALICE}:")


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


GROUP_DUMP = """\
chat DC name
  me: hello group
  me: renamed "Three of us" to "coi name"
  me: removed carol@example.org
  me: added carol@example.org
  bob@example.org: renamed "coi name" to "DC name"  [reply to 'added carol@example.org']
  bob@example.org: removed carol@example.org  [reply to 'renamed "coi name" to "DC name"']
  bob@example.org: added carol@example.org  [reply to 'removed carol@example.org']
  bob@example.org: left the group  [reply to 'added carol@example.org']
"""
