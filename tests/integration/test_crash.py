"""kill -9 in the middle of a burst of APPENDs loses no acknowledged message and
duplicates none (the store commits, with fsync, before the tagged OK)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.serverproc import ServerProcess

ADDRESS = "alice@example.org"


async def _appender(
    port: int, password: str, worker: int, acked: set[str], sent: set[str], stop: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        writer.write(f'a LOGIN {ADDRESS} "{password}"\r\n'.encode())
        await writer.drain()
        while True:  # the server may be killed before this worker is even logged in
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"a "):
                break
        n = 0
        while not stop.is_set():
            n += 1
            msgid = f"<crash-{worker}-{n}@test>"
            body = (
                f"From: bob@example.org\r\nTo: {ADDRESS}\r\nMessage-ID: {msgid}\r\n"
                f"Subject: burst {worker} {n}\r\n\r\n" + "x" * 200 + "\r\n"
            ).encode()
            tag = f"w{n}"
            writer.write(f"{tag} APPEND INBOX {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
            await writer.drain()
            sent.add(msgid)
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(tag.encode() + b" "):
                    if line.startswith(tag.encode() + b" OK"):
                        acked.add(msgid)
                    break
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _message_ids(port: int, password: str) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(
        f'a LOGIN {ADDRESS} "{password}"\r\nb EXAMINE INBOX\r\n'
        "c FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n".encode()
    )
    await writer.drain()
    data = b""
    while b"\r\nc " not in data:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        data += chunk
    writer.close()
    return re.findall(r"Message-ID: (<crash-[^>]+>)", data.decode(), re.IGNORECASE)


@dataclass
class Burst:
    """APPENDs from several connections until ``end``: what was sent, what was OK'd."""

    acked: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    workers: list[asyncio.Task[None]] = field(default_factory=list)

    async def end(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.workers)


async def start_burst(port: int, password: str, connections: int, until_acked: int) -> Burst:
    """Starts the burst and returns once ``until_acked`` appends were acknowledged (or
    15 s passed on a busy machine)."""
    burst = Burst()
    burst.workers = [
        asyncio.create_task(_appender(port, password, w, burst.acked, burst.sent, burst.stop))
        for w in range(connections)
    ]
    for _ in range(750):
        await asyncio.sleep(0.02)
        if len(burst.acked) >= until_acked:
            break
    return burst


async def test_kill_9_during_append_burst(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        server.start()
        password = server.password(ADDRESS)
        burst = await start_burst(server.port, password, 4, 40)
        server.kill()  # SIGKILL while appends are in flight
        await burst.end()
        acked, sent = burst.acked, burst.sent
        assert len(acked) >= 10, "the burst never got going"
        print(f"acked {len(acked)} of {len(sent)} sent before the kill")
        server.start()
        found = await _message_ids(server.port, password)
        assert len(found) == len(set(found)), "a message was stored twice"
        missing = acked - set(found)
        assert not missing, f"acknowledged messages lost: {sorted(missing)[:5]}"
        assert set(found) <= sent
    finally:
        server.stop()


async def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert (await reader.readline()).startswith(b"* OK")
        code = await asyncio.to_thread(server.terminate)
        assert code == 0
        assert (await reader.readline()).startswith(b"* BYE")
        writer.close()
    finally:
        server.stop()
