"""Turn raw message bytes into a `NewMessage`: indexed once, at arrival (APPEND or delivery).

FETCH and SEARCH never re-parse; whoever stores a message calls `prepare` first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from coi.mail.index import dump_index, index_for_imap
from coi.mail.preview import preview_text
from coi.mail.search import dump_search, header_text, search_data
from coi.store.model import Flags, NewMessage

_OFFLOAD_BYTES = 256 * 1024  # index larger messages off the event loop


def prepare(raw: bytes, flags: tuple[str, ...], when: datetime | None) -> NewMessage:
    """Parses the message once, now, so FETCH and SEARCH never need to."""
    index, size = index_for_imap(raw)
    searchable = search_data(raw, index)
    return NewMessage(
        raw=raw,
        meta=dump_index(index),
        search=dump_search(searchable),
        flags=Flags.from_names([f for f in flags if f != "\\Recent"]),
        internaldate=when or datetime.now(UTC).replace(microsecond=0),
        header_text=header_text(searchable),
        size=size,
        preview=preview_text(raw, index),
    )


async def prepare_async(raw: bytes, flags: tuple[str, ...], when: datetime | None) -> NewMessage:
    if len(raw) > _OFFLOAD_BYTES:
        return await asyncio.to_thread(prepare, raw, flags, when)
    return prepare(raw, flags, when)
