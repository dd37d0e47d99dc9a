"""A least-recently-used map under a byte budget (and, optionally, a number of items): what the
server keeps in memory (parsed indexes, files read from archives, decoded release records, list
rows and their JSON) can never grow past its budget, however much is asked for."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ByteLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """`get`/`put`/`pop`; each value has a cost in bytes, and the least recently used values go
    once the costs pass `budget` (or their number passes `max_items`). A value costing more
    than the whole budget is not kept."""

    def __init__(self, budget: int, *, max_items: int | None = None) -> None:
        self.budget = budget
        self.max_items = max_items
        self.used = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, cost: int) -> None:
        self.pop(key)
        if cost > self.budget:
            return
        self._items[key] = (value, cost)
        self.used += cost
        while self.used > self.budget or (
                self.max_items is not None and len(self._items) > self.max_items):
            _, (_, dropped) = self._items.popitem(last=False)
            self.used -= dropped

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        self.used -= item[1]
        return item[0]

    def discard_where(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in self._items if predicate(k)]:
            self.pop(key)
