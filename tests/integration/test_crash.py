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


async def _message_ids(port: int, password: str, mailbox: str = "INBOX") -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(
        f'a LOGIN {ADDRESS} "{password}"\r\nb EXAMINE {mailbox}\r\n'
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


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> bytes:
    tag = line.split(" ", 1)[0].encode()
    writer.write(line.encode() + b"\r\n")
    await writer.drain()
    data = b""
    while True:
        got = await asyncio.wait_for(reader.readline(), 30)
        assert got, f"connection closed during {line!r}"
        data += got
        if got.startswith(tag + b" "):
            assert got.startswith(tag + b" OK"), got
            return data


async def test_kill_9_after_stores_under_fsync_optimized(tmp_path: Path) -> None:
    """fsync = optimized: APPENDs acknowledged before a kill -9 are all there after it, and
    so are the flag changes (kill -9 ends the process, not the kernel: the WAL frames
    written before each reply are in the page cache; the deferred fsync only matters for
    an OS crash or power loss, where flag changes of the last --fsync-delay seconds may be
    lost). The delay is made long so that the kill surely lands before the fsync."""
    server = ServerProcess(tmp_path, "--fsync", "optimized", "--fsync-delay", "3600")
    try:
        server.start()
        password = server.password(ADDRESS)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await reader.readline()
        await _command(reader, writer, f'a LOGIN {ADDRESS} "{password}"')
        await _command(reader, writer, "b1 CREATE Opt")
        await _command(reader, writer, "b SELECT Opt")
        for n in range(1, 11):
            body = f"From: bob@example.org\r\nMessage-ID: <crash-opt-{n}@test>\r\n\r\nhi {n}\r\n"
            writer.write(f"c{n} APPEND Opt {{{len(body)}+}}\r\n{body}\r\n".encode())
            await writer.drain()
            while not (line := await reader.readline()).startswith(f"c{n} ".encode()):
                assert line
            assert line.startswith(f"c{n} OK".encode()), line
        await _command(reader, writer, "d NOOP")
        await _command(reader, writer, r"e STORE 1:5 +FLAGS.SILENT (\Seen $Done)")
        await _command(reader, writer, r"f STORE 3 +FLAGS.SILENT (\Flagged)")
        server.kill()  # right after the last STORE's OK
        writer.close()
        server.start()
        found = await _message_ids(server.port, password, "Opt")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await reader.readline()
        await _command(reader, writer, f'a LOGIN {ADDRESS} "{password}"')
        await _command(reader, writer, "b EXAMINE Opt")
        data = await _command(reader, writer, "c UID SEARCH KEYWORD $Done")
        flagged = await _command(reader, writer, "d SEARCH FLAGGED")
        writer.close()
    finally:
        server.stop()
    assert sorted(found) == sorted(f"<crash-opt-{n}@test>" for n in range(1, 11))
    assert b"* SEARCH 1 2 3 4 5\r\n" in data
    assert b"* SEARCH 3\r\n" in flagged
