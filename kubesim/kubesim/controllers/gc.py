"""The garbage collector: deletes objects whose owners are all gone (background propagation).

The store handles ``Orphan`` (strips owner references) and ``Foreground`` (deletes dependents
first) itself; for ``Background`` deletes -- the default -- it leaves dependents here. An object
with at least one live owner loses only its references to the deleted owners, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..objects import Obj
from ..resources import ResourceType
from ..store import Event
from .base import ANY_RESOURCE, Controller, Key, Router
from .common import meta_of, namespace_of, uid_of


class GarbageCollector(Controller):
    """Reconciles keys ``("", owner_uid)``: the dependents of a deleted owner."""

    name = "garbagecollector"

    def routes(self) -> dict[tuple[str, str], Router]:
        def deleted(event: Event) -> list[Key]:
            if event.type != "DELETED":
                return []
            uid = uid_of(event.object)
            return [("", uid)] if uid else []

        return {ANY_RESOURCE: deleted}

    def resync(self) -> Iterable[Key]:
        """Owners referenced by some object but no longer present (deleted while stopped)."""
        existing: set[str] = set()
        referenced: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for rt in self.store.registry.all():
            if rt.key in seen:
                continue
            seen.add(rt.key)
            items, _ = self.store.list_stored(rt)
            for stored in items:
                m = stored.obj.get("metadata") or {}
                existing.add(str(m.get("uid", "")))
                for ref in m.get("ownerReferences") or []:
                    if isinstance(ref, dict) and ref.get("uid"):
                        referenced.add(str(ref["uid"]))
        return [("", uid) for uid in sorted(referenced - existing)]

    def reconcile(self, key: Key) -> None:
        _, owner_uid = key
        for rt, obj in self.store.dependents(owner_uid):
            refs = [r for r in meta_of(obj).get("ownerReferences") or [] if isinstance(r, dict)]
            alive = [r for r in refs if self._owner_exists(r, rt, obj)]
            m = meta_of(obj)
            if not alive:
                try:
                    self.store.delete(rt, str(m["name"]), namespace_of(obj) or None,
                                      propagation_policy="Background")
                except Exception:
                    continue
            elif len(alive) < len(refs):
                keep = [dict(r) for r in alive]

                def strip(current: Obj, keep: list[dict[str, Any]] = keep) -> None:
                    current["metadata"]["ownerReferences"] = keep

                try:
                    self.store.modify(rt, str(m["name"]), strip, namespace_of(obj) or None)
                except Exception:
                    continue

    def _owner_exists(self, ref: Mapping[str, Any], rt: ResourceType, obj: Obj) -> bool:
        owner_rt = _owner_type(self.store.registry.all(), ref)
        if owner_rt is None:
            return False  # a kind nobody serves cannot have a live object
        if owner_rt.namespaced and not rt.namespaced:
            return False  # invalid: a cluster-scoped object owned by a namespaced one
        ns = namespace_of(obj) if owner_rt.namespaced else None
        current = self.store.try_get(owner_rt, str(ref.get("name", "")), ns)
        return current is not None and uid_of(current) == str(ref.get("uid", ""))


def _owner_type(types: Iterable[ResourceType], ref: Mapping[str, Any]) -> ResourceType | None:
    group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
    kind = str(ref.get("kind", ""))
    fallback = None
    for rt in types:
        if rt.group == group and rt.kind == kind:
            if rt.version == version:
                return rt
            fallback = fallback or rt
    return fallback
