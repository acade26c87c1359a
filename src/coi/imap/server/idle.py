"""IDLE (RFC 2177): mailbox changes are pushed as they are committed until the client
sends DONE. The selected view calls back on every change (no polling, no extra task per
idle connection: the command's own task just waits for the client's next line)."""

from __future__ import annotations

from coi.imap.server.errors import CommandBad
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd


async def handle_idle(session: Session, command: cmd.Idle) -> str:
    session.send(b"+ idling\r\n")
    session.announce(allow_expunge=True)
    view = session.selected
    session.idling = True
    if view is not None:
        view.notify = session.announce_in_idle
    try:
        line = await session.io.read_line()
    finally:
        session.idling = False
        if view is not None:
            view.notify = None
    if line is None:
        raise ConnectionError("connection closed during IDLE")
    if line.strip().upper() != b"DONE":
        raise CommandBad("Expected DONE to end IDLE")
    return "IDLE terminated"


ROUTES: dict[type, Route] = {cmd.Idle: Route(handle_idle, AUTH)}
