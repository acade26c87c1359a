# ruff: noqa: E501  (protocol lines are compared whole)
"""Malformed input (RFC 3501 §6, §7.1.5: BAD, connection stays usable), literal limits
(RFC 7888 §4 and RFC 4469/7889 TOOBIG) and synchronizing-literal continuations (§7.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import LineClient, RunningServer, run_transcript, start_server


@pytest.fixture
async def small_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path, max_literal=100, max_line=200)
    try:
        yield running
    finally:
        await running.server.stop(grace=2)
        running.store.close()


async def test_malformed_commands_answer_bad(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: a1 FOO
        S: a1 BAD {{.*}}
        C: a2 NOOP extra
        S: a2 BAD {{.*}}
        C: a3 SELECT
        S: a3 BAD {{.*}}
        C: a4 LIST ""
        S: a4 BAD {{.*}}
        C: a5 STATUS INBOX (BOGUS)
        S: a5 BAD {{.*}}
        C: a6 CREATE "unterminated
        S: a6 BAD {{.*}}
        C: a7  NOOP
        S: a7 BAD {{.*}}
        C: NOOP
        S: NOOP BAD {{.*}}
        C: a8 UID BOGUS 1
        S: a8 BAD {{.*}}
        C: a9 SELECT &AGE-
        S: a9 NO [NONEXISTENT] Mailbox name is not valid modified UTF-7
        C: b1 noop
        S: b1 OK {{.*}}
        """,
    )


async def test_untaggable_garbage(alice: LineClient) -> None:
    await run_transcript(
        alice,
        """
        C: (bad) NOOP
        S: * BAD {{.*}}
        C: b1 NOOP
        S: b1 OK {{.*}}
        """,
    )


async def test_synchronizing_literal_continuation(alice: LineClient) -> None:
    # RFC 3501 §7.5: "+" before each synchronizing literal; nothing else in between
    await run_transcript(
        alice,
        """
        C: c1 CREATE {5}
        S: + {{.*}}
        C: lit/a
        S: c1 OK {{.*}}
        C: c2 RENAME {5}
        S: + {{.*}}
        C: lit/a {5}
        S: + {{.*}}
        C: lit/b
        S: c2 OK {{.*}}
        C: c3 LIST "" {5+}
        C: lit/*
        S: * LIST (\\HasNoChildren) "/" lit/b
        S: c3 OK {{.*}}
        """,
    )


async def test_oversized_literals(small_server: RunningServer) -> None:
    client = await LineClient.connect(small_server)
    await client.login()
    # synchronizing: refused with NO [TOOBIG] (no "+"), the connection carries on
    await run_transcript(
        client,
        """
        C: t1 APPEND INBOX {101}
        S: t1 NO [TOOBIG] {{.*}}
        C: t2 APPEND INBOX {100}
        S: + {{.*}}
        C: Subject: x\\r\\n\\r\\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234
        S: t2 OK [APPENDUID {{\\d+}} 1] {{.*}}
        C: t3 NOOP
        S: t3 OK {{.*}}
        """,
    )
    # non-synchronizing: the data is already on its way, so the server ends the
    # connection (RFC 7888 §4)
    await client.send("t4 APPEND INBOX {5000+}\r\n" + "x" * 50)
    line = await client.line()
    assert line.startswith(b"* BYE [TOOBIG]") or line.startswith(b"t4 NO [TOOBIG]"), line
    assert await client.reader.read() == b""


async def test_overlong_line(small_server: RunningServer) -> None:
    client = await LineClient.connect(small_server)
    await client.login()
    await run_transcript(
        client,
        f"""
        C: l1 NOOP {"x" * 300}
        S: l1 BAD {{{{.*}}}}
        C: l2 NOOP
        S: l2 OK {{{{.*}}}}
        """,
    )
