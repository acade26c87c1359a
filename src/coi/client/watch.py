"""Staying connected: sync, then wait for the server to say something changed.

IDLE (RFC 2177) on the folder new chat messages arrive in; with NOTIFY (RFC 5465)
every synced folder reports through the one connection.  A server without IDLE is
polled.  After a lost connection the task reconnects with exponential backoff and
syncs again: the local store's folder state makes that lossless and free of
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from coi.client import notify
from coi.client.store import Account
from coi.client.sync import AccountSync
from coi.imap.client import CommandFailed, ImapError
from coi.imap.wire import encode

if TYPE_CHECKING:
    from coi.client.client import Client, ClientEvent

log = logging.getLogger(__name__)

IDLE_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
POLL_SECONDS = 30.0
BACKOFF_START = 1.0
BACKOFF_MAX = 300.0
NOTIFY_EVENTS = "(MessageNew MessageExpunge FlagChange)"


async def watch_account(
    client: Client,
    account: Account,
    on_event: Callable[[ClientEvent], None],
    stop: asyncio.Event,
    on_status: Callable[[str], None] | None = None,
) -> None:
    from coi.client.client import ClientError

    delay = BACKOFF_START
    status = on_status or (lambda line: log.info("%s", line))
    while not stop.is_set():
        sync = client.account_sync(account)
        try:
            password = client.profile.load_password(account.address)
            await sync.connect(password)
            delay = BACKOFF_START
            await _wait_loop(sync, client, on_event, stop, status)
        except (ImapError, OSError, ClientError) as exc:
            status(f"{account.address}: {exc}; retrying in {delay:.0f} s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, BACKOFF_MAX)
        finally:
            await sync.close()


async def _report(
    sync: AccountSync, client: Client, on_event: Callable[[ClientEvent], None]
) -> None:
    from coi.client.client import ClientEvent

    report = await sync.sync()
    store = client.store
    for applied in report.applied:
        if applied.event in ("hidden", "known") or client.hidden(applied.chat_id):
            continue
        chat = store.chat(applied.chat_id) if applied.chat_id is not None else None
        row = store.message(applied.message)
        on_event(
            ClientEvent(
                applied.event, sync.account.address, applied.chat_id, applied.message,
                applied.target, muted=chat is not None and chat.muted(),
                notify=notify.notifies(store, chat, row, applied.event),
            )
        )  # fmt: skip
    if report.removed:
        on_event(ClientEvent("removed", sync.account.address, None, None))


async def _wait_loop(
    sync: AccountSync,
    client: Client,
    on_event: Callable[[ClientEvent], None],
    stop: asyncio.Event,
    status: Callable[[str], None],
) -> None:
    imap = sync.imap
    assert imap is not None
    watched = sync.folders.get("inbox")
    notify = imap.has("NOTIFY")
    if notify:
        # RFC 5465 §6: one event group for the selected INBOX, one for the other folders
        others = [
            encode.mailbox(f.name).decode("ascii")
            for role, f in sync.folders.items()
            if role != "inbox"
        ]
        spec = f"SET (selected {NOTIFY_EVENTS})"
        if others:
            spec += f" (mailboxes ({' '.join(others)}) {NOTIFY_EVENTS})"
        try:
            await imap.notify(spec)
        except CommandFailed as exc:  # a server that refuses it still has IDLE
            log.info("%s: NOTIFY refused (%s); watching with IDLE", sync.account.address, exc)
            notify = False
    if (
        not notify
        and sync.account.server_kind == "coi"
        and sync.account.settings.filter.value == "active"
        and "chats" in sync.folders
    ):
        watched = sync.folders["chats"]  # the server files new chat messages there
    assert watched is not None
    can_idle = imap.has("IDLE")
    if not can_idle:
        status(
            f"{sync.account.address}: the server has no IDLE; checking every {POLL_SECONDS:.0f} s"
        )
    while not stop.is_set():
        # Sync, then wait. Whatever arrives after a folder was synced shows up as an
        # unsolicited update (or a changed UIDNEXT of the watched folder): sync again
        # before waiting, so nothing that came in between is left for the next wake.
        await _report(sync, client, on_event)
        imap.take_updates()
        if sync.selected != watched.name:
            info = await imap.select(watched.name, condstore=imap.has("CONDSTORE"))
            known = sync.folders.get(watched.role)
            if known is not None and info.uidnext != known.uidnext:
                continue
        if imap.take_updates():
            continue
        if can_idle:
            idle = asyncio.create_task(imap.idle(IDLE_SECONDS))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({idle, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if idle not in done:
                idle.cancel()
                try:
                    await idle
                except (asyncio.CancelledError, ImapError):
                    pass
                return
            if not idle.result():
                continue  # IDLE timed out: sync (cheap) and IDLE again
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await stop.wait()
                return
