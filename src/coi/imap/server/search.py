"""SEARCH (RFC 3501 §6.4.4) with ESEARCH results (RFC 4731) and SEARCHRES (RFC 5182).

A search key tree is compiled once into nested predicates; each message's stored data is
loaded lazily and only if a key needs it (flags and sizes come from the message row,
header and body text from the search data computed at delivery).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from coi.imap.server.errors import CommandBad
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire import search as keys
from coi.imap.wire.encode import quoted
from coi.imap.wire.sequence import format_sequence
from coi.mail.index import load_index
from coi.mail.search import SearchData, fold_for_search, load_search
from coi.store.model import SEEN, SYSTEM_FLAGS, MessageRow


class Candidate:
    """One message under test; expensive data is loaded on first use."""

    __slots__ = ("_data", "_sent", "row", "seq", "session")

    def __init__(self, session: Session, seq: int, row: MessageRow) -> None:
        self.session = session
        self.seq = seq
        self.row = row
        self._data: SearchData | None = None
        self._sent: date | bool | None = False

    @property
    def data(self) -> SearchData:
        if self._data is None:
            blob = self.session.store.search_blob(self.row.blob_id)
            self._data = load_search(blob) if blob else SearchData((), "")
        return self._data

    @property
    def sent(self) -> date | None:
        if self._sent is False:
            meta = self.session.store.meta(self.row.blob_id)
            when = load_index(meta).sent_date if meta else None
            self._sent = when.date() if when else None
        return self._sent if isinstance(self._sent, date) else None


Predicate = Callable[[Candidate], bool]


def _compare(op: str, value: date | None, day: date) -> bool:
    if value is None:
        return False
    if op == "before":
        return value < day
    if op == "on":
        return value == day
    return value >= day


def compile_key(key: keys.SearchKey, view: SelectedMailbox, session: Session) -> Predicate:
    if isinstance(key, keys.AllKey):
        return lambda c: True
    if isinstance(key, keys.AndKey):
        parts = [compile_key(k, view, session) for k in key.keys]
        return lambda c: all(p(c) for p in parts)
    if isinstance(key, keys.OrKey):
        left, right = compile_key(key.left, view, session), compile_key(key.right, view, session)
        return lambda c: left(c) or right(c)
    if isinstance(key, keys.NotKey):
        inner = compile_key(key.key, view, session)
        return lambda c: not inner(c)
    if isinstance(key, keys.FlagKey):
        present = key.present
        if key.flag == "\\Recent":
            return lambda c: (c.row.uid in view.recent) == present
        bit = SYSTEM_FLAGS.get(key.flag)
        if bit is not None:
            return lambda c: bool(c.row.flags.bits & bit) == present
        keyword = key.flag
        return lambda c: (keyword in c.row.flags.keywords) == present
    if isinstance(key, keys.NewKey):
        return lambda c: c.row.uid in view.recent and not c.row.flags.bits & SEEN
    if isinstance(key, keys.OldKey):
        return lambda c: c.row.uid not in view.recent
    if isinstance(key, keys.RecentKey):
        return lambda c: c.row.uid in view.recent
    if isinstance(key, keys.DateKey):
        op, day = key.op, key.day
        if key.field == "internal":
            return lambda c: _compare(op, c.row.internaldate.date(), day)
        return lambda c: _compare(op, c.sent, day)
    if isinstance(key, keys.HeaderKey):
        field, needle = key.field.lower(), fold_for_search(key.value)
        return lambda c: any(
            name == field and needle in fold_for_search(value) for name, value in c.data.headers
        )
    if isinstance(key, keys.BodyKey):
        needle = fold_for_search(key.value)
        return lambda c: needle in fold_for_search(c.data.text)
    if isinstance(key, keys.TextKey):
        needle = fold_for_search(key.value)
        return lambda c: (
            needle in fold_for_search(c.data.text)
            or any(needle in fold_for_search(f"{name}: {value}") for name, value in c.data.headers)
        )
    if isinstance(key, keys.SizeKey):
        size = key.size
        if key.op == "larger":
            return lambda c: c.row.size > size
        return lambda c: c.row.size < size
    if isinstance(key, keys.SequenceKey):
        if key.sequence.saved:
            saved = set(session.saved_result)
            return lambda c: c.row.uid in saved
        count = view.exists()
        ranges = list(key.sequence.iter_ranges(count))
        return lambda c: any(lo <= c.seq <= hi for lo, hi in ranges)
    if isinstance(key, keys.UidKey):
        if key.sequence.saved:
            saved = set(session.saved_result)
            return lambda c: c.row.uid in saved
        ranges = list(key.sequence.iter_ranges(view.max_uid()))
        return lambda c: any(lo <= c.row.uid <= hi for lo, hi in ranges)
    if isinstance(key, keys.ModSeqKey):
        modseq = key.modseq
        return lambda c: c.row.modseq >= modseq
    raise CommandBad(f"Unsupported search key {type(key).__name__}")


def run_search(session: Session, key: keys.SearchKey) -> list[int]:
    """Matching UIDs, ascending."""
    view = session.require_selected()
    predicate = compile_key(key, view, session)
    uids = list(view.uids)
    rows = session.store.rows(view.mailbox_id, uids)
    hits = []
    for seq, uid in enumerate(uids, start=1):
        row = rows.get(uid)
        if row is not None and predicate(Candidate(session, seq, row)):
            hits.append(uid)
    return hits


async def handle_search(session: Session, command: cmd.Search) -> str:
    view = session.require_selected()
    hits = run_search(session, command.key)
    numbers = hits if command.uid else [s for u in hits if (s := view.seq_of(u)) is not None]
    options = command.return_opts
    if options is None:
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers))
        return "SEARCH completed"
    wanted = {o.upper() for o in options} or {"ALL"}
    if "SAVE" in wanted:
        # RFC 5182 §2.4: with MIN and/or MAX but neither ALL nor COUNT, "$" holds only
        # the messages returned as MIN/MAX; otherwise everything found
        saved = hits
        if hits and wanted & {"MIN", "MAX"} and not wanted & {"ALL", "COUNT"}:
            saved = sorted(
                {hits[0] if "MIN" in wanted else hits[-1]}
                | {hits[-1] if "MAX" in wanted else hits[0]}
            )
        session.saved_result = saved
        wanted.discard("SAVE")
        if not wanted:  # RFC 5182 §2.1: SAVE alone produces no ESEARCH response
            return "SEARCH completed"
    parts = [f"(TAG {quoted(command.tag).decode()})"]
    if command.uid:
        parts.append("UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(f"MIN {numbers[0]}")
        if "MAX" in wanted:
            parts.append(f"MAX {numbers[-1]}")
        if "ALL" in wanted:
            parts.append(f"ALL {format_sequence(numbers)}")
    if "COUNT" in wanted:
        parts.append(f"COUNT {len(numbers)}")
    session.untagged("ESEARCH " + " ".join(parts))
    return "SEARCH completed"


ROUTES: dict[type, Route] = {cmd.Search: Route(handle_search, SELECTED)}
