"""NOTIFY (RFC 5465): unsolicited responses about the selected and other mailboxes.

Invariants: events come from the store's event bus (`watch_user`), nothing polls; one
listener per session that used NOTIFY SET, removed by NOTIFY NONE and on logout. While
a command runs, responses about other mailboxes are queued and written with the
command's other untagged responses; between commands (and during IDLE) they are
written at once. The selected mailbox's changes go through its view (`announce`), so
they are never reported twice and EXPUNGE/VANISHED keep RFC 3501 §7.4.1 order; with
SELECTED-DELAYED expunges wait for a command that may see them (§6.1.2).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from coi.imap.server import fetch, metadata
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.mailbox import list_line, status_line
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.fetch import FetchAttr
from coi.store.events import (
    ChangesMissed,
    Event,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
)
from coi.store.model import Mailbox

MESSAGE_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "ANNOTATIONCHANGE"})
MAILBOX_EVENTS = frozenset(
    {"MAILBOXNAME", "SUBSCRIPTIONCHANGE", "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"}
)
SUPPORTED = MESSAGE_EVENTS | MAILBOX_EVENTS
_NAME_EVENTS = frozenset({"MAILBOXNAME", "SUBSCRIPTIONCHANGE"})  # LIST responses (§5.4, §5.5)
_METADATA_EVENTS = frozenset({"MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"})  # §5.7, §5.8
_NAMES = {
    "MESSAGENEW": "MessageNew",
    "MESSAGEEXPUNGE": "MessageExpunge",
    "FLAGCHANGE": "FlagChange",
    "ANNOTATIONCHANGE": "AnnotationChange",
    "MAILBOXNAME": "MailboxName",
    "SUBSCRIPTIONCHANGE": "SubscriptionChange",
    "MAILBOXMETADATACHANGE": "MailboxMetadataChange",
    "SERVERMETADATACHANGE": "ServerMetadataChange",
}
_STATUS_ORDER = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")


@dataclass(frozen=True, slots=True)
class _Group:
    filter: str  # personal (also for inboxes), subscribed, subtree, mailboxes
    names: tuple[str, ...]
    events: frozenset[str]

    def covers(self, name: str, subscribed: Callable[[], set[str]]) -> bool:
        if self.filter == "personal":
            return True
        if self.filter == "subscribed":
            return name in subscribed()
        if self.filter == "subtree":
            return any(name == n or name.startswith(n + "/") for n in self.names)
        return name in self.names


class Notifier:
    """One session's NOTIFY SET: what to report and the listener that reports it."""

    def __init__(
        self,
        session: Session,
        selected: frozenset[str],
        delayed: bool,
        fetch_atts: tuple[FetchAttr, ...],
        groups: list[_Group],
        names: tuple[dict[int, str], set[str]] | None = None,
    ) -> None:
        self.session = session
        self.selected = selected  # message events for the selected mailbox
        self.delayed = delayed  # SELECTED-DELAYED
        self.fetch_atts = fetch_atts
        self.groups = groups
        self.queue: list[str] = []
        self.own_new: set[int] = set()  # UIDs this session appended to the selected mailbox
        self._renamed: tuple[str, str] | None = None  # the last rename seen (old, new)
        # the mailboxes (id -> name) and subscriptions as the events told them, kept when
        # name events are asked for: what changed while events were missed is the
        # difference from what is read then
        self._names: dict[int, str] | None = None
        self._subscribed: set[str] = set()
        if names is not None:
            self._names, self._subscribed = names
        self._unwatch = session.store.events.watch_user(session.user_id, self._on_event)

    def close(self) -> None:
        self._unwatch()

    # -- events -------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        self._remember(event)
        session = self.session
        view = session.selected
        if isinstance(event, MessagesAdded | MessagesExpunged | FlagsChanged):
            if view is not None and event.mailbox_id == view.mailbox_id:
                if (
                    isinstance(event, MessagesAdded)
                    and event.origin is session
                    and self.fetch_atts
                    and "MESSAGENEW" in self.selected
                ):
                    self.own_new.update(event.uids)  # RFC 5465 §5.2: no FETCH for those
            elif event.origin is not session:  # §5: not about this client's own doing
                self._mailbox_event(event)
        elif isinstance(event, ChangesMissed):  # what changed unheard
            self._names_missed()
            self.queue.extend(_status_lines(session, self.groups))
        elif self._own(event):
            pass  # RFC 5465 §5: not this client's own CREATE, DELETE, RENAME, (UN)SUBSCRIBE
        elif isinstance(event, MailboxCreated | MailboxDeleted | MailboxRenamed):
            self._name_event(event)
        elif isinstance(event, MetadataChanged):
            self._metadata_event(event)
        elif isinstance(event, SubscriptionChanged) and self._wanted(
            event.name, "SUBSCRIPTIONCHANGE"
        ):
            self.queue.append(list_line(session, event.name))  # §5.5
        self.push()

    def _remember(self, event: Event) -> None:
        """Keeps the names and subscriptions up to date with a name event (this session's
        own too)."""
        names = self._names
        if names is None:
            return
        if isinstance(event, MailboxCreated):
            names[event.mailbox_id] = event.name
        elif isinstance(event, MailboxRenamed):
            names[event.mailbox_id] = event.new_name
        elif isinstance(event, MailboxDeleted):
            names.pop(event.mailbox_id, None)
        elif isinstance(event, SubscriptionChanged):
            if event.subscribed:
                self._subscribed.add(event.name)
            else:
                self._subscribed.discard(event.name)

    def _names_missed(self) -> None:
        """The name events of changes made while events were missed, as they would have
        come (RFC 5465 §5.4, §5.5), from the names read again: a mailbox of a new name
        renamed (its id is kept), a new id created, a gone one deleted."""
        before = self._names
        if before is None:
            return
        store, user_id = self.session.store, self.session.user_id
        now = {m.id: m.name for m in store.list_mailboxes(user_id)}
        subscribed = store.subscriptions(user_id)
        changed = self._subscribed ^ subscribed
        self._names, self._subscribed = now, subscribed
        # renames first, a parent before its inferiors (which then need no LIST of their own)
        for mailbox_id, name in sorted(before.items(), key=lambda item: item[1]):
            if now.get(mailbox_id, name) != name:
                self._name_event(MailboxRenamed(user_id, mailbox_id, name, now[mailbox_id]))
        for mailbox_id, name in sorted(before.items(), key=lambda item: item[1]):
            if mailbox_id not in now:
                self._name_event(MailboxDeleted(user_id, mailbox_id, name))
        for mailbox_id, name in sorted(now.items(), key=lambda item: item[1]):
            if mailbox_id not in before:
                self._name_event(MailboxCreated(user_id, mailbox_id, name))
        for name in sorted(changed):
            line = list_line(self.session, name)
            if self._wanted(name, "SUBSCRIPTIONCHANGE") and line not in self.queue:
                self.queue.append(line)

    def _own(self, event: Event) -> bool:
        """Mailbox events carry no origin: they are this session's if its running
        command is the one that names that mailbox (no other session can create,
        delete or rename the same name at the same time)."""
        running = self.session.command
        if isinstance(event, MailboxCreated):
            return isinstance(running, cmd.Create) and _within(running.mailbox, event.name)
        if isinstance(event, MailboxDeleted):
            return isinstance(running, cmd.Delete) and running.mailbox == event.name
        if isinstance(event, MailboxRenamed):
            return isinstance(running, cmd.Rename) and (
                _within(running.old, event.old_name) or _within(running.new, event.new_name)
            )
        if isinstance(event, SubscriptionChanged):
            return isinstance(running, cmd.Subscribe | cmd.Unsubscribe) and (
                running.mailbox == event.name
            )
        return False

    def push(self) -> None:
        """Between commands and during IDLE, report at once (RFC 5465 §3.1)."""
        session = self.session
        if session.in_command and not session.idling:
            return
        view = session.selected
        if view is not None and self.selected and view.pending():
            expunge = "MESSAGEEXPUNGE" in self.selected and not self.delayed
            session.announce(allow_expunge=expunge or session.idling)
        else:
            self.flush()
            session.io.flush()

    def flush(self) -> None:
        for line in self.queue:
            self.session.untagged(line)
        self.queue.clear()

    def announced(self, view: SelectedMailbox, last_uid: int) -> None:
        """After EXISTS for new messages: their FETCH with the requested items (§5.2)."""
        if not self.fetch_atts or "MESSAGENEW" not in self.selected:
            return
        start = bisect_right(view.uids, last_uid)
        fresh = [uid for uid in view.uids[start:] if uid not in self.own_new]
        self.own_new.clear()
        if not fresh:
            return
        rows = self.session.store.rows(view.mailbox_id, fresh)
        view.state.saw_rows((uid, row.flags, row.modseq) for uid, row in rows.items())
        for line in view.keyword_lines():  # a keyword the rows brought (RFC 3501 §7.2.6)
            self.session.send(line)
        # RFC 9051 Appendix E item 21: every unsolicited FETCH carries UID
        add_uid = self.session.rev2 and not any(a.name == "UID" for a in self.fetch_atts)
        flag_text = fetch.FlagRenderer()
        for uid in fresh:
            row = rows.get(uid)
            seq = view.seq_of(uid)
            if row is None or seq is None:
                continue
            message = fetch.Message(self.session, row)
            flags = flag_text(row.flags, uid in view.recent)
            items = [fetch.render(attr, message, flags) for attr in self.fetch_atts]
            if add_uid:
                items.insert(0, b"UID %d" % uid)
            self.session.send(b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n")

    def _wanted(self, name: str, event: str) -> bool:
        subscribed: set[str] | None = None

        def subs() -> set[str]:
            nonlocal subscribed
            if subscribed is None:
                subscribed = self.session.store.subscriptions(self.session.user_id)
            return subscribed

        return any(event in g.events and g.covers(name, subs) for g in self.groups)

    def metadata_changed(self, event: MetadataChanged) -> None:
        """Entries changed while events were missed (`metadata.KnownEntries`)."""
        self._metadata_event(event)
        self.push()

    def _metadata_event(self, event: MetadataChanged) -> None:
        """RFC 5465 §5.7, §5.8: unsolicited METADATA naming the changed entries."""
        session = self.session
        if event.origin is session:
            return
        if event.mailbox_id == 0:
            if session.enabled & {"METADATA", "METADATA-SERVER"}:
                return  # already reported (RFC 5464 §4.4.2)
            if not any("SERVERMETADATACHANGE" in g.events for g in self.groups):
                return
            name = ""
        else:
            if "METADATA" in session.enabled:
                return
            mailbox = session.store.mailbox_by_id(event.mailbox_id)
            if mailbox is None or not self._wanted(mailbox.name, "MAILBOXMETADATACHANGE"):
                return
            name = mailbox.name
        line = metadata.unsolicited(name, event.entries, session.rev2)
        self.queue.append(line[2:].decode("utf-8", "surrogateescape"))

    def _mailbox_event(self, event: MessagesAdded | MessagesExpunged | FlagsChanged) -> None:
        session = self.session
        mailbox = session.store.mailbox_by_id(event.mailbox_id)
        if mailbox is None:
            return
        if isinstance(event, MessagesAdded):
            kind, items = "MESSAGENEW", ["MESSAGES", "UIDNEXT"]  # §5.2
            if session.condstore:
                items.append("HIGHESTMODSEQ")
        elif isinstance(event, MessagesExpunged):
            kind, items = "MESSAGEEXPUNGE", ["MESSAGES", "UIDNEXT"]  # §5.3
            if session.qresync:
                items.append("HIGHESTMODSEQ")
        else:
            kind, items = "FLAGCHANGE", ["UIDVALIDITY", "UNSEEN"]  # §5.1
            if session.condstore:
                items.append("HIGHESTMODSEQ")
        if self._wanted(mailbox.name, kind):
            self.queue.append(status_line(session, mailbox, _ordered(items)))

    def _name_event(self, event: MailboxCreated | MailboxDeleted | MailboxRenamed) -> None:
        # RFC 5465 §5.4: a LIST response per affected name, OLDNAME for a rename
        if isinstance(event, MailboxRenamed):
            last = self._renamed
            if last is not None and event.old_name.startswith(last[0] + "/"):
                return  # inferiors move with their parent: no events of their own
            self._renamed = (event.old_name, event.new_name)
            if self._wanted(event.new_name, "MAILBOXNAME") or self._wanted(
                event.old_name, "MAILBOXNAME"
            ):
                self.queue.append(list_line(self.session, event.new_name, event.old_name))
            return
        self._renamed = None
        # the mailbox and its direct parent (whose \HasChildren may change) are affected
        names = [event.name]
        if "/" in event.name:
            names.append(event.name.rsplit("/", 1)[0])
        for name in names:
            line = list_line(self.session, name)
            if self._wanted(name, "MAILBOXNAME") and line not in self.queue:
                self.queue.append(line)


def _within(name: str, other: str) -> bool:
    """`other` is `name`, one of its superiors or one of its inferiors."""
    return (
        other == name.rstrip("/")
        or name.startswith(other + "/")
        or other.startswith(name.rstrip("/") + "/")
    )


def _ordered(items: list[str]) -> tuple[str, ...]:
    return tuple(i for i in _STATUS_ORDER if i in items)


# -- the command -------------------------------------------------------------------------


def _check(command: cmd.Notify) -> None:
    assert command.groups is not None
    unknown = {e for g in command.groups for e in g.events} - SUPPORTED
    if unknown:  # RFC 5465 §3.1: NO [BADEVENT] listing what is supported
        names = " ".join(_NAMES[e] for e in sorted(SUPPORTED))
        raise CommandNo(f"Unsupported event {sorted(unknown)[0]}", f"BADEVENT ({names})")
    selectors = [g for g in command.groups if g.filter in ("selected", "selected-delayed")]
    if len(selectors) > 1:
        raise CommandBad("Only one of SELECTED and SELECTED-DELAYED may be given")  # §6.1
    for group in command.groups:
        events = set(group.events)
        if group in selectors and events - MESSAGE_EVENTS:
            raise CommandBad("SELECTED takes message events only")  # §6.1
        if events & {"FLAGCHANGE", "ANNOTATIONCHANGE"} and not events >= {
            "MESSAGENEW",
            "MESSAGEEXPUNGE",
        }:
            raise CommandBad("FlagChange needs MessageNew and MessageExpunge")  # §5
        if len(events & {"MESSAGENEW", "MESSAGEEXPUNGE"}) == 1:
            raise CommandBad("MessageNew and MessageExpunge go together")  # §5


def _status_items(events: set[str]) -> list[str]:
    """RFC 5465 §3.1: what the STATUS indicator's response must hold for these events."""
    items: list[str] = []
    if "MESSAGENEW" in events:
        items += ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    if "MESSAGEEXPUNGE" in events:
        items.append("MESSAGES")
    if events & {"FLAGCHANGE", "ANNOTATIONCHANGE"}:
        items += ["UIDVALIDITY", "HIGHESTMODSEQ"]
    return items


async def handle_notify(session: Session, command: cmd.Notify) -> str:
    if command.groups is None:
        if session.notifier is not None:
            session.notifier.close()
        session.notifier = None
        return "NOTIFY completed"
    _check(command)
    selected: frozenset[str] = frozenset()
    delayed = False
    atts: tuple[FetchAttr, ...] = ()
    groups: list[_Group] = []
    for group in command.groups:
        if group.filter in ("selected", "selected-delayed"):
            selected = frozenset(group.events)
            delayed = group.filter == "selected-delayed"
            atts = group.fetch_atts
        else:
            kind = "personal" if group.filter == "inboxes" else group.filter  # §6.3
            groups.append(_Group(kind, group.mailboxes, frozenset(group.events)))
    if any(g.events & _METADATA_EVENTS for g in groups):
        await metadata.keep_entries(session)  # what changes while events are missed
    names = None
    if any(g.events & _NAME_EVENTS for g in groups):
        mailboxes, subscribed = await session.store.read_mailboxes(session.user_id)
        names = ({m.id: m.name for m in mailboxes}, subscribed)
    if session.notifier is not None:
        session.notifier.close()
    session.notifier = Notifier(session, selected, delayed, atts, groups, names)
    if command.status:
        for line in _status_lines(session, groups):
            session.untagged(line)
    return "NOTIFY completed"


def _status_lines(session: Session, groups: list[_Group]) -> list[str]:
    """STATUS of every mailbox but the selected one whose message events the groups ask
    for (RFC 5465 §3.1: NOTIFY SET STATUS; and after events were missed)."""
    view = session.selected
    subscribed = session.store.subscriptions(session.user_id)
    lines = []
    mailbox: Mailbox
    for mailbox in session.store.list_mailboxes(session.user_id):
        if mailbox.noselect or (view is not None and mailbox.id == view.mailbox_id):
            continue
        events: set[str] = set()
        for group in groups:
            if group.covers(mailbox.name, lambda: subscribed):
                events |= group.events & MESSAGE_EVENTS
        items = _status_items(events)
        if items:
            lines.append(status_line(session, mailbox, _ordered(items)))
    return lines


ROUTES: dict[type, Route] = {cmd.Notify: Route(handle_notify, AUTH)}
