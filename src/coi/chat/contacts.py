"""Contact hashing, notification settings and merging of contact storage messages.

# coi-client-spec: Contact Storage Messages
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from coi.chat.model import ContactStorage, Notification


def normalize_address(address: str) -> str:
    """Normalized form for hashing: quotes and brackets removed, lowercased.

    # coi-client-spec: Contact Storage Message Headers (COI-From-Hash)
    """
    return address.strip().strip("<>").replace('"', "").strip().lower()


def address_hash(address: str) -> str:
    """SHA3-256 (hex) of the normalized UTF-8 address: the ``COI-From-Hash`` value."""
    return hashlib.sha3_256(normalize_address(address).encode("utf-8")).hexdigest()


# coi's own key: when a mute ends (the spec's keys are enabled, types, sounds, filters; a
# client that does not know this one ignores it and keeps the chat muted)
UNTIL_KEY = "x-coi-until"


def parse_notification(value: str) -> Notification:
    """Parse ``enabled=true;types=sound,banner;sounds=friend;filters=message``."""
    settings: dict[str, str] = {}
    for pair in value.replace("\n", " ").split(";"):
        key, sep, val = pair.partition("=")
        if sep:
            settings[key.strip().lower()] = val.strip()

    def listed(key: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in settings.get(key, "").split(",") if v.strip())

    enabled = settings.get("enabled", "true").lower() not in ("false", "no")
    until: datetime | None = None
    try:
        until = datetime.fromisoformat(settings.get(UNTIL_KEY, ""))
    except ValueError:
        pass
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return Notification(
        enabled=enabled, types=listed("types"), sounds=listed("sounds"), filters=listed("filters"),
        until=until,
    )  # fmt: skip


def format_notification(notification: Notification) -> str:
    parts = [f"enabled={'true' if notification.enabled else 'false'}"]
    for key, values in (
        ("types", notification.types),
        ("sounds", notification.sounds),
        ("filters", notification.filters),
    ):
        if values:
            parts.append(f"{key}={','.join(values)}")
    if notification.until is not None:
        when = notification.until.astimezone(UTC).replace(microsecond=0)
        parts.append(f"{UNTIL_KEY}={when.isoformat().replace('+00:00', 'Z')}")
    return ";".join(parts)


def split_categories(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip())


def user_categories(value: str) -> tuple[str, ...]:
    """Categories the user typed (``friend,family``): lower case, each once, in order;
    ValueError for one no h-card or ``categories=`` parameter can carry.

    # coi-client-spec: Contact Storage Message Body (p-category, COMMA separated)
    """
    out: list[str] = []
    for category in split_categories(value.lower()):
        if any(c in category for c in ';"\\<>=') or not category.isprintable():
            raise ValueError(f"category {category!r}: use letters, digits, spaces, - or _")
        if category not in out:
            out.append(category)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StoredContact:
    """A contact storage message as found in the contacts folder."""

    contact: ContactStorage
    date: datetime | None
    uid: int = 0


def _order_key(stored: StoredContact) -> tuple[datetime, int]:
    date = stored.date or datetime.min.replace(tzinfo=UTC)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return (date, stored.uid)


def merge_contacts(
    duplicates: Sequence[StoredContact],
    token_in_expired: Callable[[str], bool] = lambda token: False,
    token_out_key: Callable[[str], str] = lambda token: token,
) -> ContactStorage:
    """Merge contact storage messages that share a ``COI-From-Hash``.

    # coi-client-spec: Merging Contact Storage Messages
    * every ``COI-TokenIn`` of every duplicate is kept unless expired;
    * of ``COI-TokenOut`` only the newest per key (``token_out_key``, the token's
      "hash"; the token format belongs to the server spec, so the caller says
      how to find it) survives;
    * all other fields come from the newest message (Date, then IMAP UID),
      hashes are united.
    """
    if not duplicates:
        return ContactStorage()
    ordered = sorted(duplicates, key=_order_key)
    newest = ordered[-1].contact
    tokens_in: list[str] = []
    hashes: list[str] = []
    newest_out: dict[str, str] = {}
    for stored in ordered:
        for token in stored.contact.tokens_in:
            if token not in tokens_in and not token_in_expired(token):
                tokens_in.append(token)
        for token in stored.contact.tokens_out:
            newest_out[token_out_key(token)] = token  # later (newer) wins
        for digest in stored.contact.from_hashes:
            if digest not in hashes:
                hashes.append(digest)
    return ContactStorage(
        card=newest.card,
        from_hashes=tuple(hashes),
        blocked=newest.blocked,
        tokens_in=tuple(tokens_in),
        tokens_out=tuple(newest_out.values()),
    )
