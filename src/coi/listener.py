"""The listening sockets of IMAP, LMTP and submission (`open_listeners`), and those shared
with other worker processes (`coi serve --workers N`, `SharedListener`).

asyncio's own server accepts every connection waiting on its socket each time it wakes.
With one socket shared by the workers, the first worker to wake took a whole burst: the
ten connections of a benchmark that connected at once often all went to one worker while
the other idled (one ran 77 s of CPU against the other's 31 in one run), so throughput
changed by half from run to run. Here a worker accepts one connection per wake-up, and
leaves it for DEFER_SECONDS to the others while it holds more connections than one of them
(`WorkerLoads`): eight connections made one after the other went 1 and 7, 2 and 6, 3 and 5
to two workers before (4 and 4 after), since the same worker kept waking first. The
kernel's accept queue is the supervisor's (listen() is not called again here).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import socket
import ssl
from collections.abc import Callable, Sequence

log = logging.getLogger("coi.serve")
# Connections the kernel completes and queues for accept(): a burst of clients connecting
# at once (after a restart, a network outage) overflows asyncio's default of 100, and
# each connection over it waits for the kernel to retry its handshake (1 s, 3 s, 7 s...):
# 300 at once here left 32 waiting more than 20 s. Linux caps it at net.core.somaxconn.
BACKLOG = 1024
_RETRY_SECONDS = 1.0  # after running out of file descriptors, as asyncio's server waits
# How long a worker holding more connections than another leaves a waiting connection to
# the others before it takes it itself (the others may be busy, or hung until the
# supervisor's heartbeat check restarts them). It accepts nothing meanwhile, so this is
# short: with 10 ms, two workers taking turns at a stream of connections were both
# waiting at once, and 2,000 clients connecting 32 at a time got 345 connections a second
# instead of 900; with 1 ms, 940.
DEFER_SECONDS = 0.001


class WorkerLoads:
    """Each worker's open connections (IMAP, LMTP, submission), in memory its supervisor
    maps before it forks them, so each sees the others'. A worker writes only its own
    count, from its event loop's thread; the others only read it."""

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, 8 * workers)  # shared and anonymous: kept across fork
        self.counts = memoryview(self._memory).cast("q")

    def of(self, index: int) -> WorkerLoad:
        """Worker `index`'s view, counting from nought (one started again lost its
        predecessor's connections)."""
        self.counts[index] = 0
        return WorkerLoad(self.counts, index)

    def become(self, index: int) -> None:
        """In worker `index` after the fork: its listeners count and share by it."""
        global _load
        _load = self.of(index)


class WorkerLoad:
    """One worker's count among its supervisor's `WorkerLoads`."""

    __slots__ = ("_counts", "_index")

    def __init__(self, counts: memoryview, index: int) -> None:
        self._counts = counts
        self._index = index

    def opened(self) -> None:
        self._counts[self._index] += 1

    def closed(self) -> None:
        self._counts[self._index] -= 1

    def more_than_another(self) -> bool:
        """Whether this worker holds more connections than some other worker."""
        mine = self._counts[self._index]
        return any(count < mine for count in self._counts)


_load: WorkerLoad | None = None  # this process's, when it is a worker (`become`)


class _CountedSocket(socket.socket):
    """An accepted connection that counts itself out of its worker's load when closed
    (by whichever transport or protocol closes it, TLS or not)."""

    __slots__ = ("_counted", "_load")

    def __init__(self, accepted: socket.socket, load: WorkerLoad) -> None:
        super().__init__(accepted.family, accepted.type, accepted.proto, accepted.detach())
        self._load = load
        self._counted = True
        load.opened()

    def close(self) -> None:
        if self._counted:
            self._counted = False
            self._load.closed()
        super().close()


class SharedListener:
    """What the servers need of an `asyncio.Server`: `sockets`, `close`, `wait_closed`."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        context: ssl.SSLContext | None,
        load: WorkerLoad | None = None,
    ) -> None:
        """`load`: this worker's count among its supervisor's workers (`WorkerLoads`)."""
        self.sockets = (sock,)
        self._sock = sock
        self._factory = factory
        self._context = context
        self._loop = asyncio.get_running_loop()
        self._handshakes: set[asyncio.Task[object]] = set()
        self._closed = False
        self._load = load
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        if self._load is not None and self._load.more_than_another():
            # a less loaded worker was woken too: it has DEFER_SECONDS to take it
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(DEFER_SECONDS, self._after_deferring)
            return
        self._accept_one()

    def _after_deferring(self) -> None:
        if not self._closed and self._accept_one():
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _accept_one(self) -> bool:
        """Accepts a waiting connection, if any; False when accepting pauses."""
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True  # another worker took it, or the peer gave up
        except OSError as exc:  # out of file descriptors or buffers: pause, as asyncio does
            log.error("accepting a connection failed (%s); retrying in 1 s", exc)
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(_RETRY_SECONDS, self._resume)
            return False
        if self._load is not None:
            conn = _CountedSocket(conn, self._load)
        conn.setblocking(False)
        made = self._loop.connect_accepted_socket(self._factory, conn, ssl=self._context)
        task: asyncio.Task[object] = self._loop.create_task(made)
        self._handshakes.add(task)
        task.add_done_callback(lambda done: self._made(done, conn))
        return True

    def _made(self, task: asyncio.Task[object], conn: socket.socket) -> None:
        self._handshakes.discard(task)
        if task.cancelled() or task.exception() is not None:
            # a TLS handshake that failed or timed out: nothing was served
            if not task.cancelled():
                log.debug("connection not set up: %s", task.exception())
            conn.close()  # asyncio closed it already, unless the protocol was never made

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        """Stops accepting; the socket stays the supervisor's to close."""
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())
            for task in self._handshakes:
                task.cancel()

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.wait(set(self._handshakes))


Listener = asyncio.Server | SharedListener


async def open_listeners(
    factory: Callable[[], asyncio.BaseProtocol],
    where: tuple[str, int],
    shared: Sequence[socket.socket] | None,
    context: ssl.SSLContext | None,
) -> list[Listener]:
    """Listens on `where` (every address its host resolves to), or on `shared`: the
    sockets a supervisor bound for all its workers (coi.cli.workers)."""
    if shared is not None:
        return [SharedListener(sock, factory, context, _load) for sock in shared]
    loop = asyncio.get_running_loop()
    return [await loop.create_server(factory, where[0], where[1], ssl=context, backlog=BACKLOG)]
