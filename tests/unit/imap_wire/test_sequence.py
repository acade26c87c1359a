"""Sequence sets (RFC 3501 §9) and compression."""

from __future__ import annotations

import pytest

from coi.imap.wire.errors import ParseError
from coi.imap.wire.sequence import SequenceSet, format_sequence, parse_sequence_set


@pytest.mark.parametrize("text", ["1", "1:3", "1:3,5", "2,4:7,9,12:*", "*", "*:4", "$", "5:1"])
def test_round_trip(text: str) -> None:
    assert str(parse_sequence_set(text)) == text


@pytest.mark.parametrize(
    "text", ["", "0", "1:0", "0:*", "a", "1,", ",1", "1::2", "1:2:3", "01", "4294967296", "$,1"]
)
def test_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_sequence_set(text, "t")


def test_iter_ranges_normalizes() -> None:
    seq = parse_sequence_set("5:2,7:*,*")
    assert list(seq.iter_ranges(10)) == [(2, 5), (7, 10), (10, 10)]
    assert list(parse_sequence_set("20:*").iter_ranges(10)) == [(10, 20)]


def test_contains() -> None:
    seq = parse_sequence_set("1:3,9:*")
    assert seq.contains(2, 20) and seq.contains(15, 20) and not seq.contains(5, 20)
    assert seq.contains(20, 20) and not seq.contains(21, 20)


def test_saved_marker() -> None:
    seq = parse_sequence_set(b"$")
    assert seq == SequenceSet((), saved=True)
    with pytest.raises(ValueError):
        list(seq.iter_ranges(5))


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ([], ""),
        ([1], "1"),
        ([3, 1, 2, 5], "1:3,5"),
        ([1, 1, 2], "1:2"),
        ([7, 9, 10, 11, 20], "7,9:11,20"),
    ],
)
def test_format_sequence(numbers: list[int], text: str) -> None:
    assert format_sequence(numbers) == text


def test_huge_number_is_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_sequence_set("9" * 10000)
