"""A small map of at most a given number of entries, the oldest dropped first, for the request path's caches
(prioritize's per-shape models, the pods last read)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """At most ``size`` entries; putting one more drops the oldest. Safe to share between threads (large requests are
    answered in a worker thread beside the event loop): reads take no lock, and writes take one, so an eviction never
    walks the map while another thread inserts ("dictionary changed size during iteration")."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                del self._items[next(iter(self._items))]


class RecentTexts(Generic[V]):
    """What was read from the last ``size`` texts (JSON as a request carried it), newest first, found by comparing
    texts. For a handful of entries this is cheaper than a map: a text of kilobytes would be hashed on every lookup,
    where a comparison ends at once when the lengths differ and at the first differing byte otherwise. Safe to share
    between threads: the entries are replaced whole (two racing puts may keep one of the two, never a mix)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: tuple[tuple[bytes, V], ...] = ()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: bytes) -> V | None:
        for kept, value in self._entries:
            if kept == text:
                return value
        return None

    def put(self, text: bytes, value: V) -> None:
        self._entries = ((text, value), *self._entries[: self.size - 1])
