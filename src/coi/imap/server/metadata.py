"""GETMETADATA and SETMETADATA (RFC 5464), server and mailbox entries, /private and /shared.

Invariants: every entry name is checked before anything is read or written (a bad one is
BAD, §3.2); one SETMETADATA is one writer job, all or nothing (§4.3), and the COI side
effects of the COI configuration entries (folder creation) run in that same job; the
tagged OK follows the commit. Each user has their own /private and /shared entries (no
mailbox is shared between users, so "shared" cannot reach another user). After the commit a
`MetadataChanged` event becomes an unsolicited METADATA response (entry names only, §4.4.2)
for the user's other sessions that ENABLEd METADATA (or METADATA-SERVER, for server
entries), sent with their next untagged updates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from coi.imap.server import coi, webpush
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire import mutf7
from coi.imap.wire.encode import astring, quoted
from coi.store.errors import MetadataTooMany
from coi.store.events import REMOTE, ChangesMissed, Event, MetadataChanged

if TYPE_CHECKING:
    from coi.imap.server.server import ImapServer

log = logging.getLogger("coi.imap")

ADMIN = "/shared/admin"  # RFC 5464 §3.2.1.1: read-only server entry
_SCOPES = ("private", "shared")


def check_entry(name: str, *, for_set: bool) -> str:
    """The canonical (lower-case) entry name, or BAD (RFC 5464 §3.2)."""
    if any(not 0x20 <= ord(ch) <= 0x7E for ch in name) or "*" in name or "%" in name:
        raise CommandBad(f"Invalid entry name {name!r}: wildcard, control or non-ASCII character")
    if not name.startswith("/") or name.endswith("/") or "//" in name:
        raise CommandBad(f"Invalid entry name {name!r}: empty component")
    lower = name.lower()
    parts = lower.split("/")[1:]
    if parts[0] not in _SCOPES:
        raise CommandBad(f"Invalid entry name {name!r}: must begin with /private or /shared")
    if for_set and (len(parts) < 2 or (parts[1] == "vendor" and len(parts) < 4)):
        # §3.2: at least 2 components; at least 4 under /private/vendor or /shared/vendor
        raise CommandBad(f"Invalid entry name {name!r}: too few components")
    return lower


def mailbox_id_of(session: Session, name: str) -> int:
    """0 for server entries (""), else the id of an existing mailbox (RFC 5464 §3.3)."""
    if name == "":
        return 0
    invalid = isinstance(name, mutf7.InvalidName)  # no mailbox has such a name
    mailbox = None if invalid else session.store.get_mailbox(session.user_id, name)
    if mailbox is None:
        raise CommandNo(f"Mailbox does not exist: {name}", "NONEXISTENT")
    return mailbox.id


def computed_entries(session: Session) -> dict[str, bytes]:
    """Read-only server entries the server provides rather than stores."""
    out = {coi.MAILBOX_ROOT: coi.settings(session).root.encode("utf-8")}
    out.update(webpush.computed_entries(session))
    if session.config.metadata_admin:
        out[ADMIN] = session.config.metadata_admin.encode("utf-8")
    return out


def under(entry: str, name: str, depth: str) -> bool:
    """Whether `entry` is `name` or below it within `depth` (RFC 5464 §4.2.2)."""
    if entry == name:
        return True
    if depth == "0" or not entry.startswith(name + "/"):
        return False
    return depth == "infinity" or "/" not in entry[len(name) + 1 :]


def wire_mailbox(name: str, utf8: bool = False) -> bytes:
    """Mailbox names in METADATA responses are always quoted, as in RFC 5464 §4.4; in
    UTF-8 once IMAP4rev2 is enabled (RFC 9051 §5.1)."""
    if name == "INBOX" or utf8:
        return quoted(name)
    return quoted(mutf7.encode(name))


def wire_value(value: bytes) -> bytes:
    """Values go as literals (as Dovecot, whose form the coi-server-spec examples show);
    literal8 when they hold NUL (RFC 5464 §5: value = nstring / literal8)."""
    if b"\0" in value:
        return b"~{%d}\r\n" % len(value) + value
    return b"{%d}\r\n" % len(value) + value


async def handle_getmetadata(session: Session, command: cmd.GetMetadata) -> str:
    started = time.perf_counter()
    names = list(dict.fromkeys(check_entry(e, for_set=False) for e in command.entries))
    mailbox_id = mailbox_id_of(session, command.mailbox)
    stored = session.store.get_metadata(session.user_id, mailbox_id, names, command.depth)
    extra = computed_entries(session) if mailbox_id == 0 else {}
    found: dict[str, bytes | None] = {}
    for name in names:  # in the order asked, each name's entries sorted
        if command.depth == "0" and name not in stored and name not in extra:
            # an entry asked for by name that does not exist is NIL (as Dovecot and Cyrus
            # answer); with DEPTH the missing root is left out, as in §4.2.2's example
            found.setdefault(name, None)
        for entry in sorted(e for e in {*stored, *extra} if under(e, name, command.depth)):
            if entry not in found:
                found[entry] = extra[entry] if entry in extra else stored[entry]
    longest = 0
    shown: list[bytes] = []
    for entry, value in found.items():
        if value is None:
            shown.append(astring(entry) + b" NIL")
            continue
        if command.options_maxsize is not None and len(value) > command.options_maxsize:
            longest = max(longest, len(value))  # RFC 5464 §4.2.1
            continue
        shown.append(astring(entry) + b" " + wire_value(value))
    if shown:
        line = (
            b"* METADATA "
            + wire_mailbox(command.mailbox, session.rev2)
            + b" ("
            + b" ".join(shown)
            + b")"
        )
        session.send(line + b"\r\n")
    code = f"[METADATA LONGENTRIES {longest}] " if longest else ""
    # the timing figures of the coi-server-spec example: time spent + time waiting on locks
    return f"{code}Getmetadata completed ({time.perf_counter() - started:.3f} + 0.000 secs)."


async def handle_setmetadata(session: Session, command: cmd.SetMetadata) -> str:
    mailbox_id = mailbox_id_of(session, command.mailbox)
    entries: dict[str, bytes | None] = {}
    for name, value in command.entries:
        entries[check_entry(name, for_set=True)] = value  # a repeated entry: the last wins
    limit = session.config.metadata_max_value
    for name, value in entries.items():
        if mailbox_id == 0 and name == ADMIN:
            raise CommandNo(f"unable to set {ADMIN}", "CANNOT")
        if value is not None and len(value) > limit:
            raise CommandNo("SETMETADATA failed", f"METADATA MAXSIZE {limit}")  # §4.3
    await webpush.check_setmetadata(session, mailbox_id, entries)
    ensure = coi.check_setmetadata(session, mailbox_id, entries)
    try:
        await session.store.set_metadata(
            session.user_id,
            mailbox_id,
            list(entries.items()),
            max_entries=session.config.metadata_max_entries,
            ensure_mailboxes=ensure,
            origin=session,
        )
    except MetadataTooMany:
        raise CommandNo("SETMETADATA failed", "METADATA TOOMANY") from None  # §4.3
    return "SETMETADATA complete"


def unsolicited(mailbox: str, entries: Iterable[str], utf8: bool = False) -> bytes:
    return b"* METADATA " + wire_mailbox(mailbox, utf8) + b" " + b" ".join(map(astring, entries))


def watch(server: ImapServer) -> Callable[[], None]:
    """Turns committed metadata changes into unsolicited METADATA responses (§4.4.2), and
    what changed while events were missed (`ChangesMissed`) into the same responses."""

    def on_event(event: Event) -> None:
        if isinstance(event, ChangesMissed):
            for connection in tuple(server.connections):
                known = connection.session.metadata_entries
                if known is not None:
                    known.missed()
            return
        if not isinstance(event, MetadataChanged):
            return
        lines: dict[bool, bytes] = {}  # by session.rev2: how it spells names
        for connection in tuple(server.connections):
            session = connection.session
            if session.user_id != event.user_id:
                continue
            if session.metadata_entries is not None:
                session.metadata_entries.touched(event)
            if session is not event.origin and not report(session, event, lines):
                return  # the mailbox is gone

    return server.store.events.watch_all(on_event)


def report(session: Session, event: MetadataChanged, lines: dict[bool, bytes]) -> bool:
    """Queues the unsolicited METADATA of `event` for a session that ENABLEd METADATA (or
    METADATA-SERVER, for server entries; §4.1); False when its mailbox no longer exists.
    `lines` keeps the line made for another session (by how it spells names)."""
    wanted = {"METADATA"} if event.mailbox_id else {"METADATA", "METADATA-SERVER"}
    if not wanted & session.enabled:
        return True
    line = lines.get(session.rev2)
    if line is None:
        name = ""
        if event.mailbox_id:
            mailbox = session.store.mailbox_by_id(event.mailbox_id)
            if mailbox is None:
                return False
            name = mailbox.name
        line = lines[session.rev2] = unsolicited(name, event.entries, session.rev2) + b"\r\n"
    session.pending_untagged.append(line)
    if session.idling:
        session.announce(allow_expunge=True)
    return True


class KnownEntries:
    """A user's METADATA entries as one session was last told of them (a hash of each
    value; None for one an event has changed since), kept for a session that gets
    unsolicited METADATA (ENABLE METADATA, or NOTIFY's metadata events): entries changed
    while events were missed (PostgreSQL, LISTEN down) differ when they are read again,
    and are reported as their events would have been (RFC 5464 §4.4.2, RFC 5465 §5.7,
    §5.8). An entry changed by an event since is reported again: twice at most, never
    missed."""

    __slots__ = ("_reading", "_touched", "entries", "session")

    def __init__(self, session: Session, entries: dict[int, dict[str, int | None]]) -> None:
        self.session = session
        self.entries = entries  # mailbox id (0: server) -> entry name -> hash of the value
        self._touched: list[MetadataChanged] | None = None  # events while reading again
        self._reading: asyncio.Future[None] | None = None

    def touched(self, event: MetadataChanged) -> None:
        if self._touched is not None:
            self._touched.append(event)
        names = self.entries.setdefault(event.mailbox_id, {})
        for name in event.entries:
            names[name] = None

    def missed(self) -> None:
        """Reads the entries again (a task: events meanwhile are kept) and reports those
        whose values differ."""
        if self._reading is None:
            self._touched = []
            self._reading = asyncio.ensure_future(self._read_again())

    async def _read_again(self) -> None:
        session = self.session
        try:
            now = await _entries(session)
        except Exception:  # the store unreachable again: what was missed stays missed
            log.exception("reading METADATA again after missed events failed")
            now = None
        touched, self._touched, self._reading = self._touched or [], None, None
        if now is None:
            return
        before, self.entries = self.entries, now
        for event in touched:
            self.touched(event)
        for mailbox_id in sorted(before.keys() | now.keys()):  # a gone mailbox: not reported
            old, new = before.get(mailbox_id, {}), now.get(mailbox_id, {})
            changed = tuple(
                sorted(
                    name
                    for name in old.keys() | new.keys()
                    if (value := old.get(name, _ABSENT)) is None or value != new.get(name, _ABSENT)
                )
            )
            if changed:
                event = MetadataChanged(session.user_id, mailbox_id, changed, REMOTE)
                report(session, event, {})
                if session.notifier is not None:
                    session.notifier.metadata_changed(event)


_ABSENT = object()


async def keep_entries(session: Session) -> None:
    """From now on the session gets unsolicited METADATA: its entries are kept (`KnownEntries`)."""
    if session.metadata_entries is None:
        session.metadata_entries = KnownEntries(session, await _entries(session))


async def _entries(session: Session) -> dict[int, dict[str, int | None]]:
    """Every METADATA entry of the session's user, server and per mailbox, as hashes."""
    store, user_id = session.store, session.user_id
    mailboxes, _ = await store.read_mailboxes(user_id)
    ids = (0, *(m.id for m in mailboxes))
    # every mailbox's read at once: one wait on a networked store, not one per mailbox
    found = await asyncio.gather(
        *(store.read_metadata(user_id, mailbox_id, _ROOTS, "infinity") for mailbox_id in ids)
    )
    return {
        mailbox_id: {name: hash(value) for name, value in values.items()}
        for mailbox_id, values in zip(ids, found, strict=True)
        if values
    }


_ROOTS = tuple(f"/{scope}" for scope in _SCOPES)


ROUTES: dict[type, Route] = {
    cmd.GetMetadata: Route(handle_getmetadata, AUTH),
    cmd.SetMetadata: Route(handle_setmetadata, AUTH),
}
