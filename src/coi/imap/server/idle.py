"""IDLE (RFC 2177): mailbox changes are pushed as they are committed until the client
sends DONE. Changes arrive through the selected view's wakeup event, never by polling."""

from __future__ import annotations

import asyncio
from typing import Any

from coi.imap.server.errors import CommandBad
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd


async def handle_idle(session: Session, command: cmd.Idle) -> str:
    session.send(b"+ idling\r\n")
    session.announce(allow_expunge=True)
    await session.io.drain()
    session.idling = True
    reader = asyncio.ensure_future(session.io.read_line())
    waker: asyncio.Future[Any] | None = None
    try:
        while True:
            view = session.selected
            waker = asyncio.ensure_future(view.wakeup.wait()) if view is not None else None
            waiting: set[asyncio.Future[Any]] = {reader}
            if waker is not None:
                waiting.add(waker)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                break
            session.announce(allow_expunge=True)
            await session.io.drain()
    finally:
        session.idling = False
        if waker is not None:
            waker.cancel()
        if not reader.done():
            reader.cancel()
    line = reader.result()
    if line is None:
        raise ConnectionError("connection closed during IDLE")
    if line.strip().upper() != b"DONE":
        raise CommandBad("Expected DONE to end IDLE")
    return "IDLE terminated"


ROUTES: dict[type, Route] = {cmd.Idle: Route(handle_idle, AUTH)}
