# ruff: noqa: E501  (protocol lines are compared whole)
"""COMPRESS=DEFLATE (RFC 4978) with real deflating clients: the transcript client of the
other tests over a raw-deflate stream, and Python's imaplib over TLS (compression inside
TLS, §3)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import zlib

from tests.conftest import PASSWORDS, LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import SIMPLE, append, connect, logged_in


class _Deflater:
    """The writer half: raw deflate (wbits -15), a sync flush after each write."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.raw = writer
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def write(self, data: bytes) -> None:
        self.raw.write(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    async def drain(self) -> None:
        await self.raw.drain()

    def close(self) -> None:
        self.raw.close()

    async def wait_closed(self) -> None:
        await self.raw.wait_closed()


async def _inflate(source: asyncio.StreamReader, target: asyncio.StreamReader) -> None:
    inflate = zlib.decompressobj(-15)
    while data := await source.read(65536):
        target.feed_data(inflate.decompress(data))
    target.feed_eof()


def _compress(client: LineClient) -> asyncio.Task[None]:
    """Switches the client to DEFLATE both ways (after the server's OK)."""
    inflated = asyncio.StreamReader()
    task = asyncio.ensure_future(_inflate(client.reader, inflated))
    client.reader = inflated
    client.writer = _Deflater(client.writer)  # type: ignore[assignment]
    return task


async def test_compress_rfc4978_example_and_states(imap_server: RunningServer) -> None:
    client = await connect(imap_server)
    try:
        await run_transcript(
            client,
            """
            S: * OK [CAPABILITY {{.*}}] coi IMAP server ready
            C: a compress deflate
            S: a BAD COMPRESS not allowed in the not authenticated state
            C: b CAPABILITY
            S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS AUTH=PLAIN
            S: b OK CAPABILITY completed
            C: L LOGIN alice@example.org alice-secret
            S: L OK [CAPABILITY {{.* COMPRESS=DEFLATE .*}}] {{.*}}
            C: c compress lzw
            S: c BAD Unknown compression algorithm LZW
            C: c compress
            S: c BAD {{.*}}
            C: d COMPRESS DEFLATE
            S: d OK DEFLATE active
            """,
        )
        pump = _compress(client)
        await append(client, SIMPLE)
        await run_transcript(
            client,
            """
            C: e COMPRESS DEFLATE
            S: e NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS
            C: f SELECT INBOX
            S: * FLAGS {{.*}}
            S: * 1 EXISTS
            S: * 1 RECENT
            S: * OK [UNSEEN 1] First unseen message
            S: * OK [PERMANENTFLAGS {{.*}}] Limited
            S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
            S: * OK [UIDNEXT 2] Predicted next UID
            S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
            S: f OK [READ-WRITE] SELECT completed
            C: g FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])
            S: * 1 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (Subject)] {{\\{30\\}\\r\\nSubject: afternoon meeting\\r\\n\\r\\n}})
            S: g OK FETCH completed
            C: h LOGOUT
            S: * BYE {{.*}}
            S: h OK {{.*}}
            """,
        )
        await asyncio.wait_for(pump, 5)  # the server ended its stream cleanly at the close
    finally:
        await client.close()


async def test_compressed_idle_large_literals_and_pipelining(imap_server: RunningServer) -> None:
    """Every batch ends with a sync flush, so an IDLE update is readable at once; literals
    larger than the server's output batch and its inflate chunk both work."""
    client = await logged_in(imap_server)
    other = await logged_in(imap_server)
    try:
        assert (await client.command("z COMPRESS DEFLATE"))[-1] == b"z OK DEFLATE active\r\n"
        pump = _compress(client)
        await client.command("s SELECT INBOX")
        await client.send("i IDLE\r\n")
        assert await client.line() == b"+ idling\r\n"
        await append(other, SIMPLE)
        assert await client.line() == b"* 1 EXISTS\r\n"
        assert await client.line() == b"* 1 RECENT\r\n"
        await client.send("DONE\r\n")
        assert (await client.line()).startswith(b"i OK")
        # an APPEND whose literal inflates to far more than one inflate chunk
        big = SIMPLE + b"x" * 2_000_000 + b"\r\n"
        await client.send(f"a APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
        lines = await client.until_tagged("a")
        assert lines[-1].startswith(b"a OK [APPENDUID"), lines
        # pipelined commands in one compressed write, a large literal in the answer
        await client.send("p1 NOOP\r\np2 FETCH 2 BODY.PEEK[]\r\np3 NOOP\r\n")
        lines = await client.until_tagged("p3")
        assert lines == [
            b"p1 OK NOOP completed\r\n",
            b"* 2 FETCH (BODY[] {%d}\r\n" % len(big) + big + b")\r\n",
            b"p2 OK FETCH completed\r\n",
            b"p3 OK NOOP completed\r\n",
        ]
        await client.close()
        await asyncio.wait_for(pump, 5)
    finally:
        await other.close()


async def test_broken_compressed_input_closes_the_connection(imap_server: RunningServer) -> None:
    client = await logged_in(imap_server)
    try:
        await client.command("z COMPRESS DEFLATE")
        client.writer.write(b"\xff\xff\xff\xff garbage, not deflate")
        await client.writer.drain()
        assert await asyncio.wait_for(client.reader.read(), 5) == b""
    finally:
        await client.close()


class _DeflateIMAP4(imaplib.IMAP4_SSL):
    """imaplib over TLS with COMPRESS=DEFLATE: compression inside TLS (RFC 4978 §3)."""

    deflate: zlib._Compress | None = None
    inflate: zlib._Decompress | None = None
    pending = b""

    def compress(self) -> str:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.inflate = zlib.decompressobj(-15)
        return f"{typ} {data[-1]!r}"

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _more(self) -> None:
        assert self.inflate is not None
        chunk = self.file.read1(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("connection closed")
        self.pending += self.inflate.decompress(chunk)

    def read(self, size: int) -> bytes:
        if self.inflate is None:
            return super().read(size)
        while len(self.pending) < size:
            self._more()
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readline(self) -> bytes:
        if self.inflate is None:
            return super().readline()
        while b"\n" not in self.pending:
            self._more()
        at = self.pending.index(b"\n") + 1
        data, self.pending = self.pending[:at], self.pending[at:]
        return data


def _imaplib_session(port: int) -> list[object]:
    imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    out: list[object] = []
    with _DeflateIMAP4("127.0.0.1", port, ssl_context=context) as imap:
        imap.login("alice@example.org", PASSWORDS["alice@example.org"])
        out.append(b"COMPRESS=DEFLATE" in imap.capability()[1][0].split())
        out.append(imap.compress())
        out.append(imap.compress())  # already on
        imap.append("INBOX", "", None, SIMPLE)
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        out.append((typ, data))
        out.append(imap.status("INBOX", "(MESSAGES)"))
        imap.logout()
    return out


async def test_imaplib_over_tls_with_compression(imap_server: RunningServer) -> None:
    capable, first, again, fetched, status = await asyncio.to_thread(
        _imaplib_session, imap_server.tls_port
    )
    assert capable is True
    assert first == "OK b'DEFLATE active'"
    assert again == "NO b'[COMPRESSIONACTIVE] DEFLATE active via COMPRESS'"
    assert fetched == ("OK", [(b"1 (RFC822.SIZE 316 BODY[] {316}", SIMPLE), b")"])
    assert status == ("OK", [b"INBOX (MESSAGES 1)"])
