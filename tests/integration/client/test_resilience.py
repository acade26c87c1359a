"""Watching, dropped connections and crashes: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.integration.client.helpers import new_client
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address
from coi.client.apply import Applier
from coi.client.client import INTERRUPTED, Client, ClientError, ClientEvent
from coi.client.profile import AccountSettings, Endpoint, FilterMode
from coi.imap.client import ImapClient

ALICE, BOB = "alice@example.org", "bob@example.org"




class CuttingProxy:
    """TCP proxy to the server that can cut every connection after some bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_after: int | None = None  # bytes from the server, per connection
        self.hide: tuple[bytes, ...] = ()  # removed from what the server sends (capabilities)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        limit = self.cut_after

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            sent = 0
            with contextlib.suppress(ConnectionError):
                while data := await src.read(4096):
                    for word in self.hide if count else ():
                        data = data.replace(word, b"")
                    if count and limit is not None and sent + len(data) > limit:
                        dst.write(data[: limit - sent])
                        await dst.drain()
                        self.cut()
                        return
                    sent += len(data)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def cut(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def watch_sees(alice: Client, bob: Client, texts: list[str]) -> None:
    """alice watches while bob sends ``texts``; each arrives as a 'new' event, in order."""
    events: asyncio.Queue[ClientEvent] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(alice.watch(events.put_nowait, stop))
    await asyncio.sleep(0.5)  # connected and waiting
    for text in texts:
        await bob.send(ALICE, text)
        event = await asyncio.wait_for(events.get(), 10)
        assert event.kind == "new" and event.message is not None
        row = alice.store.message(event.message)
        assert row is not None and row.text == text
    stop.set()
    await asyncio.wait_for(watcher, 10)


@pytest.mark.parametrize("mode", [FilterMode.NONE, FilterMode.ACTIVE])
async def test_watch_shows_new_messages(env: MailEnv, tmp_path: Path, mode: FilterMode) -> None:
    ports = (env.imap.port, env.submission_port)
    alice = await new_client(tmp_path, "alice", ALICE, PASSWORDS[ALICE], *ports, filter=mode)
    bob = await new_client(tmp_path, "bob", BOB, PASSWORDS[BOB], *ports)
    await watch_sees(alice, bob, ["are you there?", "hello?"])


async def test_watch_on_a_plain_server(plain_mail: PlainMailServer, tmp_path: Path) -> None:
    ports = (plain_mail.imap_port, plain_mail.smtp_port)
    alice = await new_client(tmp_path, "alice", ALICE, plain_mail.users[ALICE], *ports)
    bob = await new_client(tmp_path, "bob", BOB, plain_mail.users[BOB], *ports)
    await watch_sees(alice, bob, ["are you there?", "hello?"])


async def test_sync_cut_off_midway_resumes_without_loss_or_duplicates(
    env: MailEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coi.client.sync.FETCH_BATCH", 4)  # progress is saved per batch
    bob = await new_client(
        tmp_path, "bob", BOB, PASSWORDS[BOB], env.imap.port, env.submission_port
    )
    sender = Address(ALICE)
    imap = await ImapClient.connect("127.0.0.1", env.imap.port, security="plain")
    await imap.login(BOB, PASSWORDS[BOB])
    for i in range(30):
        raw = compose_bytes(builders.new_message(sender, (Address(BOB),), f"message {i} " * 200))
        await imap.append("INBOX", raw)
    await imap.logout()
    proxy = CuttingProxy(env.imap.port)
    port = await proxy.start()
    [account] = bob.accounts()
    moved = replace(account.settings, imap=Endpoint("127.0.0.1", port))
    bob.store.update_account_settings(account.id, moved)
    proxy.cut_after = 40_000
    with pytest.raises(ClientError):
        await bob.sync()
    proxy.cut_after = None
    report = (await bob.sync())[BOB]
    assert 0 < report.new < 30
    [chat] = bob.chats()
    texts = [m.text.split()[1] for m in bob.messages(chat, limit=None)]
    assert texts == [str(i) for i in range(30)]
    await proxy.stop()


async def test_crash_while_sending_marks_failed_and_never_resends(tmp_path: Path) -> None:
    client = Client(tmp_path / "p")
    account = client.store.add_account(
        AccountSettings(ALICE, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2))
    )
    msg = builders.new_message(Address(ALICE), (Address(BOB),), "in flight")
    Applier(client.store, account, client.profile.files_dir).outgoing(
        msg, compose_bytes(msg), 1.0
    )
    client.close()  # as if killed during SMTP: the row is 'sending'
    again = Client(tmp_path / "p")
    [chat] = again.chats()
    [row] = again.messages(chat)
    assert row.state == "failed" and row.error == INTERRUPTED


async def test_corrupt_message_does_not_stop_the_sync(env: MailEnv, tmp_path: Path) -> None:
    bob = await new_client(
        tmp_path, "bob", BOB, PASSWORDS[BOB], env.imap.port, env.submission_port
    )
    imap = await ImapClient.connect("127.0.0.1", env.imap.port, security="plain")
    await imap.login(BOB, PASSWORDS[BOB])
    good = compose_bytes(builders.new_message(Address(ALICE), (Address(BOB),), "after the junk"))
    junk = [
        b"\xff\xfe garbage without headers \x80",
        b"From: <alice@example.org>\r\nContent-Type: multipart/mixed; boundary=x\r\n"
        b"Chat-Version: 1.0\r\n\r\n--x\r\nContent-Type: image/png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
        b"From: " + b"a" * 5000 + b"\r\n\r\nbody",
    ]
    for raw in [*junk, good]:
        await imap.append("INBOX", raw)
    await imap.logout()
    report = (await bob.sync())[BOB]
    assert report.new == 4
    texts = [m.text for c in bob.chats() for m in bob.messages(c)]
    assert "after the junk" in texts
    assert (await bob.sync())[BOB].new == 0  # nothing fetched again


async def test_watch_without_idle_polls(
    env: MailEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coi.client.watch.POLL_SECONDS", 0.2)
    ports = (env.imap.port, env.submission_port)
    bob = await new_client(tmp_path, "bob", BOB, PASSWORDS[BOB], *ports)
    proxy = CuttingProxy(env.imap.port)
    proxy.hide = (b" IDLE",)  # a server that does not offer IDLE
    port = await proxy.start()
    alice = await new_client(tmp_path, "alice", ALICE, PASSWORDS[ALICE], port, ports[1])
    statuses: list[str] = []
    events: asyncio.Queue[ClientEvent] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(alice.watch(events.put_nowait, stop, statuses.append))
    await asyncio.sleep(0.3)
    await bob.send(ALICE, "polled")
    event = await asyncio.wait_for(events.get(), 10)
    assert event.kind == "new"
    stop.set()
    await asyncio.wait_for(watcher, 10)
    assert any("no IDLE" in line for line in statuses)
    await proxy.stop()


@pytest.mark.parametrize(
    "hidden",
    [(), (b" QRESYNC",), (b" QRESYNC", b" CONDSTORE")],
    ids=["qresync", "condstore", "plain"],
)
async def test_other_devices_expunges_and_flags_arrive(
    env: MailEnv, tmp_path: Path, hidden: tuple[bytes, ...]
) -> None:
    """QRESYNC where offered, CHANGEDSINCE where only CONDSTORE is, a full diff otherwise."""
    proxy = CuttingProxy(env.imap.port)
    proxy.hide = hidden
    port = await proxy.start()
    bob = await new_client(tmp_path, "bob", BOB, PASSWORDS[BOB], port, env.submission_port)
    imap = await ImapClient.connect("127.0.0.1", env.imap.port, security="plain")
    await imap.login(BOB, PASSWORDS[BOB])
    for text in ("one", "two", "three"):
        msg = builders.new_message(Address(ALICE), (Address(BOB),), text)
        await imap.append("INBOX", compose_bytes(msg))
    assert (await bob.sync())[BOB].new == 3
    await bob.sync()  # a second sync: the folder state the next one starts from
    await imap.select("INBOX")
    await imap.uid_store("2", "+FLAGS", ["\\Seen"])
    await imap.uid_store("1", "+FLAGS", ["\\Deleted"])
    await imap.expunge()
    await imap.logout()
    report = (await bob.sync())[BOB]
    assert (report.removed, report.changed, report.new) == (1, 1, 0)
    [chat] = bob.chats()
    assert [m.text for m in bob.messages(chat)] == ["two", "three"]
    two = bob.messages(chat)[0]
    [(_, _, flags)] = bob.store.locations(two.id)
    assert "\\Seen" in flags.split()
    await proxy.stop()
