"""The selected mailbox state's helpers for expunges: copies without the gone items, made
a slice at a time (an expunge from a mailbox of 100,000 went item by item before)."""

from __future__ import annotations

from array import array

import pytest

from coi.imap.server.selected import NO_UIDS, _without, without_uids


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
