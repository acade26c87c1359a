"""FETCH (RFC 3501 §6.4.5) with BINARY (RFC 3516) and PREVIEW (RFC 8970).

Everything FETCH returns was computed when the message was stored (coi.mail): envelope,
body structure and section offsets come from the stored index, body bytes are sliced
from the stored raw message, the preview text is read from its table. Nothing is parsed
here, except the preview of a message stored before previews were kept, asked for
without LAZY (RFC 8970 §4.1): computed once from the stored message, then kept.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import replace
from operator import itemgetter
from typing import Any

from coi.imap.server import rev2, sync
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.message import resolve
from coi.imap.server.render import flag_text, internal_date_text
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.encode import string
from coi.imap.wire.fetch import FetchAttr
from coi.mail.index import (
    MessageIndex,
    index_message,
    load_index,
    load_summary,
    nstring,
    served_form,
)
from coi.mail.preview import preview_text
from coi.mail.sections import decoded_part, section_bytes
from coi.store.model import SEEN, Flags, MessageRow

_DRAIN_BYTES = 256 * 1024
_BODY_ITEMS = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"})
_CHUNK_MESSAGES = 256  # bodies read at once by a FETCH ...
_CHUNK_BYTES = 4 * 1024 * 1024  # ... and about this many octets of them

# FETCH items answered from the message's row alone, without its body or index: each
# one's text, and its value's place in a line's values (seq, uid, flags, modseq, size,
# date, emailid), or None
_ROW_ITEMS: dict[str, tuple[bytes, int | None]] = {
    "UID": (b"UID %d", 1),
    "FLAGS": (b"FLAGS %s", 2),
    "MODSEQ": (b"MODSEQ (%d)", 3),
    "RFC822.SIZE": (b"RFC822.SIZE %d", 4),
    "INTERNALDATE": (b"INTERNALDATE %s", 5),
    "EMAILID": (b"EMAILID (%s)", 6),  # RFC 8474 §5.3
    "THREADID": (b"THREADID NIL", None),  # RFC 8474 §5.2: no threading: NIL for each
}


# the response line template of each list of row items asked for, e.g. (UID FLAGS), with
# the getter that picks its values, in order, from a line's values (positional fields
# cost two thirds of named ones)
_TEMPLATES: dict[tuple[str, ...], tuple[bytes, Callable[[tuple[object, ...]], Any]]] = {}


def _marks_seen(attr: FetchAttr) -> bool:
    if attr.name in ("RFC822", "RFC822.TEXT"):
        return True
    return attr.name in ("BODY", "BINARY") and attr.section is not None and not attr.peek


class Message:
    """One message's data, loaded at most once per FETCH and only as far as needed."""

    __slots__ = (
        "_blob",
        "_computed",
        "_index",
        "_meta",
        "_previews",
        "_raw",
        "_served",
        "_summary",
        "row",
        "session",
    )

    def __init__(
        self,
        session: Session,
        row: MessageRow,
        meta: bytes | None = None,
        previews: dict[int, str] | None = None,
        computed: dict[int, str] | None = None,
        blob: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.session = session
        self.row = row
        self._blob = blob  # (raw, stored index), when FETCH read many at once
        self._raw: bytes | None = None
        self._index: MessageIndex | None = None
        self._meta = meta  # the stored index, when FETCH read many at once
        self._served: tuple[bytes, MessageIndex] | None = None
        self._previews = previews  # stored previews by blob, when FETCH read many at once
        self._computed = computed  # previews computed here, for the caller to keep
        self._summary: tuple[bytes, bytes, bytes] | None = None

    def _gone(self) -> CommandNo:
        return CommandNo("Message was expunged meanwhile", "EXPUNGEISSUED")

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            blob = self._blob or self.session.store.blob(self.row.blob_id)
            if blob is None:
                raise self._gone()
            self._raw = blob[0]
            if self._index is None:
                self._index = load_index(blob[1])
        return self._raw

    @property
    def index(self) -> MessageIndex:
        if self._index is None:
            meta = self._meta or self.session.store.meta(self.row.blob_id)
            if meta is None:
                raise self._gone()
            self._index = load_index(meta)
        return self._index

    def served(self) -> tuple[bytes, MessageIndex]:
        """What BODY[...] and RFC822 cut from: the stored message, or for one holding NUL
        its served form and that form's index (RFC 3516 §6; rebuilt only for those rare
        messages, whose RFC822.SIZE and BODYSTRUCTURE were computed at APPEND)."""
        if self._served is None:
            raw, index = self.raw, self.index
            served = served_form(raw, index) if index.served else None
            self._served = (raw, index) if served is None else (served, index_message(served))
        return self._served

    def preview(self, lazy: bool) -> str | None:
        """The PREVIEW text (RFC 8970 §3); None (NIL) only for LAZY when it was not
        computed at delivery (a message stored before previews were kept, §4.1)."""
        blob_id = self.row.blob_id
        if self._previews is None:
            self._previews = self.session.store.previews([blob_id])
        text = self._previews.get(blob_id)
        if text is None and not lazy:
            text = self._previews[blob_id] = preview_text(self.raw, self.index)
            if self._computed is not None:
                self._computed[blob_id] = text
        return text

    def summary(self) -> tuple[bytes, bytes, bytes]:
        """(ENVELOPE, BODY, BODYSTRUCTURE) without building the part tree when possible;
        read once per message, however many of the three the FETCH asks for."""
        if self._summary is None:
            if self._index is None and self._meta is not None:
                self._summary = load_summary(self._meta)
            else:
                index = self.index
                self._summary = (index.envelope, index.body, index.bodystructure)
        return self._summary


def _body_item(attr: FetchAttr) -> bool:
    """Whether the item is cut from the message itself (not from its stored index)."""
    return attr.name in _BODY_ITEMS or (attr.name == "BODY" and attr.section is not None)


class _Bodies:
    """The bodies a FETCH sends, read a chunk at a time (`Store.blobs`): one query per
    chunk instead of one per message, which a networked store pays a round trip for; a
    chunk holds at most _CHUNK_MESSAGES messages and about _CHUNK_BYTES octets."""

    def __init__(self, session: Session, rows: dict[int, MessageRow], uids: list[int]) -> None:
        self.session = session
        self.rows = rows
        self.uids = uids
        self.end = 0  # index in `uids` after the last one read
        self.chunk: dict[int, tuple[bytes, bytes]] = {}

    async def get(self, index: int, row: MessageRow) -> tuple[bytes, bytes] | None:
        if index >= self.end:
            ids: list[int] = []
            size = 0
            at = index
            while at < len(self.uids) and len(ids) < _CHUNK_MESSAGES:
                ahead = self.rows.get(self.uids[at])
                if ahead is not None:
                    if ids and size + ahead.size > _CHUNK_BYTES:
                        break
                    ids.append(ahead.blob_id)
                    size += ahead.size
                at += 1
            self.end = at
            self.chunk = await self.session.store.blobs(ids)
        return self.chunk.get(row.blob_id)


def _summary_item(attr: FetchAttr) -> bool:
    return attr.name in ("ENVELOPE", "BODYSTRUCTURE") or (
        attr.name == "BODY" and attr.section is None
    )


def _partial(data: bytes, attr: FetchAttr) -> bytes:
    if attr.partial is None:
        return data
    origin, count = attr.partial
    return data[origin : origin + count]


class FlagRenderer:
    """`(FLAGS ...)` bytes of a `Flags` (kept for callers holding `Flags` objects)."""

    __slots__ = ()

    def __call__(self, flags: Flags, recent: bool) -> bytes:
        return flag_text(flags.bits, flags.keywords_text(), recent)


def render(attr: FetchAttr, message: Message, flags: bytes) -> bytes:
    name = attr.name
    row = message.row
    if name == "UID":
        return b"UID %d" % row.uid
    if name == "FLAGS":
        return b"FLAGS " + flags
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internal_date_text(row.internal_ts, row.tz_minutes)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % row.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % row.modseq
    if name == "EMAILID":  # RFC 8474 §5.3
        return b"EMAILID (%s)" % message.session.store.emailid(row.blob_id).encode("ascii")
    if name == "THREADID":
        return b"THREADID NIL"
    # the stored forms are IMAP4rev1's; a rev2 session gets UTF-8 quoted and RFC 2231
    # parameters decoded (RFC 9051 §4.3.1, §7.5.2)
    if name == "ENVELOPE":
        stored = message.summary()[0]
        return b"ENVELOPE " + (rev2.envelope(stored) if message.session.rev2 else stored)
    if name == "BODYSTRUCTURE":
        stored = message.summary()[2]
        return b"BODYSTRUCTURE " + (rev2.body(stored) if message.session.rev2 else stored)
    if name == "BODY" and attr.section is None:
        stored = message.summary()[1]
        return b"BODY " + (rev2.body(stored) if message.session.rev2 else stored)
    if name == "PREVIEW":  # RFC 8970 §6: "PREVIEW" SP nstring
        text = message.preview(attr.lazy)
        if text is None:
            return b"PREVIEW NIL"
        shown = rev2.string if message.session.rev2 else nstring
        return b"PREVIEW " + shown(text.encode("utf-8"))
    if name == "RFC822":
        return b"RFC822 " + string(message.served()[0])
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + string(section_bytes(*message.served(), (), "HEADER") or b"")
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + string(section_bytes(*message.served(), (), "TEXT") or b"")
    section = attr.section
    assert section is not None
    label = attr.response_name().encode("utf-8", "surrogateescape")
    if name == "BODY":
        data = section_bytes(*message.served(), section.part, section.text, section.fields)
        return label + b" " + string(_partial(data or b"", attr))
    if message.index.part(section.part) is None:  # no such part: NIL (RFC 3516 §4.2)
        return label + (b" 0" if name == "BINARY.SIZE" else b" NIL")
    decoded = decoded_part(message.raw, message.index, section.part)
    if decoded is None:
        raise CommandNo("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
    if name == "BINARY.SIZE":
        return label + b" %d" % len(decoded)
    data = _partial(decoded, attr)
    if b"\0" in data:  # RFC 3516 §4.3: NUL needs literal8
        return label + b" ~{%d}\r\n" % len(data) + data
    return label + b" " + string(data)


async def handle_fetch(session: Session, command: cmd.Fetch) -> str:
    view = session.require_selected()
    if command.vanished and not session.qresync:
        raise CommandBad("VANISHED needs ENABLE QRESYNC first")  # RFC 7162 §3.2.6
    attrs = list(command.attrs)
    changedsince = command.changedsince
    uids = resolve(session, command.sequence, command.uid)
    if changedsince is not None or any(a.name == "MODSEQ" for a in attrs):
        session.enable_condstore()  # RFC 7162 §3.1
    if command.uid and not any(a.name == "UID" for a in attrs):
        attrs.insert(0, FetchAttr("UID"))  # RFC 3501 §6.4.8: UID FETCH always returns UID
    store = session.store
    if changedsince is not None:
        # RFC 7162 §3.1.4.1: only messages changed since, and MODSEQ is implied
        if not any(a.name == "MODSEQ" for a in attrs):
            attrs.append(FetchAttr("MODSEQ"))
        if command.vanished:  # §3.2.6: VANISHED (EARLIER) before any FETCH
            ranges = list(command.sequence.iter_ranges(sync.MAX_UID))
            line = await sync.vanished_earlier(session, view, changedsince, sync.membership(ranges))
            if line is not None:
                session.send(line)
        wanted = set(uids)
        since = await sync.changed_rows(session, view, changedsince, wanted.__contains__)
        rows = {row.uid: row for row in since}
        uids = [row.uid for row in since]
    elif all(a.name in _ROW_ITEMS for a in attrs):
        return await _fetch_row_items(session, view, uids, attrs)
    else:
        rows = await store.read_rows(view.mailbox_id, uids)
    newly_seen: set[int] = set()
    if not view.readonly and any(_marks_seen(a) for a in attrs):
        unseen = [uid for uid, row in rows.items() if not row.flags.bits & SEEN]
        if unseen:
            marked = await store.store_flags(
                view.mailbox_id, sorted(unseen), "add", Flags(SEEN), origin=session
            )
            for uid, flags, modseq in marked.changed:
                newly_seen.add(uid)
                old = rows[uid]
                rows[uid] = replace(old, flags=flags, modseq=modseq)
    has_flags = any(a.name == "FLAGS" for a in attrs)
    # rows may be ahead of the published events: what is shown becomes current
    published = view.state.published
    view.state.saw_rows(
        (uid, row.flags, row.modseq) for uid, row in rows.items() if row.modseq > published
    )
    metas: dict[int, bytes] = {}
    summary = [_summary_item(a) for a in attrs if a.name not in _ROW_ITEMS and a.name != "PREVIEW"]
    if summary and all(summary):  # no body needed: read the stored indexes in one query
        metas = store.metas([row.blob_id for row in rows.values()])
    if has_flags or newly_seen:  # rows may be ahead of the published events: their keywords
        view.state.learn_keywords({k for row in rows.values() for k in row.flags.keywords})
    previews: dict[int, str] | None = None
    computed: dict[int, str] = {}
    if any(a.name == "PREVIEW" for a in attrs):  # RFC 8970: stored at delivery, one query
        previews = store.previews([row.blob_id for row in rows.values()])
    for line in view.keyword_lines():  # before FLAGS show a keyword (RFC 3501 §7.2.6)
        session.send(line)
    pending = 0
    missing = False
    # A pending update no newer than the FLAGS this FETCH shows would go out after it, an
    # older state after a newer one (RFC 7162 §3.1.3); a CONDSTORE client also needs MODSEQ
    shows_state = has_flags and (not session.condstore or any(a.name == "MODSEQ" for a in attrs))
    shows_modseq = any(a.name == "MODSEQ" for a in attrs)  # a later, older MODSEQ: backwards
    updates = view.pending_flags
    bodies = _Bodies(session, rows, uids) if any(_body_item(a) for a in attrs) else None
    for index, uid in enumerate(uids):
        row = rows.get(uid)
        seq = view.seq_of(uid)
        if row is None or seq is None:
            missing = True
            continue
        if updates and (shows_state or uid in newly_seen or shows_modseq):
            update = updates.get(uid)
            if update is not None and (
                update[1] < row.modseq
                or (update[1] == row.modseq and (shows_state or uid in newly_seen))
            ):
                del updates[uid]
        blob = await bodies.get(index, row) if bodies is not None else None
        message = Message(session, row, metas.get(row.blob_id), previews, computed, blob)
        shown = flag_text(row.flags.bits, row.flags.keywords_text(), uid in view.recent)
        items = [render(attr, message, shown) for attr in attrs]
        if uid in newly_seen and not has_flags:  # RFC 3501 §6.4.5: report the implicit \Seen
            items.append(b"FLAGS " + shown)
        if uid in newly_seen and session.condstore:  # RFC 7162 §3.2.4: with UID and MODSEQ
            if not any(a.name == "UID" for a in attrs):
                items.append(b"UID %d" % uid)
            if not any(a.name == "MODSEQ" for a in attrs):
                items.append(b"MODSEQ (%d)" % row.modseq)
        line = b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"
        pending = await _send(session, line, pending)
    if computed:  # previews of messages stored before they were kept: computed once
        await store.save_previews(computed)
    return _outcome(missing)


async def _fetch_row_items(
    session: Session, view: SelectedMailbox, uids: list[int], attrs: list[FetchAttr]
) -> str:
    """FETCH of row items only, such as the `UID FETCH 1:* (FLAGS)` of every client's
    resync: flags come from the mailbox's shared state, other items from SQLite tuples
    only when asked for, and no object is built per message. None of these items sets
    the seen flag, so there are no implicit FLAGS to add."""
    key = tuple(a.name for a in attrs)
    found = _TEMPLATES.get(key)
    if found is None:
        if len(_TEMPLATES) >= 256:
            _TEMPLATES.clear()
        items = [_ROW_ITEMS[name] for name in key]
        places = [place for _, place in items if place is not None]
        found = _TEMPLATES[key] = (
            b"* %d FETCH (" + b" ".join(text for text, _ in items) + b")\r\n",
            itemgetter(0, *places) if places else lambda values: values[:1],
        )
    template, pick = found
    names = set(key)
    with_row = bool(names & {"MODSEQ", "RFC822.SIZE", "INTERNALDATE", "EMAILID"})
    emailid = session.store.emailid if "EMAILID" in names else None
    rows = (
        {row[0]: row for row in await session.store.read_row_tuples(view.mailbox_id, uids)}
        if with_row
        else {}
    )
    state = view.state
    if rows:  # rows may be ahead of the published events: what is shown becomes current
        state.saw_row_tuples(rows.values())
    # MODSEQ comes from the committed row; FLAGS shown beside it must be that row's too: the
    # shared flags lag a commit until its event is published, and an older state under a
    # newer MODSEQ is one a client keeps (RFC 7162 §3.1.3)
    row_flags = "MODSEQ" in names and "FLAGS" in names
    if row_flags:
        state.learn_keywords({k for row in rows.values() if row[2] for k in row[2].split()})
    bits, keywords = state.flags()  # read first: it learns the keywords of what it reads
    if "FLAGS" in names:
        for line in view.keyword_lines():  # before FLAGS show a keyword (RFC 3501 §7.2.6)
            session.send(line)
    updates = view.pending_flags if "MODSEQ" in names else None
    state_uids = state.uids
    same = state_uids is view.uids or state_uids == view.uids  # the usual case: index = seq - 1
    state_count = len(state_uids)
    recent = view.recent
    view_uids = view.uids
    count = len(view_uids)
    missing = False
    with_flags = "FLAGS" in names
    flags = modseq = size = date = email = None
    out: list[bytes] = []  # lines sent together: one write per batch, not per message
    # where the next UID is looked for first: the UIDs asked for ascend, and usually each
    # is the next message (1:*, a:b), so a search only follows a gap
    next_index = next_at = pending = 0
    for uid in uids:
        index = next_index
        if index >= count or view_uids[index] != uid:
            index = next_index = bisect_left(view_uids, uid, index)
            if index == count or view_uids[index] != uid:
                missing = True
                continue
        next_index = index + 1
        if same:
            at = index
        else:
            at = next_at
            if at >= state_count or state_uids[at] != uid:
                if at < state_count and state_uids[at] > uid:  # the one before is below
                    missing = True  # expunged, not yet announced to this session
                    continue
                at = next_at = bisect_left(state_uids, uid, at)
                if at == state_count or state_uids[at] != uid:
                    missing = True  # expunged, not yet announced to this session
                    continue
            next_at = at + 1
        if with_row:
            row = rows.get(uid)
            if row is None:
                missing = True
                continue
            _, row_bits, row_keywords, modseq, size, timestamp, tz_minutes, blob_id = row
            if "INTERNALDATE" in names:
                date = internal_date_text(timestamp, tz_minutes)
            if emailid is not None:
                email = emailid(blob_id).encode("ascii")
            if updates:
                # a pending update older than the MODSEQ shown must not follow it; one as
                # new is the state shown, unless this FETCH shows no FLAGS
                update = updates.get(uid)
                if update is not None and (
                    update[1] < modseq or (update[1] == modseq and row_flags)
                ):
                    del updates[uid]
        if row_flags:
            flags = flag_text(row_bits, row_keywords or "", uid in recent)
        elif with_flags:
            flags = flag_text(bits[at], keywords.get(uid, ""), uid in recent)
        line = template % pick((index + 1, uid, flags, modseq, size, date, email))
        out.append(line)
        pending += len(line)
        if pending > _DRAIN_BYTES:
            session.send(b"".join(out))
            out.clear()
            pending = 0
            await session.io.drain()
    if out:
        session.send(b"".join(out))
    return _outcome(missing)


async def _send(session: Session, line: bytes, pending: int) -> int:
    """Sends one FETCH line and, every `_DRAIN_BYTES`, waits for the client to read;
    returns the bytes sent since the last wait."""
    session.send(line)
    pending += len(line)
    if pending > _DRAIN_BYTES:
        await session.io.drain()
        return 0
    return pending


def _outcome(missing: bool) -> str:
    if missing:
        return "[EXPUNGEISSUED] Some messages were expunged meanwhile"
    return "FETCH completed"


ROUTES: dict[type, Route] = {cmd.Fetch: Route(handle_fetch, SELECTED)}
