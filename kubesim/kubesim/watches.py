"""Watches: the recent events a watch may resume from, and the open watches to feed.

The store calls `WatchHub.publish` for each committed change while it holds its lock, so a
watch never misses nor reorders an event between its initial list and the live stream.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .changes import Event, Key
from .errors import Gone

log = logging.getLogger(__name__)

WatchCallback = Callable[[Event], None]


@dataclass
class _Watch:
    key: Key
    namespace: str | None
    callback: WatchCallback


class WatchHub:
    """Retained history (for ``resourceVersion=N`` resumes) and the table of open watches.

    Not thread-safe by itself: every method runs under the store lock.
    """

    def __init__(self, history: int) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted_rv = 0
        self._ids = itertools.count(1)
        self._table: dict[int, _Watch] = {}

    def since(self, rv: int, key: Key, namespace: str | None) -> list[Event]:
        """The retained events after ``rv`` for that resource/namespace; `Gone` if compacted."""
        if rv < self._compacted_rv:
            raise Gone(f"too old resource version: {rv} ({self._compacted_rv})")
        return [
            ev for ev in self._history
            if ev.resource_version > rv and ev.resource.key == key
            and (namespace is None or ev.namespace == namespace)
        ]

    def add(self, key: Key, namespace: str | None, callback: WatchCallback) -> int:
        watch_id = next(self._ids)
        self._table[watch_id] = _Watch(key, namespace, callback)
        return watch_id

    def remove(self, watch_id: int) -> None:
        self._table.pop(watch_id, None)

    def publish(self, event: Event) -> None:
        """Retain ``event`` and hand it to every watch of its resource and namespace."""
        if len(self._history) == self._history.maxlen and self._history:
            self._compacted_rv = self._history[0].resource_version
        self._history.append(event)
        ns = event.namespace
        for w in list(self._table.values()):
            if w.key == event.resource.key and (w.namespace is None or w.namespace == ns):
                try:
                    w.callback(event)
                except Exception:
                    log.exception("kubesim watch callback failed")

    def reset(self, rv: int) -> None:
        """Forget the history (after a restore): older resumes get 410 and relist."""
        self._history.clear()
        self._compacted_rv = rv
