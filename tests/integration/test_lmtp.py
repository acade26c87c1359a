"""LMTP (RFC 2033) with Python's smtplib.LMTP over a real socket."""

from __future__ import annotations

import asyncio
import re
import smtplib
from pathlib import Path

from tests.integration.conftest import MailEnv, start_mail, stop_mail
from tests.integration.serverproc import ServerProcess

MESSAGE = (
    b"From: Carol <carol@elsewhere.example>\r\n"
    b"To: alice@example.org, bob@example.org\r\n"
    b"Subject: hello over LMTP\r\n"
    b"Message-ID: <lmtp-1@elsewhere.example>\r\n"
    b"\r\n"
    b"Line one.\r\n"
    b".leading dot\r\n"
)


def _conversation(port: int) -> dict[str, object]:
    out: dict[str, object] = {}
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        code, _ = lmtp.ehlo("mta.example")  # smtplib.LMTP sends LHLO
        assert code == 250
        out["size"] = lmtp.esmtp_features.get("size")
        # RFC 2033 §5: both MUST be offered; with them every reply has an enhanced code
        assert {"pipelining", "enhancedstatuscodes"} <= lmtp.esmtp_features.keys()
        out["noop"] = lmtp.noop()
        out["mail"] = lmtp.mail("carol@elsewhere.example")
        lmtp.rset()
        assert lmtp.mail("carol@elsewhere.example")[0] == 250
        assert lmtp.rcpt("alice@example.org")[0] == 250
        out["unknown"] = lmtp.rcpt("nobody@example.org")
        assert lmtp.rcpt("bob@example.org")[0] == 250
        # RFC 2033 §4.2: one reply per accepted recipient after the data
        first = lmtp.data(MESSAGE)
        second = lmtp.getreply()
        out["replies"] = [first, second]
        # the announced SIZE is enforced
        big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 30
        assert lmtp.mail("carol@elsewhere.example")[0] == 250
        assert lmtp.rcpt("alice@example.org")[0] == 250
        try:
            out["big"] = lmtp.data(big)
        except smtplib.SMTPDataError as exc:
            out["big"] = (exc.smtp_code, exc.smtp_error)
        lmtp.rset()
        out["size_param"] = lmtp.mail("carol@elsewhere.example", ["SIZE=5000"])
        lmtp.rset()
        out["bounce"] = lmtp.sendmail("<>", ["bob@example.org"], b"Subject: bounce\r\n\r\nx\r\n")
    return out


async def test_lmtp_delivers_per_recipient(tmp_path: Path) -> None:
    env: MailEnv = await start_mail(tmp_path, max_message_size=1000)
    try:
        out = await asyncio.to_thread(_conversation, env.lmtp_port)
        store = env.imap.store
        assert out["size"] == "1000"
        assert out["noop"] == (250, b"2.0.0 OK")
        mail = out["mail"]
        assert isinstance(mail, tuple) and mail[0] == 250 and mail[1].startswith(b"2.")
        unknown = out["unknown"]
        assert isinstance(unknown, tuple) and unknown[0] == 550
        assert b"5.1.1" in unknown[1]
        replies = out["replies"]
        assert isinstance(replies, list)
        assert [r[0] for r in replies] == [250, 250]
        assert b"alice@example.org" in replies[0][1] and b"bob@example.org" in replies[1][1]
        big = out["big"]
        assert isinstance(big, tuple) and big[0] == 552
        size_param = out["size_param"]
        assert isinstance(size_param, tuple) and size_param[0] == 552
        assert out["bounce"] == {}
        for address in ("alice@example.org", "bob@example.org"):
            inbox = store.get_mailbox(env.user_id(address), "INBOX")
            assert inbox is not None
            uids = list(store.uids(inbox.id))
            assert len(uids) == (2 if address == "bob@example.org" else 1)
            if len(uids) == 2:
                bounce = store.blob(store.rows(inbox.id, uids)[uids[1]].blob_id)
                assert bounce is not None and bounce[0].startswith(b"Return-Path: <>\r\n")
            row = store.rows(inbox.id, uids)[uids[0]]
            blob = store.blob(row.blob_id)
            assert blob is not None
            raw = blob[0]
            assert raw.startswith(b"Return-Path: <carol@elsewhere.example>\r\n")
            assert raw.endswith(b"Line one.\r\n.leading dot\r\n")
            assert row.flags.keywords == ()  # COI disabled: nothing filtered
    finally:
        await stop_mail(env)


async def test_coi_serve_process_runs_lmtp_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        await asyncio.to_thread(server.start)
        text = "".join(server.output)
        match = re.search(r"lmtp\s+127\.0\.0\.1:(\d+)", text)
        assert match, text
        assert re.search(r"submission\s+127\.0\.0\.1:\d+ \(STARTTLS\)", text), text

        def deliver() -> dict[str, tuple[int, bytes]]:
            with smtplib.LMTP("127.0.0.1", int(match.group(1))) as lmtp:
                return lmtp.sendmail("carol@elsewhere.example", ["alice@example.org"], MESSAGE)

        assert await asyncio.to_thread(deliver) == {}
        assert await asyncio.to_thread(server.terminate) == 0
        # one line per delivery; aiosmtpd's per-command lines only with --protocol-trace
        assert server.proc is not None and server.proc.stdout is not None
        text = server.proc.stdout.read()
        assert "coi.delivery delivered user=alice@example.org" in text, text
        assert "mail.log" not in text, text
    finally:
        server.stop()
