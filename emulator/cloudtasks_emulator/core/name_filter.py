"""A Bloom filter of names: the store's cheap "may this task name be taken?" before any SQL."""
from __future__ import annotations

from typing import Iterable

BITS_PER_NAME = 10  # with 3 probes: about 1.7% false "maybe" when full, and 1.25 bytes per name
PROBES = 3
_MASK64 = (1 << 64) - 1


class NameFilter:
    """``name in f`` is True for every name added, and for about 2% of others once full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.count = 0
        self._size = self.capacity * BITS_PER_NAME
        self._bits = bytearray(self._size // 8 + 1)

    @classmethod
    def of(cls, names: Iterable[str], count: int, min_capacity: int) -> "NameFilter":
        """A filter of ``names`` (about ``count`` of them, streamed: never held in a list) with room
        for as many again, at least ``min_capacity``."""
        out = cls(max(min_capacity, 2 * count))
        for name in names:
            out.add(name)
        return out

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def _positions(self, name: str) -> tuple[int, ...]:
        h = hash(name) & _MASK64
        low, step = h & 0xFFFFFFFF, (h >> 32) | 1  # double hashing: probe i at low + i * step
        size = self._size
        return tuple((low + i * step) % size for i in range(PROBES))

    def add(self, name: str) -> None:
        bits = self._bits
        for pos in self._positions(name):
            bits[pos >> 3] |= 1 << (pos & 7)
        self.count += 1

    def add_if_new(self, name: str) -> bool:
        """Add ``name`` and return True when the filter surely did not have it; else change nothing
        and return False (it may have it). One hashing for both."""
        positions = self._positions(name)
        bits = self._bits
        if all(bits[pos >> 3] & (1 << (pos & 7)) for pos in positions):
            return False
        for pos in positions:
            bits[pos >> 3] |= 1 << (pos & 7)
        self.count += 1
        return True

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        bits = self._bits
        return all(bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(name))
