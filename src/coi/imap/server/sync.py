"""CONDSTORE and QRESYNC helpers (RFC 7162): CHANGEDSINCE, VANISHED (EARLIER) and the
QRESYNC SELECT replay.

Invariants: changed messages come from the `messages_modseq` index and expunged ones
from the tombstones in `expunged`, never from a scan of the mailbox; only messages the
session's view numbers are reported as FETCH, and UIDs the view still shows are never
reported as vanished (they are announced as VANISHED/EXPUNGE at the next sync point).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable

from coi.imap.server.errors import CommandBad
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.encode import flag_list
from coi.imap.wire.sequence import SequenceSet, format_sequence
from coi.store.model import MessageRow

MAX_UID = 0xFFFFFFFF


def membership(ranges: Iterable[tuple[int, int]]) -> Callable[[int], bool]:
    """A fast `n in ranges` test (ranges merged once, then bisected)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    starts = [lo for lo, _ in merged]

    def contains(n: int) -> bool:
        index = bisect_right(starts, n) - 1
        return index >= 0 and n <= merged[index][1]

    return contains


def _expand(seq: SequenceSet, limit: int) -> list[int]:
    out: list[int] = []
    for lo, hi in seq.iter_ranges(0):
        if hi - lo + len(out) > limit:
            raise CommandBad("Sequence match data too large")
        out.extend(range(lo, hi + 1))
    return out


def check_qresync(session: Session, param: cmd.QResync) -> None:
    """RFC 7162 §3.2.5: BAD unless ENABLE QRESYNC came first; sets must pair up."""
    if not session.qresync:
        raise CommandBad("QRESYNC needs ENABLE QRESYNC first")
    if param.seq_match is not None:
        seqs, uids = param.seq_match
        limit = 100_000
        if len(_expand(seqs, limit)) != len(_expand(uids, limit)):
            raise CommandBad("Sequence match data: both sets must have as many numbers")


async def vanished_earlier(
    session: Session, view: SelectedMailbox, modseq: int, wanted: Callable[[int], bool]
) -> bytes | None:
    """`* VANISHED (EARLIER) ...` for UIDs in `wanted` expunged after `modseq`."""
    gone = [
        uid
        for uid in await session.store.vanished_since(view.mailbox_id, modseq)
        if wanted(uid) and view.seq_of(uid) is None
    ]
    if not gone:
        return None
    return b"* VANISHED (EARLIER) %s\r\n" % format_sequence(gone).encode()


async def changed_rows(
    session: Session, view: SelectedMailbox, modseq: int, wanted: Callable[[int], bool]
) -> list[MessageRow]:
    """Rows of messages in this view with a mod-sequence above `modseq`, by UID; as they
    are shown, rows ahead of the published events become the mailbox's current flags."""
    rows = [
        row
        for row in await session.store.changed_since(view.mailbox_id, modseq)
        if wanted(row.uid) and view.seq_of(row.uid) is not None
    ]
    view.state.saw_rows((row.uid, row.flags, row.modseq) for row in rows)
    return rows


def _seq_match_floor(view: SelectedMailbox, match: tuple[SequenceSet, SequenceSet]) -> int:
    """RFC 7162 §3.2.5.2: the UID up to which the client already knows every expunge."""
    floor = 0
    limit = 100_000
    for seq, uid in zip(_expand(match[0], limit), _expand(match[1], limit), strict=True):
        if seq > view.exists() or view.uids[seq - 1] != uid:
            break
        floor = uid
    return floor


async def qresync_select(
    session: Session, view: SelectedMailbox, param: cmd.QResync, uidnext: int
) -> None:
    """The VANISHED (EARLIER) and FETCH responses of SELECT ... (QRESYNC ...)."""
    if param.known_uids is not None:
        known = membership(param.known_uids.iter_ranges(0))
    else:
        last = uidnext - 1  # RFC 7162 §3.2.5.1: as if "1:<UIDNEXT-1>"
        known = membership([(1, last)] if last > 0 else [])
    wanted = known
    if param.seq_match is not None:
        floor = _seq_match_floor(view, param.seq_match)
        wanted = lambda uid: uid > floor and known(uid)  # noqa: E731
    line = await vanished_earlier(session, view, param.modseq, wanted)
    if line is not None:
        session.send(line)
    rows = await changed_rows(session, view, param.modseq, known)
    for line in view.keyword_lines():  # rows ahead of the events may bring new keywords
        session.send(line)
    for row in rows:
        session.send(fetch_flags_line(session, view, row))


def fetch_flags_line(session: Session, view: SelectedMailbox, row: MessageRow) -> bytes:
    names = row.flags.names()
    if row.uid in view.recent:
        names.append("\\Recent")
    seq = view.seq_of(row.uid) or 0
    return b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (
        seq,
        row.uid,
        flag_list(names),
        row.modseq,
    )


__all__ = [
    "MAX_UID",
    "changed_rows",
    "check_qresync",
    "fetch_flags_line",
    "membership",
    "qresync_select",
    "vanished_earlier",
]
