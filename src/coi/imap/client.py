"""Asyncio IMAP client on the sans-IO wire package (used by the client library and server tests).

How it works:
- One reader task feeds a ``ResponseReader`` and dispatches each response. A tagged
  response completes the command with that tag; a continuation goes to the one command
  that is sending a synchronizing literal (or starting IDLE); untagged data is attributed
  as described below.
- Commands may be issued concurrently from several tasks. They are admitted in FIFO order.
  "Exclusive" commands (SELECT, EXAMINE, LOGIN, STARTTLS, ENABLE, IDLE, EXPUNGE, MOVE,
  CLOSE, UNSELECT, LOGOUT, NOTIFY and any command we have no rule for) run alone. Other
  commands are pipelined, except that two commands expecting the same kind of untagged
  data (e.g. two FETCHes, two LISTs) are never in flight together, so that data can be
  attributed without guessing (RFC 3501 §5.5).
- Attribution of untagged data: a response of a kind an in-flight command "claims"
  (FETCH/STORE/SELECT claim FETCH and VANISHED (EARLIER); LIST/LSUB claim LIST;
  STATUS claims STATUS; SEARCH claims SEARCH; GETMETADATA claims METADATA values;
  SELECT/EXAMINE also claim EXISTS, RECENT, FLAGS and OK codes; ESEARCH goes by its TAG)
  goes to that command only. Anything else goes to every command in flight when it arrived.
- Updates: EXISTS, RECENT, EXPUNGE, FETCH, VANISHED, METADATA, FLAGS and BYE that no
  in-flight command claims (unsolicited, or during NOOP/IDLE/EXPUNGE/MOVE/...) are also
  queued for ``take_updates()``, so a sync engine sees other devices' changes.
  Sequence numbers in queued updates refer to the mailbox selected when they arrived.
- Strings sent: ``str`` arguments become atom, quoted string or literal as needed; ``bytes``
  arguments are sent verbatim (sequence sets, parenthesised item lists); ``String`` and
  ``Literal`` wrap octets that must be a string / a literal. Literals are non-synchronizing
  when the server offers LITERAL+ (RFC 7888), else we wait for the continuation.
- Errors: every failure is an ``ImapError`` whose str() is one human line.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import copy
import datetime
import logging
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from typing import Literal as TypingLiteral

from coi.imap.wire import encode, mutf7
from coi.imap.wire.errors import ResponseParseError
from coi.imap.wire.responses import (
    AppendUid,
    Capability,
    Condition,
    Continuation,
    CopyUid,
    Enabled,
    ESearchData,
    Exists,
    Expunge,
    FetchData,
    Flags,
    Id,
    ListEntry,
    MetadataChanged,
    MetadataData,
    NamespaceData,
    Recent,
    Response,
    ResponseCode,
    ResponseReader,
    SearchData,
    SortData,
    StatusData,
    Tagged,
    Unknown,
    Vanished,
)

__all__ = [
    "AppendUid",
    "AuthenticationFailed",
    "CommandFailed",
    "CommandResult",
    "ConnectFailed",
    "ConnectionLost",
    "CopyUid",
    "FetchList",
    "ImapClient",
    "ImapError",
    "ImapTimeout",
    "Literal",
    "MailboxInfo",
    "QresyncArgs",
    "ServerBye",
    "String",
    "TlsFailed",
]

log = logging.getLogger(__name__)
_R = TypeVar("_R")

Security = TypingLiteral["ssl", "starttls", "plain"]


# -- errors -------------------------------------------------------------------------


class ImapError(Exception):
    """Base of every client error; ``str(exc)`` is one line meant for people."""


class ConnectFailed(ImapError):
    """The TCP connection could not be made (refused, unreachable, unknown host)."""


class TlsFailed(ImapError):
    """TLS could not be set up: certificate not accepted, handshake failed, no STARTTLS."""


class ImapTimeout(ImapError):
    """The server did not answer in time; the connection is closed afterwards."""


class ConnectionLost(ImapError):
    """The connection ended (EOF, reset, unreadable data) while commands were waiting."""


class ServerBye(ImapError):
    """The server said BYE and closed the connection (RFC 3501 §7.1.5)."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class CommandFailed(ImapError):
    """A command completed with NO or BAD (RFC 3501 §7.1.2, §7.1.3)."""

    def __init__(self, command: str, tagged: Tagged) -> None:
        code = f"[{tagged.code.name}] " if tagged.code else ""
        super().__init__(f"{command} failed: {tagged.status} {code}{tagged.text}".rstrip())
        self.command = command
        self.status = tagged.status
        self.code = tagged.code
        self.text = tagged.text


class AuthenticationFailed(CommandFailed):
    """LOGIN was refused (wrong user or password, or plaintext login not allowed)."""


# -- arguments and results ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """Octets always sent as a literal; ``binary`` uses ``~{N}`` (RFC 3516 §4.3)."""

    data: bytes
    binary: bool = False


@dataclass(frozen=True, slots=True)
class String:
    """Octets sent as a quoted string when safe, else as a literal (never as an atom)."""

    data: bytes


Arg = bytes | str | Literal | String | None | Sequence["Arg"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's tagged completion and the untagged data attributed to it."""

    untagged: list[Response]
    tagged: Tagged

    @property
    def code(self) -> ResponseCode | None:
        return self.tagged.code

    def of(self, kind: type[_R]) -> list[_R]:
        """The untagged responses of one type, e.g. ``result.of(ListEntry)``."""
        return [r for r in self.untagged if isinstance(r, kind)]


@dataclass(frozen=True, slots=True)
class QresyncArgs:
    """SELECT ... (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])) (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: str | None = None
    seq_match: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """What SELECT/EXAMINE reported (RFC 3501 §6.3.1, RFC 7162 §3.1.2, §3.2.5)."""

    name: str
    exists: int
    recent: int
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None  # None also for NOMODSEQ
    flags: tuple[str, ...]
    permanentflags: tuple[str, ...]
    readonly: bool
    unseen: int | None = None
    vanished: tuple[int, ...] = ()  # VANISHED (EARLIER) of a QRESYNC select
    fetches: tuple[FetchData, ...] = ()  # changed messages of a QRESYNC select


class FetchList(list[FetchData]):
    """FETCH/STORE results, one per message (an unsolicited FETCH for the same message
    that came during the command is merged in), plus every UID reported VANISHED during a
    UID FETCH (EARLIER ones from ``VANISHED`` (RFC 7162 §3.2.6), and live expunges, which
    are also queued as updates) and the ``[MODIFIED]`` UIDs of a conditional STORE (§3.1.3)."""

    def __init__(
        self,
        items: Iterable[FetchData] = (),
        vanished: tuple[int, ...] = (),
        modified: tuple[int, ...] = (),
    ) -> None:
        super().__init__(items)
        self.vanished = vanished
        self.modified = modified


# -- internals ---------------------------------------------------------------------

_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+\Z')
_QUOTABLE = re.compile(rb"[^\r\n\x00\x80-\xff]*\Z")
_MAX_QUOTED = 1000

# command -> claimed untagged kinds, for commands that may be pipelined
_PIPELINED: dict[str, frozenset[str]] = {
    "NOOP": frozenset(),
    "CHECK": frozenset(),
    "CAPABILITY": frozenset({"CAPABILITY"}),
    "LIST": frozenset({"LIST"}),
    "LSUB": frozenset({"LIST"}),
    "STATUS": frozenset({"STATUS"}),
    "FETCH": frozenset({"FETCH"}),
    "UID FETCH": frozenset({"FETCH"}),
    "STORE": frozenset({"FETCH"}),
    "UID STORE": frozenset({"FETCH"}),
    "SEARCH": frozenset({"SEARCH"}),
    "UID SEARCH": frozenset({"SEARCH"}),
    "SORT": frozenset({"SORT"}),
    "UID SORT": frozenset({"SORT"}),
    "GETMETADATA": frozenset({"METADATA"}),
    "SETMETADATA": frozenset(),
    "CREATE": frozenset(),
    "DELETE": frozenset(),
    "RENAME": frozenset(),
    "SUBSCRIBE": frozenset(),
    "UNSUBSCRIBE": frozenset(),
    "APPEND": frozenset(),
    "COPY": frozenset(),
    "UID COPY": frozenset(),
    "ID": frozenset({"ID"}),
    "NAMESPACE": frozenset({"NAMESPACE"}),
}
# exclusive commands that still claim data (so it is not queued as an update)
_EXCLUSIVE_CLAIMS: dict[str, frozenset[str]] = {
    "SELECT": frozenset({"FETCH", "EXISTS", "RECENT", "FLAGS", "CONDITION"}),
    "EXAMINE": frozenset({"FETCH", "EXISTS", "RECENT", "FLAGS", "CONDITION"}),
    "ENABLE": frozenset({"ENABLED"}),
    "LOGIN": frozenset({"CAPABILITY"}),
    "AUTHENTICATE": frozenset({"CAPABILITY"}),
}
_UPDATES = (Exists, Recent, Expunge, FetchData, Vanished, MetadataData, MetadataChanged, Flags)


def _claim_key(resp: Response) -> str | None:
    match resp:
        case FetchData():
            return "FETCH"
        case Vanished(earlier=True):
            return "FETCH"
        case Exists():
            return "EXISTS"
        case Recent():
            return "RECENT"
        case Flags():
            return "FLAGS"
        case ListEntry():
            return "LIST"
        case StatusData():
            return "STATUS"
        case SearchData() | ESearchData():
            return "SEARCH"
        case SortData():
            return "SORT"
        case MetadataData():
            return "METADATA"
        case Capability():
            return "CAPABILITY"
        case Enabled():
            return "ENABLED"
        case Id():
            return "ID"
        case NamespaceData():
            return "NAMESPACE"
        case Condition(status=status) if status != "BYE":
            return "CONDITION"
    return None


@dataclass(eq=False)
class _Command:
    tag: str
    name: str
    claims: frozenset[str]
    exclusive: bool
    done: asyncio.Future[Tagged]
    untagged: list[Response] = field(default_factory=list)
    pause_reader: bool = False  # STARTTLS: stop reading after the tagged OK


def _retrieve(fut: asyncio.Future[Tagged]) -> None:
    """Mark a result as seen so a command whose caller went away logs no warning."""
    if not fut.cancelled():
        fut.exception()


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class ImapClient:
    """One IMAP connection; create it with ``await ImapClient.connect(...)``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.host = host
        self.port = port
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: frozenset[str] = frozenset()
        self.authenticated = False
        self.selected: str | None = None
        self._responses = ResponseReader()
        self._tags = 0
        self._inflight: dict[str, _Command] = {}
        self._queue: collections.deque[_Command] = collections.deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._write_lock = asyncio.Lock()
        self._continuation: asyncio.Future[str] | None = None
        self._updates: list[Response] = []
        self._idle_event: asyncio.Event | None = None
        self._greeting: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._error: ImapError | None = None
        self._bye: Condition | None = None
        self._logging_out = False
        self._paused = False
        self._reader_task: asyncio.Task[None] | None = None
        self.bytes_read = 0  # bytes received on this connection (IMAP data, TLS not counted)
        self.bytes_written = 0  # bytes sent on this connection (IMAP data, TLS not counted)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connecting ----------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: Security,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> ImapClient:
        """Connect, read the greeting, do STARTTLS if asked, and learn the capabilities."""
        where = f"{host}:{port}"
        if security != "plain" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl_context if security == "ssl" else None,
                    server_hostname=host if security == "ssl" else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise ImapTimeout(f"connecting to {where} timed out after {timeout:g} s") from None
        except ssl.SSLError as exc:
            raise _tls_error(where, exc) from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {where}: {_message_of(exc)}") from None
        client = cls(reader, writer, host, port, timeout)
        try:
            await client._start(security, ssl_context)
        except BaseException:
            await client.close()
            raise
        return client

    async def _start(self, security: Security, ssl_context: ssl.SSLContext | None) -> None:
        self._reader_task = asyncio.create_task(self._read_loop())
        try:
            async with asyncio.timeout(self.timeout):
                greeting = await asyncio.shield(self._greeting)
        except TimeoutError:
            raise ImapTimeout(f"{self.where} sent no greeting within {self.timeout:g} s") from None
        if not isinstance(greeting, Condition) or greeting.status not in ("OK", "PREAUTH", "BYE"):
            raise ConnectionLost(f"{self.where} does not speak IMAP (greeting {greeting!r:.80})")
        if greeting.status == "BYE":  # RFC 3501 §7.1.5
            raise ServerBye(f"{self.where} refused the connection: {greeting.text}", greeting.text)
        self.authenticated = greeting.status == "PREAUTH"  # RFC 3501 §7.1.4
        self._caps_from(greeting.code)
        if security == "starttls":
            assert ssl_context is not None
            if self.authenticated:  # RFC 3501 §6.2.1: STARTTLS only before authentication
                raise TlsFailed(f"{self.where} greeted with PREAUTH: STARTTLS is impossible")
            await self._starttls(ssl_context)
        if not self.capabilities:
            await self.capability()

    async def _starttls(self, context: ssl.SSLContext) -> None:
        """RFC 3501 §6.2.1, RFC 2595 §3.1: discard what we knew, re-learn after the handshake."""
        if not self.capabilities:
            await self.capability()
        if "STARTTLS" not in self.capabilities:
            raise TlsFailed(f"{self.where} does not offer STARTTLS")
        cmd = self._new("STARTTLS")
        cmd.pause_reader = True
        tagged = await self._execute(cmd, self._encode(cmd, ()))
        if tagged.status != "OK":
            raise TlsFailed(f"{self.where} refused STARTTLS: {tagged.text}")
        if self._reader_task is not None:
            await self._reader_task
        if self._responses.pending:  # RFC 2595 §3.1: nothing may follow the OK in clear
            raise TlsFailed(f"{self.where} sent data after its STARTTLS OK; not trusting it")
        try:
            await self._writer.start_tls(
                context, server_hostname=self.host, ssl_handshake_timeout=self.timeout
            )
        except ssl.SSLError as exc:
            raise _tls_error(self.where, exc) from None
        except (OSError, TimeoutError) as exc:
            raise TlsFailed(f"TLS handshake with {self.where} failed: {_message_of(exc)}") from None
        self.capabilities = frozenset()
        self._responses = ResponseReader()
        self._paused = False
        self._reader_task = asyncio.create_task(self._read_loop())
        await self.capability()

    def _caps_from(self, code: ResponseCode | None) -> bool:
        if code is not None and code.name == "CAPABILITY" and isinstance(code.value, tuple):
            self.capabilities = frozenset(str(c).upper() for c in code.value)
            return True
        return False

    def has(self, cap: str) -> bool:
        return cap.upper() in self.capabilities

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._error is None:
            with contextlib.suppress(ImapError):
                await self.logout()
        await self.close()

    # -- reading -------------------------------------------------------------------

    async def _read_loop(self) -> None:
        error: ImapError | None = None
        try:
            while not self._paused:
                data = await self._reader.read(256 * 1024)
                if not data:
                    break
                self.bytes_read += len(data)
                self._responses.feed(data)
                while not self._paused:
                    try:
                        resp = self._responses.next_response()
                    except ResponseParseError as exc:
                        if exc.fatal:
                            error = ConnectionLost(
                                f"{self.where} sent a response we cannot read: {exc.message}"
                            )
                            break
                        log.debug("unparseable response from %s: %s", self.where, exc.message)
                        resp = Unknown(exc.raw)
                    if resp is None:
                        break
                    self._dispatch(resp)
                if error is not None:
                    break
        except (OSError, EOFError) as exc:
            error = ConnectionLost(f"connection to {self.where} lost: {_message_of(exc)}")
        if self._paused:
            return
        if error is None:
            if self._bye is not None and not self._logging_out:
                text = self._bye.text
                error = ServerBye(f"{self.where} closed the connection: {text}", text)
            else:
                error = ConnectionLost(f"{self.where} closed the connection")
        self._fail(error)

    def _dispatch(self, resp: Response) -> None:
        if not self._greeting.done():
            self._greeting.set_result(resp)
            return
        if isinstance(resp, Tagged):
            cmd = self._inflight.pop(resp.tag, None)
            if cmd is None:
                log.debug("tagged response for unknown tag %r from %s", resp.tag, self.where)
                return
            if cmd.pause_reader and resp.status == "OK":
                self._paused = True
            if not cmd.done.done():
                cmd.done.set_result(resp)
            self._wake()
            return
        if isinstance(resp, Continuation):
            if self._continuation is not None and not self._continuation.done():
                self._continuation.set_result(resp.text)
            else:
                log.debug("unexpected continuation from %s", self.where)
            return
        owner: _Command | None = None
        if isinstance(resp, ESearchData) and resp.tag is not None:
            owner = self._inflight.get(resp.tag)  # RFC 4731 §3.1: the TAG names the command
        if owner is None:
            key = _claim_key(resp)
            if key is not None:
                owner = next((c for c in self._inflight.values() if key in c.claims), None)
        if owner is not None:
            owner.untagged.append(resp)
        else:
            for cmd in self._inflight.values():
                cmd.untagged.append(resp)
            if isinstance(resp, _UPDATES) or (isinstance(resp, Condition) and resp.status == "BYE"):
                self._updates.append(resp)
        if isinstance(resp, Condition) and resp.status == "BYE":
            self._bye = resp
        if isinstance(resp, Capability) and owner is not None and owner.name == "CAPABILITY":
            self.capabilities = frozenset(resp.caps)
        if self._idle_event is not None:
            self._idle_event.set()

    def _fail(self, error: ImapError) -> None:
        """The connection is over: every waiting command (and later ones) gets ``error``."""
        if self._error is None:
            self._error = error
        error = self._error
        for cmd in self._inflight.values():
            if not cmd.done.done():
                cmd.done.set_exception(error)
        self._inflight.clear()
        if self._continuation is not None and not self._continuation.done():
            self._continuation.set_exception(error)
            self._continuation.exception()
        if not self._greeting.done():
            self._greeting.set_exception(error)
            self._greeting.exception()
        if self._idle_event is not None:
            self._idle_event.set()
        self._wake()
        with contextlib.suppress(Exception):
            self._writer.close()

    def _check_open(self) -> None:
        if self._error is not None:
            raise copy.copy(self._error) from None  # a fresh instance: no traceback pile-up

    def take_updates(self) -> list[Response]:
        """Unsolicited changes (EXISTS, EXPUNGE, FETCH, VANISHED, ...) received so far."""
        updates, self._updates = self._updates, []
        return updates

    # -- sending -------------------------------------------------------------------

    def _new(
        self, name: str, exclusive: bool | None = None, claims: Iterable[str] | None = None
    ) -> _Command:
        upper = name.upper()
        if exclusive is None:
            exclusive = upper not in _PIPELINED
        if claims is None:
            claims = _PIPELINED.get(upper) or _EXCLUSIVE_CLAIMS.get(upper, frozenset())
        self._tags += 1
        done: asyncio.Future[Tagged] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        return _Command(f"C{self._tags}", upper, frozenset(claims), exclusive, done)

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    def _can_start(self, cmd: _Command) -> bool:
        if cmd.exclusive:
            return not self._inflight
        for other in self._inflight.values():
            if other.exclusive or other.claims & cmd.claims:
                return False
        return True

    async def _admit(self, cmd: _Command) -> None:
        """Wait for our turn (FIFO) and for no conflicting command to be in flight."""
        self._queue.append(cmd)
        try:
            while True:
                self._check_open()
                if self._queue[0] is cmd and self._can_start(cmd):
                    break
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        except BaseException:
            self._queue.remove(cmd)
            self._wake()
            raise
        self._queue.popleft()
        self._inflight[cmd.tag] = cmd
        self._wake()

    def _encode(self, cmd: _Command, args: Iterable[Arg]) -> list[tuple[bytes, bool]]:
        """Wire form in chunks; ``True`` means: wait for a continuation after this chunk."""
        chunks: list[tuple[bytes, bool]] = []
        out = bytearray(f"{cmd.tag} {cmd.name}".encode())
        for arg in args:
            out += b" "
            self._encode_arg(arg, out, chunks)
        out += b"\r\n"
        chunks.append((bytes(out), False))
        return chunks

    def _encode_arg(self, arg: Arg, out: bytearray, chunks: list[tuple[bytes, bool]]) -> None:
        if arg is None:
            out += b"NIL"
        elif isinstance(arg, bytes):
            out += arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
            if _ATOM.match(data) and data.upper() != b"NIL":
                out += data
            else:
                self._encode_arg(String(data), out, chunks)
        elif isinstance(arg, String):
            if len(arg.data) <= _MAX_QUOTED and _QUOTABLE.match(arg.data):
                out += encode.quoted(arg.data)
            else:
                self._encode_arg(Literal(arg.data), out, chunks)
        elif isinstance(arg, Literal):
            size = len(arg.data)
            # RFC 7888 §3 LITERAL+, §4 LITERAL- (up to 4096 octets)
            plus = self.has("LITERAL+") or (self.has("LITERAL-") and size <= 4096)
            out += b"~" if arg.binary else b""
            out += b"{%d%s}\r\n" % (size, b"+" if plus else b"")
            if not plus:
                chunks.append((bytes(out), True))
                out.clear()
            out += arg.data
        else:
            out += b"("
            for i, item in enumerate(arg):
                if i:
                    out += b" "
                self._encode_arg(item, out, chunks)
            out += b")"

    async def _transmit(self, cmd: _Command, chunks: list[tuple[bytes, bool]]) -> bool:
        """Write the command; False if the server answered before a continuation."""
        async with self._write_lock:
            try:
                for data, wait in chunks:
                    self._writer.write(data)
                    self.bytes_written += len(data)
                    if not wait:
                        continue
                    cont: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                    self._continuation = cont
                    try:
                        await self._writer.drain()
                        either: set[asyncio.Future[Any]] = {cont, cmd.done}
                        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        self._continuation = None
                    if not cont.done() or cont.exception() is not None:
                        return False  # RFC 3501 §7.5: refused instead of "+"
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._fail(ConnectionLost(f"connection to {self.where} lost: {_message_of(exc)}"))
                return False
        return True

    async def _execute(
        self, cmd: _Command, chunks: list[tuple[bytes, bool]], timeout: float | None = None
    ) -> Tagged:
        await self._admit(cmd)
        # From here the command is on its way: a cancelled caller must not stop the
        # transmission half-way (the server would read the rest as a new command).
        send = asyncio.create_task(self._transmit(cmd, chunks))
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(send)
                return await asyncio.shield(cmd.done)
        except TimeoutError:
            error = ImapTimeout(f"{cmd.name} got no answer from {self.where} within {limit:g} s")
            self._fail(error)
            raise error from None

    async def command(
        self,
        name: str,
        *args: Arg,
        check: bool = True,
        timeout: float | None = None,
        exclusive: bool | None = None,
    ) -> CommandResult:
        """Send any command and wait for its completion.

        ``check``: raise CommandFailed on NO/BAD (else return the result as is).
        ``exclusive``: run alone (default: by the command name, see the module notes).
        """
        self._check_open()
        cmd = self._new(name, exclusive)
        tagged = await self._execute(cmd, self._encode(cmd, args), timeout)
        self._caps_from(tagged.code)
        if check and tagged.status != "OK":
            raise CommandFailed(cmd.name, tagged)
        return CommandResult(cmd.untagged, tagged)

    # -- any state / not authenticated ---------------------------------------------

    async def capability(self) -> frozenset[str]:
        """RFC 3501 §6.1.1."""
        result = await self.command("CAPABILITY")
        caps = result.of(Capability)
        if caps:
            self.capabilities = frozenset(caps[-1].caps)
        return self.capabilities

    async def noop(self) -> list[Response]:
        """RFC 3501 §6.1.2; returns what arrived during it (also queued as updates)."""
        return (await self.command("NOOP")).untagged

    async def id(self, fields: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
        """RFC 2971."""
        arg: list[Arg] | None = None
        if fields is not None:
            arg = []
            for key, value in sorted(fields.items()):
                arg += [String(key.encode()), None if value is None else String(value.encode())]
        result = await self.command("ID", arg)
        ids = result.of(Id)
        return dict(ids[-1].fields or {}) if ids else {}

    async def login(self, user: str, password: str) -> None:
        """RFC 3501 §6.2.3; capabilities are refreshed afterwards."""
        result = await self.command("LOGIN", user, password, check=False)
        if result.tagged.status != "OK":
            raise AuthenticationFailed("LOGIN", result.tagged)
        self.authenticated = True
        untagged = result.of(Capability)
        if untagged:
            self.capabilities = frozenset(untagged[-1].caps)
        elif not self._caps_from(result.tagged.code):
            await self.capability()

    async def logout(self) -> None:
        """RFC 3501 §6.1.3: BYE then OK, then the connection is closed."""
        self._logging_out = True
        try:
            await self.command("LOGOUT", check=False)
        except ConnectionLost:
            pass  # the server may close before our read of its OK
        finally:
            await self.close()

    async def close(self) -> None:
        """Abort the connection (no LOGOUT); waiting commands get ConnectionLost."""
        self._fail(ConnectionLost(f"connection to {self.where} closed by the client"))
        transport = self._writer.transport
        if not transport.is_closing():
            # Python 3.11.2's TLS transport raises AttributeError when aborted after its
            # connection was lost (fixed in later 3.11 releases)
            with contextlib.suppress(AttributeError):
                transport.abort()
        task = self._reader_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- authenticated -------------------------------------------------------------

    async def enable(self, *caps: str) -> frozenset[str]:
        """RFC 5161: returns what the server enabled (also kept in ``self.enabled``)."""
        result = await self.command("ENABLE", *(c.encode() for c in caps))
        newly = frozenset(c for r in result.of(Enabled) for c in r.caps)
        self.enabled |= newly
        return newly

    async def list(self, ref: str = "", pattern: str = "*") -> list[ListEntry]:
        """RFC 3501 §6.3.8; names are decoded from mUTF-7."""
        result = await self.command(
            "LIST", String(mutf7.encode(ref).encode()), String(mutf7.encode(pattern).encode())
        )
        return result.of(ListEntry)

    async def create(self, name: str) -> None:
        await self.command("CREATE", encode.mailbox(name))

    async def delete(self, name: str) -> None:
        await self.command("DELETE", encode.mailbox(name))

    async def rename(self, old: str, new: str) -> None:
        await self.command("RENAME", encode.mailbox(old), encode.mailbox(new))

    async def subscribe(self, name: str) -> None:
        await self.command("SUBSCRIBE", encode.mailbox(name))

    async def unsubscribe(self, name: str) -> None:
        await self.command("UNSUBSCRIBE", encode.mailbox(name))

    async def status(self, name: str, items: Iterable[str]) -> dict[str, int]:
        """RFC 3501 §6.3.10, e.g. ``status("INBOX", ["MESSAGES", "UIDNEXT"])``."""
        wanted = " ".join(i.upper() for i in items).encode()
        result = await self.command("STATUS", encode.mailbox(name), b"(" + wanted + b")")
        out: dict[str, int] = {}
        for data in result.of(StatusData):
            out.update(data.items)
        return out

    async def select(
        self,
        name: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: QresyncArgs | None = None,
    ) -> MailboxInfo:
        """SELECT or EXAMINE (RFC 3501 §6.3.1/§6.3.2), with CONDSTORE or QRESYNC (RFC 7162)."""
        args: list[Arg] = [encode.mailbox(name)]
        if qresync is not None:
            params = b"%d %d" % (qresync.uidvalidity, qresync.modseq)
            if qresync.known_uids:
                params += b" " + qresync.known_uids.encode()
                if qresync.seq_match:
                    params += b" (%s %s)" % tuple(s.encode() for s in qresync.seq_match)
            args.append(b"(QRESYNC (" + params + b"))")
        elif condstore:
            args.append(b"(CONDSTORE)")
        self.selected = None  # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected
        result = await self.command("EXAMINE" if readonly else "SELECT", *args)
        self.selected = name
        exists = recent = 0
        flags: tuple[str, ...] = ()
        values: dict[str, object] = {}
        vanished: list[int] = []
        fetches: list[FetchData] = []
        for resp in result.untagged:
            match resp:
                case Exists(n):
                    exists = n
                case Recent(n):
                    recent = n
                case Flags(f):
                    flags = f
                case Condition(status="OK", code=ResponseCode(name=code_name, value=value)):
                    values[code_name] = value
                case Vanished(earlier=True, uids=uids):
                    vanished.extend(uids)
                case FetchData():
                    fetches.append(resp)
        code = result.tagged.code
        perm = values.get("PERMANENTFLAGS", ())

        def number(key: str) -> int | None:
            value = values.get(key)
            return value if isinstance(value, int) else None

        return MailboxInfo(
            name=name,
            exists=exists,
            recent=recent,
            uidvalidity=number("UIDVALIDITY"),
            uidnext=number("UIDNEXT"),
            highestmodseq=number("HIGHESTMODSEQ"),
            flags=flags,
            permanentflags=tuple(str(f) for f in perm) if isinstance(perm, tuple) else (),
            readonly=code is not None and code.name == "READ-ONLY",
            unseen=number("UNSEEN"),
            vanished=tuple(vanished),
            fetches=tuple(fetches),
        )

    async def namespace(self) -> NamespaceData | None:
        """RFC 2342."""
        found = (await self.command("NAMESPACE")).of(NamespaceData)
        return found[-1] if found else None

    async def getmetadata(
        self, mailbox: str, entries: Iterable[str], depth: str = "0", maxsize: int | None = None
    ) -> dict[str, bytes | None]:
        """RFC 5464 §4.2; ``mailbox=""`` for server entries.

        Entries without a value come back as ``None`` or are left out, as the server says.
        """
        args: list[Arg] = []
        options: list[Arg] = []
        if maxsize is not None:
            options += [b"MAXSIZE", str(maxsize).encode()]
        if depth != "0":
            options += [b"DEPTH", depth.encode()]
        if options:
            args.append(options)
        args += [self._metadata_mailbox(mailbox), [String(e.encode()) for e in entries]]
        result = await self.command("GETMETADATA", *args)
        out: dict[str, bytes | None] = {}
        for data in result.of(MetadataData):
            out.update(data.entries)
        return out

    async def setmetadata(self, mailbox: str, entries: Mapping[str, bytes | None]) -> None:
        """RFC 5464 §4.3; ``None`` removes an entry. Entries are sent sorted."""
        items: list[Arg] = []
        for name in sorted(entries):
            value = entries[name]
            items.append(String(name.encode()))
            items.append(None if value is None else String(value))
        await self.command("SETMETADATA", self._metadata_mailbox(mailbox), items)

    @staticmethod
    def _metadata_mailbox(mailbox: str) -> Arg:
        return String(b"") if mailbox == "" else encode.mailbox(mailbox)

    async def append(
        self,
        mailbox: str,
        message: bytes,
        flags: Iterable[str] = (),
        date: datetime.datetime | None = None,
    ) -> AppendUid | None:
        """RFC 3501 §6.3.11; the APPENDUID (RFC 4315) when the server reports one."""
        args: list[Arg] = [encode.mailbox(mailbox)]
        flag_list = list(flags)
        if flag_list:
            args.append(encode.flag_list(flag_list))
        if date is not None:
            args.append(encode.internal_date(date))
        args.append(Literal(message))
        result = await self.command("APPEND", *args)
        code = result.tagged.code
        return code.value if code is not None and isinstance(code.value, AppendUid) else None

    async def notify(self, spec: str) -> None:
        """RFC 5465: ``spec`` is the raw rest of the command, e.g. ``"NONE"`` or ``"SET ..."``."""
        await self.command("NOTIFY", spec.encode())

    # -- selected ------------------------------------------------------------------

    async def unselect(self) -> None:
        """RFC 3691."""
        await self.command("UNSELECT")
        self.selected = None

    async def close_mailbox(self) -> None:
        """IMAP CLOSE (RFC 3501 §6.4.2): expunge silently and deselect."""
        await self.command("CLOSE")
        self.selected = None

    async def expunge(self) -> builtins.list[Response]:
        """RFC 3501 §6.4.3; returns the EXPUNGE/VANISHED responses (also queued as updates)."""
        result = await self.command("EXPUNGE")
        return [r for r in result.untagged if isinstance(r, Expunge | Vanished)]

    async def uid_expunge(self, uids: str) -> builtins.list[Response]:
        """RFC 4315 §2.1."""
        result = await self.command("UID EXPUNGE", uids.encode())
        return [r for r in result.untagged if isinstance(r, Expunge | Vanished)]

    async def uid_fetch(
        self,
        uids: str,
        items: str,
        *,
        changedsince: int | None = None,
        vanished: bool = False,
    ) -> FetchList:
        """UID FETCH (RFC 3501 §6.4.8) with CHANGEDSINCE/VANISHED (RFC 7162 §3.1.4.1, §3.2.6)."""
        spec = items.strip()
        if not spec.startswith("("):
            spec = f"({spec})"
        args: list[Arg] = [uids.encode(), spec.encode()]
        if changedsince is not None:
            modifiers = b"CHANGEDSINCE %d" % changedsince
            if vanished:
                modifiers += b" VANISHED"
            args.append(b"(" + modifiers + b")")
        result = await self.command("UID FETCH", *args)
        gone = sorted({u for v in result.of(Vanished) for u in v.uids})
        return FetchList(_merge_fetches(result.of(FetchData)), vanished=tuple(gone))

    async def uid_search(self, criteria: str) -> builtins.list[int]:
        """UID SEARCH (RFC 3501 §6.4.4); ``criteria`` is sent as is."""
        result = await self.command("UID SEARCH", criteria.encode())
        out: list[int] = []
        for resp in result.untagged:
            if isinstance(resp, SearchData):
                out.extend(resp.numbers)
            elif isinstance(resp, ESearchData):
                out.extend(resp.all_numbers())
        return out

    async def uid_store(
        self,
        uids: str,
        mode: TypingLiteral["+FLAGS", "-FLAGS", "FLAGS"],
        flags: Iterable[str],
        *,
        silent: bool = True,
        unchangedsince: int | None = None,
    ) -> FetchList:
        """UID STORE (RFC 3501 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3).

        The result's ``modified`` holds the ``[MODIFIED]`` UIDs that were not changed.
        """
        args: list[Arg] = [uids.encode()]
        if unchangedsince is not None:
            args.append(b"(UNCHANGEDSINCE %d)" % unchangedsince)
        args.append((mode + (".SILENT" if silent else "")).encode())
        args.append(encode.flag_list(flags))
        result = await self.command("UID STORE", *args)
        code = result.tagged.code
        modified: tuple[int, ...] = ()
        if code is not None and code.name == "MODIFIED" and isinstance(code.value, tuple):
            modified = tuple(int(u) for u in code.value)
        return FetchList(_merge_fetches(result.of(FetchData)), modified=modified)

    async def uid_copy(self, uids: str, mailbox: str) -> CopyUid | None:
        """UID COPY (RFC 3501 §6.4.7); the COPYUID (RFC 4315) when reported."""
        result = await self.command("UID COPY", uids.encode(), encode.mailbox(mailbox))
        return _copyuid(result)

    async def uid_move(self, uids: str, mailbox: str) -> CopyUid | None:
        """UID MOVE (RFC 6851); without MOVE: COPY, STORE \\Deleted, UID EXPUNGE (RFC 4315)."""
        if self.has("MOVE"):
            result = await self.command("UID MOVE", uids.encode(), encode.mailbox(mailbox))
            return _copyuid(result)
        if not self.has("UIDPLUS"):
            raise ImapError(f"{self.where} offers neither MOVE nor UIDPLUS: cannot move safely")
        copied = await self.uid_copy(uids, mailbox)
        await self.uid_store(uids, "+FLAGS", ["\\Deleted"])
        await self.uid_expunge(uids)
        return copied

    async def idle(self, timeout: float) -> builtins.list[Response]:
        """IDLE (RFC 2177) until untagged data arrives or ``timeout`` seconds pass.

        Returns the untagged responses that came (also queued as updates). Cancelling
        the caller ends the IDLE cleanly (DONE is sent, the connection stays usable).
        """
        self._check_open()
        cmd = self._new("IDLE", exclusive=True)
        await self._admit(cmd)
        event = asyncio.Event()
        self._idle_event = event
        started = False
        send = asyncio.create_task(self._transmit(cmd, [(f"{cmd.tag} IDLE\r\n".encode(), True)]))
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
        # that meets a completing future, and the IDLE would then run on unstopped
        try:
            async with asyncio.timeout(self.timeout):
                started = await asyncio.shield(send)
            if started and not cmd.untagged:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await event.wait()
        except TimeoutError:
            error = ImapTimeout(f"IDLE got no answer from {self.where} within {self.timeout:g} s")
            self._fail(error)
            raise error from None
        finally:
            self._idle_event = None
            if not send.done():
                # Cancelled before the server's "+": DONE must follow the IDLE line and its
                # continuation (RFC 2177), never overtake it, or the server idles for ever.
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(self.timeout):
                        await asyncio.shield(send)
            sent = send.done() and not send.cancelled() and send.exception() is None
            if sent and send.result() and not cmd.done.done() and self._error is None:
                with contextlib.suppress(OSError, RuntimeError):
                    self._writer.write(b"DONE\r\n")
                    self.bytes_written += 6
        tagged = await self._wait_done(cmd)
        if tagged.status != "OK":
            raise CommandFailed("IDLE", tagged)
        return list(cmd.untagged)

    async def _wait_done(self, cmd: _Command) -> Tagged:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(cmd.done)
        except TimeoutError:
            error = ImapTimeout(
                f"{cmd.name} got no answer from {self.where} within {self.timeout:g} s"
            )
            self._fail(error)
            raise error from None


def _merge_fetches(fetches: Iterable[FetchData]) -> list[FetchData]:
    """One FetchData per message: a server may send a pending unsolicited FETCH (a flag
    change) for a message just before its reply to our FETCH (RFC 3501 §7.4.2)."""
    merged: dict[int, FetchData] = {}
    for fetch in fetches:
        seen = merged.get(fetch.seq)
        if seen is None:
            merged[fetch.seq] = fetch
        else:
            merged[fetch.seq] = FetchData(
                fetch.seq, {**seen.items, **fetch.items}, {**seen.origins, **fetch.origins}
            )
    return list(merged.values())


def _copyuid(result: CommandResult) -> CopyUid | None:
    """COPYUID from the tagged OK (COPY) or an untagged OK before the expunges (RFC 6851 §4.3)."""
    codes = [result.tagged.code] + [r.code for r in result.untagged if isinstance(r, Condition)]
    for code in codes:
        if code is not None and isinstance(code.value, CopyUid):
            return code.value
    return None


def _tls_error(where: str, exc: ssl.SSLError) -> TlsFailed:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "not trusted"
        return TlsFailed(f"TLS certificate of {where} not accepted: {reason}")
    return TlsFailed(f"TLS handshake with {where} failed: {exc.reason or _message_of(exc)}")
