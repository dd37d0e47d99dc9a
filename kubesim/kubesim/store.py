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

Snapshots
    ``snapshot() -> dict`` and ``restore(snapshot)`` copy all objects (and the resourceVersion)
    out and back (no events: `KubeSim.restore` also resyncs the controllers); a `Store` also
    simply survives server stop/start.

Controllers
    The server (`kubesim.server.KubeSim`) starts simulated controllers with the store: if the
    module ``kubesim.controllers`` exists and has ``start(store)``, it is called inside the
    server's running event loop when the server starts; it may return an awaitable (awaited),
    and its result, if it has a ``stop()`` method (sync or async), is stopped with the server.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import managed_fields
from .admission import admit
from .errors import AlreadyExists, BadRequest, Conflict, Forbidden, Gone, Invalid, NotFound
from .names import name_problems
from .objects import (
    Obj,
    clone,
    generate_name,
    meta,
    new_uid,
    now_rfc3339,
    owner_uids,
    spec_part,
)
from .resources import ResourceRegistry, ResourceType
from .selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

ResourceRef = str | ResourceType
Listener = Callable[["Event"], None]
Mutator = Callable[[ResourceType, Obj, Obj | None], None]
_Key = tuple[str, str]

_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_COMPONENTS = ("controller-manager", "etcd-0", "scheduler")
_NAMESPACES: _Key = ("", "namespaces")
_CRDS: _Key = ("apiextensions.k8s.io", "customresourcedefinitions")


class StoredObject:
    """A committed object plus its lazily cached compact JSON (shared by lists and watches)."""

    __slots__ = ("_json", "obj", "rv")

    def __init__(self, obj: Obj, rv: int) -> None:
        self.obj = obj
        self.rv = rv
        self._json: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._json


@dataclass(frozen=True)
class Event:
    """One committed change. ``object`` is the stored object itself: treat it as read-only."""

    type: str
    resource: ResourceType
    object: Obj
    old_object: Obj | None
    resource_version: int
    stored: StoredObject

    @property
    def namespace(self) -> str:
        return str((self.object.get("metadata") or {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str((self.object.get("metadata") or {}).get("name", ""))


WatchCallback = Callable[[Event], None]


@dataclass
class _Watch:
    key: _Key
    namespace: str | None
    callback: WatchCallback


class Store:
    """All objects, indexed by resource and namespace. Thread-safe; see the module docstring."""

    def __init__(self, registry: ResourceRegistry | None = None, history: int = 10000) -> None:
        """``history``: how many events are kept for watches that resume from a
        resourceVersion (older ones get 410 Expired, and clients relist)."""
        self.registry = registry or ResourceRegistry()
        self._lock = threading.RLock()
        self._rv = 0
        # (group, plural) -> namespace ("" when cluster-scoped) -> name -> object
        self._data: dict[_Key, dict[str, dict[str, StoredObject]]] = {}
        self._owners: dict[str, set[tuple[_Key, str, str]]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted_rv = 0
        self._watch_ids = itertools.count(1)
        self._watch_table: dict[int, _Watch] = {}
        self._listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []
        self._mutators: list[Mutator] = []
        self._pending: deque[Event] = deque()
        self._dispatch_lock = threading.Lock()
        self._dispatching = False
        for ns in _SYSTEM_NAMESPACES:
            self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": ns}})
        # what `kubectl get componentstatuses` shows on a healthy control plane (read-only)
        for component in _COMPONENTS:
            self.create("componentstatuses", {"metadata": {"name": component}, "conditions": [
                {"type": "Healthy", "status": "True", "message": "ok"}]})

    # ------------------------------------------------------------------ basics

    @property
    def resource_version(self) -> int:
        return self._rv

    def resolve(self, resource: ResourceRef) -> ResourceType:
        """The storage-version `ResourceType` for a reference (KeyError if unknown)."""
        rt = self.registry.resolve(resource)
        if rt.storage_version and rt.storage_version != rt.version:
            rt = self.registry.by_key(rt.key) or rt
        return rt

    def _ns(self, rt: ResourceType, namespace: str | None, obj: Obj | None = None) -> str:
        if not rt.namespaced:
            return ""
        if namespace:
            return namespace
        if obj is not None:
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns:
                return str(ns)
        return "default"

    def _bucket(self, key: _Key, ns: str) -> dict[str, StoredObject]:
        return self._data.setdefault(key, {}).setdefault(ns, {})

    def _find(self, key: _Key, ns: str, name: str) -> StoredObject | None:
        return self._data.get(key, {}).get(ns, {}).get(name)

    # ------------------------------------------------------------------ listeners

    def add_listener(
        self, fn: Listener, loop: asyncio.AbstractEventLoop | None = None
    ) -> Callable[[], None]:
        """Call ``fn(event)`` after each committed change; returns a function that removes it."""
        entry = (fn, loop)
        with self._lock:
            self._listeners.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return remove

    def add_mutator(self, fn: Mutator) -> Callable[[], None]:
        """Run ``fn(resource, obj, old)`` on every create (``old`` None) and non-status update.

        It is called under the store lock, before the write is committed (and on dry runs),
        after defaulting; it may change ``obj`` in place (e.g. allocate a Service's clusterIP)
        or raise an `ApiError` to refuse the write. It must not call the store. Returns a
        function that removes it.
        """
        with self._lock:
            self._mutators.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._mutators:
                    self._mutators.remove(fn)

        return remove

    def _mutate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        for fn in list(self._mutators):
            fn(rt, obj, old)

    def _drain(self) -> None:
        with self._dispatch_lock:
            if self._dispatching:
                return
            self._dispatching = True
        try:
            while True:
                with self._dispatch_lock:
                    if not self._pending:
                        self._dispatching = False
                        return
                    event = self._pending.popleft()
                for fn, loop in list(self._listeners):
                    try:
                        if loop is not None:
                            if not loop.is_closed():
                                loop.call_soon_threadsafe(fn, event)
                        else:
                            fn(event)
                    except Exception:
                        log.exception("kubesim store listener failed")
        except BaseException:
            with self._dispatch_lock:
                self._dispatching = False
            raise

    def watch(
        self,
        resource: ResourceRef,
        namespace: str | None,
        callback: WatchCallback,
        since: int | None = None,
    ) -> tuple[list[Event], Callable[[], None]]:
        """Register a low-level watch (used by the HTTP server).

        Returns the events to send first -- synthetic ADDED events for the current objects when
        ``since`` is None, else the retained events after resourceVersion ``since`` (raises
        `Gone` if those were compacted) -- and a cancel function. ``callback`` then gets each
        later event for that resource/namespace *while the store lock is held*: it must not
        block nor call the store (hand the event to a queue).
        """
        rt = self.resolve(resource)
        key = rt.key
        with self._lock:
            initial: list[Event] = []
            if since is None:
                for stored in self._iter_stored(key, namespace):
                    initial.append(Event("ADDED", rt, stored.obj, None, stored.rv, stored))
                initial.sort(key=lambda e: e.resource_version)
            else:
                if since < self._compacted_rv:
                    raise Gone(f"too old resource version: {since} ({self._compacted_rv})")
                for ev in self._history:
                    if ev.resource_version > since and ev.resource.key == key and (
                        namespace is None or ev.namespace == namespace
                    ):
                        initial.append(ev)
            watch_id = next(self._watch_ids)
            self._watch_table[watch_id] = _Watch(key, namespace, callback)

        def cancel() -> None:
            with self._lock:
                self._watch_table.pop(watch_id, None)

        return initial, cancel

    # ------------------------------------------------------------------ commit core

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _index_owners(
        self, key: _Key, ns: str, name: str, old: Obj | None, new: Obj | None
    ) -> None:
        ref = (key, ns, name)
        for uid in owner_uids(old) if old else []:
            refs = self._owners.get(uid)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del self._owners[uid]
        for uid in owner_uids(new) if new else []:
            self._owners.setdefault(uid, set()).add(ref)

    def _commit(
        self, rt: ResourceType, etype: str, new: Obj, old: Obj | None, rv: int
    ) -> Event:
        """Store (or remove, for DELETED) ``new`` and emit the event. Caller holds the lock."""
        m = new["metadata"]
        ns, name = str(m.get("namespace", "")), str(m["name"])
        stored = StoredObject(new, rv)
        if etype == "DELETED":
            bucket = self._data.get(rt.key, {}).get(ns)
            if bucket is not None:
                bucket.pop(name, None)
            self._index_owners(rt.key, ns, name, old, None)
        else:
            self._bucket(rt.key, ns)[name] = stored
            self._index_owners(rt.key, ns, name, old, new)
        event = Event(etype, rt, new, old, rv, stored)
        if len(self._history) == self._history.maxlen and self._history:
            self._compacted_rv = self._history[0].resource_version
        self._history.append(event)
        for w in list(self._watch_table.values()):
            if w.key == rt.key and (w.namespace is None or w.namespace == ns):
                try:
                    w.callback(event)
                except Exception:
                    log.exception("kubesim watch callback failed")
        with self._dispatch_lock:
            self._pending.append(event)
        return event

    # ------------------------------------------------------------------ reads

    def _iter_stored(self, key: _Key, namespace: str | None) -> Iterator[StoredObject]:
        by_ns = self._data.get(key, {})
        if namespace is not None:
            yield from by_ns.get(namespace, {}).values()
        else:
            for bucket in by_ns.values():
                yield from bucket.values()

    def get_stored(
        self, resource: ResourceRef, name: str, namespace: str | None = None
    ) -> StoredObject:
        """The committed object without copying (read-only); raises NotFound."""
        rt = self.resolve(resource)
        stored = self._find(rt.key, self._ns(rt, namespace), name)
        if stored is None:
            raise NotFound(rt, name)
        return stored

    def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> Obj:
        return clone(self.get_stored(resource, name, namespace).obj)

    def try_get(
        self, resource: ResourceRef, name: str, namespace: str | None = None
    ) -> Obj | None:
        try:
            return self.get(resource, name, namespace)
        except NotFound:
            return None

    def list_stored(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
    ) -> tuple[list[StoredObject], int]:
        """Matching committed objects sorted by (namespace, name), and the list resourceVersion."""
        rt = self.resolve(resource)
        labels = (
            label_selector
            if isinstance(label_selector, LabelSelector)
            else parse_label_selector(label_selector)
        )
        fields = (
            field_selector
            if isinstance(field_selector, FieldSelector)
            else parse_field_selector(field_selector)
        )
        if not rt.namespaced:
            namespace = None
        elif fields and namespace is None:
            namespace = fields.exact("metadata.namespace")
        with self._lock:
            rv = self._rv
            by_ns = self._data.get(rt.key, {})
            if namespace is not None:
                buckets = [(namespace, by_ns.get(namespace, {}))]
            else:
                buckets = sorted(by_ns.items())
            only_name = fields.exact("metadata.name") if fields else None
            out: list[StoredObject] = []
            for _ns, bucket in buckets:
                if only_name is not None:
                    candidates = [bucket[only_name]] if only_name in bucket else []
                else:
                    candidates = [bucket[n] for n in sorted(bucket)]
                for stored in candidates:
                    m = stored.obj["metadata"]
                    if labels and not labels.matches(m.get("labels")):
                        continue
                    if fields and not fields.matches(stored.obj):
                        continue
                    out.append(stored)
        return out, rv

    def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
    ) -> list[Obj]:
        items, _ = self.list_stored(resource, namespace, label_selector, field_selector)
        return [clone(s.obj) for s in items]

    def dependents(self, owner_uid: str) -> builtins.list[tuple[ResourceType, Obj]]:
        with self._lock:
            out = []
            for key, ns, name in sorted(self._owners.get(owner_uid, ())):
                stored = self._find(key, ns, name)
                rt = self.registry.by_key(key)
                if stored is not None and rt is not None:
                    out.append((rt, clone(stored.obj)))
            return out

    def namespace_exists(self, name: str) -> bool:
        return self._find(_NAMESPACES, "", name) is not None

    # ------------------------------------------------------------------ create

    def create(
        self,
        resource: ResourceRef,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
        clear_status: bool = False,
        copy: bool = True,
    ) -> Obj:
        """Create ``obj``; see the module docstring. ``clear_status`` drops a given status."""
        rt = self.resolve(resource)
        with self._lock:
            new = self._create_locked(rt, clone(obj), namespace, clear_status, dry_run,
                                      field_manager)
        self._drain()
        return clone(new) if copy else new

    def _create_locked(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None,
        clear_status: bool,
        dry_run: bool,
        field_manager: str | None,
    ) -> Obj:
        new = self._prepare_create(rt, obj, namespace, clear_status)
        if field_manager:
            managed_fields.record_update(None, new, field_manager, rt.api_version, "")
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        self._commit(rt, "ADDED", new, None, self._rv)
        if rt.key == _CRDS:
            self.registry.add_crd(new)
        return new

    def _prepare_create(
        self, rt: ResourceType, obj: Obj, namespace: str | None, clear_status: bool
    ) -> Obj:
        from .defaults import apply_defaults  # local: defaults imports nothing from here

        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        m = meta(obj)
        if rt.namespaced:
            given = m.get("namespace")
            if namespace and given and given != namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            ns = self._ns(rt, namespace, obj)
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
            ns = ""
        name = m.get("name")
        if not name:
            prefix = m.get("generateName")
            if not prefix:
                raise Invalid(rt, "", [("metadata.name", "Required value: name or generateName "
                                        "is required")])
            for _ in range(20):
                name = generate_name(str(prefix))
                if self._find(rt.key, ns, name) is None:
                    break
            m["name"] = name
        name = str(name)
        problems = name_problems(name, rt.name_rule)
        if problems:
            raise Invalid(rt, name, [("metadata.name", f'Invalid value: "{name}": {problem}')
                                     for problem in problems])
        if rt.namespaced:
            ns_obj = self._find(_NAMESPACES, "", ns)
            if ns_obj is None:
                raise NotFound(self.registry.resolve("namespaces"), ns)
            if ns_obj.obj["metadata"].get("deletionTimestamp"):
                raise Forbidden(
                    f'{rt.group_resource} "{name}" is forbidden: unable to create new content in '
                    f"namespace {ns} because it is being terminated"
                )
        if self._find(rt.key, ns, name) is not None:
            raise AlreadyExists(rt, name)
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "selfLink"):
            m.pop(transient, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            m["generation"] = 1
        else:
            m.pop("generation", None)
        if clear_status and rt.has_status:
            obj.pop("status", None)
        apply_defaults(rt, obj)
        admit(rt, obj)
        self._mutate(rt, obj, None)
        return obj

    # ------------------------------------------------------------------ update

    def update(
        self,
        resource: ResourceRef,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str | None = None,
        copy: bool = True,
    ) -> Obj:
        """Replace an object (``subresource="status"`` replaces only its status)."""
        rt = self.resolve(resource)
        obj = clone(obj)
        with self._lock:
            result = self._update_locked(rt, obj, namespace, subresource, dry_run, field_manager)
        self._drain()
        return clone(result) if copy else result

    def update_status(
        self, resource: ResourceRef, obj: Obj, namespace: str | None = None, **kw: Any
    ) -> Obj:
        return self.update(resource, obj, namespace, subresource="status", **kw)

    def _update_locked(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None,
        subresource: str,
        dry_run: bool,
        field_manager: str | None,
    ) -> Obj:
        m = meta(obj)
        ns = self._ns(rt, namespace, obj)
        name = str(m.get("name") or "")
        if rt.namespaced and m.get("namespace") and m["namespace"] != ns:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        stored = self._find(rt.key, ns, name)
        if stored is None:
            raise NotFound(rt, name)
        old = stored.obj
        old_m = old["metadata"]
        given_rv = m.get("resourceVersion")
        if given_rv not in (None, "") and str(given_rv) != old_m["resourceVersion"]:
            raise Conflict(rt, name)
        if subresource == "status":
            new = clone(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            new["apiVersion"] = rt.api_version
            new["kind"] = rt.kind
            nm = new["metadata"]
            for fixed in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
                if fixed in old_m:
                    nm[fixed] = old_m[fixed]
                else:
                    nm.pop(fixed, None)
            if rt.namespaced:
                nm["namespace"] = ns
            if "managedFields" not in nm and "managedFields" in old_m:
                nm["managedFields"] = old_m["managedFields"]
            if rt.has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            from .defaults import apply_defaults

            apply_defaults(rt, new)
            if rt.kind in ("Secret", "ConfigMap") and old.get("immutable"):
                for f in ("data", "stringData", "binaryData", "immutable"):
                    if old.get(f) != new.get(f):
                        raise Invalid(rt, name, [(f, "Forbidden: field is immutable when "
                                                  "`immutable` is set")])
            admit(rt, new)
            self._mutate(rt, new, old)
        new["metadata"].pop("resourceVersion", None)
        if rt.has_generation and spec_part(new) != spec_part(old):
            new["metadata"]["generation"] = int(old_m.get("generation") or 0) + 1
        if field_manager:
            managed_fields.record_update(old, new, field_manager, rt.api_version, subresource)
        if _same(old, new):
            return old
        if dry_run:
            new["metadata"]["resourceVersion"] = old_m["resourceVersion"]
            return new
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit(rt, "DELETED", new, old, rv)
            return new
        self._commit(rt, "MODIFIED", new, old, rv)
        if rt.key == _CRDS:
            self.registry.add_crd(new)
        return new

    def modify(
        self,
        resource: ResourceRef,
        name: str,
        fn: Callable[[Obj], Any],
        namespace: str | None = None,
        *,
        status: bool = False,
        dry_run: bool = False,
        field_manager: str | None = None,
        copy: bool = True,
    ) -> Obj:
        """Atomically apply ``fn`` to a copy of the current object and store the result."""
        rt = self.resolve(resource)
        with self._lock:
            current = clone(self.get_stored(rt, name, namespace).obj)
            result = fn(current)
            new = result if isinstance(result, dict) else current
            meta(new)["resourceVersion"] = current["metadata"]["resourceVersion"]
            committed = self._update_locked(
                rt, new, namespace, "status" if status else "", dry_run, field_manager
            )
        self._drain()
        return clone(committed) if copy else committed

    def upsert(
        self,
        resource: ResourceRef,
        name: str,
        fn: Callable[[Obj | None], Obj],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        copy: bool = True,
    ) -> tuple[Obj, bool]:
        """Atomically create-or-update: ``fn(current copy or None)`` returns the desired object.

        Returns (committed object, created?). Used by server-side apply.
        """
        rt = self.resolve(resource)
        with self._lock:
            stored = self._find(rt.key, self._ns(rt, namespace), name)
            if stored is None:
                committed = self._create_locked(rt, fn(None), namespace, True, dry_run, None)
                created = True
            else:
                new = fn(clone(stored.obj))
                meta(new)["resourceVersion"] = stored.obj["metadata"]["resourceVersion"]
                committed = self._update_locked(rt, new, namespace, "", dry_run, None)
                created = False
        self._drain()
        return (clone(committed) if copy else committed), created

    # ------------------------------------------------------------------ delete

    def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
        copy: bool = True,
    ) -> Obj:
        """Delete an object; see the module docstring for propagation and finalizers."""
        rt = self.resolve(resource)
        with self._lock:
            result = self._delete_locked(rt, name, self._ns(rt, namespace), propagation_policy,
                                         preconditions, dry_run)
        self._drain()
        return clone(result) if copy else result

    def _delete_locked(
        self,
        rt: ResourceType,
        name: str,
        ns: str,
        policy: str | None,
        preconditions: dict[str, Any] | None,
        dry_run: bool,
    ) -> Obj:
        stored = self._find(rt.key, ns, name)
        if stored is None:
            raise NotFound(rt, name)
        old = stored.obj
        old_m = old["metadata"]
        if preconditions:
            uid = preconditions.get("uid")
            if uid and uid != old_m.get("uid"):
                raise Conflict(rt, name, f"Precondition failed: UID in precondition: {uid}, UID "
                                         f"in object meta: {old_m.get('uid')}")
            prv = preconditions.get("resourceVersion")
            if prv and str(prv) != old_m.get("resourceVersion"):
                raise Conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                         f"{prv}, ResourceVersion in object meta: "
                                         f"{old_m.get('resourceVersion')}")
        if policy not in (None, "", "Background", "Foreground", "Orphan"):
            raise BadRequest(f"unsupported propagationPolicy {policy!r}")
        if dry_run:
            return old
        if old_m.get("finalizers"):
            if old_m.get("deletionTimestamp"):
                return old
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._commit(rt, "MODIFIED", new, old, rv)
            return new
        uid = str(old_m.get("uid", ""))
        if policy == "Orphan":
            for key, dns, dname in sorted(self._owners.get(uid, ())):
                dep = self._find(key, dns, dname)
                drt = self.registry.by_key(key)
                if dep is None or drt is None:
                    continue
                new_dep = clone(dep.obj)
                refs = [r for r in new_dep["metadata"].get("ownerReferences", [])
                        if r.get("uid") != uid]
                if refs:
                    new_dep["metadata"]["ownerReferences"] = refs
                else:
                    new_dep["metadata"].pop("ownerReferences", None)
                self._update_locked(drt, new_dep, dns, "", False, None)
        elif policy == "Foreground":
            for key, dns, dname in sorted(self._owners.get(uid, ())):
                drt = self.registry.by_key(key)
                if drt is not None and self._find(key, dns, dname) is not None:
                    self._delete_locked(drt, dname, dns, "Foreground", None, False)
        if rt.key == _NAMESPACES:
            self._delete_namespace_contents(name)
        elif rt.key == _CRDS:
            for crt in self.registry.remove_crd(name)[:1]:
                for s in list(self._iter_stored(crt.key, None)):
                    m = s.obj["metadata"]
                    self._remove(crt, s.obj, str(m.get("namespace", "")), str(m["name"]))
        return self._remove(rt, old, ns, name)

    def terminate_namespace(self, name: str) -> Obj:
        """Mark a namespace Terminating (as the API server does on DELETE); see `delete`.

        New objects can no longer be created in it; the server then calls `delete` on it
        shortly after, which removes its contents and the namespace.
        """
        rt = self.resolve("namespaces")
        with self._lock:
            stored = self._find(_NAMESPACES, "", name)
            if stored is None:
                raise NotFound(rt, name)
            old = stored.obj
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._commit(rt, "MODIFIED", new, old, rv)
        self._drain()
        return clone(new)

    def _remove(self, rt: ResourceType, old: Obj, ns: str, name: str) -> Obj:
        final = dict(old)
        final["metadata"] = dict(old["metadata"])
        rv = self._next_rv()
        final["metadata"]["resourceVersion"] = str(rv)
        self._commit(rt, "DELETED", final, old, rv)
        return final

    def _delete_namespace_contents(self, namespace: str) -> None:
        for key, by_ns in list(self._data.items()):
            bucket = by_ns.get(namespace)
            if not bucket:
                continue
            rt = self.registry.by_key(key)
            if rt is None or not rt.namespaced:
                continue
            for name in sorted(bucket):
                stored = bucket.get(name)
                if stored is not None:
                    self._remove(rt, stored.obj, namespace, name)

    def delete_collection(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        *,
        propagation_policy: str | None = None,
        dry_run: bool = False,
    ) -> builtins.list[Obj]:
        """Delete every matching object; returns what was deleted."""
        rt = self.resolve(resource)
        out: builtins.list[Obj] = []
        with self._lock:
            items, _ = self.list_stored(rt, namespace, label_selector, field_selector)
            for stored in items:
                m = stored.obj["metadata"]
                ns, name = str(m.get("namespace", "")), str(m["name"])
                if self._find(rt.key, ns, name) is None:
                    continue
                out.append(self._delete_locked(rt, name, ns, propagation_policy, None, dry_run))
        self._drain()
        return [clone(o) for o in out]

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """Every object (deep copies) and the resourceVersion, for `restore`."""
        with self._lock:
            objects = []
            for key, by_ns in self._data.items():
                for bucket in by_ns.values():
                    for stored in bucket.values():
                        objects.append({"key": list(key), "object": clone(stored.obj)})
            return {"resourceVersion": self._rv, "objects": objects}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace all objects by those of a `snapshot` (no events are emitted)."""
        with self._lock:
            self._data.clear()
            self._owners.clear()
            self._history.clear()
            self._rv = int(snapshot["resourceVersion"])
            self._compacted_rv = self._rv
            for entry in snapshot["objects"]:
                key = (str(entry["key"][0]), str(entry["key"][1]))
                obj = clone(entry["object"])
                m = obj["metadata"]
                ns, name = str(m.get("namespace", "")), str(m["name"])
                self._bucket(key, ns)[name] = StoredObject(obj, int(m["resourceVersion"]))
                self._index_owners(key, ns, name, None, obj)
                if key == _CRDS:
                    self.registry.add_crd(obj)

    def dump_json(self) -> bytes:
        """`snapshot` as JSON bytes (what ``kubesim --state`` files hold)."""
        return json.dumps(self.snapshot()).encode()


def _same(old: Obj, new: Obj) -> bool:
    """True if an update changes nothing but the (absent) resourceVersion."""
    if old.keys() != new.keys():
        return False
    for k, v in new.items():
        if k == "metadata":
            om = {a: b for a, b in old[k].items() if a != "resourceVersion"}
            nm = {a: b for a, b in v.items() if a != "resourceVersion"}
            if om != nm:
                return False
        elif old[k] != v:
            return False
    return True
