"""coi.listener: workers sharing a listening socket take turns at a burst of
connections instead of the first to wake taking them all, and share connections that
come one after the other evenly (`WorkerLoads`)."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from coi.listener import SharedListener, WorkerLoads


class _Counted(asyncio.Protocol):
    def __init__(self, made: list[asyncio.Transport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(transport)


async def _close(
    listeners: list[SharedListener],
    transports: list[asyncio.Transport],
    sockets: list[socket.socket],
) -> None:
    for listener in listeners:
        listener.close()
        await listener.wait_closed()
    for transport in transports:
        transport.close()
    for sock in sockets:
        sock.close()


async def test_a_burst_of_connections_is_shared_between_two_workers() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    other = sock.dup()  # a second worker's descriptor of the same socket
    first: list[asyncio.Transport] = []
    second: list[asyncio.Transport] = []
    listeners = [
        SharedListener(sock, lambda: _Counted(first), None),
        SharedListener(other, lambda: _Counted(second), None),
    ]
    clients = [socket.create_connection(sock.getsockname()) for _ in range(10)]
    try:
        for _ in range(200):
            if len(first) + len(second) == 10:
                break
            await asyncio.sleep(0.01)
        assert len(first) + len(second) == 10
        assert abs(len(first) - len(second)) <= 2, (len(first), len(second))
        first[0].write(b"hello")
        peers = {c.getsockname(): c for c in clients}
        peer = peers[first[0].get_extra_info("peername")]
        assert peer.recv(5) == b"hello"
    finally:
        await _close(listeners, first + second, [*clients, sock, other])


async def test_closed_listener_accepts_nothing() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(10)
    made: list[asyncio.Transport] = []
    listener = SharedListener(sock, lambda: _Counted(made), None)
    listener.close()
    await listener.wait_closed()
    client = socket.create_connection(sock.getsockname())
    try:
        await asyncio.sleep(0.1)
        assert made == []
    finally:
        client.close()
        sock.close()


class _OutOfDescriptors(socket.socket):
    """A listening socket whose first accept() fails as when the process has no file
    descriptor left (EMFILE)."""

    failed = False

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


async def test_out_of_descriptors_pauses_accepting_then_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock = _OutOfDescriptors()
    sock.bind(("127.0.0.1", 0))
    sock.listen(10)
    made: list[asyncio.Transport] = []
    listener = SharedListener(sock, lambda: _Counted(made), None)
    client = socket.create_connection(sock.getsockname())
    try:
        for _ in range(300):  # the retry comes after a second
            if made:
                break
            await asyncio.sleep(0.01)
        assert len(made) == 1
        assert any("retrying in 1 s" in r.getMessage() for r in caplog.records)
    finally:
        await _close([listener], made, [client, sock])


async def _until(condition: object, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.005)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_connections_one_after_another_are_shared_evenly() -> None:
    """Connections that arrive one at a time went mostly to whichever worker woke first;
    with the counts shared, each worker has five of ten."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    other = sock.dup()
    loads = WorkerLoads(2)
    first: list[asyncio.Transport] = []
    second: list[asyncio.Transport] = []
    listeners = [
        SharedListener(sock, lambda: _Counted(first), None, loads.of(0)),
        SharedListener(other, lambda: _Counted(second), None, loads.of(1)),
    ]
    clients = []
    try:
        for n in range(1, 11):
            clients.append(socket.create_connection(sock.getsockname()))
            await _until(lambda n=n: len(first) + len(second) == n)
        assert (len(first), len(second)) == (5, 5)
        assert list(loads.counts) == [5, 5]
        for transport in first[:3]:  # closed by the server: counted out
            transport.close()
        await _until(lambda: list(loads.counts) == [2, 5])
        served_by_second = {t.get_extra_info("peername") for t in second}
        for client in clients[:2]:  # closed by the client: counted out when seen
            if client.getsockname() in served_by_second:
                client.close()
        for client in clients[2:]:
            if client.getsockname() in served_by_second:
                client.close()
                break
        await _until(lambda: list(loads.counts)[1] < 5)
        gone = sum(c.fileno() == -1 for c in clients)
        await _until(lambda: list(loads.counts) == [2, 5 - gone])
    finally:
        await _close(listeners, first + second, [*clients, sock, other])


async def test_a_busier_worker_takes_what_the_others_leave() -> None:
    """A worker with more connections than another leaves a new one to it only for a
    moment: if that worker does not accept (busy, hung), this one does."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(10)
    loads = WorkerLoads(2)
    loads.counts[1] = 0  # worker 2 has no connection and never accepts
    mine = loads.of(0)
    mine.opened()  # worker 1 already has one
    made: list[asyncio.Transport] = []
    listener = SharedListener(sock, lambda: _Counted(made), None, mine)
    client = socket.create_connection(sock.getsockname())
    try:
        await _until(lambda: len(made) == 1)
        assert list(loads.counts) == [2, 0]
    finally:
        await _close([listener], made, [client, sock])
