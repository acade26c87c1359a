"""A per-process cache of stored bodies and their index and search data (issue 17).

A body's bytes, its serialized index and its search data never change once stored, and
body ids are never reused (they come from a sequence), so an entry read once stays right
for as long as the body exists: nothing has to invalidate it on a write. The one change a
body sees is its removal (the last message using it expunged); the store drops the ids it
releases, so this process never serves a body it removed. A body removed by another
process may still be served from here until it is evicted, which is what a read that
started just before the expunge would have returned: sessions read the message rows
first, and a row that is gone is never fetched.

Bounded by the bytes it holds (least recently used out first); one entry larger than an
eighth of the bound is not kept. Thread-safe: the store's synchronous reads run on the
callers' threads, its coroutines' results are kept from the store's own thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

# what is kept per body: (raw, index), the index alone, the search data
Kind = Literal["blob", "meta", "search"]
Value = tuple[bytes, bytes] | bytes

DEFAULT_BYTES = 64 * 1024 * 1024


def _size(value: Value) -> int:
    if isinstance(value, tuple):
        return len(value[0]) + len(value[1]) + 64
    return len(value) + 64


class BodyCache:
    """LRU of immutable per-body data, bounded by `limit` octets (0: keeps nothing)."""

    def __init__(self, limit: int = DEFAULT_BYTES) -> None:
        self.limit = limit
        self.used = 0
        self._entries: OrderedDict[tuple[Kind, int], Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: Kind, blob_id: int) -> Value | None:
        with self._lock:
            value = self._entries.get((kind, blob_id))
            if value is not None:
                self._entries.move_to_end((kind, blob_id))
            return value

    def blob(self, blob_id: int) -> tuple[bytes, bytes] | None:
        value = self.get("blob", blob_id)
        return value if isinstance(value, tuple) else None

    def meta(self, blob_id: int) -> bytes | None:
        """The index alone, or from a cached (raw, index)."""
        with self._lock:
            value = self._entries.get(("meta", blob_id)) or self._entries.get(("blob", blob_id))
        if isinstance(value, tuple):
            return value[1]
        return value

    def data(self, kind: Kind, blob_id: int) -> bytes | None:
        value = self.get(kind, blob_id)
        return value if isinstance(value, bytes) else None

    def put(self, kind: Kind, blob_id: int, value: Value) -> None:
        size = _size(value)
        if size * 8 > self.limit:
            return
        key = (kind, blob_id)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= _size(old)
            self._entries[key] = value
            self.used += size
            while self.used > self.limit:
                _, dropped = self._entries.popitem(last=False)
                self.used -= _size(dropped)

    def forget(self, blob_ids: Iterable[int]) -> None:
        """Drops every entry of these bodies (released by this process)."""
        with self._lock:
            for blob_id in blob_ids:
                for kind in ("blob", "meta", "search"):
                    old = self._entries.pop((kind, blob_id), None)
                    if old is not None:
                        self.used -= _size(old)
