"""Commands on the selected mailbox's messages (RFC 3501 §6.4) except FETCH and SEARCH:
CHECK, CLOSE, UNSELECT (RFC 3691), EXPUNGE, UID EXPUNGE (RFC 4315), STORE, COPY, MOVE
(RFC 6851).
"""

from __future__ import annotations

import asyncio

from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.mailbox import find_target, find_target_and_usage
from coi.imap.server.quota import refuse_over_quota
from coi.imap.server.render import flag_text
from coi.imap.server.selected import SelectedMailbox
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.sequence import SequenceSet, format_sequence
from coi.store.model import Flags


def resolve(session: Session, sequence: SequenceSet, uid: bool) -> list[int]:
    """The UIDs a sequence set names in this session's view, in ascending order."""
    view = session.require_selected()
    if sequence.saved:
        return [u for u in session.saved_result if view.seq_of(u) is not None]
    if uid:
        return view.uids_in_ranges(sequence.iter_ranges(view.max_uid()))
    count = view.exists()
    ranges = list(sequence.iter_ranges(count))
    if any(hi > count or lo < 1 for lo, hi in ranges):
        raise CommandBad("Invalid message sequence number")
    return view.uids_for_sequences(ranges)


def writable(view: SelectedMailbox) -> None:
    if view.readonly:
        raise CommandNo("Mailbox is read-only (EXAMINE)", "READ-ONLY")


async def handle_check(session: Session, command: cmd.Check) -> str:
    return "CHECK completed"  # every write is already durable


async def handle_close(session: Session, command: cmd.Close) -> str:
    view = session.require_selected()
    if not view.readonly:
        await session.store.expunge(view.mailbox_id, origin=session)
    session.deselect()  # RFC 3501 §6.4.2: no untagged EXPUNGE responses
    return "CLOSE completed"


async def handle_unselect(session: Session, command: cmd.Unselect) -> str:
    session.require_selected()
    session.deselect()
    return "UNSELECT completed"


async def handle_expunge(session: Session, command: cmd.Expunge) -> str:
    view = session.require_selected()
    writable(view)
    gone = await session.store.expunge(view.mailbox_id, origin=session)
    return highestmodseq_code(session, view, bool(gone)) + "EXPUNGE completed"


async def handle_uid_expunge(session: Session, command: cmd.UidExpunge) -> str:
    view = session.require_selected()
    writable(view)
    uids = resolve(session, command.sequence, True)
    gone = await session.store.expunge(view.mailbox_id, uids, origin=session) if uids else []
    return highestmodseq_code(session, view, bool(gone)) + "EXPUNGE completed"


def highestmodseq_code(session: Session, view: SelectedMailbox, expunged: bool) -> str:
    """RFC 7162 §3.2.7, §3.2.9 (and RFC 6851 §4.4 for MOVE): with QRESYNC, the tagged OK
    of a command that expunged carries the new HIGHESTMODSEQ, announced first."""
    if not expunged or not session.qresync:
        return ""
    session.announce(allow_expunge=True)
    return f"[HIGHESTMODSEQ {view.modseq}] "


async def handle_store(session: Session, command: cmd.Store) -> str:
    view = session.require_selected()
    conditional = command.unchangedsince is not None
    writable(view)
    uids = resolve(session, command.sequence, command.uid)
    if conditional:
        session.enable_condstore()  # RFC 7162 §3.1
    flags = Flags.from_names([f for f in command.flags if f != "\\Recent"])
    result = await session.store.store_flags(
        view.mailbox_id, uids, command.mode, flags, command.unchangedsince, origin=session
    )
    changed, failed = result.changed, result.failed
    modseq = session.condstore
    # RFC 7162 §3.1.3: a conditional STORE reports every message it passed, even .SILENT;
    # a CONDSTORE-aware session hears about every change (§3.2.4: with UID and MODSEQ)
    report: set[int] = set()
    if not command.silent:
        report.update(uids)
    elif conditional:
        report.update(set(uids) - set(failed))
    elif modseq:
        report.update(uid for uid, _, _ in changed)
    if modseq:
        report.update(failed)  # §3.1.3 example 10: tell why it failed
    if report:
        # the rows as the STORE found them under the mailbox's lock (a message gone by
        # then is not reported); a later read could predate another process's expunge.
        # What a message expunged since shows: its sequence number stays until the
        # EXPUNGE is announced, so its FETCH still goes out (the COI seen filter moves a
        # $Chat message as soon as it is \Seen, maybe in another process)
        found = {uid: (shown, m) for uid, shown, m in result.unchanged if uid in report}
        found.update((uid, (shown, m)) for uid, shown, m in changed if uid in report)
        # other sessions' commits not yet published may show here: they become current,
        # their keywords announced before a FETCH shows them (RFC 3501 §7.2.6)
        view.state.saw_rows((uid, shown, m) for uid, (shown, m) in found.items())
        view.state.learn_keywords({k for shown, _ in found.values() for k in shown.keywords})
        for line in view.keyword_lines():  # a keyword new to the mailbox (RFC 3501 §7.2.6)
            session.send(line)
        failed_set = set(failed)
        pending = view.pending_flags
        for uid in sorted(found):
            seq = view.seq_of(uid)
            if seq is None:
                continue
            shown, row_modseq = found[uid]
            # Another session's change still pending for this message and no newer than
            # the row: this response carries it (with FLAGS even for .SILENT), so it is
            # not sent after this newer state (RFC 7162 §3.1.3); a newer one goes after
            held = pending.get(uid) if pending else None
            stale = held is not None and held[1] <= row_modseq
            if stale:
                del pending[uid]
            items = []
            if not command.silent or uid in failed_set or stale:
                text = flag_text(shown.bits, shown.keywords_text(), uid in view.recent)
                items.append(b"FLAGS " + text)
            if command.uid or modseq:
                items.append(b"UID %d" % uid)
            if modseq:
                items.append(b"MODSEQ (%d)" % row_modseq)
            if not modseq and uid in failed_set:
                continue
            session.send(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items)))
    if failed:
        numbers = failed if command.uid else [s for u in failed if (s := view.seq_of(u))]
        return f"[MODIFIED {format_sequence(numbers)}] Conditional STORE failed"
    return "STORE completed"


async def handle_copy(session: Session, command: cmd.Copy) -> str:
    view = session.require_selected()
    uids = resolve(session, command.sequence, command.uid)
    if not uids:
        await find_target(session, command.mailbox)
        return "COPY completed"
    # both reads at once: one wait instead of two on a networked store
    (target, usage), rows = await asyncio.gather(
        find_target_and_usage(session, command.mailbox),
        session.store.read_rows(view.mailbox_id, uids),
    )
    refuse_over_quota(usage, sum(row.size for row in rows.values()))
    validity, mapping = await session.store.copy(view.mailbox_id, uids, target.id, origin=session)
    if not mapping:
        raise CommandNo(NOTHING_LEFT, "EXPUNGEISSUED")
    return f"{copyuid(validity, mapping)} COPY completed"


async def handle_move(session: Session, command: cmd.Move) -> str:
    view = session.require_selected()
    writable(view)
    uids = resolve(session, command.sequence, command.uid)
    target = await find_target(session, command.mailbox)
    if not uids:
        return "MOVE completed"
    validity, mapping = await session.store.copy(
        view.mailbox_id, uids, target.id, move=True, origin=session
    )
    if not mapping:
        raise CommandNo(NOTHING_LEFT, "EXPUNGEISSUED")
    # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses
    session.untagged(f"OK {copyuid(validity, mapping)} Moved")
    return highestmodseq_code(session, view, True) + "MOVE completed"


# Every message asked for was expunged by another session meanwhile (still in this
# session's view): nothing was copied, and COPYUID cannot name an empty set (RFC 4315 §3)
NOTHING_LEFT = "The messages were expunged meanwhile; nothing copied"


def copyuid(validity: int, mapping: list[tuple[int, int]]) -> str:
    source = format_sequence(old for old, _ in mapping)
    target = format_sequence(new for _, new in mapping)
    return f"[COPYUID {validity} {source} {target}]"


ROUTES: dict[type, Route] = {
    cmd.Check: Route(handle_check, SELECTED),
    cmd.Close: Route(handle_close, SELECTED),
    cmd.Unselect: Route(handle_unselect, SELECTED),
    cmd.Expunge: Route(handle_expunge, SELECTED),
    cmd.UidExpunge: Route(handle_uid_expunge, SELECTED),
    cmd.Store: Route(handle_store, SELECTED),
    cmd.Copy: Route(handle_copy, SELECTED),
    cmd.Move: Route(handle_move, SELECTED),
}
