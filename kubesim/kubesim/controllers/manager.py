"""The controller manager: routes store events to controllers and runs their reconciles.

Reconciles run *synchronously* from a store listener: by the time a write made through the API
returns, the controllers have already reacted to it (created the ReplicaSet and Pods of a new
Deployment, written its status ...). That makes waits deterministic, and the order of work is
the order of events. Only delayed work (``kubesim.io/ready-after``, progress deadlines, Job
TTLs, retries) goes through timers on the asyncio loop the manager was started in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from ..store import Event, Store
from .base import ANY_RESOURCE, Context, Controller, Key, Router, log, retriable

_MAX_BACKOFF = 1.0


class ControllerManager:
    """Runs a set of `Controller` s against a `Store`. Use `start` to create one."""

    def __init__(
        self,
        store: Store,
        controller_types: Sequence[type[Controller]],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.store = store
        self.loop = loop
        self.ctx = Context(store, self)
        self.controllers: dict[str, Controller] = {}
        self._routes: dict[tuple[str, str], list[tuple[str, Router]]] = {}
        self._any_routes: list[tuple[str, Router]] = []
        for cls in controller_types:
            ctl = cls(self.ctx)
            self.controllers[ctl.name] = ctl
            for rkey, router in ctl.routes().items():
                if rkey == ANY_RESOURCE:
                    self._any_routes.append((ctl.name, router))
                else:
                    self._routes.setdefault(rkey, []).append((ctl.name, router))
        self._queue: OrderedDict[tuple[str, Key], None] = OrderedDict()
        # _qlock guards the queue and timers and is held only briefly; _work is held while
        # reconciling and never waited for, so a listener called from any thread (even one
        # holding the store lock) never blocks on us.
        self._qlock = threading.Lock()
        self._work = threading.Lock()
        self._failures: dict[tuple[str, Key], int] = {}
        self._timers: dict[tuple[str, Key], asyncio.TimerHandle] = {}
        self._due: dict[tuple[str, Key], float] = {}
        self._remove_listener: object = None
        self._stopped = True
        self._born: dict[str, float] = {}
        #: Number of reconciles run (for tests and the benchmark).
        self.reconciles = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ControllerManager:
        if not self._stopped:
            return self
        self._stopped = False
        self._remove_listener = self.store.add_listener(self._on_event)
        with self._work:
            for ctl in self.controllers.values():
                ctl.on_start()
        self.resync()
        return self

    async def stop(self) -> None:
        """Stop reacting to events and cancel pending timers (objects stay as they are)."""
        self.stop_now()
        await asyncio.sleep(0)

    def stop_now(self) -> None:
        self._stopped = True
        remove = self._remove_listener
        self._remove_listener = None
        if callable(remove):
            remove()
        with self._qlock:
            timers = list(self._timers.values())
            self._timers.clear()
            self._due.clear()
            self._queue.clear()
        for handle in timers:
            handle.cancel()

    def resync(self) -> None:
        """Reconcile everything (after a start, or after `Store.restore`)."""
        for ctl in self.controllers.values():
            keys = list(ctl.resync())
            with self._qlock:
                for key in keys:
                    self._queue[(ctl.name, key)] = None
        self._process()

    # ------------------------------------------------------------------ queueing

    def enqueue(self, controller: str, key: Key) -> None:
        with self._qlock:
            self._queue[(controller, key)] = None
        self._process()

    def requeue_after(self, controller: str, key: Key, delay: float) -> None:
        """Reconcile ``key`` again after ``delay`` seconds (the earliest request wins)."""
        if self._stopped:
            return
        item = (controller, key)
        if delay <= 0:
            with self._qlock:
                self._queue[item] = None
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        due = time.monotonic() + delay
        with self._qlock:
            current = self._due.get(item)
            if current is not None and current <= due:
                return
            self._due[item] = due

        def arm() -> None:
            with self._qlock:
                if self._stopped or self._due.get(item) != due:
                    return
                old = self._timers.pop(item, None)
                self._timers[item] = loop.call_later(max(0.0, due - time.monotonic()), fire)
            if old is not None:
                old.cancel()

        def fire() -> None:
            with self._qlock:
                if self._due.get(item) == due:
                    self._due.pop(item, None)
                    self._timers.pop(item, None)
            self.enqueue(controller, key)

        if _in_loop(loop):
            arm()
        else:
            loop.call_soon_threadsafe(arm)

    def pending(self) -> int:
        """Queued reconciles plus armed timers."""
        with self._qlock:
            return len(self._queue) + len(self._due)

    def idle(self) -> bool:
        """True when no reconcile is queued or running (timers may be armed)."""
        with self._qlock:
            return not self._queue and not self._work.locked()

    async def wait_idle(self) -> None:
        """Wait until no reconcile is queued or running (timers for later work may remain).

        Wrap it in ``asyncio.timeout`` to bound the wait.
        """
        # Reconciles run in whichever thread commits a change, so there is no loop-bound
        # event to await: poll.
        while not self.idle():  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    # ------------------------------------------------------------------ simulated time

    def note_created(self, uid: str) -> None:
        """Remember when a simulated object (a Pod) came to be, for ``ready-after`` delays."""
        self._born[uid] = time.monotonic()

    def remaining(self, uid: str, delay: float) -> float:
        """Seconds left until ``delay`` has passed since ``uid`` was created (or first seen)."""
        if delay <= 0:
            return 0.0
        now = time.monotonic()
        born = self._born.setdefault(uid, now)
        return max(0.0, born + delay - now)

    def forget(self, uid: str) -> None:
        self._born.pop(uid, None)

    # ------------------------------------------------------------------ event handling

    def _on_event(self, event: Event) -> None:
        if self._stopped:
            return
        routes = self._routes.get(event.resource.key, ())
        items = [(controller, key) for controller, router in routes for key in router(event)]
        for controller, router in self._any_routes:
            items.extend((controller, key) for key in router(event))
        if not items:
            return
        with self._qlock:
            for item in items:
                self._queue[item] = None
        self._process()

    def _process(self) -> None:
        """Run queued reconciles unless someone (this thread, re-entered, or another) already is."""
        while not self._stopped:
            if not self._work.acquire(blocking=False):
                return
            try:
                while not self._stopped:
                    with self._qlock:
                        if not self._queue:
                            break
                        item, _ = self._queue.popitem(last=False)
                    self._run_one(item)
            finally:
                self._work.release()
            with self._qlock:
                if not self._queue:
                    return

    def _run_one(self, item: tuple[str, Key]) -> None:
        controller, key = item
        ctl = self.controllers.get(controller)
        if ctl is None:
            return
        self.reconciles += 1
        try:
            ctl.reconcile(key)
        except Exception as exc:
            failures = self._failures.get(item, 0) + 1
            self._failures[item] = failures
            delay = min(_MAX_BACKOFF, 0.005 * (2 ** min(failures, 10)))
            if retriable(exc):
                log.debug("kubesim %s %s: %s; retrying in %.3fs", controller, key, exc, delay)
            else:
                log.exception("kubesim controller %s failed on %s", controller, key)
            self.requeue_after(controller, key, delay)
        else:
            self._failures.pop(item, None)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

