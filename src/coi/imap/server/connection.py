"""One client connection: bytes in through the framer, commands to the session, bytes out.

Invariants: one command runs at a time; the framer is replaced after STARTTLS so no
plaintext sent before the handshake is ever executed (RFC 3501 §6.2.1); a framing or
parse error answers BAD (or NO [TOOBIG]) and the connection carries on, except for an
oversized non-synchronizing literal, which ends it (RFC 7888 §4).

Before login the framer takes only small literals (`prelogin_literal_max`) and small
commands (`prelogin_command_max`): a synchronizing literal over the limit is answered
with a tagged NO [TOOBIG] instead of "+" (RFC 3501 §7.5); a non-synchronizing one, or a
command that grows past the limit (many small LITERAL+ parts), gets `* BYE [TOOBIG]` and
the connection closes without reading the announced octets (RFC 7888 §4, second choice).
So an unauthenticated peer never makes the server buffer or parse more than that.

After COMPRESS DEFLATE (RFC 4978) output is deflated (raw deflate, a sync flush at the end
of each batch written, so the client can decode every response as it arrives) and input
inflated, inside TLS when TLS is on (§3: compress, then encrypt). Input is inflated at
most `_INFLATE_CHUNK` octets at a time, so a small compressed burst cannot make the
server hold more than the framer's limits allow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import ssl
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

from coi.imap.server.errors import IdleTimeout, LoginTimeout, PreloginInputExceeded
from coi.imap.server.session import Session, State, Transport
from coi.imap.server.stream import Stream
from coi.imap.wire.commands import Command, parse_command
from coi.imap.wire.errors import BadCharset, ParseError
from coi.imap.wire.framing import (
    CommandFramer,
    CommandReady,
    ContinuationNeeded,
    FramingError,
)

if TYPE_CHECKING:
    from coi.imap.server.server import ImapServer

log = logging.getLogger("coi.imap")
trace = logging.getLogger("coi.imap.trace")
_SHUTTING_DOWN = b"Server shutting down"  # `* BYE` at a server's stop
_READ = 64 * 1024
_MAX_UNREAD_OUTPUT = 16 * 1024 * 1024
_FLUSH_AT = 64 * 1024
_LINGER_SECONDS = 1.0
_LINGER_OCTETS = 4 * 1024 * 1024
_PRELOGIN_RECEIVE = 16 * 1024
_PRELOGIN_COMMANDS = 4  # pre-login input is bounded to this many of the largest commands
_INFLATE_CHUNK = 256 * 1024
_DEFLATE_LEVEL = 6  # zlib's default: RFC 4978 §4 leaves the trade-off to the sender
_NEVER = float("inf")
_SECRET = re.compile(rb"^(\S+ (?:LOGIN|AUTHENTICATE)\s).*$", re.IGNORECASE | re.DOTALL)


class Connection(Transport):
    __slots__ = (
        "_bye",
        "_deflate",
        "_inflate",
        "_inflate_tail",
        "_login_deadline",
        "_out",
        "_prelogin_budget",
        "awaiting_login",
        "busy",
        "closing",
        "deadline",
        "framer",
        "loopback",
        "peer",
        "secure",
        "server",
        "session",
        "stream",
    )

    def __init__(
        self,
        server: ImapServer,
        stream: Stream,
        *,
        implicit_tls: bool,
    ) -> None:
        self.server = server
        self.stream = stream
        self.secure = implicit_tls
        peer = stream.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        try:
            self.loopback = ipaddress.ip_address(self.peer).is_loopback
        except ValueError:
            self.loopback = False
        self._out = bytearray()
        self._deflate: zlib._Compress | None = None  # COMPRESS=DEFLATE (RFC 4978) on
        self._inflate: zlib._Decompress | None = None
        self._inflate_tail = b""  # compressed input not inflated yet (bounded chunks)
        self.session = Session(server, self)
        self.framer = self._new_framer()
        # counted in the server's limit on connections not logged in (until login or close)
        self.awaiting_login = False
        self.busy = False
        self.closing = False
        self._bye = _SHUTTING_DOWN  # what `* BYE` says when `closing` ends it
        # login_timeout is a deadline from connect, not a silence: trickled bytes or NOOPs
        # must not hold an unauthenticated connection open for ever
        self._login_deadline = asyncio.get_running_loop().time() + server.config.login_timeout
        # while it waits for input: when the server's sweep ends it (`expire`); else inf
        self.deadline = _NEVER
        # octets a peer may send before it logs in: a few commands' worth (issue 16)
        self._prelogin_budget = _PRELOGIN_COMMANDS * server.config.prelogin_command_max

    def _new_framer(self) -> CommandFramer:
        framer = CommandFramer()
        self._set_limits(framer)
        return framer

    def _set_limits(self, framer: CommandFramer) -> None:
        """Small literals and commands before login (RFC 7888 §4), the full ones after."""
        config = self.server.config
        prelogin = self.session.state is State.NOT_AUTHENTICATED
        self._set_receive_size(prelogin)
        if prelogin:
            command = config.prelogin_command_max
            framer.max_command = command
            framer.max_line = min(config.max_line, command)
            framer.max_literal = min(config.max_literal, config.prelogin_literal_max, command)
        else:
            framer.max_command = CommandFramer().max_command
            framer.max_line = config.max_line
            framer.max_literal = config.max_literal

    def _set_receive_size(self, prelogin: bool) -> None:
        """Before login the socket is read in small pieces: asyncio's transport otherwise
        takes up to 256 KiB a read whether we want it or not, so a peer streaming data at
        many connections costs that much memory and copying each (issue 16). asyncio
        reads `max_size` per receive (an attribute of its socket transports, not a
        documented setting: other transports keep their own)."""
        transport: object = self.stream.transport
        if not isinstance(getattr(transport, "max_size", None), int):
            return
        if prelogin:
            transport.max_size = _PRELOGIN_RECEIVE  # type: ignore[attr-defined]
        else:
            vars(transport).pop("max_size", None)

    # -- Transport -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queues output; it goes out in large writes (one send, not one per line)."""
        if self.server.config.protocol_trace:
            trace.debug("S: %s %r", self.peer, data[:200])
        self._out += data
        if len(self._out) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        transport = self.stream.transport
        if transport is None or transport.is_closing():
            self._out.clear()
            return
        if self._deflate is not None:  # RFC 4978 §4: a sync flush ends each batch
            transport.write(
                self._deflate.compress(self._out) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            )
        else:
            transport.write(bytes(self._out))
        self._out.clear()
        # A client that stops reading in IDLE (where nothing drains) must not make us
        # buffer without end; commands drain as they write.
        if self.session.idling and transport.get_write_buffer_size() > _MAX_UNREAD_OUTPUT:
            log.warning("closing connection peer=%s: client is not reading", self.peer)
            transport.abort()

    async def drain(self) -> None:
        self.flush()
        await self.stream.drain()

    async def read_line(self) -> bytes | None:
        while True:
            line = self.framer.take_line()
            if line is not None:
                if self.server.config.protocol_trace:
                    trace.debug("C: %s <line redacted: %d bytes>", self.peer, len(line))
                return line
            if not await self._fill():
                return None

    async def start_tls(self) -> None:
        context = self.server.tls_context
        assert context is not None
        await self.drain()
        try:
            await self.stream.start_tls(context)
        except OSError as exc:  # ssl.SSLError is one: the peer's mistake, not the server's
            log.info("closing connection peer=%s: TLS handshake failed (%s)", self.peer, exc)
            raise ConnectionError("TLS handshake failed") from None
        self.secure = True
        self.framer = self._new_framer()  # discard anything sent in plaintext meanwhile

    def compression(self) -> str | None:
        if self._deflate is not None:
            return "COMPRESS"
        ssl_object = self.stream.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject) and ssl_object.compression() is not None:
            return "TLS"
        return None

    def start_compression(self) -> None:
        self.flush()  # the tagged OK, uncompressed (RFC 4978 §3)
        self._deflate = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        # a client sends nothing more before it sees the OK (§3): whatever came anyway
        # was not compressed and cannot be part of the compressed stream
        self.framer = self._new_framer()

    # -- main loop -------------------------------------------------------------------

    async def _fill(self) -> bool:
        self.flush()  # everything said so far reaches the client before we wait for it
        if self._inflate_tail:  # compressed input already read: no waiting for more
            return self._inflated(b"")
        if self.session.state is State.NOT_AUTHENTICATED:
            self.deadline = self._login_deadline
        else:
            self.deadline = asyncio.get_running_loop().time() + self.server.config.idle_timeout
        try:
            data = await self.stream.read(_READ)
        finally:
            self.deadline = _NEVER
        if not data:
            return False
        if self.awaiting_login:
            self._prelogin_budget -= len(data)
            if self._prelogin_budget < 0:
                raise PreloginInputExceeded
        if self._inflate is not None:
            return self._inflated(data)
        self.framer.feed(data)
        return True

    def _inflated(self, data: bytes) -> bool:
        """Feeds the framer with the next inflated chunk; False when the compressed
        stream is broken or ended (the connection then closes)."""
        inflate = self._inflate
        assert inflate is not None
        try:
            out = inflate.decompress(self._inflate_tail + data, _INFLATE_CHUNK)
        except zlib.error as exc:
            log.info("closing connection peer=%s: bad compressed input (%s)", self.peer, exc)
            return False
        self._inflate_tail = inflate.unconsumed_tail
        if inflate.eof:  # the client ended its deflate stream: nothing can follow
            return False
        self.framer.feed(out)
        return True

    async def run(self) -> None:
        session = self.session
        try:
            self._greet()
            while session.state is not State.LOGOUT and not self.closing:
                event = self.framer.next_event()
                if event is None:
                    await self.drain()
                    if not await self._fill():
                        break
                    continue
                if isinstance(event, ContinuationNeeded):
                    self.write(b"+ Ready for literal data\r\n")
                    continue
                if isinstance(event, FramingError):
                    self._framing_error(event)
                    if event.fatal:
                        await self._linger()
                        break
                    continue
                command = self._parse(event)
                if command is None:
                    continue
                self.busy = True
                try:
                    await session.execute(command)
                finally:
                    self.busy = False
                if self.awaiting_login and session.state is not State.NOT_AUTHENTICATED:
                    self.server.logged_in(self)
                    self._set_limits(self.framer)
            if self.closing and session.state is not State.LOGOUT and not self.stream.is_closing():
                self.write(b"* BYE %s\r\n" % self._bye)
        except IdleTimeout:
            self.write(b"* BYE Autologout; idle for too long\r\n")
        except PreloginInputExceeded:
            log.info("closing connection peer=%s: too much input before login", self.peer)
            self.write(b"* BYE [LIMIT] Too much input before login\r\n")
            await self._linger()
        except LoginTimeout:
            seconds = f"{self.server.config.login_timeout:g}"
            self.write(f"* BYE Not logged in within {seconds} seconds\r\n".encode())
            # a client may be sending as its deadline passes (bytes trickled, a command):
            # closing with its input unread would reset the connection over the BYE
            await self._linger()
        except OSError:  # reset, timed out, TLS failed (ssl.SSLError is one): just gone
            pass
        except Exception:  # a bug: this connection ends, the others carry on
            log.exception("closing connection peer=%s: internal error", self.peer)
        finally:
            try:
                session.close()
                await self._close_transport()
            finally:  # counted out even when the server's stop cancels the close
                self.server.disconnected(self)

    def _greet(self) -> None:
        caps = " ".join(self.session.capabilities())
        self.write(f"* OK [CAPABILITY {caps}] coi IMAP server ready\r\n".encode())

    def _parse(self, event: CommandReady) -> Command | None:
        if self.server.config.protocol_trace:
            first = _SECRET.sub(rb"\1<redacted>", event.lines[0])
            trace.debug("C: %s %r", self.peer, first[:200])
        try:
            return parse_command(event, utf8_names=self.session.rev2)  # RFC 9051 §5.1
        except BadCharset as exc:
            if exc.save:
                self.session.saved_result = []  # RFC 5182 §2.1: NO with SAVE empties "$"
            self.write(f"{exc.tag} NO [BADCHARSET (US-ASCII UTF-8)] {exc.message}\r\n".encode())
        except ParseError as exc:
            tag = exc.tag or "*"
            text = exc.message.replace("\r", " ").replace("\n", " ")
            self.write(f"{tag} BAD {text}\r\n".encode("utf-8", "replace"))
        return None

    def _framing_error(self, event: FramingError) -> None:
        tag = event.tag or "*"
        if event.too_big and self.session.state is State.NOT_AUTHENTICATED:
            event = replace(event, message=event.message + " before login")
        if event.too_big:
            if event.fatal:
                self.write(f"* BYE [TOOBIG] {event.message}\r\n".encode())
            else:
                self.write(f"{tag} NO [TOOBIG] {event.message}\r\n".encode())
        else:
            self.write(f"{tag} BAD {event.message}\r\n".encode())

    async def _linger(self) -> None:
        """Lets the BYE reach a client still sending a refused literal: reads and drops
        its input for a moment before closing, as a close with unread input resets the
        connection and may destroy the BYE in flight; bounded in time and octets."""
        self.flush()
        deadline = asyncio.get_running_loop().time() + _LINGER_SECONDS
        dropped = 0
        # before login no real client sends more than a command after a refusal
        most = self.server.config.prelogin_command_max if self.awaiting_login else _LINGER_OCTETS
        try:
            async with asyncio.timeout_at(deadline):
                await self.stream.drain()
                while dropped < most:
                    data = await self.stream.read(_READ)
                    if not data:
                        return
                    dropped += len(data)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass

    async def _close_transport(self) -> None:
        self.flush()
        try:
            await asyncio.wait_for(self.stream.drain(), 5)
        except (TimeoutError, ConnectionError, ssl.SSLError, RuntimeError):
            pass
        self.stream.close()
        try:
            await asyncio.wait_for(self.stream.wait_closed(), 5)
        except (TimeoutError, ConnectionError, ssl.SSLError, RuntimeError):
            pass

    def expire(self) -> None:
        """Ends the wait for input of a connection past its `deadline` (the server sweeps
        them, instead of a timer per read): the login deadline before login, the idle
        timeout after (RFC 3501 §5.4)."""
        if self.session.state is State.NOT_AUTHENTICATED:
            self.stream.interrupt(LoginTimeout())
        else:
            self.stream.interrupt(IdleTimeout())

    def evict(self) -> None:
        """Ends a connection that has not logged in, to make room for a newer one."""
        log.info("closing connection peer=%s: too many connections waiting to log in", self.peer)
        self.closing = True
        self.write(b"* BYE [UNAVAILABLE] Too many connections waiting to log in\r\n")
        self.flush()
        self.stream.close()

    def shutdown(self, why: bytes = _SHUTTING_DOWN) -> None:
        """Asks the connection to end, with `* BYE why`: now if it waits for input, else
        after its command."""
        self.closing = True
        self._bye = why
        if not self.busy or self.session.idling:
            self.write(b"* BYE %s\r\n" % why)
            self.flush()
            self.stream.close()
