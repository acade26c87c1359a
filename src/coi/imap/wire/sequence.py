"""IMAP sequence sets (RFC 3501 §9 ``sequence-set``, RFC 5182 ``$``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import ParseError

_MAX_NUMBER = 0xFFFFFFFF  # RFC 3501 §9: nz-number fits in 32 bits


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """Ranges as the client wrote them; ``None`` stands for ``*``.

    ``saved=True`` is the SEARCHRES ``$`` marker (RFC 5182 §2.1); the server
    substitutes its saved result, so ``ranges`` is empty then.
    """

    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False

    def iter_ranges(self, largest: int) -> Iterator[tuple[int, int]]:
        """Yield normalized ``(lo, hi)`` with ``*`` replaced by ``largest``.

        RFC 3501 §9: ``n:m`` and ``m:n`` are equivalent. An empty mailbox
        (largest == 0) is the caller's business: ``*`` then becomes 0.
        """
        if self.saved:
            raise ValueError("saved search result ($) must be resolved by the caller")
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            yield (a, b) if a <= b else (b, a)

    def contains(self, n: int, largest: int) -> bool:
        """True if message number/UID ``n`` is in the set."""
        return any(lo <= n <= hi for lo, hi in self.iter_ranges(largest))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        parts: list[str] = []
        for lo, hi in self.ranges:
            a = "*" if lo is None else str(lo)
            if lo == hi:
                parts.append(a)
            else:
                parts.append(a + ":" + ("*" if hi is None else str(hi)))
        return ",".join(parts)


def _seq_number(text: str, tag: str | None) -> int | None:
    # RFC 3501 §9: seq-number = nz-number / "*"
    if text == "*":
        return None
    if not text.isascii() or not text.isdigit() or text[0] == "0":
        raise ParseError(tag, f"invalid sequence number {text[:20]!r}")
    if len(text) > 10:  # also keeps int() away from huge digit strings
        raise ParseError(tag, "sequence number out of range")
    value = int(text)
    if value > _MAX_NUMBER:
        raise ParseError(tag, "sequence number out of range")
    return value


def parse_sequence_set(text: str | bytes, tag: str | None = None) -> SequenceSet:
    """Parse ``sequence-set`` / ``$``; raise ParseError on 0 or garbage."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if text == "$":
        return SequenceSet((), saved=True)
    if not text:
        raise ParseError(tag, "empty sequence set")
    ranges: list[tuple[int | None, int | None]] = []
    for item in text.split(","):
        lo, sep, hi = item.partition(":")
        a = _seq_number(lo, tag)
        b = _seq_number(hi, tag) if sep else a
        ranges.append((a, b))
    return SequenceSet(tuple(ranges))


def format_sequence(numbers: Iterable[int]) -> str:
    """Compress numbers into the shortest ``1:3,5`` wire form (sorted, deduplicated)."""
    parts: list[str] = []
    start = prev = -1
    for n in sorted(set(numbers)):
        if n == prev + 1 and start >= 0:
            prev = n
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start >= 0:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)
