"""coi.listener: workers sharing a listening socket take turns at a burst of
connections instead of the first to wake taking them all."""

from __future__ import annotations

import asyncio
import socket

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
