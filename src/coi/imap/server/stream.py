"""A connection's bytes both ways, for one reader: the part of asyncio's StreamReader and
StreamWriter that an IMAP connection uses, in one small object.

Why not asyncio's streams: a server holds thousands of connections that wait in IDLE, and
each pair of asyncio streams costs about 2 KiB of its own (a reader, a writer, their
protocol with a `deque` of drain waiters, a callback closure and two more coroutine
frames per waiting read); this object has slots and allocates nothing while it waits but
the read's future. Input waits in one `bytes` (none at all while idle); reading stops
when more than `2 * limit` octets wait unread, as StreamReader's flow control does, so a
peer that sends while the connection is busy holds little memory (issue 16).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable


class Stream(asyncio.Protocol):
    __slots__ = (
        "_closed",
        "_drains",
        "_eof",
        "_error",
        "_limit",
        "_lost",
        "_on_made",
        "_over_ssl",
        "_paused",
        "_pending",
        "_waiter",
        "transport",
    )

    def __init__(self, on_made: Callable[[Stream], None], limit: int) -> None:
        self._on_made = on_made
        self._limit = limit
        self.transport: asyncio.Transport | None = None
        self._pending = b""  # input not read yet
        self._eof = False
        self._error: BaseException | None = None
        self._lost = False
        self._paused = False  # reading paused: too much input waits
        self._over_ssl = False
        self._waiter: asyncio.Future[None] | None = None  # the read waiting for input
        self._drains: list[asyncio.Future[None]] | None = None  # writers waiting for room
        self._closed: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data
        self._wake()
        if not self._paused and len(self._pending) > 2 * self._limit:
            assert self.transport is not None
            self.transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # keep a plain connection open to answer what came before the EOF; TLS closes
        # (asyncio warns that a half-closed TLS connection cannot be kept)
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
        else:
            self._error = exc
        self._wake()
        for waiter in self._drains or ():
            if not waiter.done():
                waiter.set_result(None)
        self._drains = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._drains = self._drains or []

    def resume_writing(self) -> None:
        for waiter in self._drains or ():
            if not waiter.done():
                waiter.set_result(None)
        self._drains = None

    # -- reading -------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, n: int) -> bytes:
        """Up to `n` octets; b"" at the end of input. Raises what ended the connection,
        or what `interrupt` was given while it waited."""
        if not self._pending and not self._eof and self._error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        data = self._pending
        if len(data) > n:
            data, self._pending = data[:n], data[n:]
        else:
            self._pending = b""
        if self._paused and len(self._pending) <= self._limit:
            self._paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return data

    def interrupt(self, exc: BaseException) -> bool:
        """Makes a waiting `read` raise `exc` (a timeout); False when no read waits."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return False
        waiter.set_exception(exc)
        return True

    # -- writing -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    async def drain(self) -> None:
        """Waits while the transport's output is over its high-water mark."""
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if self.transport is not None and self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run, as StreamWriter.drain does
            if self._lost:
                raise ConnectionResetError("Connection lost")
        if self._drains is None:  # not paused
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drains.append(waiter)
        await waiter

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """TLS from here on (STARTTLS). Input that came before the handshake was sent in
        plaintext after the command and is dropped, never read as if protected."""
        assert self.transport is not None
        self._pending = b""
        self._paused = False
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self.transport, self, context, server_side=True)
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._over_ssl = True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await self._closed

    def get_extra_info(self, name: str) -> object:
        assert self.transport is not None
        return self.transport.get_extra_info(name)
