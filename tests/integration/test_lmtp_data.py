"""LMTP DATA read in blocks (coi.delivery.data), over a real socket: exact bytes on the wire."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import MailEnv, start_mail, stop_mail

ENVELOPE = b"MAIL FROM:<carol@elsewhere.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"


class Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self = cls(reader, writer)
        assert (await self.reply()).startswith(b"220")
        writer.write(b"LHLO mta.example\r\n")
        assert (await self.reply()).startswith(b"250")
        return self

    async def reply(self) -> bytes:
        """One reply, all its lines."""
        out = b""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            assert line, "connection closed"
            out += line
            if line[3:4] != b"-":
                return out

    async def codes(self, n: int) -> list[int]:
        return [int((await self.reply())[:3]) for _ in range(n)]

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        assert (await self.reply()).startswith(b"221")
        self.writer.close()


def delivered(env: MailEnv) -> list[bytes]:
    """Alice's INBOX messages without the Return-Path line LMTP adds."""
    store = env.imap.store
    inbox = store.get_mailbox(env.user_id("alice@example.org"), "INBOX")
    assert inbox is not None
    uids = list(store.uids(inbox.id))
    out = []
    for row in store.rows(inbox.id, uids).values():
        blob = store.blob(row.blob_id)
        assert blob is not None
        head, _, raw = blob[0].partition(b"\r\n")
        assert head == b"Return-Path: <carol@elsewhere.example>"
        out.append(raw)
    return out


async def test_dot_stuffing_bare_lf_and_pipelining(tmp_path: Path) -> None:
    env = await start_mail(tmp_path)
    try:
        wire = await Wire.open(env.lmtp_port)
        messages = [
            b"Subject: dots\r\n\r\n..\r\n..leading\r\nend.\r\n",  # a line that is just "."
            b"Subject: bare LF\r\n\r\na\n.\nb\r\n",  # ".\n" ends nothing, its dot stays
            b"Subject: empty body\r\n\r\n",
        ]
        # the whole conversation in one write: commands pipelined after each end line
        wire.writer.write(b"".join(ENVELOPE + m + b".\r\n" for m in messages) + b"NOOP\r\n")
        assert await wire.codes(4 * len(messages) + 1) == [250, 250, 354, 250] * 3 + [250]
        assert delivered(env) == [
            b"Subject: dots\r\n\r\n.\r\n.leading\r\nend.\r\n",
            b"Subject: bare LF\r\n\r\na\r\n.\r\nb\r\n",  # stored with CRLF only
            b"Subject: empty body\r\n\r\n",
        ]
        await wire.close()
    finally:
        await stop_mail(env)


async def test_end_line_in_small_pieces(tmp_path: Path) -> None:
    env = await start_mail(tmp_path)
    try:
        wire = await Wire.open(env.lmtp_port)
        wire.writer.write(ENVELOPE)
        assert await wire.codes(3) == [250, 250, 354]
        for piece in (b"Subject: slow\r\n\r\nbody", b"\r", b"\n.", b"\r", b"\nNOOP\r\n"):
            wire.writer.write(piece)
            await wire.writer.drain()
            await asyncio.sleep(0.02)
        assert await wire.codes(2) == [250, 250]
        assert delivered(env) == [b"Subject: slow\r\n\r\nbody\r\n"]
        await wire.close()
    finally:
        await stop_mail(env)


async def test_too_big_gives_552_and_the_connection_stays_usable(tmp_path: Path) -> None:
    env = await start_mail(tmp_path, max_message_size=10_000)
    try:
        wire = await Wire.open(env.lmtp_port)
        big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 40
        fits = b"Subject: fits\r\n\r\n" + b"..\r\n" * 2000  # 8 KB stuffed, 6 KB delivered
        long_line = b"Subject: long\r\n\r\n" + b"z" * 1200 + b"\r\n"
        wire.writer.write(ENVELOPE + big + b".\r\n" + ENVELOPE + fits + b".\r\n")
        wire.writer.write(ENVELOPE + long_line + b".\r\n")
        codes = await wire.codes(12)
        # a line over 1,000 octets is taken as received (RFC 5321 §4.5.3.1; Dovecot does)
        assert codes == [250, 250, 354, 552, 250, 250, 354, 250, 250, 250, 354, 250]
        assert delivered(env) == [b"Subject: fits\r\n\r\n" + b".\r\n" * 2000, long_line]
        await wire.close()
    finally:
        await stop_mail(env)


async def test_big_attachment_and_per_recipient_replies(tmp_path: Path) -> None:
    env = await start_mail(tmp_path)
    try:
        wire = await Wire.open(env.lmtp_port)
        body = b"".join(b"%076d\r\n" % i for i in range(30_000))  # 2.3 MB
        message = b"Subject: attachment\r\n\r\n" + body
        wire.writer.write(
            b"MAIL FROM:<carol@elsewhere.example>\r\nRCPT TO:<alice@example.org>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n" + message + b".\r\n"
        )
        # RFC 2033 §4.2: after the data one reply per accepted recipient, in RCPT order
        replies = [await wire.reply() for _ in range(6)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354", b"250", b"250"]
        assert b"alice@example.org" in replies[4] and b"bob@example.org" in replies[5]
        assert delivered(env) == [message]
        await wire.close()
    finally:
        await stop_mail(env)


async def test_pipelined_after_the_end_line(tmp_path: Path) -> None:
    """Replies to commands pipelined after the end line all arrive, in order, up to QUIT."""
    env = await start_mail(tmp_path)
    try:
        wire = await Wire.open(env.lmtp_port)
        # after the end line: the next transaction, a bad command, NOOP and QUIT, all at once
        wire.writer.write(
            ENVELOPE + b"Subject: one\r\n\r\n1\r\n.\r\n"
            b"RSET\r\nBOGUS\r\n" + ENVELOPE + b"Subject: two\r\n\r\n2\r\n.\r\nNOOP\r\nQUIT\r\n"
        )
        replies = [await wire.reply() for _ in range(12)]
        assert [int(r[:3]) for r in replies] == [
            250, 250, 354, 250, 250, 500, 250, 250, 354, 250, 250, 221
        ]  # fmt: skip
        assert await wire.reader.read() == b""  # closed after 221, nothing more
        assert delivered(env) == [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"]
    finally:
        await stop_mail(env)


async def test_echoed_words_never_break_a_reply(tmp_path: Path) -> None:
    """RFC 5321 §4.2: replies echo the client's words (found by bench/fuzz smtp): a bare CR or
    NUL there must not break the reply, nor octets that are not UTF-8 make it fail."""
    env = await start_mail(tmp_path)
    try:
        wire = await Wire.open(env.lmtp_port)
        wire.writer.write(b"MAIL FROM:<carol@elsewhere.example>\r\nRCPT TO:<\xff@example.org>\r\n")
        wire.writer.write(b"RCPT TO:<a\x00b@example.org>\r\nX\r\x00\r\nNOOP\r\n")
        replies = [await wire.reply() for _ in range(5)]
        assert replies == [
            b"250 2.0.0 OK\r\n",
            b"553 5.1.3 Error: malformed address\r\n",  # RFC 6531 §3.3: not UTF-8
            b"550 5.1.1 <a?b@example.org>: no such user here\r\n",
            b'500 5.0.0 Error: command "X??" not recognized\r\n',
            b"250 2.0.0 OK\r\n",
        ]
        await wire.close()
    finally:
        await stop_mail(env)
