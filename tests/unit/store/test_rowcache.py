"""The row cache's rules (coi.store.postgres.rowcache), event by event: what it keeps,
what a change does to it, and what a read racing a change may keep."""

from __future__ import annotations

from typing import Any

from coi.store.events import (
    FlagsChanged,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
)
from coi.store.model import DELETED, SEEN, Flags
from coi.store.postgres.rowcache import RowCache

BOX = 7


def row(uid: int, bits: int = 0, keywords: str = "", modseq: int = 1) -> tuple[Any, ...]:
    """A stored row: (uid, flags, keywords, modseq, size, internaldate, tz, blob id)."""
    return (uid, bits, keywords, modseq, 100 + uid, 1_700_000_000, 60, 1000 + uid)


def filled(cache: RowCache, *rows: tuple[Any, ...], box: int = BOX) -> None:
    flight = cache.start(box)
    cache.finish(flight, rows)


def flags(
    cache: RowCache, uid: int, bits: int, modseq: int, keywords: tuple[str, ...] = ()
) -> None:
    cache.on_event(FlagsChanged(1, BOX, ((uid, Flags(bits, keywords), modseq),)))


def cached(cache: RowCache, *uids: int, box: int = BOX) -> dict[int, tuple[Any, ...]]:
    hits, _ = cache.lookup(box, uids)
    return hits


def test_a_read_is_kept_and_a_partial_hit_names_the_missing_uids() -> None:
    cache = RowCache()
    filled(cache, row(1), row(3))
    hits, missing = cache.lookup(BOX, [1, 2, 3, 4])
    assert hits == {1: row(1), 3: row(3)} and missing == [2, 4]
    assert cache.lookup(BOX + 1, [1]) == ({}, [1])
    assert cache.count == 2


def test_a_flag_change_replaces_flags_and_modseq_and_keeps_the_rest() -> None:
    cache = RowCache()
    filled(cache, row(1, modseq=4))
    flags(cache, 1, SEEN, 9, ("$chat",))
    assert cached(cache, 1)[1] == (1, SEEN, "$chat", 9, *row(1)[4:])


def test_an_event_older_than_the_row_read_is_ignored() -> None:
    """The row was read after a newer commit than the event (rows run ahead of events):
    flags and MODSEQ never go back (RFC 7162 §3.1.3)."""
    cache = RowCache()
    filled(cache, row(1, SEEN | DELETED, modseq=12))
    flags(cache, 1, 0, 10)
    assert cached(cache, 1)[1] == row(1, SEEN | DELETED, modseq=12)


def test_a_read_older_than_the_cached_row_keeps_the_newer_flags() -> None:
    cache = RowCache()
    filled(cache, row(1, modseq=3))
    flags(cache, 1, SEEN, 8)
    filled(cache, row(1, modseq=5))  # a read that started before the change committed
    assert cached(cache, 1)[1] == row(1, SEEN, modseq=8)


def test_a_flag_change_of_an_uncached_message_caches_nothing() -> None:
    cache = RowCache()
    filled(cache, row(1))
    flags(cache, 2, SEEN, 5)
    cache.on_event(MessagesAdded(1, BOX, (3,), 6))
    assert cache.lookup(BOX, [1, 2, 3]) == ({1: row(1)}, [2, 3])


def test_an_expunge_drops_the_rows() -> None:
    cache = RowCache()
    filled(cache, row(1), row(2))
    cache.on_event(MessagesExpunged(1, BOX, (1,), 5))
    assert cache.lookup(BOX, [1, 2]) == ({2: row(2)}, [1])
    assert cache.count == 1


def test_a_read_racing_an_expunge_does_not_bring_the_row_back() -> None:
    """The read started before the expunge committed and its rows come back after the
    expunge event: the expunged row is returned to that reader but never cached."""
    cache = RowCache()
    flight = cache.start(BOX)
    cache.on_event(MessagesExpunged(1, BOX, (1,), 5))
    cache.finish(flight, [row(1), row(2)])
    assert cache.lookup(BOX, [1, 2]) == ({2: row(2)}, [1])


def test_a_read_racing_a_flag_change_of_an_uncached_message_keeps_the_newer_flags() -> None:
    cache = RowCache()
    flight = cache.start(BOX)
    flags(cache, 1, SEEN, 9)  # committed after the read's snapshot, published before it returns
    cache.finish(flight, [row(1, modseq=4), row(2, modseq=4)])
    assert cached(cache, 1, 2) == {1: row(1, SEEN, modseq=9), 2: row(2, modseq=4)}


def test_a_read_racing_another_read_keeps_the_newest_flags_either_saw() -> None:
    """Two reads of one message, the newer one finishing first (shown to its session):
    the older one, finishing later, must not leave older flags behind."""
    cache = RowCache()
    slow = cache.start(BOX)
    filled(cache, row(1, SEEN, modseq=9))
    cache.finish(slow, [row(1, modseq=4)])
    assert cached(cache, 1)[1] == row(1, SEEN, modseq=9)
    # the same when the newer rows were only seen by a synchronous read (observe)
    other = RowCache()
    slow = other.start(BOX)
    other.observe(BOX, [row(1, SEEN, modseq=9)])
    other.finish(slow, [row(1, modseq=4)])
    assert cached(other, 1)[1] == row(1, SEEN, modseq=9)


def test_observed_rows_update_cached_flags_but_add_nothing() -> None:
    cache = RowCache()
    filled(cache, row(1, modseq=2))
    cache.observe(BOX, [row(1, SEEN, modseq=6), row(2, modseq=6)])
    assert cache.lookup(BOX, [1, 2]) == ({1: row(1, SEEN, modseq=6)}, [2])
    cache.observe(BOX, [row(1, modseq=3)])  # older: ignored
    assert cached(cache, 1)[1] == row(1, SEEN, modseq=6)


def test_a_deleted_mailbox_is_forgotten_and_its_reads_keep_nothing() -> None:
    cache = RowCache()
    filled(cache, row(1))
    flight = cache.start(BOX)
    cache.on_event(MailboxDeleted(1, BOX, "old"))
    cache.finish(flight, [row(2)])
    assert cache.lookup(BOX, [1, 2]) == ({}, [1, 2]) and cache.count == 0


def test_a_renamed_mailbox_keeps_its_rows() -> None:
    """A rename keeps the mailbox id and its messages (renaming INBOX moves them: that
    comes as an expunge)."""
    cache = RowCache()
    filled(cache, row(1))
    cache.on_event(MailboxRenamed(1, BOX, "a", "b"))
    assert cached(cache, 1) == {1: row(1)}


def test_a_reset_forgets_everything_and_reads_under_way_keep_nothing() -> None:
    """The LISTEN connection lost: nothing is kept until it is back; a read started
    before it came back keeps nothing either."""
    cache = RowCache()
    filled(cache, row(1))
    before = cache.start(BOX)
    cache.reset(enabled=False)
    assert cache.lookup(BOX, [1]) == ({}, [1])
    filled(cache, row(2))  # while events may be missed
    during = cache.start(BOX)
    cache.reset(enabled=True)
    cache.finish(before, [row(3)])
    cache.finish(during, [row(4)])
    assert cache.lookup(BOX, [2, 3, 4]) == ({}, [2, 3, 4])
    filled(cache, row(5))  # back: kept again
    assert cached(cache, 5) == {5: row(5)}


def test_the_cache_is_bounded_least_recently_used_mailbox_out_first() -> None:
    cache = RowCache(limit=10)
    filled(cache, *(row(u) for u in range(1, 5)), box=1)
    filled(cache, *(row(u) for u in range(1, 5)), box=2)
    cache.lookup(1, [1])  # mailbox 1 used last
    filled(cache, *(row(u) for u in range(1, 5)), box=3)
    assert cache.count == 8
    assert cached(cache, 1, box=1) and not cached(cache, 1, box=2) and cached(cache, 1, box=3)
    filled(cache, *(row(u) for u in range(1, 7)), box=4)  # more than half the bound: not kept
    assert not cached(cache, 1, box=4) and cache.count == 8
    nothing = RowCache(limit=0)
    filled(nothing, row(1))
    assert nothing.count == 0 and not cached(nothing, 1)


def test_an_aborted_read_keeps_nothing_and_is_forgotten() -> None:
    cache = RowCache()
    flight = cache.start(BOX)
    assert cache.watches(BOX)
    cache.abort(flight)
    assert not cache.watches(BOX)
