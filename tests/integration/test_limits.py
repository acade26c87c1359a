"""Configurable limits answer clearly and leave everything else working."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS, LineClient, RunningServer, run_transcript, start_server


@pytest.fixture
async def strict_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(
        tmp_path,
        max_connections_per_ip=3,
        max_connections_per_user=2,
        login_timeout=1.5,
        idle_timeout=1.0,
        max_line=1024,
        max_literal=2048,
    )
    try:
        yield running
    finally:
        await running.server.stop(grace=1)
        running.store.close()


async def test_connections_per_ip(strict_server: RunningServer) -> None:
    clients = [await LineClient.connect(strict_server) for _ in range(3)]
    for client in clients:
        assert (await client.line()).startswith(b"* OK")
    extra = await LineClient.connect(strict_server)
    assert (await extra.line()).startswith(b"* BYE [UNAVAILABLE]")
    await clients[0].close()
    await asyncio.sleep(0.1)
    again = await LineClient.connect(strict_server)
    assert (await again.line()).startswith(b"* OK")
    for client in (*clients[1:], extra, again):
        await client.close()


async def test_connections_per_user(strict_server: RunningServer) -> None:
    first, second, third = [await LineClient.connect(strict_server) for _ in range(3)]
    await first.login()
    await second.login()
    assert (await third.line()).startswith(b"* OK")
    lines = await third.command(f'l LOGIN alice@example.org "{PASSWORDS["alice@example.org"]}"')
    assert lines[-1].startswith(b"l NO [LIMIT]")
    lines = await third.command(f'l2 LOGIN bob@example.org "{PASSWORDS["bob@example.org"]}"')
    assert lines[-1].startswith(b"l2 OK")
    for client in (first, second, third):
        await client.close()


async def test_login_timeout_and_idle_timeout(strict_server: RunningServer) -> None:
    silent = await LineClient.connect(strict_server)
    assert (await silent.line()).startswith(b"* OK")
    assert (await silent.line(timeout=5)).startswith(b"* BYE")
    idle = await LineClient.connect(strict_server)
    await idle.login()
    assert (await idle.line(timeout=5)).startswith(b"* BYE Autologout")
    for client in (silent, idle):
        await client.close()


async def test_login_timeout_is_a_deadline_not_a_silence(strict_server: RunningServer) -> None:
    """NOOPs and trickled bytes do not keep an unauthenticated connection (deadline 1.5 s)."""
    busy, trickle = await LineClient.connect(strict_server), await LineClient.connect(strict_server)
    for client in (busy, trickle):
        assert (await client.line()).startswith(b"* OK")
    started = time.monotonic()
    lines: list[bytes] = []
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        for n in range(20):
            await busy.send(f"n{n} NOOP\r\n".encode())
            await trickle.send(b"x")
            lines.append(await busy.line(timeout=2))
            if lines[-1].startswith(b"* BYE"):
                break
            await asyncio.sleep(0.3)
    assert lines and lines[-1].startswith(b"* BYE Not logged in within 1.5 seconds")
    assert time.monotonic() - started < 3
    assert (await trickle.line(timeout=3)).startswith(b"* BYE Not logged in")
    for client in (busy, trickle):
        await client.close()


async def test_long_line_and_big_literal(strict_server: RunningServer) -> None:
    client = await LineClient.connect(strict_server)
    await client.login()
    lines = await client.command("a1 NOOP " + "x" * 2000)
    assert lines[-1].startswith(b"a1 BAD")
    await client.send(b"a2 APPEND INBOX {4096}\r\n")
    assert (await client.line()).startswith(b"a2 NO [TOOBIG]")
    assert (await client.command("a3 NOOP"))[-1].startswith(b"a3 OK")
    await client.close()


async def test_command_of_many_tiny_literals_is_refused(strict_server: RunningServer) -> None:
    """Issue 16: after login a command may still not be made of more than 1,000 literals
    (framing and parsing a million of them held the loop for 17 s); the connection is
    ended as for any oversized LITERAL+ (RFC 7888 §4), and others are served meanwhile."""
    other = await LineClient.connect(strict_server)
    await other.login()
    client = await LineClient.connect(strict_server)
    await client.login()
    await client.send(b"a1 ID (" + b"{1+}\r\nx " * 200_000 + b"NIL)\r\n")
    lines = [await client.line()]
    assert lines[0].startswith(b"* BYE [TOOBIG]"), lines
    assert (await other.command("b1 NOOP"))[-1].startswith(b"b1 OK")
    await other.close()


async def test_failed_logins_slow_down(tmp_path: Path) -> None:
    running = await start_server(tmp_path)
    running.server.throttle.base_delay = 0.2
    try:
        client = await LineClient.connect(running)
        await client.line()
        started = time.monotonic()
        for n in range(3):
            lines = await client.command(f"f{n} LOGIN alice@example.org wrong")
            assert lines[-1].startswith(f"f{n} NO [AUTHENTICATIONFAILED]".encode())
        # 0 + 0.2 + 0.4 seconds of added delay after the first two failures
        assert time.monotonic() - started >= 0.6
        ok = await client.command(f'g LOGIN alice@example.org "{PASSWORDS["alice@example.org"]}"')
        assert ok[-1].startswith(b"g OK")
        await client.close()
    finally:
        await running.server.stop(grace=1)
        running.store.close()


# -- before login (issue 16 item 1; RFC 7888 §4) ----------------------------------------


async def test_prelogin_synchronizing_literal_over_the_limit_gets_no_continuation(
    imap_server: RunningServer,
) -> None:
    """A big `{N}` before login is refused with a tagged NO [TOOBIG] instead of "+"
    (RFC 3501 §7.5), and the connection carries on; after login the usual limit applies."""
    limit = imap_server.server.config.prelogin_literal_max
    client = await LineClient.connect(imap_server)
    assert (await client.line()).startswith(b"* OK")
    await client.send(f"p1 LOGIN {{{60_000_000}}}\r\n")
    assert (await client.line()).startswith(b"p1 NO [TOOBIG]")
    await client.send(f"p2 ID ({{{limit + 1}}}\r\n")
    assert (await client.line()).startswith(b"p2 NO [TOOBIG]")
    # a literal at the limit is fine
    await client.send(f"p3 ID ({{{limit}}}\r\n")
    assert (await client.line()).startswith(b"+")
    await client.send(b"x" * limit + b" NIL)\r\n")
    assert (await client.until_tagged("p3"))[-1].startswith(b"p3 OK")
    lines = await client.command(f'p4 LOGIN alice@example.org "{PASSWORDS["alice@example.org"]}"')
    assert lines[-1].startswith(b"p4 OK")
    await client.send(f"p5 APPEND INBOX {{{limit * 4}}}\r\n")
    assert (await client.line()).startswith(b"+")
    await client.send(b"Subject: big\r\n\r\n" + b"x" * (limit * 4 - 16) + b"\r\n")
    assert (await client.until_tagged("p5"))[-1].startswith(b"p5 OK")
    await client.close()


async def test_prelogin_nonsynchronizing_literal_over_the_limit_ends_the_connection(
    imap_server: RunningServer,
) -> None:
    """RFC 7888 §4 choice 2: `{N+}` over the pre-login limit gets `* BYE [TOOBIG]` at once,
    before the octets are read, and the connection closes."""
    client = await LineClient.connect(imap_server)
    assert (await client.line()).startswith(b"* OK")
    await client.send(b"p1 LOGIN {60000000+}\r\n" + b"x" * 1000)
    assert (await client.line(timeout=5)).startswith(b"* BYE [TOOBIG]")
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
    await client.close()


async def test_prelogin_command_made_of_many_small_literals_is_bounded(
    imap_server: RunningServer,
) -> None:
    """Many small LITERAL+ parts add up: past `prelogin_command_max` the command ends the
    connection with `* BYE [TOOBIG]`, and another user's NOOP is not held up meanwhile."""
    user = await LineClient.connect(imap_server)
    await user.login()
    attacker = await LineClient.connect(imap_server)
    assert (await attacker.line()).startswith(b"* OK")
    part = b'"k" {1+}\r\nv'
    body = b"h ID (" + b" ".join([part] * (10 * 1024 * 1024 // len(part))) + b")\r\n"  # ~10 MB

    async def flood() -> bytes:
        with contextlib.suppress(ConnectionError):
            attacker.writer.write(body)
            await attacker.writer.drain()
        try:
            return await attacker.line(timeout=30)
        except (ConnectionError, EOFError):
            return b"closed"  # the BYE was sent, but the reset may overtake it

    answer = asyncio.create_task(flood())
    worst, n = 0.0, 0
    while not answer.done():
        started = time.monotonic()
        lines = await user.command(f"n{n} NOOP")
        worst = max(worst, time.monotonic() - started)
        assert lines[-1].startswith(f"n{n} OK".encode())
        n += 1
        await asyncio.sleep(0.01)
    assert worst < 0.2, f"NOOP held for {worst:.3f} s"
    assert (await answer).startswith((b"* BYE [TOOBIG]", b"closed"))
    for client in (user, attacker):
        await client.close()


async def test_global_limit_on_connections_not_logged_in(tmp_path: Path) -> None:
    """At most `max_unauthenticated_connections` wait to log in; a newer connection pushes
    the oldest waiting one out (as Dovecot's login processes do), so peers holding places
    cannot lock others out, and logging in frees a place."""
    running = await start_server(tmp_path, max_unauthenticated_connections=3)
    try:
        waiting = [await LineClient.connect(running) for _ in range(3)]
        for client in waiting:
            assert (await client.line()).startswith(b"* OK")
        newer = await LineClient.connect(running)
        assert (await newer.line()).startswith(b"* OK")
        assert (await waiting[0].line()).startswith(b"* BYE [UNAVAILABLE]")
        assert await waiting[0].reader.read() == b""
        # the newest is usable: it logs in, and no longer counts
        lines = await newer.command(f'l LOGIN alice@example.org "{PASSWORDS["alice@example.org"]}"')
        assert lines[-1].startswith(b"l OK")
        again = await LineClient.connect(running)
        assert (await again.line()).startswith(b"* OK")
        assert (await waiting[1].command("n NOOP"))[-1].startswith(b"n OK")
        # a logged-in session is never pushed out
        for _ in range(4):
            extra = await LineClient.connect(running)
            assert (await extra.line()).startswith(b"* OK")
        assert (await newer.command("n NOOP"))[-1].startswith(b"n OK")
        for client in (*waiting, newer, again, extra):
            await client.close()
    finally:
        await running.server.stop(grace=1)
        running.store.close()


async def test_idle_outlasting_the_idle_timeout_ends_in_bye(strict_server: RunningServer) -> None:
    """Issue 15 item 11: an IDLE past the idle timeout (1 s here) is an autologout
    (RFC 3501 §5.4, RFC 2177 §3): `* BYE` at the timeout, then the connection closes; no
    tagged NO [SERVERBUG], no second wait."""
    client = await LineClient.connect(strict_server)
    await client.login()
    assert (await client.command("s SELECT INBOX"))[-1].startswith(b"s OK")
    await run_transcript(
        client,
        """
        C: i IDLE
        S: + idling
        """,
    )
    started = time.monotonic()
    assert await client.line(timeout=3) == b"* BYE Autologout; idle for too long\r\n"
    assert time.monotonic() - started < 1.8
    with pytest.raises((EOFError, ConnectionError)):  # closed at once, not a timeout later
        await client.line(timeout=0.5)
    await client.close()


async def test_a_burst_of_connections_is_greeted_at_once(tmp_path: Path) -> None:
    """300 clients connecting at the same moment (a restart, a network outage) are all
    accepted and greeted in about no time: the listening socket's queue holds them
    (`coi.listener.BACKLOG`); with asyncio's default of 100, some waited 20 s and more
    for the kernel to retry their handshake."""
    running = await start_server(tmp_path, max_connections_per_ip=1000)
    try:
        started = time.monotonic()
        clients = await asyncio.gather(*[LineClient.connect(running) for _ in range(300)])
        greetings = await asyncio.gather(*[client.line(timeout=10) for client in clients])
        assert all(line.startswith(b"* OK") for line in greetings)
        assert time.monotonic() - started < 5
        for client in clients:
            await client.close()
    finally:
        await running.server.stop(grace=1)
        running.store.close()
