"""Client-side helpers for chat scenarios: profiles on a server, golden chat dumps."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from coi.client.client import Client
from coi.client.profile import AccountSettings, Endpoint, FilterMode, Security


async def new_client(
    root: Path,
    name: str,
    address: str,
    password: str,
    imap_port: int,
    smtp_port: int,
    *,
    read_receipts: bool = True,
    filter: FilterMode = FilterMode.NONE,
) -> Client:
    client = Client(root / name)
    await client.add_account(
        AccountSettings(
            address=address,
            imap=Endpoint("127.0.0.1", imap_port),
            smtp=Endpoint("127.0.0.1", smtp_port),
            security=Security.PLAIN,
            filter=filter,
            read_receipts=read_receipts,
        ),
        password,
    )
    return client


def dump(client: Client) -> str:
    """Chats and messages as readable text without ids or times: equal on two devices
    that see the same state."""
    lines: list[str] = []
    for chat in sorted(client.chats(), key=lambda c: c.peer or c.name):
        request = " (request)" if chat.request else ""
        lines.append(f"chat {chat.peer or chat.name}{request}")
        for m in client.messages(chat):
            who = "me" if m.outgoing else m.sender
            flags = []
            if m.edited:
                flags.append("edited")
            if m.deleted:
                flags.append("deleted")
            if m.is_email:
                flags.append("email")
            if m.in_reply_to:
                parent = client.store.message_by_mid(m.account_id, m.in_reply_to)
                if parent is not None and parent.visible:
                    flags.append(f"reply to {parent.text!r}")
            for sender, emoji in client.store.reactions(m.id):
                flags.append(f"{emoji} by {sender}")
            readers = client.store.receipts(m.id)
            if readers:
                flags.append("read by " + ",".join(readers))
            for a in client.store.attachments(m.id):
                flags.append(f"file {a.filename} {a.size}")
            text = "" if m.deleted else m.text
            lines.append(f"  {who}: {text}" + (f"  [{'; '.join(flags)}]" if flags else ""))
    return "\n".join(lines) + "\n"


_LIST = re.compile(rb'\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) "?(?P<name>[^"]*)"?$')


def boxes(
    host: str, port: int, address: str, password: str, part: str = "HEADER"
) -> dict[str, list[bytes]]:
    """Mailbox -> messages (their ``BODY.PEEK[part]``), as any IMAP client sees them;
    blocking (imaplib): call it with asyncio.to_thread while a server runs on the loop."""
    imap = imaplib.IMAP4(host, port)
    imap.login(address, password)
    out: dict[str, list[bytes]] = {}
    for line in imap.list()[1]:
        assert isinstance(line, bytes)
        match = _LIST.search(line)
        if match is None or b"Noselect" in match["flags"]:
            continue
        name = match["name"].decode()
        if imap.select(f'"{name}"', readonly=True)[0] != "OK":
            continue
        _, data = imap.uid("FETCH", "1:*", f"(BODY.PEEK[{part}])")
        out[name] = [d[1] for d in data if isinstance(d, tuple)]
    imap.logout()
    return out


Devices = Callable[[str, str], Awaitable[Client]]  # (profile name, address) -> a client


def devices(root: Path, imap_port: int, smtp_port: int, passwords: dict[str, str]) -> Devices:
    """Makes clients (devices) of the test users on one server."""

    async def make(name: str, address: str) -> Client:
        return await new_client(root, name, address, passwords[address], imap_port, smtp_port)

    return make
