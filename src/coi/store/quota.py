"""Storage quotas: a user's limit is their own (``coi user quota``) or the server's
``default_quota``; 0 means none. Usage is the sum of RFC822.SIZE over all the user's
mailboxes (RFC 9208 §5.1: STORAGE, in units of 1024 octets on the wire)."""

from __future__ import annotations

from coi.store.protocol import QuotaStore


class OverQuota(Exception):
    """Storing this would take the user past their limit."""


async def check(store: QuotaStore, user_id: int, default: int, adding: int) -> None:
    """Raises OverQuota when ``adding`` more octets would exceed the user's limit (one
    awaited read: a networked store serves other sessions meanwhile)."""
    usage = await store.read_usage(user_id, default)
    if exceeds(usage, adding):
        raise OverQuota(f"over quota ({usage[0]} octets)")


def exceeds(usage: tuple[int, int], adding: int) -> bool:
    """Whether ``adding`` octets more go past the limit of ``usage`` (limit, used)."""
    limit, used = usage
    return bool(limit) and used + adding > limit


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1024``, ``0`` (none) to octets (K, M, G, T: powers of 1024)."""
    value = text.strip().upper().removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        octets = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"{text!r} is no size like 500M, 2G or 0") from None
    if octets < 0:
        raise ValueError(f"{text!r}: a size is not negative")
    return octets


def size_text(octets: int) -> str:
    """Octets as `parse_size` reads them back, to a tenth: ``1.5G``, ``300.0K``, ``12B``."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if octets >= factor:
            return f"{octets / factor:.1f}{unit}"
    return f"{octets}B"
