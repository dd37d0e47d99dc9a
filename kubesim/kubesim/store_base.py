"""`StoreBase`: the objects, the global resourceVersion, commits, reads, creates and updates.

`kubesim.store.Store` (the class to use; its docstring documents the whole API) adds deletion
(`kubesim.deletion`), the system objects, snapshots and persistence on top.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from . import managed_fields
from .admission import admit
from .changes import Event, Key, StoredObject
from .errors import AlreadyExists, BadRequest, Conflict, Forbidden, Invalid, NotFound
from .listeners import Listener, Listeners
from .names import name_problems
from .objects import Obj, clone, generate_name, meta, new_uid, now_rfc3339, spec_part
from .owners import OwnerIndex
from .resources import ResourceRegistry, ResourceType
from .selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from .watches import WatchCallback, WatchHub

ResourceRef = str | ResourceType
Mutator = Callable[[ResourceType, Obj, Obj | None], None]


class Journal(Protocol):
    """Where committed changes are persisted (`kubesim.persistence`); called under the lock."""

    def record(self, event: Event) -> None:
        """Persist ``event`` before it is applied; raising refuses the change."""

    def committed(self) -> None:
        """The change just recorded is applied (a consistent moment to compact)."""

    def restored(self) -> None:
        """Every object was replaced (`Store.restore`)."""


NAMESPACES: Key = ("", "namespaces")
CRDS: Key = ("apiextensions.k8s.io", "customresourcedefinitions")


class StoreBase:
    """All objects, indexed by resource and namespace; thread-safe (one re-entrant lock)."""

    def __init__(self, registry: ResourceRegistry | None = None, history: int = 10000) -> None:
        """``history``: how many events are kept for watches that resume from a
        resourceVersion (older ones get 410 Expired, and clients relist)."""
        self.registry = registry or ResourceRegistry()
        self._lock = threading.RLock()
        self._rv = 0
        # (group, plural) -> namespace ("" when cluster-scoped) -> name -> object
        self._data: dict[Key, dict[str, dict[str, StoredObject]]] = {}
        self._owners = OwnerIndex()
        self._watches = WatchHub(history)
        self._listeners = Listeners()
        self._mutators: list[Mutator] = []
        #: Called with each change before it is applied (`kubesim.persistence`); may raise.
        self._journal: Journal | None = None

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

    def _bucket(self, key: Key, ns: str) -> dict[str, StoredObject]:
        return self._data.setdefault(key, {}).setdefault(ns, {})

    def _find(self, key: Key, ns: str, name: str) -> StoredObject | None:
        return self._data.get(key, {}).get(ns, {}).get(name)

    # ------------------------------------------------------------------ listeners

    def add_listener(
        self, fn: Listener, loop: asyncio.AbstractEventLoop | None = None
    ) -> Callable[[], None]:
        """Call ``fn(event)`` after each committed change; returns a function that removes it."""
        return self._listeners.add(fn, loop)

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
                initial = self._watches.since(since, key, namespace)
            watch_id = self._watches.add(key, namespace, callback)

        def cancel() -> None:
            with self._lock:
                self._watches.remove(watch_id)

        return initial, cancel

    # ------------------------------------------------------------------ commit core

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _commit(
        self, rt: ResourceType, etype: str, new: Obj, old: Obj | None, rv: int
    ) -> Event:
        """Store (or remove, for DELETED) ``new`` and emit the event. Caller holds the lock.

        The journal (if any) records the change first: if it cannot, nothing changes.
        """
        m = new["metadata"]
        ns, name = str(m.get("namespace", "")), str(m["name"])
        stored = StoredObject(new, rv)
        event = Event(etype, rt, new, old, rv, stored)
        if self._journal is not None:
            self._journal.record(event)
        if etype == "DELETED":
            bucket = self._data.get(rt.key, {}).get(ns)
            if bucket is not None:
                bucket.pop(name, None)
            self._owners.update(rt.key, ns, name, old, None)
        else:
            self._bucket(rt.key, ns)[name] = stored
            self._owners.update(rt.key, ns, name, old, new)
        self._watches.publish(event)
        self._listeners.queue(event)
        if self._journal is not None:
            self._journal.committed()
        return event

    # ------------------------------------------------------------------ reads

    def _iter_stored(self, key: Key, namespace: str | None) -> Iterator[StoredObject]:
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
            for key, ns, name in self._owners.dependents(owner_uid):
                stored = self._find(key, ns, name)
                rt = self.registry.by_key(key)
                if stored is not None and rt is not None:
                    out.append((rt, clone(stored.obj)))
            return out

    def namespace_exists(self, name: str) -> bool:
        return self._find(NAMESPACES, "", name) is not None

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
        self._listeners.drain()
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
        if rt.key == CRDS:
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
            ns_obj = self._find(NAMESPACES, "", ns)
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
        self._listeners.drain()
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
        if rt.key == CRDS:
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
        self._listeners.drain()
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
        self._listeners.drain()
        return (clone(committed) if copy else committed), created

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
