"""Scenario tests through real client libraries: Python's imaplib and imapclient.

Both are synchronous; they run in a worker thread while the server runs on the test's
event loop."""

from __future__ import annotations

import asyncio
import imaplib
import threading

import imapclient
from imapclient import imapclient as imapclient_consts
from tests.conftest import PASSWORDS, RunningServer

MESSAGE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: lunch\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)
ALICE = "alice@example.org"


def _imaplib_scenario(host: str, port: int) -> None:
    imap = imaplib.IMAP4(host, port)
    assert "STARTTLS" in imap.capabilities
    typ, _ = imap.login(ALICE, PASSWORDS[ALICE])
    assert typ == "OK"
    typ, boxes = imap.list()
    assert typ == "OK" and any(b'"INBOX"' in b or b" INBOX" in b for b in boxes if b)
    typ, data = imap.append("INBOX", r"(\Flagged)", None, MESSAGE)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = imap.search(None, "FROM", '"bob"')
    assert data == [b"1"]
    typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    assert b"\\Flagged" in data[0][0] and data[0][1] == b"Subject: lunch\r\n\r\n"
    typ, data = imap.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "OK" and b"\\Seen" in data[0]
    typ, data = imap.copy("1", "Archive")
    assert typ == "OK"
    typ, data = imap.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    typ, data = imap.select("Trash")
    assert data == [b"1"]
    imap.store("1", "+FLAGS", r"(\Deleted)")
    typ, data = imap.expunge()
    assert typ == "OK" and data == [b"1"]
    typ, data = imap.status("Archive", "(MESSAGES UNSEEN)")
    assert data == [b"Archive (MESSAGES 1 UNSEEN 0)"]
    imap.close()
    imap.logout()


async def test_imaplib(imap_server: RunningServer) -> None:
    await asyncio.to_thread(_imaplib_scenario, imap_server.host, imap_server.port)


def _imapclient_scenario(host: str, port: int, idle_started: threading.Event) -> list[object]:
    client = imapclient.IMAPClient(host, port=port, ssl=False, timeout=10)
    client.login(ALICE, PASSWORDS[ALICE])
    caps = client.capabilities()
    assert b"IDLE" in caps and b"MOVE" in caps and b"UIDPLUS" in caps
    folders = [name for _, _, name in client.list_folders()]
    assert "INBOX" in folders and "Sent" in folders
    assert client.find_special_folder(imapclient_consts.SENT) == "Sent"
    client.create_folder("Entwürfe/2024")
    assert "Entwürfe/2024" in [name for _, _, name in client.list_folders()]
    client.append("INBOX", MESSAGE, flags=[imapclient_consts.SEEN])
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 1
    uids = client.search(["SUBJECT", "lunch"])
    assert uids == [1]
    assert client.search(["TEXT", "Grüße"], charset="UTF-8") == []
    data = client.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "FLAGS"])
    envelope = data[1][b"ENVELOPE"]
    assert envelope.subject == b"lunch" and envelope.from_[0].mailbox == b"bob"
    assert data[1][b"RFC822.SIZE"] == len(MESSAGE)
    client.add_flags(uids, [imapclient_consts.FLAGGED])
    assert imapclient_consts.FLAGGED in client.get_flags(uids)[1]
    client.copy(uids, "Archive")
    client.move(uids, "Trash")
    assert client.search() == []
    client.select_folder("Trash")
    client.delete_messages([1])
    client.expunge()
    assert client.search() == []
    client.select_folder("INBOX")
    client.idle()
    idle_started.set()
    responses = client.idle_check(timeout=10)
    client.idle_done()
    client.logout()
    return responses


async def test_imapclient_with_idle(imap_server: RunningServer) -> None:
    idle_started = threading.Event()
    task = asyncio.create_task(
        asyncio.to_thread(_imapclient_scenario, imap_server.host, imap_server.port, idle_started)
    )
    while not idle_started.is_set():
        await asyncio.sleep(0.02)
        assert not task.done() or task.result() is None
    await asyncio.sleep(0.1)
    other = await asyncio.to_thread(imaplib.IMAP4, imap_server.host, imap_server.port)
    await asyncio.to_thread(other.login, "alice@example.org", PASSWORDS[ALICE])
    await asyncio.to_thread(other.append, "INBOX", None, None, MESSAGE)
    await asyncio.to_thread(other.logout)
    responses = await task
    assert (1, b"EXISTS") in responses, responses
