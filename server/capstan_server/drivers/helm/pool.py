"""The bound on helm processes: at most `max_processes` run at once, the rest wait in a FIFO
queue of at most `max_queued`; beyond that a write is refused with ResourceExhausted and a
retry hint, instead of starting one more process on a machine that is already busy.

`command.HelmCommand.run` (the only place that starts helm) takes a slot around each process.
A queued write can be seen: `position(key)` is its place in the queue (WatchRelease reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from capstan_server.errors import ResourceExhausted

#: Writes that may wait for a helm process before new ones are refused.
DEFAULT_MAX_QUEUED = 100


def default_max_processes() -> int:
    """2 x the CPU cores this process may use (helm is mostly waiting on the API server)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 2 * max(1, cores)


@dataclass
class _Waiter:
    key: str
    operation: str
    granted: asyncio.Future[None]
    since: float = field(default_factory=time.monotonic)


class HelmPool:
    """Slots for helm processes (see the module docstring); lives on one event loop."""

    def __init__(self, max_processes: int | None = None,
                 max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        self.max_processes = max_processes or default_max_processes()
        self.max_queued = max_queued
        self.running = 0
        self._queue: list[_Waiter] = []
        #: Mean seconds a helm run has taken (for the retry hint), exponentially smoothed.
        self._mean_run = 5.0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def position(self, key: str) -> int:
        """1-based place of the first queued run for `key` (e.g. a release), 0 if none."""
        for index, waiter in enumerate(self._queue, 1):
            if waiter.key == key:
                return index
        return 0

    def queued_keys(self) -> list[str]:
        return [w.key for w in self._queue]

    def retry_after(self) -> int:
        """Seconds after which a refused write has a fair chance of a slot."""
        rounds = (len(self._queue) + 1) / self.max_processes
        return max(1, math.ceil(rounds * self._mean_run))

    @contextlib.asynccontextmanager
    async def slot(self, operation: str, key: str = "") -> AsyncIterator[None]:
        """Hold one of the slots while the block runs (waiting in the queue if needed)."""
        if self.running < self.max_processes and not self._queue:
            self.running += 1
        else:
            if len(self._queue) >= self.max_queued:
                retry = self.retry_after()
                raise ResourceExhausted(
                    f"too many helm operations: {self.running} running and {len(self._queue)} "
                    f"queued (--max-helm-processes {self.max_processes}); retry in {retry}s",
                    details=[{"reason": "helm_queue_full", "retry_after_seconds": retry,
                              "running": self.running, "queued": len(self._queue),
                              "max_helm_processes": self.max_processes}])
            waiter = _Waiter(key, operation, asyncio.get_running_loop().create_future())
            self._queue.append(waiter)
            try:
                await waiter.granted
            except asyncio.CancelledError:
                if waiter in self._queue:
                    self._queue.remove(waiter)
                elif waiter.granted.done() and not waiter.granted.cancelled():
                    self._hand_on()  # granted just as it was cancelled: pass the slot on
                raise
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_run = 0.8 * self._mean_run + 0.2 * (time.monotonic() - started)
            self._hand_on()

    def _hand_on(self) -> None:
        """A slot was given back: the first waiter takes it over, else it is free."""
        while self._queue:
            waiter = self._queue.pop(0)
            if not waiter.granted.done():
                waiter.granted.set_result(None)
                return
        self.running -= 1
