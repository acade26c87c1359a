"""coi.imap.server.stream over real loopback sockets: input in order, flow control both
ways, end of input, a waiting read interrupted, a lost connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from coi.imap.server.stream import Stream

LIMIT = 1024


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter]]:
    made: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()
    server = await asyncio.get_running_loop().create_server(
        lambda: Stream(made.set_result, LIMIT), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stream = await made
    yield stream, reader, writer
    writer.close()
    stream.close()
    server.close()
    await server.wait_closed()


async def _until(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_reading_stops_while_input_waits_and_all_of_it_arrives_in_order(
    pair: tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    stream, _, writer = pair
    sent = bytes(range(256)) * 1024  # 256 KiB, far more than 2 * LIMIT
    writer.write(sent)
    transport = stream.transport
    assert isinstance(transport, asyncio.Transport)
    await _until(lambda: not transport.is_reading(), "reading never paused")
    got = bytearray()
    while len(got) < len(sent):
        got += await stream.read(4096)
    assert bytes(got) == sent
    assert transport.is_reading()


async def test_end_of_input_after_the_data(
    pair: tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    stream, _, writer = pair
    writer.write(b"a LOGOUT\r\n")
    writer.write_eof()
    assert await stream.read(100) == b"a LOGOUT\r\n"
    assert await stream.read(100) == b""
    stream.write(b"* BYE\r\n")  # a half-closed plain connection can still be answered
    await stream.drain()


async def test_a_waiting_read_is_interrupted(
    pair: tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    stream, _, _ = pair
    assert not stream.interrupt(TimeoutError())  # no read waits
    reading = asyncio.ensure_future(stream.read(100))
    await asyncio.sleep(0)
    assert stream.interrupt(TimeoutError("expired"))
    with pytest.raises(TimeoutError, match="expired"):
        await reading


async def test_writes_wait_for_a_client_that_does_not_read_and_a_lost_connection_raises(
    pair: tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    stream, reader, writer = pair
    chunk = b"x" * 65536
    for _ in range(256):  # 16 MiB: past the socket buffers and the transport's mark
        stream.write(chunk)
    draining = asyncio.ensure_future(stream.drain())
    await asyncio.sleep(0.1)
    assert not draining.done()
    got = 0
    while not draining.done():
        got += len(await reader.read(1 << 20))
    await draining
    writer.transport.abort()
    await asyncio.wait_for(stream.wait_closed(), 5)
    with pytest.raises(ConnectionResetError):
        await stream.drain()
    try:  # ended, at once: the end of input or the reset
        assert await asyncio.wait_for(stream.read(100), 1) == b""
    except ConnectionError:
        pass
