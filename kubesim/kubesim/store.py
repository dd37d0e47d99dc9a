"""The object store behind kubesim: every object, the global resourceVersion, events and watches.

Use it from Python (simulated controllers, tests) as well as through the HTTP server.

Addressing
    Every method takes a *resource reference* ``resource``: a `ResourceType`, or a string
    resolved by `ResourceRegistry.resolve` -- a plural (``"deployments"``), ``"deployments.apps"``,
    a kind (``"Deployment"``), a short name (``"deploy"``) or ``"apps/v1/deployments"``.
    ``namespace`` is ignored for cluster-scoped resources; for namespaced ones it defaults to
    the object's ``metadata.namespace`` and then ``"default"``.

Reading (all return deep copies the caller may mutate)
    ``get(resource, name, namespace=None) -> dict``            raises `errors.NotFound`
    ``try_get(resource, name, namespace=None) -> dict | None``
    ``list(resource, namespace=None, label_selector=None, field_selector=None) -> list[dict]``
        ``namespace=None`` lists all namespaces; selectors are strings (``"app=web,tier!=db"``)
        or parsed `LabelSelector` / `FieldSelector`.
    ``dependents(owner_uid) -> list[tuple[ResourceType, dict]]``  objects whose
        ``metadata.ownerReferences`` name that uid (indexed, cheap).
    ``resource_version -> int``  the last committed resourceVersion.

Writing (return a copy of the committed object; raise `errors.ApiError` subclasses:
NotFound, AlreadyExists, Conflict, Invalid ...). Every write takes ``dry_run=False``.
    ``create(resource, obj, namespace=None)``  keeps a ``status`` given from Python (the HTTP
        layer clears it as Kubernetes does); checks the namespace exists; honours generateName.
    ``update(resource, obj, namespace=None)``  replaces spec/metadata; keeps the old status if the
        resource has a status subresource. A ``metadata.resourceVersion`` that is not current
        raises Conflict; leave it out for an unconditional update. ``generation`` is bumped
        when anything but metadata/status changes. A no-op update commits nothing.
    ``update_status(resource, obj, namespace=None)``  replaces only ``status``.
    ``modify(resource, name, fn, namespace=None, status=False)``  atomic read-modify-write:
        ``fn(copy)`` mutates the copy in place (or returns a new dict, which then replaces it;
        any other return value is ignored); then update/update_status. Retries are not needed:
        the read and the write happen under the store lock.
    ``delete(resource, name, namespace=None, propagation_policy=None, preconditions=None)``
        -> the deleted object (or, when finalizers remain, the object now carrying a
        ``deletionTimestamp``; it goes away when an update empties ``metadata.finalizers``).
        ``"Orphan"`` strips the owner's ownerReferences from dependents; ``"Foreground"`` deletes
        dependents first, synchronously; ``"Background"`` (the default) deletes only the owner and
        leaves dependents to the garbage-collecting controller (``kubesim.controllers``).
        Deleting a Namespace deletes everything in it at once (the HTTP API first marks it
        Terminating with ``terminate_namespace(name)``, then deletes it a moment later);
        deleting a CRD deletes its custom objects.
    ``delete_collection(resource, namespace=None, label_selector=None, field_selector=None)``
    ``upsert(resource, name, fn, namespace=None) -> (obj, created)``  atomic create-or-update
        from ``fn(current copy or None)`` (server-side apply uses it).

Server internals (no copies: read-only): ``get_stored``/``list_stored`` return `StoredObject` s
with cached JSON; ``watch(resource, namespace, callback, since)`` registers a raw watch.

Listening
    ``add_listener(fn, loop=None) -> remove``  ``fn(event: Event)`` is called after each committed
        change, in commit order. Without ``loop`` it runs synchronously in the committing thread,
        soon after the commit (outside the store lock, so it may call the store; changes it makes
        are delivered after the current event). With ``loop`` (an asyncio loop) it is scheduled
        there with ``loop.call_soon_threadsafe`` -- the easy way for asyncio controllers.
        Keep listeners quick; an exception is logged and swallowed.
    `Event` has ``type`` (``"ADDED"``, ``"MODIFIED"``, ``"DELETED"``), ``resource``
    (`ResourceType`, storage version), ``object`` (the committed object: do not mutate),
    ``old_object`` (previous state for MODIFIED/DELETED, else None) and ``resource_version``.

    ``add_mutator(fn) -> remove``  ``fn(resource, obj, old)`` runs under the lock before each
        create/update commits (admission-like: may fill fields in or raise an ApiError).

Snapshots and persistence
    ``snapshot() -> dict`` and ``restore(snapshot)`` copy all objects (and the resourceVersion)
    out and back (no events: `KubeSim.restore` also resyncs the controllers); a `Store` also
    simply survives server stop/start. ``kubesim.persistence.open_state(store, path)`` loads a
    state file and then records every change in a journal before the write returns (what
    ``kubesim --state`` and ``capstan-server --dev`` use: a kill -9 loses nothing).

Controllers
    The server (`kubesim.server.KubeSim`) starts simulated controllers with the store: if the
    module ``kubesim.controllers`` exists and has ``start(store)``, it is called inside the
    server's running event loop when the server starts; it may return an awaitable (awaited),
    and its result, if it has a ``stop()`` method (sync or async), is stopped with the server.

Layout
    `store_base` (objects, commits, reads, create/update), `deletion` (delete, propagation,
    namespaces), `owners` (owner index), `watches` (history and open watches), `listeners`,
    `changes` (`StoredObject`, `Event`); this module adds the system objects and snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from .changes import Event, Key, StoredObject
from .deletion import Deletions
from .objects import Obj, clone
from .resources import ResourceRegistry
from .store_base import CRDS, Journal, Mutator, ResourceRef, StoreBase
from .watches import WatchCallback

__all__ = ["Event", "Journal", "Mutator", "ResourceRef", "Store", "StoreBase", "StoredObject",
           "WatchCallback"]

_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_COMPONENTS = ("controller-manager", "etcd-0", "scheduler")


class Store(Deletions):
    """All objects, indexed by resource and namespace. Thread-safe; see the module docstring."""

    def __init__(self, registry: ResourceRegistry | None = None, history: int = 10000) -> None:
        """``history``: how many events are kept for watches that resume from a
        resourceVersion (older ones get 410 Expired, and clients relist)."""
        super().__init__(registry, history)
        for ns in _SYSTEM_NAMESPACES:
            self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": ns}})
        # what `kubectl get componentstatuses` shows on a healthy control plane (read-only)
        for component in _COMPONENTS:
            self.create("componentstatuses", {"metadata": {"name": component}, "conditions": [
                {"type": "Healthy", "status": "True", "message": "ok"}]})

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """Every object (deep copies) and the resourceVersion, for `restore`."""
        with self._lock:
            objects = [{"key": list(key), "object": clone(stored.obj)}
                       for key, stored in self._iter_all()]
            return {"resourceVersion": self._rv, "objects": objects}

    def dump_json(self) -> bytes:
        """`snapshot` as JSON bytes (what ``kubesim --state`` files hold), from the cached JSON
        of each object (no copies)."""
        with self._lock:
            parts = [b'{"key":' + json.dumps(list(key)).encode() + b',"object":' + stored.json()
                     + b"}" for key, stored in self._iter_all()]
            rv = self._rv
        return b'{"resourceVersion":%d,"objects":[' % rv + b",".join(parts) + b"]}"

    def _iter_all(self) -> Iterator[tuple[Key, StoredObject]]:
        for key, by_ns in self._data.items():
            for bucket in by_ns.values():
                for stored in bucket.values():
                    yield key, stored

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace all objects by those of a `snapshot` (no events are emitted)."""
        with self._lock:
            self._data.clear()
            self._owners.clear()
            self.registry.remove_all_crds()
            self._rv = int(snapshot["resourceVersion"])
            for entry in snapshot["objects"]:
                self.load_change("ADDED", (str(entry["key"][0]), str(entry["key"][1])),
                                 clone(entry["object"]))
            self._watches.reset(self._rv)
            if self._journal is not None:
                self._journal.restored()

    def load_change(self, etype: str, key: Key, obj: Obj) -> None:
        """Apply one recorded change as it was committed (persistence replay): no events, no
        checks. ``obj`` carries its resourceVersion; a DELETED one needs only its name and
        namespace."""
        m = obj["metadata"]
        ns, name = str(m.get("namespace", "")), str(m["name"])
        rv = int(m.get("resourceVersion") or 0)
        with self._lock:
            old = self._find(key, ns, name)
            if etype == "DELETED":
                if old is not None:
                    del self._data[key][ns][name]
                    self._owners.update(key, ns, name, old.obj, None)
                if key == CRDS:
                    self.registry.remove_crd(name)
            else:
                self._bucket(key, ns)[name] = StoredObject(obj, rv)
                self._owners.update(key, ns, name, old.obj if old else None, obj)
                if key == CRDS:
                    self.registry.add_crd(obj)
            self._rv = max(self._rv, rv)

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """The store's re-entrant lock: while it is held, nothing is committed by others."""
        return self._lock

    def set_journal(self, journal: Journal | None) -> None:
        """Record every later change in ``journal`` before it is applied (see `Journal`)."""
        with self._lock:
            self._journal = journal
