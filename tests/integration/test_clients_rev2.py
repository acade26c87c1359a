"""IMAP4rev2 (RFC 9051) through real client libraries: Python's imaplib and imapclient
each send ENABLE IMAP4rev2 and go on with the rev2 session (ESEARCH instead of SEARCH,
no \\Recent, UTF-8 mailbox names, STATUS DELETED). Neither library parses ESEARCH in its
search helper, so the tests read the ESEARCH response as those libraries hand it over."""

from __future__ import annotations

import asyncio
import imaplib

import imapclient
from imapclient.response_parser import parse_response
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
    assert "IMAP4REV1" in imap.capabilities and "IMAP4REV2" in imap.capabilities
    imap.login(ALICE, PASSWORDS[ALICE])
    typ, _ = imap.enable("IMAP4rev2")
    assert typ == "OK" and imap.response("ENABLED") == ("ENABLED", [b"IMAP4rev2"])
    imap.append("INBOX", r"(\Flagged)", None, MESSAGE)
    imap.append("INBOX", r"(\Deleted)", None, MESSAGE)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    # RFC 9051 §6.3.2: a LIST response; Appendix E item 12: no RECENT response
    assert imap.response("LIST")[1][0].startswith(b"(\\HasNoChildren"), imap.response("LIST")
    assert imap.response("RECENT") == ("RECENT", [None])
    # §6.4.4: SEARCH answers ESEARCH (imaplib's search() looks only for SEARCH)
    typ, data = imap.search(None, "FROM", '"bob"')
    assert typ == "OK" and data == [None]
    typ, esearch = imap.response("ESEARCH")
    assert esearch[0] is not None and esearch[0].endswith(b" ALL 1:2"), esearch
    typ, data = imap.uid("SEARCH", "FLAGGED")
    typ, esearch = imap.response("ESEARCH")
    assert esearch[0] is not None and esearch[0].endswith(b") UID ALL 1"), esearch
    typ, data = imap.fetch("1:2", "(FLAGS)")
    assert typ == "OK" and all(b"\\Recent" not in line for line in data), data
    typ, data = imap.status("INBOX", "(MESSAGES DELETED)")
    assert data == [b"INBOX (MESSAGES 2 DELETED 1)"], data
    imap.close()
    imap.logout()


async def test_imaplib_rev2(imap_server: RunningServer) -> None:
    await asyncio.to_thread(_imaplib_scenario, imap_server.host, imap_server.port)


def _imapclient_scenario(host: str, port: int) -> None:
    client = imapclient.IMAPClient(host, port=port, ssl=False, timeout=10)
    assert b"IMAP4REV2" in client.capabilities()
    client.login(ALICE, PASSWORDS[ALICE])
    assert client.enable("IMAP4rev2") == [b"IMAP4rev2"]
    # RFC 9051 §5.1: names are UTF-8 now: imapclient sends them without mUTF-7, and the
    # imaplib below it must send UTF-8 (it switches by itself only for UTF8=ACCEPT)
    client.folder_encode = False
    client._imap._mode_utf8()
    client.create_folder("Entwürfe")
    listed = client.list_folders(pattern="Entw*")
    assert [name for _, _, name in listed] == ["Entwürfe".encode()], listed
    client.append("Entwürfe", MESSAGE, flags=[imapclient.SEEN])
    client.append("Entwürfe", MESSAGE)
    info = client.select_folder("Entwürfe")
    assert info[b"EXISTS"] == 2 and b"RECENT" not in info, info
    # §6.4.4, §7.3.4: the ESEARCH response, parsed by imapclient's response parser
    client._imap.untagged_responses.pop("ESEARCH", None)
    client._imap._simple_command("UID", "SEARCH", "UNSEEN")
    raw = client._imap.untagged_responses.pop("ESEARCH")
    parsed = parse_response(raw)
    assert parsed[1:] == (b"UID", b"ALL", 2), parsed
    assert parsed[0][0] == b"TAG"
    status = client.folder_status("Entwürfe", [b"MESSAGES", b"UNSEEN", b"DELETED"])
    assert status == {b"MESSAGES": 2, b"UNSEEN": 1, b"DELETED": 0}, status
    flags = client.get_flags([1, 2])
    assert all(b"\\Recent" not in f for f in flags.values()), flags
    client.logout()


async def test_imapclient_rev2(imap_server: RunningServer) -> None:
    await asyncio.to_thread(_imapclient_scenario, imap_server.host, imap_server.port)
