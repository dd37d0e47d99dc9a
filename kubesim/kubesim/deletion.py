"""Deletion: finalizers, propagation to dependents, namespace termination, deletecollection.

Propagation follows the API server: ``Orphan`` strips the owner's references from its
dependents, ``Foreground`` deletes the dependents first (synchronously here), ``Background``
(the default) deletes only the owner and leaves the dependents to the garbage-collecting
controller. Deleting a Namespace deletes everything in it; deleting a CRD its custom objects.
"""

from __future__ import annotations

import builtins
from typing import Any

from .errors import BadRequest, Conflict, NotFound
from .objects import Obj, clone, now_rfc3339
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store_base import CRDS, NAMESPACES, ResourceRef, StoreBase


class Deletions(StoreBase):
    """The deleting half of the store (see `kubesim.store.Store`)."""

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
        self._listeners.drain()
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
            for key, dns, dname in self._owners.dependents(uid):
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
            for key, dns, dname in self._owners.dependents(uid):
                drt = self.registry.by_key(key)
                if drt is not None and self._find(key, dns, dname) is not None:
                    self._delete_locked(drt, dname, dns, "Foreground", None, False)
        if rt.key == NAMESPACES:
            self._delete_namespace_contents(name)
        elif rt.key == CRDS:
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
            stored = self._find(NAMESPACES, "", name)
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
        self._listeners.drain()
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
        self._listeners.drain()
        return [clone(o) for o in out]
