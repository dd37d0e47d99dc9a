"""The `--wait` progress display: WatchRelease events drawn on stderr while an operation runs.

On a terminal one bar line is redrawn in place; otherwise (a pipe, a CI log) a plain line is
printed whenever the state changes. Watching is best effort: it never changes the operation's
outcome, and a watch that fails (the release does not exist yet, the stream ended early) is
simply reopened until the operation returns.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from capstan.client import CapstanClient, CapstanError, ServerStream
from capstan.v1 import release_pb2

__all__ = ["ProgressDisplay", "WatchTarget", "run_with_progress"]

_BAR_WIDTH = 24
#: Pause before reopening a watch, e.g. while a new release does not exist yet.
_REOPEN_DELAY_S = 0.25
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WatchTarget:
    """The release an operation works on, as WatchRelease addresses it."""

    name: str
    cluster: str = ""
    namespace: str = ""


def run_with_progress(
    client: CapstanClient,
    stderr: TextIO,
    target: WatchTarget,
    operation: Callable[[], release_pb2.Release],
) -> release_pb2.Release:
    """Run `operation` (a blocking create/upgrade/rollback) while drawing its progress."""
    display = ProgressDisplay(stderr, target.name)
    watcher = _Watcher(client, target, display)
    watcher.start()
    try:
        release = operation()
    except BaseException:
        watcher.stop()
        display.abandon()
        raise
    watcher.stop()
    display.finish(release)
    return release


class ProgressDisplay:
    """Draws release events as a bar (terminal) or as plain lines (anything else)."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty()
        self._last = ""
        self._lock = threading.Lock()

    def update(self, event: release_pb2.ReleaseEvent) -> None:
        """Show one WatchRelease event."""
        percent = _percent(event)
        self._show(percent, _describe(event))

    def finish(self, release: release_pb2.Release) -> None:
        """Show the operation's outcome and end the display."""
        settled = release_pb2.ReleaseEvent(release=release, settled=True)
        self._show(_percent(settled), _describe(settled))
        self._end_line()

    def abandon(self) -> None:
        """End the display after the operation failed (its error is reported elsewhere)."""
        self._end_line()

    def _show(self, percent: int, text: str) -> None:
        with self._lock:
            if self._tty:
                self._draw_bar(percent, text)
            elif text != self._last:
                self._stream.write(f"{self._label}: {text} [{percent}%]\n")
                self._stream.flush()
            self._last = text

    def _draw_bar(self, percent: int, text: str) -> None:
        filled = _BAR_WIDTH * percent // 100
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        # The bar first: on a narrow terminal the cut falls on the details, not on the numbers.
        line = f"[{bar}] {percent:3d}% {self._label}: {text}"
        width = shutil.get_terminal_size(fallback=(80, 24)).columns - 1
        # \r returns to the line start, \x1b[K clears what a longer previous line left behind.
        self._stream.write(f"\r{line[:width]}\x1b[K")
        self._stream.flush()

    def _end_line(self) -> None:
        with self._lock:
            if self._tty and self._last:
                self._stream.write("\n")
                self._stream.flush()
            self._last = ""


def _percent(event: release_pb2.ReleaseEvent) -> int:
    release = event.release
    if event.settled and release.status == "deployed":
        return 100
    if release.progress:
        return min(max(release.progress, 0), 100)
    if event.resources:
        ready = sum(1 for item in event.resources if item.ready)
        return 100 * ready // len(event.resources)
    return 0


def _describe(event: release_pb2.ReleaseEvent) -> str:
    if event.queued:
        return f"queued, waiting for a helm process (position {event.queue_position})"
    status = event.release.status or "unknown"
    if event.settled:
        return f"{status} (revision {event.release.version})"
    waiting = [item for item in event.resources if not item.ready]
    if not waiting:
        return status
    first = waiting[0]
    more = f" and {len(waiting) - 1} more" if len(waiting) > 1 else ""
    state = f" ({first.message})" if first.message else ""
    return f"{status}, waiting for {first.kind}/{first.name}{state}{more}"


class _Watcher(threading.Thread):
    """Feeds a ProgressDisplay from WatchRelease until stopped."""

    def __init__(self, client: CapstanClient, target: WatchTarget, display: ProgressDisplay):
        super().__init__(name="capstan-progress", daemon=True)
        self._client = client
        self._target = target
        self._display = display
        self._stopped = threading.Event()
        self._stream: ServerStream[release_pb2.ReleaseEvent] | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        # Until the operation has visibly started, a settled event describes the revision before
        # it (an upgrade not begun yet); showing it as the outcome would mislead.
        started = False
        while not self._stopped.is_set():
            stream = self._client.watch_release(
                self._target.name, cluster=self._target.cluster, namespace=self._target.namespace
            )
            with self._lock:
                if self._stopped.is_set():
                    return
                self._stream = stream
            try:
                for event in stream:
                    # A queued write has not started: show its place, not yet the old state.
                    started = started or not (event.settled or event.queued)
                    if started or event.queued:
                        self._display.update(event)
            except CapstanError:
                pass  # e.g. NOT_FOUND while a new release is being created: look again shortly
            self._stopped.wait(_REOPEN_DELAY_S)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()
        self.join(_STOP_TIMEOUT_S)
