"""Store listeners: called after each committed change, in commit order, outside the store lock.

A listener may write to the store; the events of those writes are delivered after the
current one (one thread drains the queue at a time, so the order is the commit order).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

from .changes import Event

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class Listeners:
    """Registered listeners and the queue of committed events not yet delivered to them."""

    def __init__(self) -> None:
        self._entries: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()
        self._dispatching = False

    def add(
        self, fn: Listener, loop: asyncio.AbstractEventLoop | None = None
    ) -> Callable[[], None]:
        """Call ``fn(event)`` after each committed change; returns a function that removes it."""
        entry = (fn, loop)
        with self._lock:
            self._entries.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return remove

    def queue(self, event: Event) -> None:
        """Queue a committed event (the store calls it under its lock)."""
        with self._lock:
            self._pending.append(event)

    def drain(self) -> None:
        """Deliver the queued events (the store calls it after releasing its lock)."""
        with self._lock:
            if self._dispatching:
                return
            self._dispatching = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._dispatching = False
                        return
                    event = self._pending.popleft()
                    entries = list(self._entries)
                for fn, loop in entries:
                    try:
                        if loop is not None:
                            if not loop.is_closed():
                                loop.call_soon_threadsafe(fn, event)
                        else:
                            fn(event)
                    except Exception:
                        log.exception("kubesim store listener failed")
        except BaseException:
            with self._lock:
                self._dispatching = False
            raise
