"""Contract: messages — APPEND, flags, COPY/MOVE, EXPUNGE with their UIDs, MODSEQ and
events; batch reads; what CONDSTORE/QRESYNC read back; durability across handles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from tests.contract.helpers import WHEN, Backend, fresh, message, user_with_inbox

from coi.store.errors import NoSuchMailbox
from coi.store.events import Event, FlagsChanged, MessagesAdded, MessagesExpunged
from coi.store.model import DELETED, FLAGGED, SEEN, Flags
from coi.store.protocol import Store


async def test_append_assigns_increasing_uids_and_publishes(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    seen: list[Event] = []
    store.events.watch_mailbox(inbox.id, seen.append)
    first, second = message("one"), message("two", flags=("\\Seen", "$Chat"))
    validity, uids = await store.append(inbox.id, [first, second], origin="s1")
    assert validity == inbox.uidvalidity
    assert uids == [1, 2]
    after = fresh(store, inbox)
    assert after.uidnext == 3 and after.highestmodseq > inbox.highestmodseq
    assert seen == [  # with the flags, so a selected mailbox's state reads no rows
        MessagesAdded(
            inbox.user_id, inbox.id, (1, 2), after.highestmodseq, "s1", (Flags(), second.flags)
        )
    ]
    assert second.flags == Flags(SEEN, ("$Chat",))
    assert list(store.uids(inbox.id)) == [1, 2]
    rows = store.rows(inbox.id, [1, 2, 99])
    assert sorted(rows) == [1, 2]
    assert rows[1].size == first.size and rows[1].modseq == after.highestmodseq
    assert rows[1].internaldate == WHEN
    blob = store.blob(rows[1].blob_id)
    assert blob == (first.raw, first.meta)
    assert store.meta(rows[1].blob_id) == first.meta
    assert store.search_blob(rows[1].blob_id) == first.search
    assert store.metas([rows[1].blob_id, rows[2].blob_id, rows[1].blob_id]) == {
        rows[1].blob_id: first.meta,
        rows[2].blob_id: message("two").meta,
    }
    assert await store.search_blobs(inbox.id, [2, 1]) == {
        1: first.search,
        2: message("two").search,
    }
    await store.append(inbox.id, [message("three")])
    assert list(store.uids(inbox.id)) == [1, 2, 3]
    with pytest.raises(NoSuchMailbox):
        await store.append(999_999, [message()])


async def test_append_keeps_flags_keywords_zone_and_size(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    zone = timezone(timedelta(hours=-5, minutes=-30))
    when = datetime(2023, 5, 6, 7, 8, 9, tzinfo=zone)
    stored = message(flags=("\\Seen", "\\Flagged", "$Chat", "\\Recent"), when=when)
    await store.append(inbox.id, [stored])
    row = store.rows(inbox.id, [1])[1]
    assert row.flags == Flags(SEEN | FLAGGED, ("$Chat",))
    assert row.internaldate == when and row.internaldate.utcoffset() == zone.utcoffset(None)
    assert fresh(store, inbox).keywords == ("$Chat",)
    assert row.size == stored.size


async def test_flags_copy_move_expunge(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    trash = store.get_mailbox(user.id, "Trash")
    assert trash
    await store.append(inbox.id, [message("1"), message("2"), message("3")])
    seen: list[Event] = []
    store.events.watch_mailbox(inbox.id, seen.append)
    changed, failed, _ = await store.store_flags(inbox.id, [1, 2], "add", Flags(SEEN, ("$Chat",)))
    assert [c[0] for c in changed] == [1, 2] and failed == []
    assert isinstance(seen[-1], FlagsChanged)
    assert seen[-1].previous == (Flags(), Flags())
    assert store.rows(inbox.id, [1])[1].flags == Flags(SEEN, ("$Chat",))
    refreshed = store.get_mailbox(user.id, "INBOX")
    assert refreshed and refreshed.keywords == ("$Chat",)
    # UNCHANGEDSINCE rejects messages changed later (RFC 7162 §3.1.3)
    modseq = changed[0][2]
    _, failed, _ = await store.store_flags(inbox.id, [1, 3], "add", Flags(DELETED), modseq - 1)
    assert failed == [1]
    _, mapping = await store.copy(inbox.id, [1, 2], trash.id)
    assert mapping == [(1, 1), (2, 2)]
    assert store.rows(trash.id, [1])[1].flags == Flags(SEEN, ("$Chat",))
    assert fresh(store, trash).keywords == ("$Chat",)  # the target lists what it got
    trash_seen: list[Event] = []
    store.events.watch_mailbox(trash.id, trash_seen.append)
    _, mapping = await store.copy(inbox.id, [2], trash.id, move=True)
    assert mapping == [(2, 3)]
    assert list(store.uids(inbox.id)) == [1, 3]
    added, removed = trash_seen[-1], seen[-1]
    assert isinstance(added, MessagesAdded) and added.uids == (3,)
    assert added.modseq == fresh(store, trash).highestmodseq
    assert isinstance(removed, MessagesExpunged) and removed.uids == (2,)
    assert removed.modseq == fresh(store, inbox).highestmodseq
    expunged = await store.expunge(inbox.id)
    assert expunged == [3]
    assert isinstance(seen[-1], MessagesExpunged) and seen[-1].uids == (3,)
    assert list(store.uids(inbox.id)) == [1]
    # the shared body survives while a copy references it
    trash_rows = store.rows(trash.id, [1, 2, 3])
    assert store.blob(trash_rows[2].blob_id) is not None


async def test_store_flags_modes_and_no_op(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message(flags=("\\Flagged", "$a"))])
    seen: list[Event] = []
    store.events.watch_mailbox(inbox.id, seen.append)
    before = fresh(store, inbox).highestmodseq
    changed, _, unchanged = await store.store_flags(inbox.id, [1], "add", Flags(FLAGGED))
    assert changed == [] and seen == []  # nothing changed: no MODSEQ, no event
    assert fresh(store, inbox).highestmodseq == before
    assert unchanged == [(1, Flags(FLAGGED, ("$a",)), before)]  # found as it was
    changed, _, _ = await store.store_flags(inbox.id, [1], "remove", Flags(0, ("$a",)))
    assert changed == [(1, Flags(FLAGGED), before + 1)]
    changed, _, unchanged = await store.store_flags(inbox.id, [1, 7], "set", Flags(SEEN, ("$b",)))
    assert changed == [(1, Flags(SEEN, ("$b",)), before + 2)]  # an unknown UID is ignored
    assert unchanged == []
    assert fresh(store, inbox).keywords == ("$a", "$b")  # keywords once used stay listed
    with pytest.raises(NoSuchMailbox):
        await store.store_flags(999_999, [1], "add", Flags(SEEN))
    with pytest.raises(NoSuchMailbox):  # a mailbox deleted meanwhile, for each write
        await store.expunge(999_999)
    with pytest.raises(NoSuchMailbox):
        await store.copy(inbox.id, [1], 999_999)
    with pytest.raises(NoSuchMailbox):
        await store.append(999_999, [message()])


async def test_store_flags_keywords_in_code_point_order_and_unchangedsince(store: Store) -> None:
    """Keywords stay sorted by code point and unique whatever the mode; a message changed
    after UNCHANGEDSINCE fails and is left as it was, the others change (RFC 7162 §3.1.3)."""
    _, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message(flags=("Zed", "$b")), message(), message()])
    changed, failed, _ = await store.store_flags(
        inbox.id, [1, 2], "add", Flags(0, ("ä", "$a", "Zed"))
    )
    assert [(uid, flags.keywords) for uid, flags, _ in changed] == [
        (1, ("$a", "$b", "Zed", "ä")),
        (2, ("$a", "Zed", "ä")),
    ]
    assert failed == [] and fresh(store, inbox).keywords == ("$a", "$b", "Zed", "ä")
    modseq = changed[0][2]
    await store.store_flags(inbox.id, [3], "add", Flags(SEEN))  # 3 changes after `modseq`
    changed, failed, unchanged = await store.store_flags(
        inbox.id, [1, 2, 3], "remove", Flags(0, ("Zed", "$a")), unchangedsince=modseq
    )
    assert [(uid, flags.keywords) for uid, flags, _ in changed] == [(1, ("$b", "ä")), (2, ("ä",))]
    assert failed == [3]
    assert unchanged == [(3, Flags(SEEN), modseq + 1)]  # what it failed on, as it is
    assert store.rows(inbox.id, [3])[3].flags == Flags(SEEN)
    changed, _, _ = await store.store_flags(inbox.id, [1, 2, 3], "set", Flags(FLAGGED))
    assert [(uid, flags) for uid, flags, _ in changed] == [(u, Flags(FLAGGED)) for u in (1, 2, 3)]
    assert len({modseq for _, _, modseq in changed}) == 1  # one change, one mod-sequence


async def test_copy_between_users_mailboxes_assigns_new_uids(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    box = await store.create_mailbox(user.id, "Box")
    await store.append(box.id, [message("old")])
    await store.append(inbox.id, [message("1", flags=("$x",)), message("2"), message("3")])
    seen: list[Event] = []
    store.events.watch_mailbox(box.id, seen.append)
    validity, mapping = await store.copy(inbox.id, [3, 1, 42], box.id, origin="s")
    assert validity == box.uidvalidity
    assert mapping == [(1, 2), (3, 3)]  # ascending source UIDs, missing ones skipped
    modseq = fresh(store, box).highestmodseq
    # the copies' flags come along where the store has them at hand (PostgreSQL's coi_copy)
    assert seen in (
        [MessagesAdded(user.id, box.id, (2, 3), modseq, "s")],
        [MessagesAdded(user.id, box.id, (2, 3), modseq, "s", (Flags(0, ("$x",)), Flags()))],
    )
    _, none = await store.copy(inbox.id, [42], box.id)
    assert none == [] and len(seen) == 1


async def test_expunge_only_given_uids_and_tombstones(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message(str(n)) for n in range(4)])
    await store.store_flags(inbox.id, [1, 2, 3], "add", Flags(DELETED))
    assert await store.expunge(inbox.id, [2, 4]) == [2]
    assert list(store.uids(inbox.id)) == [1, 3, 4]
    modseq = fresh(store, inbox).highestmodseq
    assert await store.expunge(inbox.id) == [1, 3]
    assert await store.expunge(inbox.id) == []  # nothing left: no MODSEQ
    assert fresh(store, inbox).highestmodseq == modseq + 1
    assert await store.vanished_since(inbox.id, 0) == [1, 2, 3]
    assert await store.vanished_since(inbox.id, modseq) == [1, 3]
    with pytest.raises(NoSuchMailbox):
        await store.expunge(999_999)


async def test_changed_and_vanished_since(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message("1"), message("2"), message("3")])  # MODSEQ m
    m = fresh(store, inbox).highestmodseq
    await store.store_flags(inbox.id, [2, 3], "add", Flags(DELETED))  # m + 1
    await store.expunge(inbox.id, [3])  # m + 2
    assert [r.uid for r in await store.changed_since(inbox.id, m)] == [2]
    assert [r.uid for r in await store.changed_since(inbox.id, m - 1)] == [1, 2]
    assert await store.changed_since(inbox.id, m + 2) == []
    assert await store.vanished_since(inbox.id, m + 1) == [3]
    assert await store.vanished_since(inbox.id, m + 2) == []


async def test_first_unseen(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    assert await store.first_unseen(inbox.id) is None
    await store.append(inbox.id, [message(flags=("\\Seen",)), message(), message()])
    assert await store.first_unseen(inbox.id) == 2
    await store.store_flags(inbox.id, [2, 3], "add", Flags(SEEN))
    assert await store.first_unseen(inbox.id) is None


async def test_batch_reads_over_many_messages(store: Store) -> None:
    """Sets larger than one query's parameter list, dense and sparse, keep UID order."""
    _, inbox = await user_with_inbox(store)
    total = 1300
    await store.append(inbox.id, [message(str(n)) for n in range(total)])
    await store.store_flags(inbox.id, list(range(2, total + 1, 2)), "add", Flags(SEEN, ("$x",)))
    everything = list(store.uids(inbox.id))
    assert everything == list(range(1, total + 1))
    sparse = list(range(1, total + 1, 3))
    gappy = [uid for uid in range(200, 260) if uid % 10]  # read as a range, then filtered
    for wanted in (everything, sparse, everything[100:900], gappy, everything[500:540]):
        tuples = list(store.row_tuples(inbox.id, wanted))
        assert [t[0] for t in tuples] == wanted
        flags = list(store.flag_rows(inbox.id, wanted))
        assert flags == [(uid, SEEN if uid % 2 == 0 else 0, "$x" if uid % 2 == 0 else "")
                         for uid in wanted]  # fmt: skip
        rows = store.rows(inbox.id, wanted)
        assert sorted(rows) == wanted
        assert all(rows[t[0]].blob_id == t[7] and rows[t[0]].modseq == t[3] for t in tuples)
    search = await store.search_blobs(inbox.id, sparse)
    assert sorted(search) == sparse
    metas = store.metas([rows[uid].blob_id for uid in rows])
    assert len(metas) == len(rows)


async def test_data_survives_reopen(backend: Backend) -> None:
    store = await backend.open()
    user, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message()])
    await store.set_metadata(user.id, 0, [("/private/x", b"1")])
    backend.close(store)
    again = await backend.open()
    assert list(again.uids(inbox.id)) == [1]
    assert again.get_user("a@x.org") == user
    assert again.get_metadata(user.id, 0, ["/private/x"]) == {"/private/x": b"1"}
    later = await again.create_mailbox(user.id, "later")
    assert later.uidvalidity > inbox.uidvalidity  # still increasing after a restart


async def test_another_handle_sees_acknowledged_writes(backend: Backend) -> None:
    """What an awaited write returned is visible to every handle at once (a second
    server process), without waiting for any event."""
    writer = await backend.open()
    reader = await backend.open()
    _, inbox = await user_with_inbox(writer)
    _, uids = await writer.append(inbox.id, [message()])
    assert list(reader.uids(inbox.id)) == uids
    await writer.store_flags(inbox.id, uids, "add", Flags(SEEN))
    assert reader.rows(inbox.id, uids)[uids[0]].flags == Flags(SEEN)


async def test_internaldate_is_utc_when_zone_is_utc(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message(when=datetime(2020, 2, 29, tzinfo=UTC))])
    row = store.rows(inbox.id, [1])[1]
    assert row.internaldate == datetime(2020, 2, 29, tzinfo=UTC) and row.tz_minutes == 0


async def test_concurrent_writers_on_two_handles_keep_uids_and_modseqs_dense(
    backend: Backend,
) -> None:
    """Two handles (two server processes) appending to and flagging one mailbox at once:
    every UID is given once and in order (RFC 3501 §2.3.1.1), every change gets its own
    mod-sequence (RFC 7162 §3), the mailbox's counters cover them all, and the expunges
    of one are tombstoned for the other."""
    first = await backend.open()
    second = await backend.open()
    _, inbox = await user_with_inbox(first)

    async def appends(store: Store, n: int) -> list[int]:
        got: list[int] = []
        for i in range(n):
            got += (await store.append(inbox.id, [message(f"m{i}")]))[1]
        return got

    a, b = await asyncio.gather(appends(first, 10), appends(second, 10))
    assert sorted(a + b) == list(range(1, 21))
    assert list(second.uids(inbox.id)) == list(range(1, 21))
    flagged = await asyncio.gather(
        *(
            store.store_flags(inbox.id, [uid], "add", Flags(DELETED))
            for uid, store in zip(range(1, 21), [first, second] * 10, strict=True)
        )
    )
    modseqs = sorted(result.changed[0][2] for result in flagged)
    assert len(set(modseqs)) == 20
    now = fresh(first, inbox)
    assert now.uidnext == 21 and now.highestmodseq == modseqs[-1]
    assert await second.expunge(inbox.id, [1, 2]) == [1, 2]
    assert await first.vanished_since(inbox.id, modseqs[-1]) == [1, 2]
    assert list(first.uids(inbox.id)) == list(range(3, 21))


async def test_bodies_read_one_at_a_time_or_many_at_once(store: Store) -> None:
    """`blobs()` gives what `blob()` gives, for many bodies at once (FETCH reads a chunk
    of bodies per query); expunged bodies and unknown ids are missing."""
    _, inbox = await user_with_inbox(store)
    stored = [message(f"m{n}", "x" * n) for n in range(600)]
    await store.append(inbox.id, stored)
    rows = store.rows(inbox.id, list(range(1, 601)))
    ids = [rows[uid].blob_id for uid in range(1, 601)]
    many = await store.blobs([*ids, ids[0], 10**9])
    assert sorted(many) == sorted(ids)
    assert many[ids[5]] == store.blob(ids[5]) == (stored[5].raw, stored[5].meta)
    assert await store.blobs([]) == {}
    await store.store_flags(inbox.id, [1], "add", Flags(DELETED))
    await store.expunge(inbox.id)
    assert ids[0] not in await store.blobs(ids[:2]) and store.blob(ids[0]) is None


async def test_what_the_store_takes_on_disk_grows_with_its_messages(store: Store) -> None:
    """`database_bytes` (the metric coi_store_bytes): SQLite's files, PostgreSQL's
    databases (every shard's)."""
    _, inbox = await user_with_inbox(store)
    before = store.database_bytes()
    assert before > 0
    lines = "\r\n".join(f"line {n} of a long body, not much alike: {n * 7919}" for n in range(8000))
    await store.append(inbox.id, [message("big", lines)])
    assert store.database_bytes() >= before + 300_000
