"""Per-mailbox shared state and each session's view of its selected mailbox.

Invariants:
- `MailboxState.uids` is the committed UID list; it is replaced, never mutated in place,
  so views can hold the old array until they announce the change.
- Store events arrive on the loop thread in commit order; `MailboxState` applies them to
  its list (and to its flags, once read) and marks every view pending. Events carry
  absolute values, so data read from the store ahead of an event converges when it comes.
  A view turns pending changes into untagged responses only in `sync`, at the end of a
  command or during IDLE (RFC 3501 §7.4.1: no EXPUNGE while a FETCH, STORE or SEARCH
  runs, nor outside a command).
- A commit is visible to reads before the loop publishes its events (on a loaded machine,
  for several commands). Flags a session was shown from such a row (`saw_rows`) become the
  mailbox's current flags at once, and an event older than them brings them instead of
  its own: a message's flags and MODSEQ only move forward for every session (RFC 7162
  §3.1.3; RFC 3501 §7.4.2), whether the next report comes from the shared flags, a
  pending update or the event.
- Mod-sequences (RFC 7162): `SelectedMailbox.modseq` is the highest mod-sequence whose
  changes this session has been told about; it only moves forward in `sync`, once
  nothing (no held-back expunge) below it is still pending, so a HIGHESTMODSEQ we
  report never skips a change the client has not seen.
- Keywords (RFC 3501 §7.2.6): `MailboxState.keywords` grows with every keyword a
  message in the mailbox gets (never shrinks, like the stored list); a view that has not
  announced the latest list sends `* FLAGS` and `* OK [PERMANENTFLAGS]` before any
  response that could show a new keyword.
- \\Recent (RFC 3501 §2.3.2): a new message is recent in exactly one session: the first
  read-write session that has the mailbox selected when it arrives, or else the next one
  to select it. `recent_floor` (persisted) is the highest UID ever handed out as recent;
  with several processes on one store, each claim raises the stored floor at once
  (`Store.take_recent`) and gets only the UIDs above the floor it found.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from coi.imap.wire.encode import flag_list
from coi.imap.wire.sequence import format_sequence
from coi.store.events import (
    REMOTE,
    ChangesMissed,
    Event,
    FlagsChanged,
    MessagesAdded,
    MessagesExpunged,
)
from coi.store.model import Flags, Mailbox, MessageRow, stored_flags
from coi.store.protocol import MailStore

if TYPE_CHECKING:
    from coi.imap.server.context import Contexts

log = logging.getLogger(__name__)

# A session's sets of UIDs (\Recent, expunges not yet told) are usually empty: they all
# start as this one shared empty set (an empty `set` costs 216 bytes per idle connection)
UidSet = set[int] | frozenset[int]
NO_UIDS: frozenset[int] = frozenset()


def _index(uids: Sequence[int], uid: int) -> int | None:
    """Where `uid` is in the ascending `uids`, or None."""
    index = bisect_left(uids, uid)
    return index if index < len(uids) and uids[index] == uid else None


def _without(values: array[int], indices: Sequence[int]) -> array[int]:
    """A copy of `values` without the items at `indices` (ascending), copied a slice at a
    time: an expunge from a mailbox of 100,000 took 10 ms item by item."""
    if not indices:
        return array(values.typecode, values)
    kept = values[: indices[0]]
    for start, end in zip(indices, [*indices[1:], len(values)], strict=True):
        kept.extend(values[start + 1 : end])
    return kept


def with_uids(uids: UidSet, more: Iterable[int]) -> set[int]:
    """`uids` with `more` added: in place when it is a set of its own already."""
    if isinstance(uids, set):
        uids.update(more)
        return uids
    return set(more) if not uids else {*uids, *more}


def without_uids(uids: UidSet, gone: UidSet) -> UidSet:
    """`uids` less `gone`: in place when it is a set of its own already (a session's
    \\Recent may hold a whole big mailbox; a copy per expunge cost 0.3 ms at 100,000)."""
    if uids.isdisjoint(gone):
        return uids
    if isinstance(uids, set):
        uids.difference_update(gone)
        return uids
    return uids - gone


SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class MailboxState:
    def __init__(self, store: MailStore, mailbox: Mailbox) -> None:
        self.store = store
        self.mailbox_id = mailbox.id
        self.uidvalidity = mailbox.uidvalidity
        self.uids: array[int] = store.uids(mailbox.id)
        # above every UID heard of, shown or expunged: a new message of this process's
        # own above it means others' were added unheard (`_added_unheard`)
        self.uidnext = max(mailbox.uidnext, self.uids[-1] + 1 if self.uids else 0)
        self.recent_floor = mailbox.recent_floor
        self.views: list[SelectedMailbox] = []
        self.keywords: tuple[str, ...] = mailbox.keywords  # sorted; for FLAGS, PERMANENTFLAGS
        self.keywords_version = 0  # bumped whenever `keywords` grows
        # Current flags of every message, like an IMAP server's index file: system flag
        # bits aligned with `uids`, keyword text by UID. Read on first use, then kept
        # current from events, so FETCH FLAGS of a whole mailbox reads no rows.
        self._bits: array[int] | None = None
        self._keywords: dict[int, str] = {}
        # the highest MODSEQ whose change this state has applied (events come in commit
        # order), and the flags shown from rows newer than that: uid -> (flags, modseq)
        self.published = mailbox.highestmodseq
        self._ahead: dict[int, tuple[Flags, int]] = {}
        # the mailbox's MODSEQ when `_bits` were read: rows read then may be ahead of
        # events up to it, which are checked against the rows when they come
        self._read_at = 0
        # while the mailbox is read again after events were missed (`_catch_up`): the
        # events that came meanwhile, applied after what the reading found
        self._held: list[Event] | None = None
        self._reading: asyncio.Future[None] | None = None
        # a MODSEQ below which changes may have gone unheard: this process's own change
        # came with a MODSEQ above the next one (others' changes, unheard, came between,
        # while LISTEN was down); what changed above it is read again when it is back
        self._unheard_from: int | None = None
        self._unwatch: Callable[[], None] = store.events.watch_mailbox(mailbox.id, self._on_event)

    def close(self) -> None:
        self._unwatch()

    def claim_recent(self) -> UidSet:
        """UIDs nobody has seen as recent yet; from now on they are the caller's."""
        if not self.uids or self.uids[-1] <= self.recent_floor:
            return NO_UIDS
        return self._claim(self.uids[bisect_left(self.uids, self.recent_floor + 1) :])

    def _claim(self, fresh: Sequence[int]) -> set[int]:
        """Of `fresh` (ascending, above the live floor), the UIDs the caller may show as
        \\Recent: all of them when this process alone serves the store, else those no
        session of another process took first (the store's floor decides)."""
        before = self.store.take_recent(self.mailbox_id, fresh[-1])
        if before is None:
            self._raise_floor(fresh[-1])
            return set(fresh)
        self.recent_floor = max(self.recent_floor, before, fresh[-1])
        return {uid for uid in fresh if uid > before}

    def flags(self) -> tuple[array[int], dict[int, str]]:
        """(system flag bits aligned with `uids`, keyword text by UID)."""
        if self._bits is None:
            self._bits = self._read_flags(self.uids)
            mailbox = self.store.mailbox_by_id(self.mailbox_id)  # read after the rows
            if mailbox is not None:
                self._read_at = mailbox.highestmodseq
        return self._bits, self._keywords

    def _read_flags(self, uids: array[int]) -> array[int]:
        """Bits for `uids` from the store; rows committed but not yet announced by an event
        are skipped, and the event that follows carries their final flags."""
        bits = array("B", bytes(len(uids)))
        index, count = 0, len(uids)
        texts: set[str] = set()
        for uid, flag_bits, keywords in self.store.flag_rows(self.mailbox_id, uids):
            index = bisect_left(uids, uid, index)
            if index == count:
                break
            if uids[index] == uid:
                bits[index] = flag_bits
                if keywords:
                    self._keywords[uid] = keywords
                    texts.add(keywords)
        # a row ahead of its event may carry a keyword not announced yet (RFC 3501 §7.2.6)
        self._learn_keywords({name for text in texts for name in text.split()})
        return bits

    def saw_rows(self, rows: Iterable[tuple[int, Flags, int]]) -> None:
        """(uid, flags, modseq) of rows read from the store to be shown to a session. A row
        newer than the events applied so far is ahead of them: its flags become current
        here (for FETCH from the shared flags) and in every view's pending update."""
        published = self.published
        ahead = self._ahead
        for uid, flags, modseq in rows:
            if modseq <= published:
                continue
            held = ahead.get(uid)
            if held is not None and held[1] >= modseq:
                continue
            ahead[uid] = (flags, modseq)
            if flags.keywords:
                self._learn_keywords(flags.keywords)
            if self._bits is not None and (index := _index(self.uids, uid)) is not None:
                self._set(self._bits, index, uid, flags)
            for view in self.views:
                pending = view.pending_flags.get(uid)
                if pending is not None and pending[1] < modseq:
                    view.pending_flags[uid] = (flags, modseq)

    def saw_row_tuples(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """`saw_rows` for the store's row tuples (uid, flag bits, keywords, modseq, ...)."""
        published = self.published
        self.saw_rows(
            (row[0], stored_flags(row[1], row[2] or ""), row[3])
            for row in rows
            if row[3] > published
        )

    def _newest(self, change: tuple[int, Flags, int]) -> tuple[int, Flags, int]:
        """A flag change from an event, or the newer flags already shown from its row."""
        uid, _, modseq = change
        held = self._ahead.get(uid)
        if held is None:
            return change
        if held[1] > modseq:
            return (uid, *held)
        del self._ahead[uid]
        return change

    def learn_keywords(self, names: Iterable[str]) -> None:
        """Keywords seen in committed rows: a FETCH may read a row whose change has not been
        published yet (its event comes right after the commit), and must announce them."""
        self._learn_keywords(names)

    def _learn_keywords(self, names: Iterable[str]) -> None:
        known = self.keywords
        fresh = [name for name in names if name not in known]
        if fresh:
            self.keywords = tuple(sorted({*known, *fresh}))
            self.keywords_version += 1

    def _raise_floor(self, uid: int) -> None:
        self.recent_floor = uid
        task = asyncio.ensure_future(self.store.claim_recent(self.mailbox_id, uid))
        task.add_done_callback(_ignore_result)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ChangesMissed) and self._held is None:
            self._held = []
            self._reading = asyncio.ensure_future(self._catch_up())
            return
        if self._held is not None:  # (a second ChangesMissed: read again after this)
            self._held.append(event)
            return
        self._apply(event)

    def _apply(self, event: Event) -> None:
        modseq = 0
        origin: object = REMOTE
        if isinstance(event, MessagesAdded | MessagesExpunged):
            modseq, origin = event.modseq, event.origin
        elif isinstance(event, FlagsChanged):
            modseq = max((change[2] for change in event.changes), default=0)
            origin = event.origin
        if modseq > self.published + 1 and origin is not REMOTE and self._unheard_from is None:
            self._unheard_from = self.published  # (it only grows: the first is the lowest)
        for view in self.views:
            if modseq > view.pending_modseq:
                view.pending_modseq = modseq
        self._on_change(event)
        if modseq > self.published:
            self.published = modseq
            if self._ahead:  # applied now: the event carried them (or newer)
                self._ahead = {u: a for u, a in self._ahead.items() if a[1] > modseq}
        for view in tuple(self.views):
            if view.contexts is not None:  # RFC 5267 §4.3 UPDATE: test these UIDs again
                view.contexts.on_event(event)
            if view.notify is not None:
                view.notify()

    async def _catch_up(self) -> None:
        """Changes committed while this process heard no events (`ChangesMissed`): read
        again by MODSEQ (what changed and what was expunged since the last change applied
        here, on indexes), applied as the events would have been (flag changes, expunges,
        new messages), then the events held meanwhile, which find nothing left to do for
        the same changes."""
        held: list[Event] = []
        try:
            published = self.published
            if self._unheard_from is not None:  # own changes of the gap came first
                published, self._unheard_from = min(published, self._unheard_from), None
            gone = await self.store.vanished_since(self.mailbox_id, published)
            rows = await self.store.changed_since(self.mailbox_id, published)
            mailbox = self.store.mailbox_by_id(self.mailbox_id)  # read last: newest MODSEQ
            if mailbox is not None:
                held = self._missed(mailbox, gone, rows)
        except Exception:  # the store unreachable again: what was missed stays missed
            log.exception("mailbox %d: reading what changed unheard failed", self.mailbox_id)
        held += self._held or []
        self._held = self._reading = None
        for event in held:
            self._on_event(event)

    def _missed(self, mailbox: Mailbox, expunged: list[int], rows: list[MessageRow]) -> list[Event]:
        """The events that would have brought these changes to this state."""
        uids = self.uids
        last = uids[-1] if uids else 0
        gone = tuple(uid for uid in expunged if _index(uids, uid) is not None)
        changes = tuple(
            (row.uid, row.flags, row.modseq) for row in rows if _index(uids, row.uid) is not None
        )
        added = [row for row in rows if row.uid > last]
        if len(changes) + len(added) < len(rows):
            # below the last UID shown, but never heard of (own new messages of the gap
            # read those below them first: `_added_unheard`): shown at the sessions' next
            # SELECT, as UIDs may not go back
            log.warning("mailbox %d: messages added unheard below UID %d", mailbox.id, last)
        newest = max((row.modseq for row in rows), default=0)
        modseq = max(mailbox.highestmodseq, self.published, newest)
        user, box = mailbox.user_id, mailbox.id
        events: list[Event] = []
        if changes:
            events.append(FlagsChanged(user, box, changes, REMOTE))
        if gone:
            events.append(MessagesExpunged(user, box, gone, modseq, REMOTE))
        if added:
            uids_added = tuple(row.uid for row in added)
            flags = tuple(row.flags for row in added)
            events.append(MessagesAdded(user, box, uids_added, modseq, REMOTE, flags))
        return events

    def _on_change(self, event: Event) -> None:
        if isinstance(event, MessagesAdded):
            given = event.flags  # the writer's flags of the new messages, if it sent them
            if given is not None:
                self._learn_keywords({name for flags in given for name in flags.keywords})
            else:  # the stored list has every keyword the new messages came with
                mailbox = self.store.mailbox_by_id(self.mailbox_id)
                if mailbox is not None and mailbox.keywords != self.keywords:
                    self._learn_keywords(mailbox.keywords)
            if event.uids and event.uids[0] > self.uidnext and event.origin is not REMOTE:
                self._added_unheard(event)
            self.uidnext = max(self.uidnext, event.uids[-1] + 1 if event.uids else 0)
            last = self.uids[-1] if self.uids else 0
            fresh = [uid for uid in event.uids if uid > last]
            if fresh:
                grown = array("I", self.uids)
                grown.extend(fresh)
                self.uids = grown
                if self._bits is not None and given is not None:
                    index = len(self._bits)
                    self._bits.extend(bytes(len(fresh)))
                    for uid, flags in zip(event.uids, given, strict=True):
                        if uid > last:
                            uid, flags, _ = self._newest((uid, flags, event.modseq))
                            self._set(self._bits, index, uid, flags)
                            index += 1
                elif self._bits is not None:
                    self._bits.extend(self._read_flags(array("I", fresh)))
                # an IMAP4rev2 session has no \Recent (RFC 9051 §2.3.2): not an owner
                owner = next((v for v in self.views if not v.readonly and not v.rev2), None)
                unclaimed = [uid for uid in fresh if uid > self.recent_floor]
                if owner is not None and unclaimed:
                    owner.recent = with_uids(owner.recent, self._claim(unclaimed))
            for view in self.views:
                view.has_new = True
        elif isinstance(event, MessagesExpunged):
            gone = set(event.uids)
            uids = self.uids
            at = [i for uid in sorted(gone) if (i := _index(uids, uid)) is not None]
            if self._bits is not None:
                self._bits = _without(self._bits, at)
                for uid in gone:
                    self._keywords.pop(uid, None)
            self.uids = _without(uids, at)  # a new array: views may still hold the old one
            for view in self.views:
                view.pending_expunged = with_uids(view.pending_expunged, gone)
                if not view.expunge_modseq:
                    view.expunge_modseq = event.modseq
        elif isinstance(event, FlagsChanged):
            changes = event.changes
            if self.published < self._read_at and self._bits is not None:
                # `_bits` may hold a newer state of these messages than this event: the
                # rows, read again, are at least as new as both
                self.saw_row_tuples(
                    self.store.row_tuples(self.mailbox_id, sorted(c[0] for c in changes))
                )
            if self._ahead:
                changes = tuple(self._newest(change) for change in changes)
            for _, flags, _ in changes:
                if flags.keywords:
                    self._learn_keywords(flags.keywords)
            if self._bits is not None:
                self._apply_flags(self._bits, changes)
            for view in self.views:
                pending = view.pending_flags
                if event.origin is view.session:
                    # Its own change needs no report, but an older change by someone else
                    # still pending must go out with this newer state, never the stale
                    # one (RFC 7162 §3.1.3: MODSEQ never goes backwards for a client).
                    if pending:
                        for uid, flags, modseq in changes:
                            if uid in pending:
                                pending[uid] = (flags, modseq)
                    continue
                for uid, flags, modseq in changes:
                    pending[uid] = (flags, modseq)

    def _added_unheard(self, own: MessagesAdded) -> None:
        """This process's own new messages come above UIDs it never heard of: other
        processes added them while its events were missed (PostgreSQL, LISTEN down), and
        its own write, with nothing to wait for, came first. They are read and applied
        before it, as UIDs shown may never go back (RFC 3501 §2.3.1.1)."""
        start, self.uidnext = self.uidnext, own.uids[0]
        rows = self.store.rows(self.mailbox_id, range(start, own.uids[0]))
        if rows:
            found = sorted(rows.values(), key=lambda row: row.uid)
            uids = tuple(row.uid for row in found)
            modseq = max(row.modseq for row in found)
            flags = tuple(row.flags for row in found)
            self._apply(MessagesAdded(own.user_id, own.mailbox_id, uids, modseq, REMOTE, flags))

    def _apply_flags(self, bits: array[int], changes: Iterable[tuple[int, Flags, int]]) -> None:
        uids = self.uids
        for uid, flags, _ in changes:
            if (index := _index(uids, uid)) is not None:
                self._set(bits, index, uid, flags)

    def _set(self, bits: array[int], index: int, uid: int, flags: Flags) -> None:
        bits[index] = flags.bits
        if flags.keywords:
            self._keywords[uid] = flags.keywords_text()
        else:
            self._keywords.pop(uid, None)


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class SelectedMailbox:
    """One session's numbered view of a mailbox (message sequence number n is uids[n-1])."""

    # slots: one of these per idle connection, so no per-instance dict
    __slots__ = (
        "contexts",
        "expunge_modseq",
        "has_new",
        "keywords_version",
        "modseq",
        "notify",
        "pending_expunged",
        "pending_flags",
        "pending_modseq",
        "readonly",
        "recent",
        "rev2",
        "session",
        "state",
        "uids",
    )

    def __init__(
        self,
        state: MailboxState,
        session: object,
        readonly: bool,
        modseq: int = 0,
        *,
        rev2: bool = False,
    ) -> None:
        self.state = state
        self.session = session
        self.readonly = readonly
        # IMAP4rev2 enabled (RFC 9051 §2.3.2, Appendix E item 12): no \Recent and no
        # RECENT response, and the view takes no message's \Recent from rev1 sessions
        self.rev2 = rev2
        self.uids: array[int] = state.uids
        self.recent: UidSet = NO_UIDS if readonly or rev2 else state.claim_recent()
        if readonly and not rev2:  # EXAMINE shows \Recent without taking it (RFC 3501 §6.3.2)
            start = bisect_left(self.uids, state.recent_floor + 1)
            self.recent = set(self.uids[start:])
        self.pending_expunged: UidSet = NO_UIDS
        self.pending_flags: dict[int, tuple[Flags, int]] = {}
        self.has_new = False
        self.keywords_version = state.keywords_version
        self.modseq = modseq  # HIGHESTMODSEQ as this session knows it
        self.expunge_modseq = 0  # mod-sequence of the oldest expunge not yet announced
        self.pending_modseq = modseq
        # Set while the session is in IDLE: called right after each change is applied.
        self.notify: Callable[[], None] | None = None
        self.contexts: Contexts | None = None  # searches with RETURN (UPDATE), RFC 5267
        state.views.append(self)

    @property
    def mailbox_id(self) -> int:
        return self.state.mailbox_id

    def close(self) -> None:
        self.state.views.remove(self)

    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        index = _index(self.uids, uid)
        return None if index is None else index + 1

    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def uids_for_sequences(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """UIDs of the given sequence-number ranges (out-of-range numbers are left out)."""
        count = len(self.uids)
        slices = [
            self.uids[max(lo, 1) - 1 : min(hi, count)]
            for lo, hi in ranges
            if max(lo, 1) <= min(hi, count)
        ]
        if len(slices) == 1:  # one range (1:*, a:b): already ascending and distinct
            return slices[0].tolist()
        return sorted({uid for part in slices for uid in part})

    def uids_in_ranges(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """UIDs of this view within the given UID ranges."""
        slices = [
            self.uids[bisect_left(self.uids, lo) : bisect_left(self.uids, hi + 1)]
            for lo, hi in ranges
        ]
        if len(slices) == 1:  # one range: already ascending and distinct
            return slices[0].tolist()
        return sorted({uid for part in slices for uid in part})

    def pending(self) -> bool:
        return bool(
            self.pending_expunged
            or self.pending_flags
            or self.has_new
            or self.pending_modseq > self.modseq
            or self.keywords_version != self.state.keywords_version
        )

    def flags_line(self) -> bytes:
        """`* FLAGS` with the mailbox's keywords (RFC 3501 §7.2.6)."""
        return b"* FLAGS %s\r\n" % flag_list((*SYSTEM_FLAGS, *self.state.keywords))

    def permanentflags_line(self, text: bytes = b"Flags permitted") -> bytes:
        """`* OK [PERMANENTFLAGS]` (RFC 3501 §7.1): none in a read-only view."""
        names = () if self.readonly else (*SYSTEM_FLAGS, *self.state.keywords, "\\*")
        return b"* OK [PERMANENTFLAGS %s] %s\r\n" % (flag_list(names), text)

    def keyword_lines(self) -> Iterator[bytes]:
        """FLAGS and PERMANENTFLAGS again when the mailbox got keywords this session has not
        been told about; sent before any FETCH that could show one."""
        if self.keywords_version != self.state.keywords_version:
            self.keywords_version = self.state.keywords_version
            yield self.flags_line()
            yield self.permanentflags_line()

    def sync(
        self,
        *,
        allow_expunge: bool,
        flag_line: Callable[[int, int, Flags, int], bytes],
        vanished: bool = False,
        condstore: bool = False,
    ) -> Iterator[bytes]:
        """Untagged responses that bring the client's view up to date, in a legal order.

        With `vanished` (QRESYNC enabled), expunges are reported as one `VANISHED`
        response of UIDs instead of `EXPUNGE` responses (RFC 7162 §3.2.10.2)."""
        flags_sent = bool(self.pending_flags)
        yield from self.keyword_lines()
        yield from self._sync(allow_expunge, flag_line, vanished)
        if not self.pending_expunged:
            self.expunge_modseq = 0
            if self.pending_modseq > self.modseq:
                self.modseq = self.pending_modseq
        elif condstore and flags_sent:
            # RFC 7162 §3.2: FETCH ... MODSEQ went out while an older expunge is held back;
            # a HIGHESTMODSEQ below that expunge keeps a resync from skipping it
            yield b"* OK [HIGHESTMODSEQ %d] Expunges pending\r\n" % max(
                self.modseq, self.expunge_modseq - 1
            )

    def _sync(
        self,
        allow_expunge: bool,
        flag_line: Callable[[int, int, Flags, int], bytes],
        vanished: bool,
    ) -> Iterator[bytes]:
        if self.pending_flags:
            for uid, (flags, modseq) in sorted(self.pending_flags.items()):
                if uid in self.pending_expunged:
                    continue
                seq = self.seq_of(uid)
                if seq is not None:
                    yield flag_line(seq, uid, flags, modseq)
            self.pending_flags.clear()
        if self.pending_expunged and allow_expunge:
            positions = sorted(
                (seq for uid in self.pending_expunged if (seq := self.seq_of(uid)) is not None),
                reverse=True,  # highest first: each number stays valid as earlier ones go
            )
            if vanished:
                if positions:
                    gone = sorted(self.uids[seq - 1] for seq in positions)
                    yield b"* VANISHED %s\r\n" % format_sequence(gone).encode()
            else:
                for seq in positions:
                    yield b"* %d EXPUNGE\r\n" % seq
            self.recent = without_uids(self.recent, self.pending_expunged)
            self.pending_expunged = NO_UIDS
            before = len(self.uids) - len(positions)
            self.uids = self.state.uids
            self.has_new = False
            if len(self.uids) != before:
                yield from self._exists_lines()
            return
        if self.has_new:
            self.has_new = False
            last = self.uids[-1] if self.uids else 0
            latest = self.state.uids
            if latest and latest[-1] > last:
                grown = array("I", self.uids)
                grown.extend(latest[bisect_left(latest, last + 1) :])
                self.uids = grown
                yield from self._exists_lines()

    def _exists_lines(self) -> Iterator[bytes]:
        yield b"* %d EXISTS\r\n" % len(self.uids)
        if not self.rev2:  # RFC 9051 §7.4.1: EXISTS alone
            yield b"* %d RECENT\r\n" % self.recent_count()

    def recent_count(self) -> int:
        return len(self.recent)
