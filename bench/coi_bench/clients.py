"""Minimal raw-asyncio IMAP and LMTP clients: as little client work as possible, so the
server is what gets measured. No parsing beyond what the workloads need."""

from __future__ import annotations

import asyncio
import re
import time

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
LIMIT = 64 * 1024 * 1024


class ProtocolError(Exception):
    pass


class Imap:
    """One IMAP connection. `command` sends a tagged command and returns (untagged lines,
    tagged line); literals in responses are read and appended to their line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._n = 0
        self.pending: list[bytes] = []  # untagged lines seen outside a command (IDLE)

    @classmethod
    async def connect(cls, host: str, port: int) -> Imap:
        reader, writer = await asyncio.open_connection(host, port, limit=LIMIT)
        self = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"bad greeting {greeting!r}")
        return self

    @classmethod
    async def login(cls, host: str, port: int, user: str, password: str) -> Imap:
        self = await cls.connect(host, port)
        await self.ok(f"LOGIN {quote(user)} {quote(password)}")
        return self

    def tag(self) -> bytes:
        self._n += 1
        return b"t%d" % self._n

    async def read_response(self) -> bytes:
        """One response line with its literals inlined."""
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if not line.endswith(b"}\r\n"):
            return line
        parts = [line]
        while True:
            m = _LITERAL.search(line)
            if m is None:
                return b"".join(parts)
            parts.append(await self.reader.readexactly(int(m.group(1))))
            line = await self.reader.readline()
            parts.append(line)

    async def read_until(self, tag: bytes) -> tuple[list[bytes], bytes]:
        untagged: list[bytes] = []
        prefix = tag + b" "
        while True:
            line = await self.read_response()
            if line.startswith(prefix):
                return untagged, line
            untagged.append(line)

    async def command(self, text: str | bytes) -> tuple[list[bytes], bytes]:
        tag = self.tag()
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(tag + b" " + data + b"\r\n")
        return await self.read_until(tag)

    async def ok(self, text: str | bytes) -> list[bytes]:
        untagged, tagged = await self.command(text)
        if tagged.split(b" ", 2)[1] != b"OK":
            shown = text if len(text) < 200 else text[:200]
            raise ProtocolError(f"{shown!r} -> {tagged!r}")
        return untagged

    def append_bytes(self, tag: bytes, mailbox: str, message: bytes, flags: str = "") -> bytes:
        flag_part = f" ({flags})" if flags else ""
        return b"%s APPEND %s%s {%d+}\r\n%s\r\n" % (
            tag,
            quote(mailbox).encode(),
            flag_part.encode(),
            len(message),
            message,
        )

    async def append(self, mailbox: str, message: bytes) -> None:
        tag = self.tag()
        self.writer.write(self.append_bytes(tag, mailbox, message))
        _, tagged = await self.read_until(tag)
        if b" OK" not in tagged[: len(tag) + 4]:
            raise ProtocolError(f"APPEND -> {tagged!r}")

    async def append_pipelined(self, mailbox: str, messages: list[bytes]) -> None:
        """All APPENDs written at once (LITERAL+), then all tagged replies read."""
        tags = [self.tag() for _ in messages]
        self.writer.write(
            b"".join(self.append_bytes(t, mailbox, m) for t, m in zip(tags, messages, strict=True))
        )
        for tag in tags:
            _, tagged = await self.read_until(tag)
            if b" OK" not in tagged[: len(tag) + 4]:
                raise ProtocolError(f"APPEND -> {tagged!r}")

    async def idle_start(self) -> bytes:
        tag = self.tag()
        self.writer.write(tag + b" IDLE\r\n")
        while True:
            line = await self.read_response()
            if line.startswith(b"+"):
                return tag
            self.pending.append(line)

    async def wait_exists(self) -> tuple[float, bytes]:
        """Waits for an EXISTS response while idling; returns (arrival time, line)."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line.endswith(b"EXISTS\r\n"):
                return time.perf_counter(), line

    async def idle_done(self, tag: bytes) -> None:
        self.writer.write(b"DONE\r\n")
        await self.read_until(tag)

    async def logout(self) -> None:
        try:
            self.writer.write(b"z LOGOUT\r\n")
            await asyncio.wait_for(self.read_until(b"z"), 5)
        except (TimeoutError, ConnectionError, OSError):
            pass
        self.close()

    def close(self) -> None:
        self.writer.close()


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Lmtp:
    """One LMTP connection (RFC 2033), PIPELINING used for MAIL/RCPT/DATA."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> Lmtp:
        reader, writer = await asyncio.open_connection(host, port, limit=LIMIT)
        self = cls(reader, writer)
        await self.reply(b"220")
        writer.write(b"LHLO bench.localhost\r\n")
        await self.reply(b"250")
        return self

    async def reply(self, expect: bytes) -> bytes:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("LMTP server closed the connection")
            lines.append(line)
            if line[3:4] != b"-":
                break
        text = b"".join(lines)
        if not text.startswith(expect):
            raise ProtocolError(f"LMTP expected {expect!r}, got {text!r}")
        return text

    async def deliver(self, sender: str, recipient: str, message: bytes) -> None:
        self.writer.write(
            b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender.encode(), recipient.encode())
        )
        await self.reply(b"250")
        await self.reply(b"250")
        await self.reply(b"354")
        self.writer.write(dot_stuff(message) + b".\r\n")
        await self.reply(b"250")  # one reply per accepted recipient (RFC 2033 §4.2)

    async def quit(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reply(b"221"), 5)
        except (TimeoutError, ConnectionError, OSError, ProtocolError):
            pass
        self.writer.close()


def dot_stuff(message: bytes) -> bytes:
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..")
