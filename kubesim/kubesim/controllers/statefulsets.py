"""StatefulSets: Pods ``<name>-<ordinal>``, PVCs from ``volumeClaimTemplates``, revisions.

Follows ``podManagementPolicy`` (OrderedReady creates a Pod only once its predecessors are
ready, so a never-ready StatefulSet stops at ``-0``) and the RollingUpdate ``partition``:
Pods at or above the partition are replaced at once by Pods of the update revision; when all
are updated, ``currentRevision`` becomes ``updateRevision`` (what helm 3 and kstatus check).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..objects import Obj, clone
from .base import Controller, Key, Router, owner_key, self_key
from .common import (
    NEVER_READY_ANNOTATION,
    as_int,
    controller_ref,
    flag,
    generation_of,
    is_deleting,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    ready_after,
    selector_labels,
    spec_of,
    status_of,
    template_hash,
    uid_of,
)
from .pods import build_pod, create_pod, is_pod_active, pod_state, running_state, set_pod_state
from .revisions import REVISION_LABEL, ensure_revision, prune_revisions, revision_template

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _ordinal(sts_name: str, pod_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    tail = pod_name[len(prefix):]
    return int(tail) if tail.isdigit() else None


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts_name}-{ordinal}"


class StatefulSetController(Controller):
    """Creates ordinal Pods and their PVCs and reports StatefulSet status."""

    name = "statefulset"

    def routes(self) -> dict[tuple[str, str], Router]:
        return {
            self.ctx.rt["StatefulSet"].key: self_key,
            self.ctx.rt["Pod"].key: owner_key("StatefulSet"),
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(o), name_of(o)) for o in self.ctx.iter_stored("StatefulSet")]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        sts = self.ctx.get("StatefulSet", ns, name)
        if sts is None or is_deleting(sts):
            return
        spec = spec_of(sts)
        template = spec.get("template") or {}
        replicas = as_int(spec.get("replicas"), 1)
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = as_int((strategy.get("rollingUpdate") or {}).get("partition"), 0)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        never_ready = flag([sts, template], NEVER_READY_ANNOTATION)
        delay = ready_after([sts, template])
        collisions = as_int(status_of(sts).get("collisionCount"), 0)
        digest = template_hash(template, collisions)
        update_rev = f"{name}-{digest}"
        ensure_revision(self.ctx, sts, update_rev, digest, template)
        current_rev = str(status_of(sts).get("currentRevision") or update_rev)

        pods: dict[int, Obj] = {}
        for pod in self.ctx.owned("Pod", uid_of(sts)):
            if is_deleting(pod):
                continue
            ordinal = _ordinal(name, name_of(pod))
            if ordinal is None or ordinal >= replicas or not is_pod_active(pod):
                self.ctx.delete("Pod", ns, name_of(pod))
                continue
            revision = labels_of(pod).get(REVISION_LABEL)
            if rolling and ordinal >= partition and revision != update_rev:
                self.ctx.delete("Pod", ns, name_of(pod))
                continue
            pods[ordinal] = pod

        wait = 0.0
        states: dict[int, str] = {}
        for ordinal, pod in pods.items():
            state, left = running_state(self.ctx, pod, never_ready, delay)
            wait = max(wait, left)
            set_pod_state(self.ctx, pod, state)
            states[ordinal] = state

        for ordinal in range(replicas):
            if ordinal in states:
                continue
            if not parallel and any(states.get(i) != "ready" for i in range(ordinal)):
                break
            revision, tmpl = update_rev, template
            if rolling and ordinal < partition and current_rev != update_rev:
                old = self.ctx.get("ControllerRevision", ns, current_rev)
                old_tmpl = revision_template(old) if old is not None else None
                if old_tmpl is not None:
                    revision, tmpl = current_rev, old_tmpl
            pod = self._create_pod(sts, tmpl, ordinal, revision, never_ready, delay)
            states[ordinal] = pod_state(pod)
            if not never_ready:
                wait = max(wait, delay)
        if wait > 0:
            self.ctx.requeue_after(self.name, key, wait)
        prune_revisions(self.ctx, sts, {update_rev, current_rev},
                        as_int(spec.get("revisionHistoryLimit"), 10))
        self._write_status(sts, update_rev, current_rev, collisions)

    def _create_pod(
        self,
        sts: Obj,
        template: Mapping[str, Any],
        ordinal: int,
        revision: str,
        never_ready: bool,
        delay: float,
    ) -> Obj:
        ns, name = namespace_of(sts), name_of(sts)
        spec = spec_of(sts)
        pod_name = f"{name}-{ordinal}"
        volumes = [v for v in (template.get("spec") or {}).get("volumes") or []
                   if isinstance(v, dict)]
        claims = [c for c in spec.get("volumeClaimTemplates") or [] if isinstance(c, dict)]
        claim_names = {name_of(c) for c in claims}
        volumes = [v for v in volumes if v.get("name") not in claim_names]
        for claim in claims:
            pvc = self._ensure_claim(sts, claim, ordinal)
            volumes.append({"name": name_of(claim),
                            "persistentVolumeClaim": {"claimName": pvc}})
        extra: dict[str, Any] = {"hostname": pod_name}
        if spec.get("serviceName"):
            extra["subdomain"] = spec["serviceName"]
        if volumes:
            extra["volumes"] = volumes
        labels = {REVISION_LABEL: revision, POD_NAME_LABEL: pod_name,
                  POD_INDEX_LABEL: str(ordinal)}
        existing = self.ctx.get("Pod", ns, pod_name)
        if existing is not None and controller_ref(existing) is None:
            # An orphan (owner deleted with propagationPolicy=Orphan): adopt it.
            def adopt(current: Obj) -> None:
                current["metadata"]["ownerReferences"] = [owner_reference(sts)]

            adopted = self.ctx.modify("Pod", ns, pod_name, adopt)
            if adopted is not None:
                return adopted
        pod = build_pod(self.ctx, sts, template, pod_name, labels=labels, spec_extra=extra)
        return create_pod(self.ctx, pod, "unready" if never_ready or delay > 0 else "ready")

    def _ensure_claim(self, sts: Obj, claim: Mapping[str, Any], ordinal: int) -> str:
        ns, name = namespace_of(sts), name_of(sts)
        pvc_name = claim_name(name_of(claim), name, ordinal)
        if self.ctx.get("PersistentVolumeClaim", ns, pvc_name) is not None:
            return pvc_name
        cmeta = meta_of(claim)
        labels = {**labels_of(claim), **selector_labels(spec_of(sts).get("selector"))}
        md: dict[str, Any] = {"name": pvc_name, "namespace": ns, "labels": labels}
        if cmeta.get("annotations"):
            md["annotations"] = dict(cmeta["annotations"])
        policy = spec_of(sts).get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenDeleted") == "Delete":
            md["ownerReferences"] = [owner_reference(sts)]
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md,
               "spec": clone(claim.get("spec") or {})}
        self.ctx.create("PersistentVolumeClaim", pvc)
        return pvc_name

    def _write_status(self, sts: Obj, update_rev: str, current_rev: str, collisions: int) -> None:
        replicas = as_int(spec_of(sts).get("replicas"), 1)
        pods = [p for p in self.ctx.owned("Pod", uid_of(sts)) if is_pod_active(p)]
        ready = sum(1 for p in pods if pod_state(p) == "ready")
        updated = sum(1 for p in pods if labels_of(p).get(REVISION_LABEL) == update_rev)
        if updated == replicas and len(pods) == replicas:
            current_rev = update_rev
        current = sum(1 for p in pods if labels_of(p).get(REVISION_LABEL) == current_rev)
        status: dict[str, Any] = {
            "observedGeneration": generation_of(sts),
            "replicas": len(pods),
            "availableReplicas": ready,
            "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": collisions,
        }
        if ready:
            status["readyReplicas"] = ready
        if current:
            status["currentReplicas"] = current
        if updated:
            status["updatedReplicas"] = updated
        self.ctx.set_status("StatefulSet", sts, status)

