"""PARTIAL results of SEARCH and SORT (RFC 5267 §4.4; negative ranges of RFC 9394).

The return option is kept as "PARTIAL m:n" with the smaller magnitude first (parsed by
`coi.imap.wire.commands`, echoed so as Dovecot does); these helpers pick the results it
names and write the `PARTIAL (range set)` return data. No server imports, so search and
sort can use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from coi.imap.wire.sequence import format_sequence


def partial_option(options: Iterable[str]) -> str | None:
    """The range of a "PARTIAL m:n" return option."""
    return next((o[8:] for o in options if o.startswith("PARTIAL ")), None)


def partial_bounds(count: int, text: str) -> tuple[int, int]:
    """Slice bounds [start, end) of the results at positions `text` among `count`
    (§4.4: the first result is 1, "500:400" is "400:500"; RFC 9394: -1 is the last)."""
    first, last = sorted(int(n) for n in text.split(":"))
    if first < 0:  # both negative: -1 is the last result
        first, last = count + first + 1, count + last + 1
    start = max(first, 1) - 1
    end = max(min(last, count), start)
    return start, end


def partial_text(
    numbers: Sequence[int], text: str, all_text: Callable[[list[int]], str] = format_sequence
) -> str:
    """`PARTIAL (range set)`, or `PARTIAL (range NIL)` when no result is in the range."""
    return f"PARTIAL ({text} {all_text(list(numbers)) if numbers else 'NIL'})"
