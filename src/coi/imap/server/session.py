"""The IMAP session state machine: one per connection, one command at a time.

Invariants: a command runs only in the states its dispatch entry allows; every handler
failure is turned into exactly one tagged NO or BAD here (the one catch point); pending
mailbox changes are announced right before each tagged response, never in the middle of
another response; a command's tagged response is written only after its store writes
are durable (the store resolves a write once it is committed).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coi import metrics
from coi.imap.server.errors import Autologout, CommandBad, CommandNo
from coi.imap.server.render import flag_text
from coi.imap.server.selected import MailboxState, SelectedMailbox
from coi.imap.wire import commands as cmd
from coi.imap.wire import mutf7
from coi.imap.wire import search as keys
from coi.imap.wire.encode import mailbox as encode_mailbox
from coi.store.errors import MailboxExists, NoSuchMailbox, StoreError
from coi.store.model import Flags, Mailbox

if TYPE_CHECKING:
    from coi.imap.server.metadata import KnownEntries
    from coi.imap.server.notify import Notifier
    from coi.imap.server.server import ImapServer

_NOTHING_ENABLED: frozenset[str] = frozenset()  # shared: most sessions enable nothing
log = logging.getLogger("coi.imap")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})

Handler = Callable[["Session", Any], Awaitable[str | None]]  # None: already answered


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    states: frozenset[State]


# Commands whose non-UID form must not see EXPUNGE responses (RFC 3501 §7.4.1); SORT
# and THREAD answer with sequence numbers like SEARCH (RFC 5256).
_NO_EXPUNGE = (cmd.Fetch, cmd.Store, cmd.Search, cmd.Sort, cmd.Thread)


def _uses_sequence_numbers(key: keys.SearchKey) -> bool:
    return any(
        isinstance(k, keys.SequenceKey) and not k.sequence.saved  # "$" holds UIDs
        for k in keys.leaves(key)
    )


def _expunge_allowed(command: cmd.Command) -> bool:
    if not isinstance(command, _NO_EXPUNGE):
        return True
    if not command.uid:
        return False
    # RFC 7162 §3.2.10.2 (and RFC 9051 §7.5.1): not during a UID SEARCH that names
    # message sequence numbers
    return not (
        isinstance(command, cmd.Search | cmd.Sort | cmd.Thread)
        and _uses_sequence_numbers(command.key)
    )


class Session:
    # slots: one of these per connection, so no per-instance dict
    __slots__ = (
        "address",
        "command",
        "condstore",
        "config",
        "enabled",
        "idling",
        "in_command",
        "io",
        "metadata_entries",
        "notifier",
        "pending_untagged",
        "saved_result",
        "selected",
        "server",
        "state",
        "store",
        "user_id",
    )

    def __init__(self, server: ImapServer, transport: Transport) -> None:
        self.server = server
        self.config = server.config
        self.store = server.store
        self.io = transport
        self.state = State.NOT_AUTHENTICATED
        self.user_id = 0
        self.address = ""
        self.selected: SelectedMailbox | None = None
        self.enabled = _NOTHING_ENABLED
        self.condstore = False  # a CONDSTORE enabling command was seen (RFC 7162 §3.1)
        self.idling = False
        self.in_command = False
        self.command: cmd.Command | None = None  # the one running, if any
        self.notifier: Notifier | None = None  # NOTIFY SET in effect (RFC 5465)
        # kept while it gets unsolicited METADATA, for changes whose events were missed
        self.metadata_entries: KnownEntries | None = None
        self.saved_result: list[int] = []  # SEARCHRES "$" (RFC 5182), as UIDs
        self.pending_untagged: list[bytes] = []  # e.g. unsolicited METADATA (RFC 5464 §4.4.2)

    # -- output ------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.io.write(data)

    def untagged(self, text: str) -> None:
        self.io.write(b"* " + text.encode("utf-8", "surrogateescape") + b"\r\n")

    # -- capabilities ------------------------------------------------------------

    def plaintext_allowed(self) -> bool:
        return self.io.secure or self.io.loopback or self.config.allow_plaintext_auth

    def capabilities(self) -> list[str]:
        # RFC 9051 Appendix A: both revisions; a client wanting rev2 sends ENABLE IMAP4rev2
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if not self.io.secure and self.server.tls_context is not None:
                caps.append("STARTTLS")
            if self.plaintext_allowed():
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps += [
            "NAMESPACE",
            "ESEARCH",  # RFC 4731
            "SEARCHRES",  # RFC 5182
            "BINARY",  # RFC 3516
            "CONDSTORE",  # RFC 7162
            "QRESYNC",  # RFC 7162
            "SORT",  # RFC 5256
            "SORT=DISPLAY",  # RFC 5957
            "THREAD=ORDEREDSUBJECT",  # RFC 5256
            "THREAD=REFERENCES",  # RFC 5256
            "ESORT",  # RFC 5267
            "CONTEXT=SEARCH",  # RFC 5267 §4: UPDATE, CONTEXT, PARTIAL (context.py)
            "CONTEXT=SORT",
            "NOTIFY",  # RFC 5465
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "MULTIAPPEND",  # RFC 3502: several messages in one APPEND, all or none stored
            "CATENATE",  # RFC 4469: APPEND parts of stored messages by URL (catenate.py)
            "STATUS=SIZE",  # RFC 8438: the sum of the messages' RFC822.SIZE
            "QUOTA",  # RFC 9208, STORAGE only; limits set by the administrator
            "QUOTA=RES-STORAGE",
            "PREVIEW",  # RFC 8970: computed at delivery
            "OBJECTID",  # RFC 8474: MAILBOXID, EMAILID; THREADID is NIL
            "COMPRESS=DEFLATE",  # RFC 4978
            f"APPENDLIMIT={self.config.max_literal}",
            *("METADATA", "METADATA-SERVER", "COI"),  # RFC 5464, coi-server-spec
            *(("WEBPUSH",) if self.server.webpush_keys is not None else ()),  # webpush-spec
        ]
        return caps

    # -- IMAP4rev2 (RFC 9051) ------------------------------------------------------

    @property
    def rev2(self) -> bool:
        """ENABLE IMAP4rev2 was seen: responses follow RFC 9051 from then on (RFC 9051
        §7.2.2, Appendix A); until then they stay exactly as RFC 3501 has them."""
        return "IMAP4REV2" in self.enabled

    def mailbox_name(self, name: str) -> str:
        """A mailbox name as this session's revision spells it: UTF-8 after ENABLE
        IMAP4rev2 (RFC 9051 §5.1), else modified UTF-7 (RFC 3501 §5.1.3; RFC 9051
        Appendix A: no UTF-8 quoted strings before ENABLE IMAP4rev2)."""
        return encode_mailbox(name, utf8=self.rev2).decode("utf-8", "surrogateescape")

    # -- CONDSTORE / QRESYNC (RFC 7162) ------------------------------------------

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """Marks the session CONDSTORE-aware; the first time, with a mailbox selected,
        reports its HIGHESTMODSEQ (RFC 7162 §3.1)."""
        if self.condstore:
            return
        self.condstore = True
        if self.selected is not None:
            self.untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] Highest")

    # -- execution ---------------------------------------------------------------

    async def execute(self, command: cmd.Command) -> None:
        self.in_command = True
        self.command = command
        try:
            await self._execute(command)
        finally:
            self.in_command = False
            self.command = None
        if isinstance(command, cmd.Select) and self.notifier is not None:
            self.notifier.push()  # what came while it ran (`_execute`), now that it is done

    async def _execute(self, command: cmd.Command) -> None:
        tag = command.tag
        route = self.server.routes.get(type(command))
        if route is None:
            self.send_tagged(tag, "BAD Command not implemented")
            return
        if self.state not in route.states:
            self.send_tagged(tag, f"BAD {command.name} not allowed in the {self.state.value} state")
            return
        started = time.perf_counter()
        try:
            text = await route.handler(self, command)
        except CommandNo as exc:
            result = exc.response()
        except CommandBad as exc:
            result = exc.response()
        except NoSuchMailbox:
            result = "NO [NONEXISTENT] No such mailbox"
        except MailboxExists:
            result = "NO [ALREADYEXISTS] Mailbox already exists"
        except StoreError as exc:
            result = f"NO [SERVERBUG] {type(exc).__name__}"
        except (ConnectionError, asyncio.CancelledError, Autologout):
            raise  # the connection ends: no tagged response (RFC 3501 §7.1.5 BYE)
        except Exception:
            log.exception("command %s failed for %s", command.name, self.address or "-")
            result = "NO [SERVERBUG] Internal error; the server log has details"
        else:
            if text is None:
                metrics.command(command.name, "OK", started)
                return
            result = f"OK {text}"
        metrics.command(command.name, result[:3].rstrip(), started)
        if self.state is State.LOGOUT:
            self.send_tagged(tag, result)
            return
        if not isinstance(command, cmd.Select):
            # A SELECT's response is one snapshot (`handle_select`): what came while it ran
            # is announced at the next command (at or above the UIDNEXT it gave). Inside
            # the SELECT's response, a client that fetches by UIDNEXT alone (Delta Chat)
            # takes it for the state it selected, and waits in IDLE for it.
            self.announce(allow_expunge=_expunge_allowed(command))
        self.send_tagged(tag, result)

    def send_tagged(self, tag: str, text: str) -> None:
        if not text.isascii() and not self.rev2:
            # resp-text is 7-bit in RFC 3501 §9; the non-ASCII in it are mailbox names,
            # which a rev1 client knows in modified UTF-7 (§5.1.3)
            try:
                text = mutf7.encode(text)
            except UnicodeEncodeError:  # a lone surrogate: not a name
                text = text.encode("ascii", "backslashreplace").decode("ascii")
        self.io.write(f"{tag} {text}\r\n".encode("utf-8", "surrogateescape"))

    def announce_in_idle(self) -> None:
        """What a session in IDLE is told at each change: everything (RFC 2177)."""
        self.announce(allow_expunge=True)

    def announce(self, *, allow_expunge: bool) -> None:
        """Sends pending mailbox changes as untagged responses."""
        if self.pending_untagged:
            self.io.write(b"".join(self.pending_untagged))
            self.pending_untagged.clear()
        view = self.selected
        contexts = view.contexts if view is not None else None
        if view is not None and (view.pending() or (contexts is not None and contexts.pending())):
            last_uid = view.max_uid()
            # RFC 5267 §4.3.3/§4.3.4: REMOVEFROM before EXPUNGE, ADDTO after EXISTS
            for line in contexts.removals() if contexts is not None else ():
                self.io.write(line)
            for line in view.sync(
                allow_expunge=allow_expunge,
                flag_line=self.flag_update_line,
                vanished=self.qresync,
                condstore=self.condstore,
            ):
                self.io.write(line)
            for line in contexts.additions() if contexts is not None else ():
                self.io.write(line)
            if self.notifier is not None:
                self.notifier.announced(view, last_uid)
        if self.notifier is not None:
            self.notifier.flush()
        if self.idling or not self.in_command:  # nobody else will flush before we wait
            self.io.flush()

    def flag_update_line(self, seq: int, uid: int, flags: Flags, modseq: int) -> bytes:
        recent = self.selected is not None and uid in self.selected.recent
        text = flag_text(flags.bits, flags.keywords_text(), recent)
        # RFC 3501 §7.4.2: UID is optional in unsolicited FETCH; clients tracking by UID need it.
        if self.condstore:  # RFC 7162 §3.1.4.2, §3.2.4
            return b"* %d FETCH (FLAGS %s UID %d MODSEQ (%d))\r\n" % (seq, text, uid, modseq)
        return b"* %d FETCH (FLAGS %s UID %d)\r\n" % (seq, text, uid)

    # -- selection ---------------------------------------------------------------

    def select(self, mailbox: Mailbox, readonly: bool) -> SelectedMailbox:
        self.deselect()
        state = self.server.mailbox_state(mailbox)
        self.selected = SelectedMailbox(
            state, self, readonly, mailbox.highestmodseq, rev2=self.rev2
        )
        self.state = State.SELECTED
        return self.selected

    def deselect(self) -> None:
        if self.selected is not None:
            view = self.selected
            self.selected = None
            view.close()
            self.server.release_mailbox_state(view.state)
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def require_selected(self) -> SelectedMailbox:
        if self.selected is None:
            raise CommandBad("No mailbox selected")
        return self.selected

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None
        self.deselect()
        if self.user_id:
            self.server.logout_user(self.user_id)


class Transport:
    """What a session needs from its connection (kept small so tests can drive sessions)."""

    __slots__ = ()

    secure: bool
    loopback: bool
    peer: str

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Sends what `write` queued, without waiting."""
        raise NotImplementedError

    async def drain(self) -> None:
        raise NotImplementedError

    async def read_line(self) -> bytes | None:
        raise NotImplementedError

    async def start_tls(self) -> None:
        raise NotImplementedError

    def compression(self) -> str | None:
        """The layer that already compresses this connection ("COMPRESS", "TLS"), if any."""
        raise NotImplementedError

    def start_compression(self) -> None:
        """Sends what is queued as it is, then deflates both ways (RFC 4978 §3)."""
        raise NotImplementedError


__all__ = ["ANY", "AUTH", "NOT_AUTH", "SELECTED", "MailboxState", "Route", "Session", "State"]
