"""Random and mutated bytes never crash a session nor disturb other connections."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import PASSWORDS, RunningServer, start_server

COMMANDS = [
    b"a LOGIN alice@example.org alice-secret\r\n",
    b"b SELECT INBOX\r\n",
    b"c FETCH 1:* (FLAGS BODY[])\r\n",
    b"d SEARCH OR FROM x (TEXT {3}\r\nabc)\r\n",
    b"e STORE 1 +FLAGS (\\Seen)\r\n",
    b"f APPEND INBOX {5+}\r\nhello\r\n",
    b'g LIST "" *\r\n',
    b"h UID COPY 1:* Trash\r\n",
    b"i IDLE\r\nDONE\r\n",
]


@pytest.fixture(scope="module")
def threaded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    path: Path = tmp_path_factory.mktemp("fuzz")
    running = asyncio.run_coroutine_threadsafe(
        start_server(path, login_timeout=5.0, idle_timeout=5.0), loop
    ).result(30)
    yield running
    asyncio.run_coroutine_threadsafe(running.server.stop(grace=1), loop).result(30)
    running.store.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _exchange(server: RunningServer, payload: bytes) -> bytes:
    """The server's replies to `payload`: the greeting waited for (up to 5 s on a loaded
    machine), the rest read until 0.2 s pass without any."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        data = b""
        try:
            data = sock.recv(65536)  # the greeting
            sock.settimeout(0.2)
            sock.sendall(payload)
            while data and len(data) < 1_000_000:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionError):
            pass
        return data


def _canary(server: RunningServer) -> None:
    password = PASSWORDS["bob@example.org"]
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(f'z1 LOGIN bob@example.org "{password}"\r\nz2 NOOP\r\n'.encode())
        lines = [reader.readline() for _ in range(2)]
        assert lines[0].startswith(b"z1 OK") and lines[1].startswith(b"z2 OK"), lines


mutated = (
    st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=6)
    .flatmap(
        lambda parts: st.tuples(
            st.just(b"".join(parts)), st.integers(0, 10_000), st.binary(max_size=8)
        )
    )
    .map(lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) :])
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.one_of(st.binary(max_size=300), mutated))
def test_garbage_never_breaks_the_server(threaded_server: RunningServer, payload: bytes) -> None:
    reply = _exchange(threaded_server, payload)
    assert reply.startswith(b"* OK") or reply.startswith(b"* BYE")
    assert b"SERVERBUG" not in reply, reply
    _canary(threaded_server)


def test_bad_command_keeps_connection_usable(threaded_server: RunningServer) -> None:
    reply = _exchange(threaded_server, b"x1 FROB\r\n(((\r\nx2 NOOP\r\n")
    lines = reply.split(b"\r\n")
    assert lines[1].startswith(b"x1 BAD")
    assert lines[2].startswith(b"* BAD") or lines[2].startswith(b"( BAD")
    assert lines[3].startswith(b"x2 OK")
