"""A real Delta Chat core as a test peer: one `deltachat-rpc-server` process (2.65.0, from the
`dev` extra) per test, driven through `deltachat_rpc_client`, fully offline on loopback.

    async with DeltaChatPeer.start(tmp_path) as dc:
        alice = await dc.add_account("alice@example.org", pw, imap=("127.0.0.1", port, "ssl"),
                                     smtp=("127.0.0.1", port, "ssl"))
        bob = await dc.add_account(...)
        await bob.import_vcard(await alice.make_vcard())   # keys: encrypted from the start
        await bob.send_text("alice@example.org", "hi")
        msg = await alice.wait_for_message("hi")            # -> MessageSnapshot
        assert msg.encrypted

The core's JSON-RPC client is synchronous (threads and a pipe); every call here runs it in a
thread (asyncio.to_thread), so the test's event loop, which may be running coi's own servers,
keeps serving Delta Chat meanwhile. Accounts are configured by hand (no autoconfig, no DNS):
the transport names server, port and security (ssl, starttls or plain) for IMAP and SMTP and
accepts invalid certificates (our self-signed ones). The core logs through events:
`DeltaChatPeer.log()` has them (and the rpc server's stderr), `problems()` the warnings and
errors; core.log in the work directory gets the log at the end. `DeltaChatPeer.stop()` ends
the process (stdin closed, then SIGTERM, SIGKILL by its pid; it runs in a process group of
its own) also when a test fails. add_account waits until the account is online (INBOX
selected): a new Delta Chat account ignores mail already in INBOX.

`fetch_raw()` reads what arrived on an IMAP server, byte for byte, as fixtures need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import imaplib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from queue import Queue
from typing import Any

RPC_SERVER_NAME = "deltachat-rpc-server"
Endpoint = tuple[str, int, str]  # host, port, security: "ssl", "starttls" or "plain"


def rpc_server_path() -> str | None:
    """The rpc server next to this Python (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / RPC_SERVER_NAME
    if here.exists():
        return str(here)
    return shutil.which(RPC_SERVER_NAME)


def unavailable() -> str | None:
    """Why a Delta Chat peer cannot run here, or None."""
    try:
        import deltachat_rpc_client  # noqa: F401
    except ImportError:
        return "deltachat-rpc-client is not installed (pip install -e '.[dev]')"
    path = rpc_server_path()
    if path is None:
        return "deltachat-rpc-server is not installed (pip install -e '.[dev]')"
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        return f"deltachat-rpc-server does not start: {e}"
    return None


class _LoggingQueue(Queue[Any]):
    def __init__(self, log: list[dict[str, Any]], account_id: int) -> None:
        super().__init__()
        self._event_log = log
        self._account_id = account_id

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item, dict):
            self._event_log.append({"account": self._account_id, "time": time.time(), **item})
        super().put(item, block, timeout)


@dataclasses.dataclass
class MessageSnapshot:
    """What a test asserts on: one message as the core shows it."""

    id: int
    chat_id: int
    text: str
    sender: str  # address of the sender ("" for info messages)
    from_self: bool
    encrypted: bool  # showPadlock
    is_info: bool
    is_edited: bool
    quote: str | None  # the quoted text, when a reply
    reactions: dict[str, int]  # emoji -> count
    file: str | None  # path of the attachment in the account's blob dir
    file_name: str | None
    state: int
    raw: dict[str, Any]


class DcAccount:
    """One configured, online Delta Chat account."""

    def __init__(
        self, peer: DeltaChatPeer, account: Any, address: str, password: str, imap: Endpoint
    ) -> None:
        self.peer = peer
        self.account = account  # deltachat_rpc_client.Account
        self.id: int = account.id
        self.address = address
        self.password = password
        self.imap = imap
        self.configure_seconds = 0.0  # add_or_update_transport
        self.online_seconds = 0.0  # that, start_io and until INBOX idles

    # -- the server's side --------------------------------------------------------------------

    async def server_messages(
        self, mailbox: str = "INBOX", imap: Endpoint | None = None
    ) -> list[bytes]:
        """The raw messages in the account's mailbox on the server (not through the core),
        by UID; imap: another endpoint of the same server (e.g. not through a tap)."""
        found = await asyncio.to_thread(
            fetch_raw, imap or self.imap, self.address, self.password, (mailbox,)
        )
        return found.get(mailbox, [])

    async def network_is_up(self) -> None:
        """Tells the core (all its accounts) to retry its network work now rather than
        after its back-off (`maybe_network`, what an app calls when the network returns)."""
        await self.peer.call("maybe_network")

    async def stop_io(self) -> None:
        await self.rpc("stop_io")

    async def start_io(self) -> None:
        await self.rpc("start_io")
        await self.peer.call("wait_for_all_work_done", self.id)

    @contextlib.asynccontextmanager
    async def captured(
        self, count: int = 1, imap: Endpoint | None = None, timeout: float = 30.0
    ) -> AsyncIterator[list[bytes]]:
        """Stops this account's IO, lets the block send, and then fills the yielded list with
        the first `count` messages that arrived in INBOX meanwhile, exactly as the server
        stored them (before this core could move or delete them); then restarts IO."""
        await self.stop_io()
        before = len(await self.server_messages(imap=imap))
        got: list[bytes] = []
        try:
            yield got
            deadline = time.monotonic() + timeout
            while len(now := await self.server_messages(imap=imap)) < before + count:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.address}: {len(now) - before} of {count} messages arrived"
                    )
                await asyncio.sleep(0.1)
            got.extend(now[before : before + count])
        finally:
            await self.start_io()

    # -- plumbing -------------------------------------------------------------------------

    async def rpc(self, method: str, *args: Any) -> Any:
        """Any JSON-RPC call of the core, with this account's id first."""
        return await self.peer.call(method, self.id, *args)

    async def set_config(self, key: str, value: str | None) -> None:
        await self.rpc("set_config", key, value)

    async def get_config(self, key: str) -> str | None:
        result = await self.rpc("get_config", key)
        return None if result is None else str(result)

    # -- contacts and chats -----------------------------------------------------------------

    async def make_vcard(self) -> str:
        """This account's own vCard, with its public key."""
        return str(await self.rpc("make_vcard", [1]))  # 1: DC_CONTACT_ID_SELF

    async def import_vcard(self, vcard: str) -> int:
        """Imports a vCard (from another account's make_vcard); returns the contact id."""
        ids = await self.rpc("import_vcard_contents", vcard)
        return int(ids[0])

    async def contact_id(self, address: str) -> int:
        """The key contact for address, when its vCard was imported, else an address contact."""
        found = await self.rpc("lookup_contact_id_by_addr", address)
        if found:
            return int(found)
        return int(await self.rpc("create_contact", address, None))

    async def chat_with(self, address: str) -> int:
        return int(await self.rpc("create_chat_by_contact_id", await self.contact_id(address)))

    async def create_group(self, name: str, members: list[str]) -> int:
        """A new encrypted group with these members (their vCards imported before)."""
        chat_id = int(await self.rpc("create_group_chat", name, False))
        for address in members:
            await self.rpc("add_contact_to_chat", chat_id, await self.contact_id(address))
        return chat_id

    async def _chat(self, to: str | int) -> int:
        """A chat id for to (an address: its 1:1 chat); a contact request is accepted."""
        chat_id = to if isinstance(to, int) else await self.chat_with(to)
        info = await self.rpc("get_basic_chat_info", chat_id)
        if info.get("isContactRequest"):
            await self.rpc("accept_chat", chat_id)
        return chat_id

    # -- sending --------------------------------------------------------------------------

    async def send(self, to: str | int, **data: Any) -> int:
        """send_msg with MessageData fields (text, file, filename, quotedMessageId, ...)."""
        return int(await self.rpc("send_msg", await self._chat(to), data))

    async def send_text(self, to: str | int, text: str, quote: int | None = None) -> int:
        """Sends text to an address (1:1 chat) or a chat id; returns the message id."""
        if quote is not None:
            return await self.send(to, text=text, quotedMessageId=quote)
        return await self.send(to, text=text)

    async def send_file(self, to: str | int, path: str | Path, text: str = "") -> int:
        return await self.send(to, text=text, file=str(path), filename=Path(path).name)

    async def react(self, msg_id: int, *emoji: str) -> int:
        return int(await self.rpc("send_reaction", msg_id, list(emoji)))

    async def send_edit(self, msg_id: int, text: str) -> None:
        await self.rpc("send_edit_request", msg_id, text)

    async def delete_for_all(self, msg_id: int) -> None:
        await self.rpc("delete_messages_for_all", [msg_id])

    async def mark_seen(self, *msg_ids: int) -> None:
        await self.rpc("markseen_msgs", list(msg_ids))

    # -- reading --------------------------------------------------------------------------

    async def snapshot(self, msg_id: int) -> MessageSnapshot:
        raw = await self.rpc("get_message", msg_id)
        sender = raw.get("sender") or {}
        quote = raw.get("quote") or None
        reactions = raw.get("reactions") or {}
        counts = {r["emoji"]: int(r["count"]) for r in reactions.get("reactions", [])}
        return MessageSnapshot(
            id=int(raw["id"]),
            chat_id=int(raw["chatId"]),
            text=raw.get("text") or "",
            sender=sender.get("address", ""),
            from_self=raw.get("fromId") == 1,
            encrypted=bool(raw.get("showPadlock")),
            is_info=bool(raw.get("isInfo")),
            is_edited=bool(raw.get("isEdited")),
            quote=quote.get("text") if isinstance(quote, dict) else None,
            reactions=counts,
            file=raw.get("file"),
            file_name=raw.get("fileName"),
            state=int(raw.get("state", 0)),
            raw=raw,
        )

    async def chat_ids(self) -> list[int]:
        entries = await self.rpc("get_chatlist_entries", None, None, None)
        return [int(c) for c in entries]

    async def chat_messages(self, chat_id: int) -> list[MessageSnapshot]:
        """The chat's messages; one the core deleted between listing and reading (it
        deletes in the background, for instance on a Chat-Delete) is left out."""
        ids = await self.rpc("get_message_ids", chat_id, False, False)
        out: list[MessageSnapshot] = []
        for msg_id in ids:
            try:
                out.append(await self.snapshot(int(msg_id)))
            except Exception as exc:  # deltachat_rpc_client's JsonRpcError, imported lazily
                if "does not exist" not in str(exc):
                    raise
        return out

    async def all_messages(self) -> list[MessageSnapshot]:
        out: list[MessageSnapshot] = []
        for chat_id in await self.chat_ids():
            out.extend(await self.chat_messages(chat_id))
        return out

    async def wait_for_message(
        self,
        match: str | Callable[[MessageSnapshot], bool],
        timeout: float = 30.0,
    ) -> MessageSnapshot:
        """The first message (in any chat, contact requests included) whose text is match or
        which match(snapshot) accepts, polling the core until timeout. Info messages and
        one's own are skipped for a text match."""
        if isinstance(match, str):
            text = match

            def predicate(m: MessageSnapshot) -> bool:
                return m.text == text and not m.from_self and not m.is_info
        else:
            predicate = match
        deadline = time.monotonic() + timeout
        while True:
            for msg in await self.all_messages():
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                seen = [(m.chat_id, m.sender, m.text[:40]) for m in await self.all_messages()]
                raise TimeoutError(
                    f"{self.address}: no matching message after {timeout} s; has {seen}\n"
                    f"--- rpc server log (tail) ---\n{self.peer.log()[-400000:]}"
                )
            await asyncio.sleep(0.2)

    async def wait_until_sent(self, msg_id: int, timeout: float = 30.0) -> None:
        """Until the message left (state delivered, 26, or later)."""
        deadline = time.monotonic() + timeout
        while (snap := await self.snapshot(msg_id)).state < 26:
            if snap.state == 24:  # failed
                raise AssertionError(f"{self.address}: sending failed: {snap.raw.get('error')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.address}: message {msg_id} not sent in {timeout} s")
            await asyncio.sleep(0.1)

    async def accept_chat(self, chat_id: int) -> None:
        await self.rpc("accept_chat", chat_id)

    async def export_keys(self, directory: Path) -> list[Path]:
        """Exports the account's key pair as ASCII-armored files into directory."""
        directory.mkdir(parents=True, exist_ok=True)
        before = set(directory.iterdir())
        await self.rpc("export_self_keys", str(directory), None)
        return sorted(set(directory.iterdir()) - before)


class DeltaChatPeer:
    """One deltachat-rpc-server process with its accounts directory."""

    def __init__(self, workdir: Path) -> None:
        from deltachat_rpc_client import Rpc

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "rpc-server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        path = rpc_server_path()
        assert path is not None, unavailable()
        env = {**os.environ, "RUST_LOG": os.environ.get("COI_DC_RUST_LOG", "warn"), "NO_COLOR": "1"}
        self.rpc = Rpc(
            accounts_dir=str(workdir / "accounts"),
            rpc_server_path=path,
            env=env,
            stderr=self._log,
        )
        self.accounts: list[DcAccount] = []
        self.event_log: list[dict[str, Any]] = []
        self.start_seconds = 0.0
        self.rpc.get_queue = self._get_queue  # type: ignore[method-assign]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, workdir: Path) -> AsyncIterator[DeltaChatPeer]:
        peer = cls(workdir)
        started = time.monotonic()
        try:
            await asyncio.to_thread(peer.rpc.start)
            peer.start_seconds = time.monotonic() - started
            yield peer
        finally:
            await asyncio.to_thread(peer.stop)

    async def call(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.rpc, method), *args)

    def _get_queue(self, account_id: int) -> Queue[Any]:
        # replaces Rpc.get_queue: every event is also logged, in arrival order, with its time
        queues = self.rpc.event_queues
        if account_id not in queues:
            queues[account_id] = _LoggingQueue(self.event_log, account_id)
        return queues[account_id]

    def log(self, kinds: tuple[str, ...] = ("Info", "Warning", "Error")) -> str:
        """The core's log: its Info/Warning/Error events (the core logs through events, not
        stderr), one line each in arrival order, prefixed by the account's address; then the
        rpc server's stderr (its own tracing, warnings and up), if it wrote any."""
        self._log.flush()
        stderr = self.log_path.read_text(errors="replace")
        return "\n".join(self.event_lines(kinds)) + ("\n" + stderr if stderr else "")

    def event_lines(self, kinds: tuple[str, ...]) -> list[str]:
        names = {a.id: a.address for a in self.accounts}
        return [
            f"{e['kind'].upper():7} {names.get(e['account'], e['account'])}: {e.get('msg', '')}"
            for e in list(self.event_log)
            if e.get("kind") in kinds
        ]

    def problems(self) -> list[str]:
        """The core's Warning and Error events so far."""
        return self.event_lines(("Warning", "Error"))

    async def add_account(
        self,
        address: str,
        password: str,
        imap: Endpoint,
        smtp: Endpoint,
        **config: str,
    ) -> DcAccount:
        """A new account, configured by hand for these endpoints (invalid certificates
        accepted), with config set before configuring, and its IO started."""
        from deltachat_rpc_client import Account, DeltaChat

        account_id = int(await self.call("add_account"))
        account = Account(DeltaChat(self.rpc), account_id)
        acc = DcAccount(self, account, address, password, imap)
        for key, value in config.items():
            await acc.set_config(key, value)
        params = {
            "addr": address,
            "password": password,
            "imapServer": imap[0],
            "imapPort": imap[1],
            "imapSecurity": imap[2],
            "smtpServer": smtp[0],
            "smtpPort": smtp[1],
            "smtpSecurity": smtp[2],
            "certificateChecks": "acceptInvalidCertificates",
        }
        started = time.monotonic()
        await self.call("add_or_update_transport", account_id, params)
        acc.configure_seconds = time.monotonic() - started
        await self.call("start_io", account_id)
        # until IMAP selected INBOX and idles: a new account skips what is there already
        await self.call("wait_for_all_work_done", account_id)
        acc.online_seconds = time.monotonic() - started
        self.accounts.append(acc)
        return acc

    def stop(self) -> None:
        """Ends the rpc server: politely first (stdin closed), then by its pid (it runs in a
        process group of its own, so a signal reaches nothing else)."""
        proc = getattr(self.rpc, "process", None)
        if proc is not None and proc.poll() is None:
            try:
                self.rpc.closing = True
                with contextlib.suppress(Exception):
                    self.rpc.stop_io_for_all_accounts.future()
                self.rpc.request_queue.put(None)  # the writer thread ends
                self.rpc.writer_thread.join(5)
                with contextlib.suppress(Exception):
                    proc.stdin.close()  # type: ignore[union-attr]
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(3)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
                for name in ("reader_thread", "events_thread"):
                    thread = getattr(self.rpc, name, None)
                    if thread is not None:
                        thread.join(5)
        with contextlib.suppress(Exception):
            (self.workdir / "core.log").write_text(self.log())
        self._log.close()


def fetch_raw(
    imap: Endpoint, address: str, password: str, mailboxes: tuple[str, ...] = ()
) -> dict[str, list[bytes]]:
    """Every message in the account's mailboxes (or just these), byte for byte, by mailbox,
    in UID order. Blocking: call through asyncio.to_thread from async tests."""
    host, port, security = imap
    if security == "ssl":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=30)
    else:
        conn = imaplib.IMAP4(host, port, timeout=30)
    try:
        conn.login(address, password)
        names = list(mailboxes)
        if not names:
            typ, listing = conn.list()
            for line in listing:
                if isinstance(line, bytes):
                    name = line.rsplit(b" ", 1)[-1].strip(b'"').decode()
                    names.append(name)
        out: dict[str, list[bytes]] = {}
        for name in names:
            typ, _ = conn.select(f'"{name}"', readonly=True)
            if typ != "OK":
                continue
            typ, data = conn.uid("SEARCH", "ALL")
            uids = data[0].split() if data and data[0] else []
            msgs = []
            for uid in uids:
                typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                for part in parts:
                    if isinstance(part, tuple):
                        msgs.append(part[1])
            out[name] = msgs
        return out
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


class ImapTap:
    """A loopback TCP proxy that records what passes (plain IMAP or SMTP): point Delta Chat
    at `port` with security "plain" to see every command and answer.

        async with ImapTap(upstream_port) as tap: ...; tap.tagged_failures()
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = 0
        # (connection number, "C" or "S", one line as received)
        self.lines: list[tuple[int, str, bytes]] = []
        self._server: asyncio.Server | None = None
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ImapTap:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._count += 1
        conn = self._count
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return

        # COMPRESS=DEFLATE (RFC 4978): after the tagged OK both sides deflate; the tap
        # then forwards raw chunks and records the inflated lines
        compress_tag: list[bytes] = []
        compressing = {"C": asyncio.Event(), "S": asyncio.Event()}
        answered = asyncio.Event()

        def record(side: str, data: bytes, pending: bytearray) -> None:
            pending += data
            while (end := pending.find(b"\n")) >= 0:
                self.lines.append((conn, side, bytes(pending[: end + 1])))
                del pending[: end + 1]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, side: str) -> None:
            try:
                while not compressing[side].is_set():
                    line = await src.readline()
                    if not line:
                        return
                    self.lines.append((conn, side, line))
                    dst.write(line)
                    await dst.drain()
                    words = line.split(b" ", 2)
                    if side == "C" and line.upper().endswith(b" COMPRESS DEFLATE\r\n"):
                        compress_tag[:] = [words[0]]
                        answered.clear()
                        await answered.wait()  # the client waits for the result (§3)
                    elif side == "S" and compress_tag and words[0] == compress_tag[0]:
                        if len(words) > 1 and words[1].upper() == b"OK":
                            compressing["C"].set()
                            compressing["S"].set()
                        compress_tag.clear()
                        answered.set()
                inflate = zlib.decompressobj(-15)
                pending = bytearray()
                while data := await src.read(65536):
                    record(side, inflate.decompress(data), pending)
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError, zlib.error):
                pass
            finally:
                answered.set()
                with contextlib.suppress(Exception):
                    dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer, "C"), pump(up_reader, writer, "S"))
        finally:
            self._tasks.discard(task)

    def transcript(self) -> str:
        return "".join(
            f"{conn} {side}: {line.decode('utf-8', 'replace')}" for conn, side, line in self.lines
        )

    def tagged_failures(self) -> list[tuple[bytes, bytes]]:
        """Each command the server answered with a tagged NO or BAD (or an untagged BAD):
        (command line, answer line)."""
        commands: dict[tuple[int, bytes], bytes] = {}
        out = []
        for conn, side, line in self.lines:
            tag = line.split(b" ", 1)[0]
            if side == "C":
                commands[(conn, tag)] = line
                continue
            words = line.split(b" ", 2)
            if len(words) >= 2 and words[1].upper() in (b"NO", b"BAD"):
                out.append((commands.get((conn, tag), b"?"), line))
        return out
