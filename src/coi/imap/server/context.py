"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): PARTIAL results and UPDATE contexts.

PARTIAL m:n (§4.4) picks results by position in the requested order (mailbox order for
SEARCH, sort order for SORT; `partial.py`, used by `search.extended_result`). CONTEXT
(§4.2) is a hint we take no action on.

UPDATE (§4.3): the searching command's result is kept as a context of the selected
mailbox's view, UIDs in the requested order. Every store event for the mailbox marks the
UIDs it names; when the session next announces mailbox changes (end of a command, IDLE,
NOTIFY) those messages are tested again against the command's search program, and the
differences go out as `* ESEARCH (TAG "t") [UID] REMOVEFROM (...)` before the untagged
EXPUNGE/FETCH/EXISTS responses (so message numbers are still valid, §4.3.4) and `ADDTO`
after them (so new messages' numbers are, §4.3.3). SEARCH contexts use position 0 and
mailbox order; SORT contexts give positions so the client's list stays in sort order
(§4.3.2). Sequence numbers and "$" in the search program are fixed when the command is
received (§4.3, RFC 3501 errata): they become the UIDs they named. Updates end with
CANCELUPDATE (§4.3.5) or when the mailbox is no longer selected (they live on the
view). At most `MAX_UPDATE_CONTEXTS` per session: beyond that the command runs as
without UPDATE and an untagged `NO [NOUPDATE "tag"]` says so (§4.3.1).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from functools import cmp_to_key
from typing import Any

from coi.imap.server import search, sort
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire import search as keys
from coi.imap.wire.encode import quoted
from coi.imap.wire.sequence import SequenceSet, format_sequence
from coi.store.events import Event, FlagsChanged, MessagesAdded, MessagesExpunged
from coi.store.model import stored_flags

MAX_UPDATE_CONTEXTS = 8  # per session (its one selected mailbox)

Criteria = tuple[tuple[str, bool], ...]


# -- UPDATE contexts (§4.3) --------------------------------------------------------------


def _uid_set(uids: Iterable[int]) -> SequenceSet:
    ranges: list[tuple[int | None, int | None]] = []
    for uid in sorted(set(uids)):
        last = ranges[-1][1] if ranges else None
        if last is not None and uid == last + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return SequenceSet(tuple(ranges) or ((0, 0),))  # UID 0 exists nowhere: matches none


def fixed_key(key: keys.SearchKey, view: SelectedMailbox, session: Session) -> keys.SearchKey:
    """The search program with sequence numbers and "$" replaced by the UIDs they name
    now: they are evaluated when the command is received (RFC 5267 §4.3)."""
    if isinstance(key, keys.AndKey):
        return keys.AndKey(tuple(fixed_key(k, view, session) for k in key.keys))
    if isinstance(key, keys.OrKey):
        return keys.OrKey(fixed_key(key.left, view, session), fixed_key(key.right, view, session))
    if isinstance(key, keys.NotKey):
        return keys.NotKey(fixed_key(key.key, view, session))
    if isinstance(key, keys.SequenceKey | keys.UidKey) and key.sequence.saved:
        return keys.UidKey(_uid_set(session.saved_result))
    if isinstance(key, keys.SequenceKey):
        return keys.UidKey(
            _uid_set(view.uids_for_sequences(key.sequence.iter_ranges(view.exists())))
        )
    return key


class UpdateContext:
    """One searching command's result, kept current (RFC 5267 §4.3)."""

    __slots__ = (
        "criteria",
        "dirty",
        "members",
        "predicate",
        "result",
        "rowless",
        "tag",
        "uid",
        "values",
    )

    def __init__(
        self,
        tag: str,
        uid: bool,
        predicate: search.Predicate,
        rowless: bool,
        criteria: Criteria | None,
    ) -> None:
        self.tag = tag
        self.uid = uid  # UIDs in updates, else message numbers (§4.3.2)
        self.predicate = predicate
        self.rowless = rowless  # the program needs flags, numbers and UIDs only
        self.criteria = criteria  # sort criteria; None for SEARCH (mailbox order)
        self.result: list[int] = []  # UIDs, in the requested order
        self.members: set[int] = set()
        self.dirty: set[int] = set()  # UIDs to test again at the next announcement
        self.values: dict[int, tuple[Any, ...]] = {}  # sort key values, as needed


class Contexts:
    """The UPDATE contexts of one selected view; store events mark UIDs dirty
    (`SelectedMailbox.contexts`, called by `MailboxState` before any IDLE push)."""

    __slots__ = ("_added", "by_tag", "session", "view")

    def __init__(self, session: Session, view: SelectedMailbox) -> None:
        self.session = session
        self.view = view
        self.by_tag: dict[str, UpdateContext] = {}
        self._added: dict[str, list[int]] = {}  # computed before the sync, sent after

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessagesAdded | MessagesExpunged):
            uids: Iterable[int] = event.uids
        elif isinstance(event, FlagsChanged):
            uids = [change[0] for change in event.changes]
        else:
            return
        uids = tuple(uids)
        for context in self.by_tag.values():
            context.dirty.update(uids)

    def pending(self) -> bool:
        return any(context.dirty for context in self.by_tag.values())

    def cancel(self, tag: str) -> None:
        self.by_tag.pop(tag, None)
        self._added.pop(tag, None)

    # -- the two halves of an announcement ------------------------------------------------

    def removals(self) -> Iterator[bytes]:
        """Tests the dirty messages again; yields the REMOVEFROM responses (numbered as the
        client knows the mailbox now, before any EXPUNGE) and keeps the additions."""
        for context in self.by_tag.values():
            if not context.dirty:
                continue
            matching = self._matching(context)
            gone = {uid for uid in context.dirty if uid in context.members and uid not in matching}
            fresh = [uid for uid in context.dirty if uid not in context.members and uid in matching]
            context.dirty.clear()
            if fresh:
                self._added[context.tag] = fresh
            if gone:
                line = self._remove(context, gone)
                if line:
                    yield line

    def additions(self) -> Iterator[bytes]:
        """The ADDTO responses, numbered after EXISTS (§4.3.3)."""
        added, self._added = self._added, {}
        for tag, uids in added.items():
            context = self.by_tag.get(tag)
            if context is None:
                continue
            shown = [uid for uid in uids if self.view.seq_of(uid) is not None]
            context.dirty.update(set(uids) - set(shown))  # not numbered yet: next time
            if shown:
                yield self._add(context, shown)

    # -- evaluation ------------------------------------------------------------------------

    def _matching(self, context: UpdateContext) -> set[int]:
        """Which dirty UIDs match the program now (expunged ones never do)."""
        view, session = self.view, self.session
        state = view.state
        present = state.uids
        live = []
        for uid in sorted(context.dirty):
            at = bisect_left(present, uid)
            if at < len(present) and present[at] == uid:
                live.append((uid, at))
        found: set[int] = set()
        if context.rowless:
            bits, keywords = state.flags()
            for uid, at in live:
                flags = stored_flags(bits[at], keywords.get(uid, ""))
                seq = view.seq_of(uid) or 0
                if context.predicate(search.Candidate(session, seq, uid, flags, None)):
                    found.add(uid)
            return found
        rows = session.store.rows(view.mailbox_id, [uid for uid, _ in live])
        for uid, _ in live:
            row = rows.get(uid)
            seq = view.seq_of(uid) or 0
            if row is not None and context.predicate(
                search.Candidate(session, seq, uid, row.flags, row)
            ):
                found.add(uid)
        return found

    def _number(self, context: UpdateContext, uid: int) -> int:
        return uid if context.uid else self.view.seq_of(uid) or 0

    def _line(self, context: UpdateContext, item: str) -> bytes:
        uid = " UID" if context.uid else ""
        return f"* ESEARCH (TAG {quoted(context.tag).decode()}){uid} {item}\r\n".encode()

    def _remove(self, context: UpdateContext, gone: set[int]) -> bytes:
        if context.criteria is None:  # §4.3.4: position 0, in mailbox order
            context.result = [uid for uid in context.result if uid not in gone]
            context.members -= gone
            numbers = sorted(self._number(context, uid) for uid in gone)
            return self._line(context, f"REMOVEFROM (0 {format_sequence(numbers)})")
        pairs: list[str] = []
        kept: list[int] = []
        run: list[int] = []
        start = 0
        for uid in context.result:
            if uid in gone:
                if not run:
                    start = len(kept) + 1  # its position once earlier runs are removed
                run.append(self._number(context, uid))
                continue
            if run:
                pairs.append(f"{start} {sort.ordered_set(run)}")
                run = []
            kept.append(uid)
        if run:
            pairs.append(f"{start} {sort.ordered_set(run)}")
        context.result = kept
        context.members -= gone
        return self._line(context, f"REMOVEFROM ({' '.join(pairs)})")

    def _add(self, context: UpdateContext, fresh: list[int]) -> bytes:
        context.members.update(fresh)
        if context.criteria is None:  # §4.3.3: position 0, mailbox order
            context.result = sorted([*context.result, *fresh])
            numbers = sorted(self._number(context, uid) for uid in fresh)
            return self._line(context, f"ADDTO (0 {format_sequence(numbers)})")
        self._load_values(context, fresh)

        def order(a: int, b: int) -> int:
            return self._compare(context, a, b)

        result = context.result
        for uid in sorted(fresh, key=cmp_to_key(order)):
            lo, hi = 0, len(result)
            while lo < hi:
                mid = (lo + hi) // 2
                if self._compare(context, result[mid], uid) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            result.insert(lo, uid)
        # ascending final positions: each insertion lands where it stays (§4.3.3)
        added = set(fresh)
        pairs: list[str] = []
        run: list[int] = []
        start = 0
        for position, uid in enumerate(result, start=1):
            if uid in added:
                if not run:
                    start = position
                run.append(self._number(context, uid))
            elif run:
                pairs.append(f"{start} {sort.ordered_set(run)}")
                run = []
        if run:
            pairs.append(f"{start} {sort.ordered_set(run)}")
        return self._line(context, f"ADDTO ({' '.join(pairs)})")

    def _load_values(self, context: UpdateContext, uids: Sequence[int]) -> None:
        """Sort key values (RFC 5256 §3, as `sort.sort_rows` computes them) of the UIDs
        not known yet; sort keys never change, so they are kept."""
        assert context.criteria is not None
        wanted = [uid for uid in uids if uid not in context.values]
        if not wanted:
            return
        store = self.session.store
        rows = store.rows(self.view.mailbox_id, wanted)
        metas: dict[int, bytes] = {}
        if any(name not in ("ARRIVAL", "SIZE") for name, _ in context.criteria):
            metas = store.metas([row.blob_id for row in rows.values()])
        for uid in wanted:
            row = rows.get(uid)
            if row is None:  # expunged under us: sorts first, and goes at the next update
                context.values[uid] = ()
                continue
            item = sort.sortable(row, metas.get(row.blob_id))
            context.values[uid] = tuple(sort.KEYS[name](item) for name, _ in context.criteria)

    def _compare(self, context: UpdateContext, a: int, b: int) -> int:
        """Sort order of two UIDs: the criteria, then the message number (UID) order."""
        assert context.criteria is not None
        if a not in context.values or b not in context.values:
            self._load_values(context, [a, b])
        va, vb = context.values[a], context.values[b]
        if va and vb:
            for x, y, (_, reverse) in zip(va, vb, context.criteria, strict=True):
                if x != y:
                    before = x < y
                    return (1 if before else -1) if reverse else (-1 if before else 1)
        elif va != vb:
            return -1 if not va else 1
        return (a > b) - (a < b)


def begin(
    session: Session,
    tag: str,
    uid: bool,
    key: keys.SearchKey,
    criteria: Criteria | None,
    options: tuple[str, ...] | None,
) -> UpdateContext | None:
    """A context for a searching command with RETURN (UPDATE), registered before the
    search runs so no change made meanwhile is missed; None without UPDATE or past the
    limit (then `* NO [NOUPDATE "tag"]`, §4.3.1). BAD for a tag already in use (§4.3)."""
    if not options or "UPDATE" not in options:
        return None
    view = session.require_selected()
    contexts = view.contexts
    if contexts is None:
        contexts = view.contexts = Contexts(session, view)
    if tag in contexts.by_tag:
        raise CommandBad(f"Tag {tag} is in use by an updating search")
    if len(contexts.by_tag) >= MAX_UPDATE_CONTEXTS:
        text = quoted(tag).decode()
        session.untagged(f"NO [NOUPDATE {text}] At most {MAX_UPDATE_CONTEXTS} update contexts")
        return None
    fixed = fixed_key(key, view, session)
    context = UpdateContext(
        tag, uid, search.compile_key(fixed, view, session), not search.needs_row(fixed), criteria
    )
    contexts.by_tag[tag] = context
    return context


def start(session: Session, context: UpdateContext, found: Sequence[int]) -> None:
    """Sets the context's result to what the command returned (UIDs, requested order).
    Messages the client has not been told about yet are tested at the next announcement,
    which sends their EXISTS first."""
    view = session.require_selected()
    context.result = list(found)
    context.members = set(found)
    latest = view.state.uids
    context.dirty.update(latest[bisect_left(latest, view.max_uid() + 1) :])


def abandon(session: Session, context: UpdateContext) -> None:
    """Drops the context of a searching command that failed."""
    view = session.selected
    contexts = view.contexts if view is not None else None
    if contexts is not None and contexts.by_tag.get(context.tag) is context:
        contexts.cancel(context.tag)


async def handle_cancelupdate(session: Session, command: cmd.CancelUpdate) -> str:
    """§4.3.5: no more updates for these tags; NO (cancelling none) if one is unknown."""
    view = session.require_selected()
    contexts = view.contexts
    unknown = [t for t in command.tags if contexts is None or t not in contexts.by_tag]
    if unknown:
        raise CommandNo(f"No updating search with tag {unknown[0]}")
    assert contexts is not None
    for tag in command.tags:
        contexts.cancel(tag)
    return "CANCELUPDATE completed"


ROUTES: dict[type, Route] = {cmd.CancelUpdate: Route(handle_cancelupdate, SELECTED)}
