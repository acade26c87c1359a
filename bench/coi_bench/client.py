"""The `client` workload: coi's own chat client library (`coi.client`) against each server.

On coi serve the client runs in COI mode; on Dovecot, a plain IMAP server, in its fallback
mode (it creates COI.Chats, COI.Contacts and Blocked itself). Two measurements per server:

- delivery -> shown by watch: `Client.watch` runs in this process for the `cwatch` user; chat
  messages are delivered one at a time over LMTP; the time from the end of the LMTP DATA reply
  to `on_event` for that message (matched by its text), median and p99.
- resync: the `csync` user's INBOX is filled with sizes.client_mailbox chat messages (untimed),
  a first `Client.sync()` fetches them all (timed, reported apart), then `Client.sync()` of the
  unchanged account, median of RESYNCS; each one connects, logs in and sets up (CAPABILITY,
  LIST, METADATA or CREATE/SUBSCRIBE checks) like a user's resync does, so all that is counted.
  Bytes are the IMAP bytes of one such session (read + written, LOGOUT not counted).
- `coi sync` as a command on the same profile: from starting the process to its exit, as a
  user of the command line waits for it, median of RESYNCS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coi.chat.builders import new_message
from coi.chat.compose import compose_bytes
from coi.chat.model import Address
from coi.client.client import Client, ClientEvent
from coi.client.profile import AccountSettings, Endpoint, Security
from coi_bench import servers
from coi_bench.clients import Imap, Lmtp
from coi_bench.servers import Server
from coi_bench.workloads import Sizes, fill, pct, user_list

RESYNCS = 5
GAP_SECONDS = 0.1  # after a message is shown, before the next delivery: watch is back in IDLE
SHOW_TIMEOUT = 15.0
PEER = "peer@example.net"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def chat_message(i: int, to: str, text: str | None = None) -> bytes:
    """A chat message as a Delta Chat-compatible client sends it (module level: picklable)."""
    sender = Address(f"peer{i % 20:02d}@example.net", f"Peer {i % 20}")
    body = text if text is not None else f"message {i} of the resync mailbox, a short chat line"
    return compose_bytes(new_message(sender, (Address(to),), body))


def settings(server: Server, address: str) -> AccountSettings:
    # SMTP is not used here (nothing is sent); the port only has to be a valid endpoint
    return AccountSettings(
        address,
        imap=Endpoint(server.host, server.imap_port),
        smtp=Endpoint(server.host, server.lmtp_port or 25),
        security=Security.PLAIN,
    )


async def fill_mailbox(server: Server, sizes: Sizes) -> float:
    """Untimed set-up: the csync INBOX gets sizes.client_mailbox chat messages; seconds.
    coi: pipelined APPEND (4 connections); Dovecot: maildir files written directly, then one
    SELECT and UID FETCH 1:* (FLAGS) so that Dovecot's index is built before the first sync."""
    address, password = user_list(server, "csync")[0]
    n = sizes.client_mailbox
    t0 = time.perf_counter()
    if server.name == "dovecot":
        assert server.workdir is not None
        make = functools.partial(chat_message, to=address)
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(
                pool, servers.fill_maildir, server.workdir, address, n, make
            )
        c = await Imap.login(server.host, server.imap_port, address, password)
        await c.ok("SELECT INBOX")
        await c.ok("UID FETCH 1:* (FLAGS)")
        await c.logout()
    else:
        await fill(server, (address, password), n, lambda i: chat_message(i, address))
    return time.perf_counter() - t0


async def watch_latency(server: Server, sizes: Sizes, root: Path) -> dict[str, float]:
    address, password = user_list(server, "cwatch")[0]
    client = Client(root / f"{server.name}-watch")
    await client.add_account(settings(server, address), password)
    waiting: dict[str, asyncio.Future[float]] = {}

    def on_event(event: ClientEvent) -> None:
        t = time.perf_counter()
        if event.kind != "new" or event.message is None:
            return
        row = client.store.message(event.message)
        fut = waiting.pop(row.text.strip(), None) if row is not None else None
        if fut is not None and not fut.done():
            fut.set_result(t)

    statuses: dict[str, int] = {}

    def on_status(line: str) -> None:
        # each distinct line logged once; their count is a figure (reconnects of the watch)
        if line not in statuses:
            log(f"client watch ({server.name}): {line}")
        statuses[line] = statuses.get(line, 0) + 1

    stop = asyncio.Event()
    task = asyncio.create_task(client.watch(on_event, stop, on_status=on_status))
    lmtp = await Lmtp.connect(server.host, server.lmtp_port or 0)
    lat: list[float] = []
    missed = 0
    try:
        for j in range(-1, sizes.client_deliveries):  # -1: untimed warm-up (watch is idling)
            text = f"bench watch {server.name} {j}"
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting[text] = fut
            await lmtp.deliver(PEER, address, chat_message(j, address, text))
            t_data = time.perf_counter()  # end of the LMTP DATA reply
            try:
                t_shown = await asyncio.wait_for(fut, SHOW_TIMEOUT if j >= 0 else 60)
            except TimeoutError:
                if task.done():
                    task.result()  # the watch failed: say why
                missed += 1
                waiting.pop(text, None)
                continue
            if j >= 0:
                lat.append(t_shown - t_data)
            await asyncio.sleep(GAP_SECONDS)
    finally:
        await lmtp.quit()
        stop.set()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            client.close()
    if not lat:
        raise RuntimeError(f"watch showed none of {sizes.client_deliveries} messages")
    return {
        "watch_p50_ms": pct(lat, 50) * 1000,
        "watch_p99_ms": pct(lat, 99) * 1000,
        "watch_max_ms": max(lat) * 1000,
        "watch_messages": float(len(lat)),
        "watch_missed": float(missed),
        "watch_status_lines": float(sum(statuses.values())),  # e.g. errors and reconnects
    }


async def resync(server: Server, sizes: Sizes, root: Path) -> dict[str, float]:
    address, password = user_list(server, "csync")[0]
    client = Client(root / f"{server.name}-sync")
    try:
        await client.add_account(settings(server, address), password)
        t0 = time.perf_counter()
        first = (await client.sync())[address]
        first_s = time.perf_counter() - t0
        if first.new < sizes.client_mailbox:
            raise RuntimeError(f"first sync got {first.new} of {sizes.client_mailbox} messages")
        times: list[float] = []
        sync_bytes: list[int] = []
        for _ in range(RESYNCS):
            t0 = time.perf_counter()
            report = (await client.sync())[address]
            times.append(time.perf_counter() - t0)
            if report.new or report.changed or report.removed:
                raise RuntimeError(f"resync of an unchanged account changed something: {report}")
            sync_bytes.append(report.bytes_read + report.bytes_written)
        # one more, by parts, with the bytes of the whole session (Client.sync does the same)
        account = client.account(address)
        t0 = time.perf_counter()
        async with client.connected(account) as session:
            t1 = time.perf_counter()
            await session.sync()
            t2 = time.perf_counter()
            assert session.imap is not None
            read, written = session.imap.bytes_read, session.imap.bytes_written
        t3 = time.perf_counter()
    finally:
        client.close()
    command = [str(servers.VENV_BIN / "coi"), "sync", "--profile", str(client.profile.root)]
    cli: list[float] = []
    for _ in range(RESYNCS):  # what a user of the command line waits for, start-up included
        started = time.perf_counter()
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=60)
        cli.append(time.perf_counter() - started)
        if done.returncode or b" 0 new, 0 changed, 0 removed" not in done.stdout:
            raise RuntimeError(f"coi sync: {(done.stdout + done.stderr).decode()!r}")
    return {
        "cli_sync_ms": statistics.median(cli) * 1000,
        "resync_ms": statistics.median(times) * 1000,
        "resync_bytes": float(read + written),
        "resync_bytes_read": float(read),
        "resync_bytes_written": float(written),
        "resync_sync_only_bytes": float(statistics.median(sync_bytes)),
        "resync_connect_setup_ms": (t1 - t0) * 1000,
        "resync_sync_only_ms": (t2 - t1) * 1000,
        "resync_logout_ms": (t3 - t2) * 1000,
        "first_sync_s": first_s,
        "first_sync_msgs_per_s": first.new / first_s,
        "first_sync_bytes": float(first.bytes_read + first.bytes_written),
        "mailbox_messages": float(first.new),
    }


async def client_workload(server: Server, sizes: Sizes, fill_s: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="coi-bench-client-"))
    try:
        out = await watch_latency(server, sizes, root)
        out |= await resync(server, sizes, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["fill_seconds"] = fill_s
    return out
