"""A bounded in-memory cache of decoded (and resized) image/mask pairs, least recently used out first.

A dataset that fits in the bound is decoded (and resized) once per loader process instead of
once per crop. Arrays are handed out read-only,
so a transform that tried to change one in place would fail loudly instead of corrupting the cache.

Example:
    >>> import numpy as np
    >>> cache = PairCache(max_bytes=200)
    >>> a, b = np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8)
    >>> cache.put(0, a, b); cache.put(1, a, b); cache.put(2, a, b)   # 128 bytes each: only the newest fits
    >>> sorted(cache.keys()), cache.nbytes <= cache.max_bytes
    ([2], True)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class PairCache:
    """Least-recently-used ``key -> (image, mask)`` store holding at most ``max_bytes`` of arrays."""

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes} must be >= 0")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._items: OrderedDict[Hashable, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> tuple[np.ndarray, np.ndarray] | None:
        pair = self._items.get(key)
        if pair is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return pair

    def put(self, key: Hashable, image: np.ndarray, mask: np.ndarray) -> None:
        size = image.nbytes + mask.nbytes
        if size > self.max_bytes:  # never evict everything for one pair that cannot fit anyway
            return
        if key in self._items:
            old = self._items.pop(key)
            self.nbytes -= old[0].nbytes + old[1].nbytes
        while self._items and self.nbytes + size > self.max_bytes:
            _, (i, m) = self._items.popitem(last=False)
            self.nbytes -= i.nbytes + m.nbytes
        image.setflags(write=False)
        mask.setflags(write=False)
        self._items[key] = (image, mask)
        self.nbytes += size

    def keys(self) -> list[Hashable]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
