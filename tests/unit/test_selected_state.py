"""The selected mailbox state's helpers for expunges (copies without the gone items, made
a slice at a time: an expunge from a mailbox of 100,000 went item by item before), and
its catching up after events were missed."""

from __future__ import annotations

import asyncio
from array import array
from pathlib import Path

import pytest
from tests.contract.helpers import message

from coi.imap.server.selected import NO_UIDS, MailboxState, _without, without_uids
from coi.store.events import ChangesMissed
from coi.store.model import DELETED, FLAGGED, Flags
from coi.store.sqlite.store import SqliteStore


@pytest.mark.parametrize(
    "indices", [[], [0], [9], [0, 9], [3, 4, 5], [1, 3, 5, 7], list(range(10))]
)
def test_without_drops_exactly_the_indices_and_leaves_the_original(indices: list[int]) -> None:
    values = array("I", range(100, 110))
    kept = _without(values, indices)
    assert list(kept) == [v for i, v in enumerate(values) if i not in indices]
    assert kept.typecode == "I" and kept is not values
    assert list(values) == list(range(100, 110))  # views may still hold the old array


def test_without_uids_changes_only_a_set_of_its_own() -> None:
    own = {1, 2, 3}
    assert without_uids(own, frozenset({2, 9})) is own and own == {1, 3}
    shared = frozenset({1, 2, 3})
    assert without_uids(shared, {2}) == {1, 3} and shared == {1, 2, 3}
    assert without_uids(shared, {7}) is shared  # nothing in common: no copy
    assert without_uids(NO_UIDS, {1}) is NO_UIDS


async def test_changes_missed_are_read_again_by_modseq_and_applied_in_order(
    tmp_path: Path,
) -> None:
    """After `ChangesMissed` (a LISTEN connection back), the state reads what changed since
    the last change it applied (another handle's writes, whose events it never heard) and
    applies them before the events that came meanwhile, which change nothing twice."""
    store = SqliteStore(tmp_path / "coi.sqlite3")
    other = SqliteStore(tmp_path / "coi.sqlite3")  # another process: its events stay its own
    try:
        user = await store.add_user("alice@example.org", "x", [])
        inbox = store.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        await store.append(inbox.id, [message(str(n)) for n in range(3)])
        state = MailboxState(store, store.get_mailbox(user.id, "INBOX"))  # type: ignore[arg-type]
        state.flags()
        await other.store_flags(inbox.id, [1], "add", Flags(FLAGGED))
        await other.store_flags(inbox.id, [2], "add", Flags(DELETED))
        await other.expunge(inbox.id, [2])
        await other.append(inbox.id, [message("late")])
        assert list(state.uids) == [1, 2, 3]  # nothing heard
        store.events.publish(ChangesMissed())
        # an event of a later change, heard while the state reads: held, then applied
        await store.append(inbox.id, [message("later")])
        while state._reading is not None:
            await asyncio.sleep(0.01)
        assert list(state.uids) == [1, 3, 4, 5]
        bits, _ = state.flags()
        assert list(bits) == [FLAGGED, 0, 0, 0]
        assert state.published == store.mailbox_by_id(inbox.id).highestmodseq  # type: ignore[union-attr]
    finally:
        other.close()
        store.close()


async def test_a_catch_up_whose_read_fails_still_applies_the_events_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The store is unreachable again while the state reads what it missed: that is
    logged, and the events that came meanwhile are applied, not held for ever."""
    store = SqliteStore(tmp_path / "coi.sqlite3")
    try:
        user = await store.add_user("alice@example.org", "x", [])
        inbox = store.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        state = MailboxState(store, inbox)

        async def unreachable(mailbox_id: int, modseq: int) -> list[int]:
            raise OSError("connection refused")

        monkeypatch.setattr(store, "vanished_since", unreachable)
        store.events.publish(ChangesMissed())
        await store.append(inbox.id, [message("heard")])  # its event: held, then applied
        while state._reading is not None:
            await asyncio.sleep(0.01)
        assert list(state.uids) == [1]
        assert "reading what changed unheard failed" in caplog.text
    finally:
        store.close()
