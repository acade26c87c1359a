"""Fuzz target: LMTP/SMTP line handling (RFC 5321 §4.1, §4.5.2; RFC 2033).

Three parts, chosen by the input's checksum so one corpus serves all:

* an in-process LMTP session: coi's ``CoiLMTP`` (aiosmtpd with coi.delivery.smtpd's DATA
  and address parsing) and the real ``LmtpHandler``, over a memory transport, with the
  input as what the client sends;
* DATA reading: ``read_data``/``DataCollector`` over a stream fed in pieces, against a
  line-by-line reference of the end line, dot-unstuffing and the SIZE and line limits;
* the pure helpers: ``crlf_lines``, ``has_long_line`` and ``FastSMTP._getaddr`` (its fast
  path against the email package's parser it stands in for).

Invariants: no exception reaches aiosmtpd's ``handle_exception`` (it would answer
``500 Error: (...)``); every reply line is ``DDD SP/- text CRLF``; a delivered message never
holds a bare LF and is within the SIZE limit; the session ends once the input is consumed;
the helpers agree with their references.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from email._header_value_parser import get_angle_addr
from email.errors import HeaderParseError
from typing import Any

from coi.delivery.data import DataCollector, crlf_lines, has_long_line, read_data
from coi.delivery.lmtp import CoiLMTP, LmtpHandler
from coi.delivery.smtpd import _SIMPLE_PATH
from coi.store.model import User

from ._common import TooSlow, bounded, chunks

_LOOP = asyncio.new_event_loop()
_REPLY = re.compile(rb"[0-9]{3}(?:[ -][^\r\n]*)?\r\n")
_DOMAIN = "@example.org"
_SIZE_LIMIT = 32 * 1024


class _Mailboxes:
    """Stands in for coi.delivery.local.LocalDelivery: users at example.org, kept in memory."""

    def __init__(self) -> None:
        self.delivered: list[bytes] = []

    def local_user(self, address: str) -> User | None:
        address.encode("utf-8")  # as the store's SQLite lookup does
        if not address.lower().endswith(_DOMAIN):
            return None
        return User(zlib.crc32(address.lower().encode()), address.lower(), "")

    async def read_recipient(self, address: str) -> tuple[User, tuple[int, int]] | None:
        user = self.local_user(address)
        return None if user is None else (user, (0, 0))  # no quotas here

    async def deliver(
        self, user: User, message: bytes, sender: str, *, quota_checked: bool = False
    ) -> None:
        self.delivered.append(message)


class _Handler(LmtpHandler):
    """The server's LMTP handler; exceptions are recorded instead of answered."""

    def __init__(self) -> None:
        self.mailboxes = _Mailboxes()
        super().__init__(self.mailboxes, max_recipients=5)  # type: ignore[arg-type]
        self.errors: list[BaseException] = []

    async def handle_exception(self, error: Exception) -> str:
        self.errors.append(error)
        return "451 4.3.0 fuzz: exception recorded"


class _MemoryTransport(asyncio.Transport):
    """Collects what the server writes; closing tells the protocol the connection is gone."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _LOOP.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 40000), "sockname": ("192.0.2.2", 24)}.get(name, default)

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


async def _session(data: bytes, piece: int) -> tuple[_Handler, bytes]:
    handler = _Handler()
    server = CoiLMTP(
        handler,
        hostname="mx.example.org",
        data_size_limit=_SIZE_LIMIT,
        enable_SMTPUTF8=True,
        ident="coi LMTP",
        loop=_LOOP,
    )
    transport = _MemoryTransport(server)
    server.connection_made(transport)
    task = server._handler_coroutine
    reader = server._reader
    for part in chunks(data, piece):
        if transport.closed:
            break
        server.data_received(part)
        await asyncio.sleep(0)
    # Let the server consume everything: done when it waits for more input that never comes
    idle = 0
    deadline = time.monotonic() + 10
    while not task.done() and idle < 3:
        await asyncio.sleep(0)
        idle = idle + 1 if reader._waiter is not None else 0
        if time.monotonic() > deadline:
            raise TooSlow("the LMTP session did not finish consuming its input")
    transport.close()
    await asyncio.sleep(0)
    try:
        await task
    except asyncio.CancelledError:
        pass
    return handler, bytes(transport.out)


def _check_session(data: bytes, piece: int) -> None:
    handler, out = _LOOP.run_until_complete(_session(data, piece))
    if handler.errors:
        raise handler.errors[0]
    pos = 0
    for m in _REPLY.finditer(out):
        assert m.start() == pos, ("reply not DDD SP text CRLF", out[pos : pos + 200])
        pos = m.end()
    assert pos == len(out), ("reply not DDD SP text CRLF", out[pos : pos + 200])
    assert out.startswith(b"220 "), out[:100]
    for message in handler.mailboxes.delivered:
        assert crlf_lines(message) == message, "bare LF in a delivered message"
        header = message.index(b"\r\n") + 2  # Return-Path added by the handler
        assert len(message) - header <= _SIZE_LIMIT


def _reference_data(stream: bytes) -> tuple[bytes, int] | None:
    """The message and the octets it used, line by line (RFC 5321 §4.5.2), or None if the
    end line never comes."""
    lines: list[bytes] = []
    pos = 0
    while True:
        end = stream.find(b"\r\n", pos)
        if end < 0:
            return None
        line = stream[pos:end]
        pos = end + 2
        if line == b".":
            return b"".join(x + b"\r\n" for x in lines), pos
        lines.append(line[1:] if line.startswith(b".") else line)


async def _read(stream: bytes, piece: int, collector: DataCollector) -> bytes:
    reader = asyncio.StreamReader(limit=1001, loop=_LOOP)  # aiosmtpd's reader limit

    async def feed() -> None:
        for part in chunks(stream, piece):
            reader.feed_data(part)
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = _LOOP.create_task(feed())
    try:
        await read_data(reader, collector)
    finally:
        await feeder
    return await reader.read()


def _check_data(stream: bytes, crc: int) -> None:
    size_limit = (0, 200, 4096, _SIZE_LIMIT)[crc & 3]
    line_limit = (0, 1001, 80, 7)[(crc >> 2) & 3]
    piece = 1 + (crc >> 4) % 3000
    collector = DataCollector(size_limit, line_limit)
    want = _reference_data(stream)
    try:
        rest = _LOOP.run_until_complete(_read(stream, piece, collector))
    except asyncio.IncompleteReadError:
        assert want is None, "end line missed"
        return
    assert want is not None, "end line found where there is none"
    message, used = want
    assert rest == stream[used:], "read past the end line"
    got = collector.result()
    stuffed_lines = stream[: used - 3].split(b"\r\n") if used > 3 else []
    if size_limit and len(message) > size_limit:
        assert got == "552 5.3.4 Error: Too much mail data", got
    elif line_limit and any(len(x) + 2 > line_limit for x in stuffed_lines):
        assert isinstance(got, str) and got.startswith("500 "), got
    else:
        assert got == message, (got[:200], message[:200])


def _check_helpers(data: bytes, crc: int) -> None:
    fixed = crlf_lines(data)
    assert fixed.count(b"\n") == fixed.count(b"\r\n"), "bare LF left"
    assert fixed.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n"), "content changed"
    limit = 1 + crc % 1100
    naive = any(len(x) + 2 > limit for x in data.split(b"\r\n"))
    assert has_long_line(data, limit) == naive, limit
    # MAIL FROM:/RCPT TO: arguments as aiosmtpd decodes them
    arg = data.split(b"\r\n", 1)[0].strip().decode("utf-8", "surrogateescape")
    simple = _SIMPLE_PATH.fullmatch(arg)
    if simple is not None:
        try:
            address, rest = get_angle_addr(arg)
        except HeaderParseError as exc:
            raise AssertionError(f"fast path took what email refuses: {arg!r}") from exc
        assert (simple.group(1), simple.group(2)) == (address.addr_spec, rest), arg


@bounded
def check(data: bytes) -> None:
    """One of: an LMTP session, a DATA section, the helpers (by the input's checksum)."""
    crc = zlib.crc32(data)
    part = crc % 3
    if part == 0:
        _check_session(data, 1 + (crc >> 2) % 2000)
    elif part == 1:
        _check_data(data, crc >> 2)
    else:
        _check_helpers(data, crc >> 2)
