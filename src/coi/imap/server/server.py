"""The IMAP service: listeners, connection limits, shared mailbox states, shutdown.

Invariants: per-IP limits and the limit on connections not logged in (all addresses
together) are checked before a session starts, per-user limits at login;
one `MailboxState` exists per mailbox that some session has selected; once nobody has it
selected it stays, kept current by events, among a bounded set of unused states (the next
SELECT of it reads nothing again), and goes when evicted or when its mailbox is deleted;
a mailbox id seen with another UIDVALIDITY gets a fresh state; shutdown stops accepting,
lets running commands finish, then ends every connection with BYE.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial

from coi import metrics
from coi.auth.passwords import VerifiedCache
from coi.auth.throttle import LoginThrottle
from coi.config import ServerConfig, parse_listen
from coi.imap.server import (
    auth,
    coi,
    compress,
    context,
    fetch,
    idle,
    mailbox,
    message,
    metadata,
    notify,
    quota,
    search,
    sort,
    thread,
)
from coi.imap.server.connection import Connection
from coi.imap.server.selected import MailboxState
from coi.imap.server.session import Route
from coi.imap.server.stream import Stream
from coi.listener import Listener, open_listeners
from coi.store.events import Event, MailboxDeleted, UserGone
from coi.store.model import Mailbox
from coi.store.protocol import Store
from coi.webpush.keys import WebPushKeys

# Unused mailbox states kept for the next SELECT: at most this many, holding at most this
# many messages in all (about 5 bytes each)
UNUSED_STATES = 64
UNUSED_STATE_MESSAGES = 1_000_000
# a connection stops reading its socket once twice this much input waits unread: small,
# so a peer streaming data at a connection that is not reading (not logged in,
# lingering) holds little memory (issue 16)
_STREAM_LIMIT = 16 * 1024


class ImapServer:
    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        tls_context: ssl.SSLContext | None,
        webpush_keys: WebPushKeys | None = None,
    ) -> None:
        self.config = config
        self.webpush_keys = webpush_keys  # None: no WEBPUSH capability
        self.webpush_failures: dict[int, list[float]] = {}
        self.store = store
        self.tls_context = tls_context
        self.log = logging.getLogger("coi.imap")
        self.routes: dict[type, Route] = {
            **auth.ROUTES,
            **compress.ROUTES,
            **mailbox.ROUTES,
            **message.ROUTES,
            **fetch.ROUTES,
            **search.ROUTES,
            **idle.ROUTES,
            **metadata.ROUTES,
            **sort.ROUTES,
            **context.ROUTES,
            **thread.ROUTES,
            **notify.ROUTES,
            **quota.ROUTES,
        }
        self.enableable: frozenset[str] = frozenset(
            {"METADATA", "METADATA-SERVER", "CONDSTORE", "QRESYNC"}  # RFC 5464, RFC 7162
            | {"IMAP4REV2"}  # RFC 9051 Appendix A, §6.3.1
        )
        self.throttle = LoginThrottle()
        self.verified = VerifiedCache()
        self.connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._states: dict[int, MailboxState] = {}
        self._unused: OrderedDict[int, MailboxState] = OrderedDict()  # least recent first
        # (mailbox id, UIDVALIDITY): ids of deleted mailboxes are reused
        self._recent_floors: dict[tuple[int, int], int] = {}
        self._per_ip: Counter[str] = Counter()
        self._per_user: Counter[int] = Counter()
        self.unauthenticated = 0  # connections not logged in yet
        # the same connections, oldest first: the one evicted when a new one needs a place
        self._awaiting: dict[Connection, None] = {}
        self._listeners: list[Listener] = []
        self._sweeper: asyncio.TimerHandle | None = None
        shortest = min(config.login_timeout, config.idle_timeout)
        self._sweep_every = min(1.0, max(0.01, shortest / 10))  # timeouts end this late at most
        self.addresses: list[tuple[str, str, int]] = []  # (kind, host, port) actually bound
        self._unwatch = [
            metadata.watch(self),
            coi.SeenMover(store, config).close,
            store.events.watch_all(self._on_gone),
        ]

    # -- shared state --------------------------------------------------------------

    def mailbox_state(self, mailbox: Mailbox) -> MailboxState:
        state = self._states.get(mailbox.id)
        if state is not None and state.uidvalidity != mailbox.uidvalidity:
            self._drop_state(state)  # the id now names another mailbox
            state = None
        if state is None:
            # RFC 3501 §2.3.2: \Recent goes to one session only; the floor a dropped
            # state raised may not be committed yet, so the caller's copy can be stale
            kept = self._recent_floors.get((mailbox.id, mailbox.uidvalidity), 0)
            floor = max(mailbox.recent_floor, kept)
            state = MailboxState(self.store, replace(mailbox, recent_floor=floor))
            self._states[mailbox.id] = state
        self._unused.pop(mailbox.id, None)
        return state

    def recent_floor(self, mailbox: Mailbox) -> int:
        """The highest UID some session has been given as \\Recent (RFC 3501 §2.3.2): the
        live state's floor is raised as messages arrive, before the store records it, so
        STATUS must not read the stored one alone."""
        state = self._states.get(mailbox.id)
        if state is not None and state.uidvalidity == mailbox.uidvalidity:
            return max(mailbox.recent_floor, state.recent_floor)
        kept = self._recent_floors.get((mailbox.id, mailbox.uidvalidity), 0)
        return max(mailbox.recent_floor, kept)

    def release_mailbox_state(self, state: MailboxState) -> None:
        """A state nobody has selected stays (kept current by events) for the next SELECT,
        up to a bound on unused states and on the messages they hold."""
        if state.views or self._states.get(state.mailbox_id) is not state:
            return
        self._unused[state.mailbox_id] = state
        held = sum(len(s.uids) for s in self._unused.values())
        while self._unused and (len(self._unused) > UNUSED_STATES or held > UNUSED_STATE_MESSAGES):
            _, oldest = self._unused.popitem(last=False)
            held -= len(oldest.uids)
            self._drop_state(oldest)

    def _drop_state(self, state: MailboxState) -> None:
        self._unused.pop(state.mailbox_id, None)
        if self._states.get(state.mailbox_id) is state:
            del self._states[state.mailbox_id]
        self._recent_floors[state.mailbox_id, state.uidvalidity] = state.recent_floor
        state.close()

    def _on_gone(self, event: Event) -> None:
        if isinstance(event, MailboxDeleted):
            state = self._unused.get(event.mailbox_id)
            if state is not None:
                self._drop_state(state)
        elif isinstance(event, UserGone):  # deleted or moved (in any process): sessions end
            why = b"Account moved; log in again" if event.moved else b"Account deleted"
            for connection in tuple(self.connections):
                if connection.session.user_id == event.user_id:
                    self.log.info("closing connection peer=%s: %s", connection.peer, why.decode())
                    connection.shutdown(why)

    def login_user(self, user_id: int) -> bool:
        if self._per_user[user_id] >= self.config.max_connections_per_user:
            return False
        self._per_user[user_id] += 1
        return True

    def logged_in(self, connection: Connection) -> None:
        """The connection no longer counts towards `max_unauthenticated_connections`."""
        if connection.awaiting_login:
            connection.awaiting_login = False
            self.unauthenticated -= 1
            self._awaiting.pop(connection, None)

    def _evict_oldest_waiting(self) -> None:
        """Ends the oldest connection still waiting to log in, to make room for a new one.

        As Dovecot's login processes do when their connection queue is full: peers that
        hold places without logging in (slow bytes, big literals, LOGINs that wait out the
        failed-login delay) are pushed out by newer connections instead of locking everyone
        else out; a newcomer is pushed out only after every older one."""
        oldest = next(iter(self._awaiting))
        self.logged_in(oldest)  # no longer counts, at once
        oldest.evict()

    def logout_user(self, user_id: int) -> None:
        self._per_user[user_id] -= 1
        if self._per_user[user_id] <= 0:
            del self._per_user[user_id]

    # -- listeners -------------------------------------------------------------------

    async def start(self, sockets: Mapping[str, Sequence[socket.socket]] | None = None) -> None:
        """Listens as configured, or on `sockets` (kind -> bound sockets) that a
        supervisor bound once for all its workers (coi.cli.workers)."""
        for kind, spec in (("imap", self.config.imap), ("imaps", self.config.imaps)):
            where = parse_listen(spec, f"--{kind}")
            if where is None:
                continue
            implicit = kind == "imaps"
            if implicit and self.tls_context is None:
                raise RuntimeError("--imaps needs a TLS certificate")
            context = self.tls_context if implicit else None
            shared = None if sockets is None else sockets.get(kind, ())
            listeners = await open_listeners(
                self._protocol_factory(implicit), where, shared, context
            )
            for listener in listeners:
                self._listeners.append(listener)
                for sock in listener.sockets:
                    host, port = sock.getsockname()[:2]
                    self.addresses.append((kind, str(host), int(port)))
        if self._sweeper is None:
            self._sweep()

    def _protocol_factory(self, implicit_tls: bool) -> Callable[[], Stream]:
        made = partial(self._connected, implicit_tls=implicit_tls)
        return lambda: Stream(made, _STREAM_LIMIT)

    def _connected(self, stream: Stream, *, implicit_tls: bool) -> None:
        """A new connection (after the handshake, on --imaps): refused at once over the
        per-IP limit, else counted and served by a task of its own."""
        connection = Connection(self, stream, implicit_tls=implicit_tls)
        ip = connection.peer
        if self._per_ip[ip] >= self.config.max_connections_per_ip:
            stream.write(b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
            stream.close()
            return
        if self.unauthenticated >= self.config.max_unauthenticated_connections:
            # many peers that never log in must not take the whole server (issue 16)
            self._evict_oldest_waiting()
        self._per_ip[ip] += 1
        self.unauthenticated += 1
        connection.awaiting_login = True
        self._awaiting[connection] = None
        self.connections.add(connection)
        metrics.connection("imap", 1)
        self._tasks.add(asyncio.get_running_loop().create_task(connection.run()))

    def disconnected(self, connection: Connection) -> None:
        """Called by the connection's task as it ends."""
        self.connections.discard(connection)
        metrics.connection("imap", -1)
        self.logged_in(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        ip = connection.peer
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]

    def _sweep(self) -> None:
        """Ends the waits for input past their deadline (the login and idle timeouts):
        one timer for all connections, not a timer set and cancelled at every read."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in self.connections:
            if connection.deadline <= now:
                connection.expire()
        self._sweeper = loop.call_at(now + self._sweep_every, self._sweep)

    async def stop(self, grace: float = 30.0) -> None:
        """Stops accepting, lets running commands finish, then says BYE to everyone."""
        for listener in self._listeners:
            listener.close()
        for connection in list(self.connections):
            connection.shutdown()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        for listener in self._listeners:
            await listener.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for state in list(self._states.values()):
            state.close()
        self._states.clear()
        self._unused.clear()
        for unwatch in self._unwatch:
            unwatch()
