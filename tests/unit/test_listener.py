"""coi.listener: workers sharing a listening socket take turns at a burst of
connections instead of the first to wake taking them all."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from coi.listener import SharedListener


class _Counted(asyncio.Protocol):
    def __init__(self, made: list[asyncio.Transport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(transport)


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
        for listener in listeners:
            listener.close()
            await listener.wait_closed()
        for transport in first + second:
            transport.close()
        for client in clients:
            client.close()
        sock.close()
        other.close()


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
        listener.close()
        await listener.wait_closed()
        for transport in made:
            transport.close()
        client.close()
        sock.close()
