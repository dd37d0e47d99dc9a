"""kubesim's state on disk: a snapshot file plus an append-only journal of every later change.

``open_state(store, path)`` loads ``path`` (a `Store.snapshot` as JSON, if present) and replays
``path.journal`` over it, writes the result as the new snapshot, empties the journal and then
records every committed change in the journal *before the write is applied and answered*: one
JSON line per change, written with ``write(2)`` on an ``O_APPEND`` descriptor. The kernel keeps
what was written when the process is killed (kill -9 loses nothing); ``fsync=True`` also syncs
every line to the disk (power loss), at a price in write latency.

Objects keep their uid, resourceVersion and creationTimestamp across restarts, and the global
resourceVersion continues from the last one. Watches do not survive a restart (a watch resuming
from an older resourceVersion gets 410 Expired and relists, as after an etcd compaction).

The journal is compacted (a new snapshot, then an empty journal) when it outgrows
``compact_above`` bytes and twice the last snapshot (so compaction costs stay proportional to
the writes), at start and at `State.close`. A snapshot is replaced atomically
(written beside it, synced, renamed); journal lines with a resourceVersion the snapshot already
holds are skipped, so a crash between the two steps is harmless. A torn last line (the process
died inside ``write``) was never answered, and is dropped.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .changes import Event
from .errors import ApiError
from .store import Store

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal"
COMPACT_ABOVE = 64 * 1024 * 1024


class StateError(Exception):
    """The state file or journal cannot be read (it is left as it is)."""


class State:
    """The `Journal` of one store: see the module docstring. Create it with `open_state`."""

    def __init__(self, store: Store, path: Path, *, fsync: bool = False,
                 compact_above: int = COMPACT_ABOVE) -> None:
        self.store = store
        self.path = path
        self.journal_path = path.with_name(path.name + JOURNAL_SUFFIX)
        self.fsync = fsync
        self.compact_above = compact_above
        self._fd: int | None = None
        self._size = 0
        self._snapshot_size = 0

    # ------------------------------------------------------------------ Journal protocol

    def record(self, event: Event) -> None:
        if self._fd is None:
            return
        line = _journal_line(event)
        try:
            _write_all(self._fd, line)
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            # refuse the write rather than answer it without having persisted it
            raise ApiError(500, "InternalError",
                           f"kubesim could not persist the change: {exc}") from exc
        self._size += len(line)

    def committed(self) -> None:
        if self._size > max(self.compact_above, 2 * self._snapshot_size):
            self.compact()

    def restored(self) -> None:
        self.compact()

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Load the snapshot and replay the journal into the store (no events)."""
        rv = 0
        if self.path.exists():
            try:
                snapshot = json.loads(self.path.read_bytes())
                self.store.restore(snapshot)
                rv = int(snapshot["resourceVersion"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StateError(f"cannot read kubesim state {self.path}: {exc}") from exc
        replayed = 0
        for number, record in enumerate(_read_journal(self.journal_path), 1):
            try:
                if int(record["rv"]) <= rv:
                    continue
                self.store.load_change(str(record["type"]), (str(record["key"][0]),
                                       str(record["key"][1])), record["object"])
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise StateError(f"corrupt kubesim journal {self.journal_path} record "
                                 f"{number}: {exc!r}") from exc
            replayed += 1
        if replayed:
            log.info("kubesim: replayed %d changes from %s", replayed, self.journal_path)

    def attach(self) -> None:
        """Start recording: a fresh snapshot of the loaded state, an empty journal."""
        self._write_snapshot()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC,
                     0o600)
        self._fd = fd
        self._size = 0
        self.store.set_journal(self)

    def compact(self) -> None:
        """Write the whole store as the snapshot, then empty the journal."""
        with self.store.lock:  # no change may fall between the snapshot and the truncation
            self._write_snapshot()
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
                self._size = 0

    def close(self) -> None:
        """Compact and stop recording (the store keeps working, unpersisted)."""
        with self.store.lock:
            self.store.set_journal(None)
            if self._fd is None:
                return
            try:
                self._write_snapshot()
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)
                self._fd = None

    def _write_snapshot(self) -> None:
        data = self.store.dump_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)
        self._snapshot_size = len(data)


def open_state(store: Store, path: str | Path, *, fsync: bool = False,
               compact_above: int = COMPACT_ABOVE) -> State:
    """Load ``path`` (and its journal) into ``store`` and persist every later change there.

    Raises `StateError` if the snapshot cannot be read (nothing is overwritten then).
    """
    state = State(store, Path(path), fsync=fsync, compact_above=compact_above)
    state.load()
    state.attach()
    return state


def _journal_line(event: Event) -> bytes:
    """One change as a JSON line, reusing the object's cached JSON (lists and watches share it).

    A deletion needs only the name, namespace and resourceVersion of the object.
    """
    key = json.dumps(list(event.resource.key)).encode()
    if event.type == "DELETED":
        m = event.object["metadata"]
        ident: dict[str, Any] = {"name": m["name"], "resourceVersion": m["resourceVersion"]}
        if m.get("namespace"):
            ident["namespace"] = m["namespace"]
        obj = json.dumps({"metadata": ident}, separators=(",", ":")).encode()
    else:
        obj = event.stored.json()
    return b'{"rv":%d,"type":"%s","key":%s,"object":%s}\n' % (
        event.resource_version, event.type.encode(), key, obj)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot read kubesim journal {path}: {exc}") from exc
    records = []
    lines = raw.split(b"\n")
    for index, line in enumerate(lines):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            if index == len(lines) - 1:  # torn tail: written when the process died, unanswered
                log.warning("kubesim: dropping a torn last journal line in %s", path)
                break
            raise StateError(f"corrupt kubesim journal {path} line {index + 1}: {exc}") from exc
    return records


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
