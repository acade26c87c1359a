"""The listening sockets of IMAP, LMTP and submission (`open_listeners`), and those shared
with other worker processes (`coi serve --workers N`, `SharedListener`).

asyncio's own server accepts every connection waiting on its socket each time it wakes.
With one socket shared by the workers, the first worker to wake took a whole burst: the
ten connections of a benchmark that connected at once often all went to one worker while
the other idled (one ran 77 s of CPU against the other's 31 in one run), so throughput
changed by half from run to run. Here a worker accepts one connection per wake-up: every
worker is woken for a waiting connection, and one that is busy comes round later, so the
least busy one takes the most. The kernel's accept queue is the supervisor's (listen() is
not called again here).
"""

from __future__ import annotations

import asyncio
import logging
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


class SharedListener:
    """What the servers need of an `asyncio.Server`: `sockets`, `close`, `wait_closed`."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        context: ssl.SSLContext | None,
    ) -> None:
        self.sockets = (sock,)
        self._sock = sock
        self._factory = factory
        self._context = context
        self._loop = asyncio.get_running_loop()
        self._handshakes: set[asyncio.Task[object]] = set()
        self._closed = False
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the peer gave up
        except OSError as exc:  # out of file descriptors or buffers: pause, as asyncio does
            log.error("accepting a connection failed (%s); retrying in 1 s", exc)
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(_RETRY_SECONDS, self._resume)
            return
        conn.setblocking(False)
        made = self._loop.connect_accepted_socket(self._factory, conn, ssl=self._context)
        task: asyncio.Task[object] = self._loop.create_task(made)
        self._handshakes.add(task)
        task.add_done_callback(self._made)

    def _made(self, task: asyncio.Task[object]) -> None:
        self._handshakes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # a TLS handshake that failed or timed out: nothing was served
            log.debug("connection not set up: %s", task.exception())

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
        return [SharedListener(sock, factory, context) for sock in shared]
    loop = asyncio.get_running_loop()
    return [await loop.create_server(factory, where[0], where[1], ssl=context, backlog=BACKLOG)]
