"""A per-process cache of message rows, kept exact by the store's events (issue 17).

A FETCH reads its messages' rows first (`read_rows`); on PostgreSQL that is a round trip
per command, and most of a busy server's commands are FETCHes of a message or two. This
cache answers those reads from memory.

Why it stays right:
- A row's immutable part (size, INTERNALDATE and its zone, body id, so EMAILID) never
  changes for a (mailbox id, UID): UIDs are never reused and mailbox ids come from a
  sequence. Only flags, keywords and MODSEQ change, and rows go away (expunge, a
  mailbox deleted).
- Every change reaches this process as a store event with absolute values (FlagsChanged
  carries each message's new flags and MODSEQ): its own writes' events and, by
  LISTEN/NOTIFY, the other processes'. The cache listens to the store's event bus, so it
  learns of a change no later than the sessions do. Of a cached message it keeps the
  newest (flags, MODSEQ) known from an event or a database read: a value is applied only
  if its MODSEQ is not below the cached one, so a message's flags and MODSEQ only move
  forward (RFC 7162 §3.1.3; coi.imap.server.selected's invariants), in whatever order
  events of several threads and reads arrive.
- A read from the database is "in flight" from before its query is sent until its rows
  are kept. Expunges, flag changes and other reads of the mailbox seen meanwhile are
  recorded on the flight: an expunged UID is not kept (the read may have started before
  the expunge committed: no row comes back once its expunge event came), and a newer
  flag state wins. A mailbox deleted kills its flights and drops its rows. MessagesAdded
  needs nothing: new UIDs are cached when first read.
- While events may be missed (the LISTEN connection lost, until it is back) the cache
  holds and keeps nothing; losing and regaining it drops everything and starts a new
  generation, so a read started before either never fills the cache.

Bounded: at most `limit` rows per process (least recently used mailboxes out first); a
read of more than half that many rows is not kept. Thread-safe (one lock): events may be
published on any caller's loop; the store fills the cache only from its home loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from coi.store.events import Event, FlagsChanged, MailboxDeleted, MessagesExpunged

# A row as the store reads it: (uid, flag bits, keywords, modseq, size, internaldate,
# tz_minutes, blob_id); shared with the callers, so never changed in place.
Row = tuple[Any, ...]
# flags as (bits, keyword text, modseq)
_State = tuple[int, str, int]

DEFAULT_ROWS = 100_000  # some 30 MB of rows (about 300 bytes each)
_FLIGHT_MAX = 10_000  # changes a flight records before it gives up keeping its rows


class _Flight:
    """A read of one mailbox's rows from the database, under way."""

    __slots__ = ("dead", "generation", "gone", "mailbox_id", "newer")

    def __init__(self, mailbox_id: int, generation: int) -> None:
        self.mailbox_id = mailbox_id
        self.generation = generation
        self.gone: set[int] = set()  # expunged meanwhile
        self.newer: dict[int, _State] = {}  # newest flags seen meanwhile
        self.dead = False  # keeps nothing (the mailbox deleted, too much happened)

    def saw(self, uid: int, state: _State) -> None:
        held = self.newer.get(uid)
        if held is None or held[2] < state[2]:
            if len(self.newer) >= _FLIGHT_MAX:
                self.dead = True
                return
            self.newer[uid] = state


class RowCache:
    """Rows by mailbox and UID, at most `limit` in all (0: keeps nothing)."""

    def __init__(self, limit: int = DEFAULT_ROWS) -> None:
        self.limit = limit
        self.count = 0
        self._boxes: OrderedDict[int, dict[int, Row]] = OrderedDict()
        self._flights: dict[int, list[_Flight]] = {}
        self._generation = 0
        self._enabled = True
        self._lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------

    def lookup(self, mailbox_id: int, uids: Sequence[int]) -> tuple[dict[int, Row], list[int]]:
        """(cached rows by UID, UIDs not cached, ascending as given)."""
        with self._lock:
            box = self._boxes.get(mailbox_id)
            if box is None:
                return {}, list(uids)
            self._boxes.move_to_end(mailbox_id)
            hits: dict[int, Row] = {}
            missing: list[int] = []
            for uid in uids:
                row = box.get(uid)
                if row is None:
                    missing.append(uid)
                else:
                    hits[uid] = row
            return hits, missing

    def watches(self, mailbox_id: int) -> bool:
        """Whether rows of this mailbox are cached or being read (reads elsewhere then
        report what they saw: `observe`)."""
        return mailbox_id in self._boxes or mailbox_id in self._flights

    def start(self, mailbox_id: int) -> _Flight:
        """Registers a read about to be sent to the database; `finish` or `abort` it."""
        with self._lock:
            flight = _Flight(mailbox_id, self._generation)
            self._flights.setdefault(mailbox_id, []).append(flight)
            return flight

    def abort(self, flight: _Flight) -> None:
        with self._lock:
            self._unregister(flight)

    def finish(self, flight: _Flight, rows: Iterable[Row]) -> None:
        """Keeps the rows the flight read, as its recorded changes allow."""
        rows = list(rows)
        with self._lock:
            self._unregister(flight)
            self._observe(flight.mailbox_id, rows)
            if (
                flight.dead
                or not self._enabled
                or flight.generation != self._generation
                or not rows
                or len(rows) * 2 > self.limit
            ):
                return
            box = self._boxes.get(flight.mailbox_id)
            if box is None:
                box = self._boxes[flight.mailbox_id] = {}
            else:
                self._boxes.move_to_end(flight.mailbox_id)
            gone, newer = flight.gone, flight.newer
            added = 0
            for row in rows:
                uid = row[0]
                if uid in gone:
                    continue
                state = newer.get(uid)
                if state is not None and state[2] > row[3]:
                    row = (uid, *state, *row[4:])
                held = box.get(uid)
                if held is None:
                    box[uid] = row
                    added += 1
                elif held[3] < row[3]:
                    box[uid] = row
            self.count += added
            while self.count > self.limit:
                _, dropped = self._boxes.popitem(last=False)
                self.count -= len(dropped)

    def observe(self, mailbox_id: int, rows: Iterable[Row]) -> None:
        """Rows read from the database without filling the cache (the synchronous reads):
        their flags, if newer, update cached rows and flights (they may be shown)."""
        with self._lock:
            self._observe(mailbox_id, rows)

    def _observe(self, mailbox_id: int, rows: Iterable[Row]) -> None:
        box = self._boxes.get(mailbox_id)
        flights = self._flights.get(mailbox_id)
        if box is None and not flights:
            return
        for row in rows:
            uid, modseq = row[0], row[3]
            if box is not None:
                held = box.get(uid)
                if held is not None and held[3] < modseq:
                    box[uid] = (uid, row[1], row[2], modseq, *held[4:])
            if flights:
                for flight in flights:
                    flight.saw(uid, (row[1], row[2], modseq))

    def _unregister(self, flight: _Flight) -> None:
        flights = self._flights.get(flight.mailbox_id)
        if flights is not None and flight in flights:
            flights.remove(flight)
            if not flights:
                del self._flights[flight.mailbox_id]

    # -- changes -------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """A committed change (the store's event bus, in commit order)."""
        if isinstance(event, FlagsChanged):
            self._flags_changed(event)
        elif isinstance(event, MessagesExpunged):
            self._expunged(event.mailbox_id, event.uids)
        elif isinstance(event, MailboxDeleted):
            self.drop(event.mailbox_id)

    def _flags_changed(self, event: FlagsChanged) -> None:
        mailbox_id = event.mailbox_id
        if not self.watches(mailbox_id):
            return
        with self._lock:
            box = self._boxes.get(mailbox_id)
            flights = self._flights.get(mailbox_id)
            for uid, flags, modseq in event.changes:
                state = (flags.bits, flags.keywords_text(), modseq)
                if box is not None:
                    held = box.get(uid)
                    if held is not None and held[3] <= modseq:
                        box[uid] = (uid, *state, *held[4:])
                if flights:
                    for flight in flights:
                        flight.saw(uid, state)

    def _expunged(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not self.watches(mailbox_id):
            return
        with self._lock:
            box = self._boxes.get(mailbox_id)
            if box is not None:
                for uid in uids:
                    if box.pop(uid, None) is not None:
                        self.count -= 1
                if not box:
                    del self._boxes[mailbox_id]
            for flight in self._flights.get(mailbox_id, ()):
                flight.gone.update(uids)

    def drop(self, mailbox_id: int) -> None:
        """Forgets a mailbox (deleted, or its state unknown); its reads under way keep
        nothing."""
        with self._lock:
            box = self._boxes.pop(mailbox_id, None)
            if box is not None:
                self.count -= len(box)
            for flight in self._flights.get(mailbox_id, ()):
                flight.dead = True

    def reset(self, *, enabled: bool) -> None:
        """Forgets everything and starts a new generation (reads under way keep nothing);
        `enabled` False: keeps nothing until reset again (events may be missed)."""
        with self._lock:
            self._boxes.clear()
            self.count = 0
            self._generation += 1
            self._enabled = enabled
