"""DaemonSets on the one simulated node: one Pod each (if ``nodeSelector`` matches the node)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..store import Event
from .base import Controller, Key, Router, owner_key, self_key
from .common import (
    NEVER_READY_ANNOTATION,
    as_int,
    flag,
    generation_of,
    is_deleting,
    labels_of,
    name_of,
    name_suffix,
    namespace_of,
    ready_after,
    spec_of,
    status_of,
    template_hash,
    uid_of,
)
from .pods import build_pod, create_pod, is_pod_active, pod_state, running_state, set_pod_state
from .revisions import REVISION_LABEL, ensure_revision, prune_revisions

GENERATION_LABEL = "pod-template-generation"


class DaemonSetController(Controller):
    """Runs one Pod per DaemonSet on the simulated node and reports DaemonSet status."""

    name = "daemonset"

    def routes(self) -> dict[tuple[str, str], Router]:
        def all_daemonsets(_event: Event) -> list[Key]:
            return list(self.resync())

        return {
            self.ctx.rt["DaemonSet"].key: self_key,
            self.ctx.rt["Pod"].key: owner_key("DaemonSet"),
            self.ctx.rt["Node"].key: all_daemonsets,
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(o), name_of(o)) for o in self.ctx.iter_stored("DaemonSet")]

    def _node_matches(self, template: dict[str, Any]) -> bool:
        node = self.ctx.get("Node", "", self.ctx.node_name)
        if node is None or spec_of(node).get("unschedulable"):
            return False
        selector = (template.get("spec") or {}).get("nodeSelector") or {}
        labels = labels_of(node)
        return all(labels.get(str(k)) == str(v) for k, v in selector.items())

    def reconcile(self, key: Key) -> None:
        ns, name = key
        ds = self.ctx.get("DaemonSet", ns, name)
        if ds is None or is_deleting(ds):
            return
        spec = spec_of(ds)
        template = spec.get("template") or {}
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        never_ready = flag([ds, template], NEVER_READY_ANNOTATION)
        delay = ready_after([ds, template])
        collisions = as_int(status_of(ds).get("collisionCount"), 0)
        digest = template_hash(template, collisions)
        ensure_revision(self.ctx, ds, f"{name}-{digest}", digest, template)
        desired = 1 if self._node_matches(template) else 0

        pods = [p for p in self.ctx.owned("Pod", uid_of(ds))
                if is_pod_active(p) and not is_deleting(p)]
        keep: list[dict[str, Any]] = []
        for pod in pods:
            outdated = rolling and labels_of(pod).get(REVISION_LABEL) != digest
            if len(keep) >= desired or outdated:
                self.ctx.delete("Pod", ns, name_of(pod))
            else:
                keep.append(pod)
        wait = 0.0
        for pod in keep:
            state, left = running_state(self.ctx, pod, never_ready, delay)
            wait = max(wait, left)
            set_pod_state(self.ctx, pod, state)
        if desired and not keep:
            seed = f"{uid_of(ds)}/{self.store.resource_version}"
            pod_name = f"{name}-{name_suffix(seed)}"
            labels = {REVISION_LABEL: digest, GENERATION_LABEL: str(generation_of(ds))}
            pod = build_pod(self.ctx, ds, template, pod_name, labels=labels)
            create_pod(self.ctx, pod, "unready" if never_ready or delay > 0 else "ready")
            if not never_ready:
                wait = max(wait, delay)
        if wait > 0:
            self.ctx.requeue_after(self.name, key, wait)
        prune_revisions(self.ctx, ds, {f"{name}-{digest}"},
                        as_int(spec.get("revisionHistoryLimit"), 10))
        self._write_status(ds, digest, desired, collisions)

    def _write_status(self, ds: dict[str, Any], digest: str, desired: int, collisions: int) -> None:
        pods = [p for p in self.ctx.owned("Pod", uid_of(ds)) if is_pod_active(p)]
        ready = sum(1 for p in pods if pod_state(p) == "ready")
        updated = sum(1 for p in pods if labels_of(p).get(REVISION_LABEL) == digest)
        status: dict[str, Any] = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "observedGeneration": generation_of(ds),
        }
        if ready:
            status["numberAvailable"] = ready
        if desired - ready > 0:
            status["numberUnavailable"] = desired - ready
        if updated:
            status["updatedNumberScheduled"] = updated
        if collisions:
            status["collisionCount"] = collisions
        self.ctx.set_status("DaemonSet", ds, status)
