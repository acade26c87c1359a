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
from coi.store.events import Event, MetadataChanged

if TYPE_CHECKING:
    from coi.imap.server.server import ImapServer

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
    """Turns committed metadata changes into unsolicited METADATA responses (§4.4.2)."""

    def on_event(event: Event) -> None:
        if not isinstance(event, MetadataChanged):
            return
        wanted = {"METADATA"} if event.mailbox_id else {"METADATA", "METADATA-SERVER"}
        lines: dict[bool, bytes] = {}  # by session.rev2: how it spells names
        name: str | None = None
        for connection in tuple(server.connections):
            session = connection.session
            if session.user_id != event.user_id or session is event.origin:
                continue
            if not wanted & session.enabled:  # §4.1: only after ENABLE
                continue
            if name is None:
                name = ""
                if event.mailbox_id:
                    mailbox = server.store.mailbox_by_id(event.mailbox_id)
                    if mailbox is None:
                        return
                    name = mailbox.name
            line = lines.get(session.rev2)
            if line is None:
                line = lines[session.rev2] = (
                    unsolicited(name, event.entries, session.rev2) + b"\r\n"
                )
            session.pending_untagged.append(line)
            if session.idling:
                session.announce(allow_expunge=True)

    return server.store.events.watch_all(on_event)


ROUTES: dict[type, Route] = {
    cmd.GetMetadata: Route(handle_getmetadata, AUTH),
    cmd.SetMetadata: Route(handle_setmetadata, AUTH),
}
