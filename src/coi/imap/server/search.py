"""SEARCH (RFC 3501 §6.4.4) with ESEARCH results (RFC 4731) and SEARCHRES (RFC 5182).

A search key tree is compiled once into nested predicates; each message's stored data is
loaded lazily and only if a key needs it (flags and sizes come from the message row,
header and body text from the search data computed at delivery).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from datetime import date

from coi.imap.server.errors import CommandBad
from coi.imap.server.partial import partial_bounds, partial_option, partial_text
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire import search as keys
from coi.imap.wire.encode import quoted
from coi.imap.wire.sequence import format_sequence
from coi.mail.index import load_index
from coi.mail.search import SearchData, envelope_field, fold_for_search, load_search
from coi.store.model import SEEN, SYSTEM_FLAGS, Flags, MessageRow, stored_flags


class Candidate:
    """One message under test; expensive data is loaded on first use. Keys that look only
    at flags, numbers and UIDs run without the message's row (`row` is then None)."""

    __slots__ = ("_data", "_row", "_sent", "flags", "seq", "session", "uid")

    def __init__(
        self,
        session: Session,
        seq: int,
        uid: int,
        flags: Flags,
        row: MessageRow | None,
        blob: bytes | None = None,
    ) -> None:
        self.session = session
        self.seq = seq
        self.uid = uid
        self.flags = flags
        self._row = row
        self._data: SearchData | None = load_search(blob) if blob else None
        self._sent: date | bool | None = False

    @property
    def row(self) -> MessageRow:
        assert self._row is not None, "a key that needs the row ran without it"
        return self._row

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
_BATCH = 512


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
            return lambda c: (c.uid in view.recent) == present
        bit = SYSTEM_FLAGS.get(key.flag)
        if bit is not None:
            return lambda c: bool(c.flags.bits & bit) == present
        keyword = key.flag
        return lambda c: (keyword in c.flags.keywords) == present
    if isinstance(key, keys.NewKey):
        return lambda c: c.uid in view.recent and not c.flags.bits & SEEN
    if isinstance(key, keys.OldKey):
        return lambda c: c.uid not in view.recent
    if isinstance(key, keys.RecentKey):
        return lambda c: c.uid in view.recent
    if isinstance(key, keys.DateKey):
        op, day = key.op, key.day
        if key.field == "internal":
            return lambda c: _compare(op, c.row.internaldate.date(), day)
        return lambda c: _compare(op, c.sent, day)
    if isinstance(key, keys.HeaderKey):
        field, needle = key.field.lower(), fold_for_search(key.value)
        if key.envelope:
            return _envelope_matcher(field, needle)
        return lambda c: any(name == field and needle in value for name, value in c.data.headers)
    if isinstance(key, keys.BodyKey):
        needle = fold_for_search(key.value)
        return lambda c: needle in c.data.text
    if isinstance(key, keys.TextKey):
        needle = fold_for_search(key.value)
        return lambda c: (
            needle in c.data.text
            or any(needle in f"{name}: {value}" for name, value in c.data.headers)
        )
    if isinstance(key, keys.SizeKey):
        size = key.size
        if key.op == "larger":
            return lambda c: c.row.size > size
        return lambda c: c.row.size < size
    if isinstance(key, keys.SequenceKey):
        if key.sequence.saved:
            saved = set(session.saved_result)
            return lambda c: c.uid in saved
        count = view.exists()
        ranges = list(key.sequence.iter_ranges(count))
        return lambda c: any(lo <= c.seq <= hi for lo, hi in ranges)
    if isinstance(key, keys.UidKey):
        if key.sequence.saved:
            saved = set(session.saved_result)
            return lambda c: c.uid in saved
        ranges = list(key.sequence.iter_ranges(view.max_uid()))
        return lambda c: any(lo <= c.uid <= hi for lo, hi in ranges)
    if isinstance(key, keys.ModSeqKey):
        modseq = key.modseq
        return lambda c: c.row.modseq >= modseq
    if isinstance(key, keys.ObjectIdKey):
        if key.kind == "THREADID":  # RFC 8474 §5.2: no THREADID, so it matches nothing
            return lambda c: False
        wanted, emailid = key.objectid, session.store.emailid
        return lambda c: emailid(c.row.blob_id) == wanted  # RFC 8474 §6
    raise CommandBad(f"Unsupported search key {type(key).__name__}")


def uses_modseq(key: keys.SearchKey) -> bool:
    """True if the key tree has a MODSEQ criterion (RFC 7162 §3.1.5)."""
    return any(isinstance(k, keys.ModSeqKey) for k in keys.leaves(key))


async def search_uids(
    session: Session, key: keys.SearchKey, *, modseq: bool
) -> tuple[list[int], dict[int, int] | None]:
    """UIDs of the matching messages, ascending, and with `modseq` each one's MODSEQ. A
    key of flags, sequence numbers and UIDs alone (SEARCH UNSEEN, every client's) reads
    no rows: building them was most of its cost."""
    if not modseq and not needs_row(key):
        view = session.require_selected()
        return _flag_matches(session, view, compile_key(key, view, session)), None
    rows = await search_rows(session, key)
    return [row.uid for row in rows], {row.uid: row.modseq for row in rows} if modseq else None


def _flag_matches(
    session: Session, view: SelectedMailbox, predicate: Callable[[Candidate], bool]
) -> list[int]:
    """UIDs of the view whose flags (from the mailbox's shared state), sequence number
    and UID match."""
    state = view.state
    bits, keywords = state.flags()
    state_uids = state.uids
    count = len(state_uids)
    hits = []
    at = 0  # where the next UID is looked for first: a search only follows a gap
    for seq, uid in enumerate(view.uids, start=1):
        if at >= count or state_uids[at] != uid:
            at = bisect_left(state_uids, uid, at)
            if at == count or state_uids[at] != uid:
                continue  # expunged, not yet announced to this session
        flags = stored_flags(bits[at], keywords.get(uid, ""))
        if predicate(Candidate(session, seq, uid, flags, None)):
            hits.append(uid)
        at += 1
    return hits


async def search_rows(session: Session, key: keys.SearchKey) -> list[MessageRow]:
    """Rows of the matching messages, by UID (SORT and THREAD need them). The store's
    text narrowing and search data are awaited once per batch, never per message."""
    view = session.require_selected()
    predicate = compile_key(key, view, session)
    store = session.store
    if not needs_row(key):  # flags from the mailbox's shared state; rows of hits only
        hits = _flag_matches(session, view, predicate)
        found = await store.read_rows(view.mailbox_id, hits)
        return [found[uid] for uid in hits if uid in found]
    numbered = list(enumerate(view.uids, start=1))
    needles = text_needles(key)
    if needles:  # only messages whose stored text contains the needles can match
        possible = await store.text_matches(view.mailbox_id, needles)
        numbered = [(seq, uid) for seq, uid in numbered if uid in possible]
    rows = await store.read_rows(view.mailbox_id, [uid for _, uid in numbered])
    text = needs_text(key)
    out = []
    for start in range(0, len(numbered), _BATCH):
        chunk = numbered[start : start + _BATCH]
        # one query per batch for the stored search data, not one per message
        blobs = await store.search_blobs(view.mailbox_id, [uid for _, uid in chunk]) if text else {}
        for seq, uid in chunk:
            row = rows.get(uid)
            if row is not None and predicate(
                Candidate(session, seq, uid, row.flags, row, blobs.get(uid))
            ):
                out.append(row)
    return out


# criteria answered from flags, sequence numbers and UIDs alone
_ROWLESS = (
    keys.AllKey,
    keys.FlagKey,
    keys.NewKey,
    keys.OldKey,
    keys.RecentKey,
    keys.SequenceKey,
    keys.UidKey,
)


def _envelope_matcher(field: str, needle: str) -> Callable[[Candidate], bool]:
    """FROM/TO/CC/BCC (RFC 3501 §6.4.4): the addresses as ENVELOPE sees them; messages
    stored before their search data kept that form fall back to the field's text."""
    parsed = envelope_field(field)

    def match(c: Candidate) -> bool:
        found = False
        for name, value in c.data.headers:
            if name == parsed:
                if needle in value:
                    return True
                found = True
        if found:
            return False
        return any(name == field and needle in value for name, value in c.data.headers)

    return match


def needs_row(key: keys.SearchKey) -> bool:
    """Whether any part of the key looks at more than flags, numbers and UIDs."""
    return not all(isinstance(k, _ROWLESS) for k in keys.leaves(key))


def text_needles(key: keys.SearchKey) -> list[tuple[str, str]]:
    """(where, folded needle) of the text keys the whole key requires (directly or under
    AND): every matching message has each needle in its header lines ("header"), its
    search data ("body") or either ("text")."""
    if isinstance(key, keys.HeaderKey):
        return [("header", fold_for_search(key.value))]
    if isinstance(key, keys.BodyKey):
        return [("body", fold_for_search(key.value))]
    if isinstance(key, keys.TextKey):
        return [("text", fold_for_search(key.value))]
    if isinstance(key, keys.AndKey):
        return [needle for k in key.keys for needle in text_needles(k)]
    return []


def needs_text(key: keys.SearchKey) -> bool:
    """Whether any part of the key looks at header or body text."""
    text = (keys.HeaderKey, keys.BodyKey, keys.TextKey)
    return any(isinstance(k, text) for k in keys.leaves(key))


async def handle_search(session: Session, command: cmd.Search) -> str:
    from coi.imap.server import context  # it builds on this module

    view = session.require_selected()
    with_modseq = uses_modseq(command.key)
    if with_modseq:
        session.enable_condstore()  # RFC 7162 §3.1
    # RFC 5267 §4.3: an UPDATE context watches changes from before the search runs
    update = context.begin(
        session, command.tag, command.uid, command.key, None, command.return_opts
    )
    try:
        hits, modseqs = await search_uids(session, command.key, modseq=with_modseq)
    except BaseException:
        if update is not None:
            context.abandon(session, update)
        raise
    if update is not None:
        context.start(session, update, hits)
    # RFC 7162 §3.1.6, §3.1.10: the highest mod-sequence of what is returned
    highest = max(modseqs.values(), default=0) if modseqs else 0
    numbers = hits if command.uid else [s for u in hits if (s := view.seq_of(u)) is not None]
    options = command.return_opts
    if options is None and session.rev2:
        options = ()  # RFC 9051 §6.4.4: ESEARCH, as for RETURN (ALL), never SEARCH
    if options is None:
        tail = f" (MODSEQ {highest})" if numbers and highest else ""
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + tail)
        return "SEARCH completed"
    extended_result(session, command.tag, command.uid, options, hits, numbers, modseqs)
    return "SEARCH completed"


def extended_result(
    session: Session,
    tag: str,
    uid: bool,
    options: tuple[str, ...],
    found: list[int],
    numbers: list[int],
    modseqs: dict[int, int] | None,
    all_text: Callable[[list[int]], str] = format_sequence,
) -> None:
    """The ESEARCH response of SEARCH/SORT RETURN (...) and its SAVE (RFC 4731, RFC 5182,
    RFC 5267 §3.1) for the UIDs `found` (`modseqs`: the MODSEQ of each, when a MODSEQ
    criterion asks for it): MIN/MAX are the first/last of `found` as ordered by the
    command; PARTIAL (RFC 5267 §4.4) the results at the given positions in that order.
    CONTEXT is a hint (§4.2) and UPDATE asks for no result data (§4.3), as in Dovecot:
    RETURN () and RETURN (CONTEXT) mean ALL, RETURN (UPDATE) gives the TAG alone."""
    partial = partial_option(options)
    wanted = {o.upper() for o in options if not o.startswith("PARTIAL ")} - {"CONTEXT"}
    if not wanted and partial is None:
        wanted = {"ALL"}  # RFC 4731 §3.1
    first_last: list[int] = []
    if found:
        first_last = [found[0]] if "MIN" in wanted else []
        first_last += [found[-1]] if "MAX" in wanted else []
    part: tuple[int, int] = (0, 0)
    if partial is not None:
        part = partial_bounds(len(numbers), partial)
    if "SAVE" in wanted:
        # RFC 5182 §2.4: with MIN and/or MAX but neither ALL nor COUNT, "$" holds only
        # the messages returned as MIN/MAX; otherwise everything found (PARTIAL does not
        # narrow it, as in Dovecot)
        saved = found
        if found and wanted & {"MIN", "MAX"} and not wanted & {"ALL", "COUNT"}:
            saved = first_last
        session.saved_result = sorted(set(saved))
        wanted.discard("SAVE")
        if not wanted and partial is None:  # RFC 5182 §2.1: SAVE alone, no ESEARCH
            return
    parts = [f"(TAG {quoted(tag).decode()})"]
    if uid:
        parts.append("UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(f"MIN {numbers[0]}")
        if "MAX" in wanted:
            parts.append(f"MAX {numbers[-1]}")
        if "ALL" in wanted:
            parts.append(f"ALL {all_text(numbers)}")
    if partial is not None:
        parts.append(partial_text(numbers[part[0] : part[1]], partial, all_text))
    if "COUNT" in wanted:
        parts.append(f"COUNT {len(numbers)}")
    if found and modseqs is not None:
        # RFC 4731 §3.2: with only MIN and/or MAX, of those messages; else of all
        shown = found if wanted & {"ALL", "COUNT"} else first_last
        if partial is not None and not wanted & {"ALL", "COUNT"}:
            shown = [*first_last, *found[part[0] : part[1]]]
        if shown:
            parts.append(f"MODSEQ {max(modseqs[uid] for uid in shown)}")
    session.untagged("ESEARCH " + " ".join(parts))


ROUTES: dict[type, Route] = {cmd.Search: Route(handle_search, SELECTED)}
