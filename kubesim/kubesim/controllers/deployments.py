"""Deployments and ReplicaSets, as the kube-controller-manager runs them (rollouts are instant).

A Deployment owns one ReplicaSet per pod template (``<deployment>-<pod-template-hash>``); the
one matching the current template is scaled to ``spec.replicas`` and the others to zero, at
once. A ReplicaSet owns its Pods. Both report the status fields and conditions that helm 3's
waiter (observedGeneration, the new ReplicaSet's readyReplicas) and kstatus (replica counts,
``Available``, ``Progressing`` with reason ``NewReplicaSetAvailable``) read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..objects import Obj, clone
from ..store import Event
from .base import Controller, Key, Router, owner_key, self_key
from .common import (
    NEVER_READY_ANNOTATION,
    READY_AFTER_ANNOTATION,
    annotations_of,
    as_int,
    condition,
    controller_ref,
    flag,
    generation_of,
    is_controlled_by,
    is_deleting,
    labels_of,
    merge_conditions,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    ready_after,
    scaled_value,
    spec_of,
    status_of,
    template_hash,
    templates_equal,
    uid_of,
)
from .pods import (
    build_pod,
    create_pod,
    creation_order,
    free_pod_name,
    is_pod_active,
    pod_state,
    running_state,
    set_pod_state,
)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/")


def _revision(obj: Mapping[str, Any]) -> int:
    return as_int(annotations_of(obj).get(REVISION), 0)


def _copied_annotations(dep: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: v for k, v in annotations_of(dep).items()
        if not any(k == p or (p.endswith("/") and k.startswith(p)) for p in _NOT_COPIED)
    }


def rollout_limits(dep: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against ``spec.replicas`` as the controller does."""
    spec = spec_of(dep)
    replicas = as_int(spec.get("replicas"), 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


class ReplicaSetController(Controller):
    """Keeps ``spec.replicas`` Pods per ReplicaSet and reports their readiness."""

    name = "replicaset"

    def routes(self) -> dict[tuple[str, str], Router]:
        return {
            self.ctx.rt["ReplicaSet"].key: self_key,
            self.ctx.rt["Pod"].key: owner_key("ReplicaSet"),
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(o), name_of(o)) for o in self.ctx.iter_stored("ReplicaSet")]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        rs = self.ctx.get("ReplicaSet", ns, name)
        if rs is None or is_deleting(rs):
            return
        uid = uid_of(rs)
        spec = spec_of(rs)
        template = spec.get("template") or {}
        replicas = as_int(spec.get("replicas"), 1)
        pods = []
        for pod in self.ctx.owned("Pod", uid):
            if is_pod_active(pod):
                pods.append(pod)
            elif not is_deleting(pod):  # a finished pod of a ReplicaSet is replaced
                self.ctx.delete("Pod", ns, name_of(pod))
        never_ready = flag([rs, template], NEVER_READY_ANNOTATION)
        delay = ready_after([rs, template])
        if len(pods) > replicas:
            # Like the real controller: not-ready pods go first, then the newest.
            ranked = sorted(pods, key=creation_order, reverse=True)
            ranked.sort(key=lambda p: pod_state(p) == "ready")
            doomed = {name_of(p) for p in ranked[: len(pods) - replicas]}
            for pod_name in sorted(doomed):
                self.ctx.delete("Pod", ns, pod_name)
            pods = [p for p in pods if name_of(p) not in doomed]
        wait = 0.0
        for pod in pods:
            state, left = running_state(self.ctx, pod, never_ready, delay)
            wait = max(wait, left)
            set_pod_state(self.ctx, pod, state)
        rv = self.store.resource_version
        for i in range(replicas - len(pods)):
            pod_name = free_pod_name(self.ctx, ns, name, f"{uid}/{rv}/{i}")
            pod = build_pod(self.ctx, rs, template, pod_name)
            create_pod(self.ctx, pod, "unready" if never_ready or delay > 0 else "ready")
            if not never_ready:
                wait = max(wait, delay)
        if wait > 0:
            self.ctx.requeue_after(self.name, key, wait)
        self._write_status(rs)

    def _write_status(self, rs: Obj) -> None:
        uid = uid_of(rs)
        spec = spec_of(rs)
        tlabels = labels_of(spec.get("template") or {})
        pods = [p for p in self.ctx.owned("Pod", uid) if is_pod_active(p)]
        ready = sum(1 for p in pods if pod_state(p) == "ready")
        labelled = sum(1 for p in pods if tlabels.items() <= labels_of(p).items())
        status: dict[str, Any] = {"replicas": len(pods)}
        if labelled:
            status["fullyLabeledReplicas"] = labelled
        if ready:
            status["readyReplicas"] = ready
            status["availableReplicas"] = ready
        status["observedGeneration"] = generation_of(rs)
        old = status_of(rs)
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        self.ctx.set_status("ReplicaSet", rs, status)


class DeploymentController(Controller):
    """Creates and scales ReplicaSets for Deployments and reports rollout status."""

    name = "deployment"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        # deployment uid -> (rollout signature, monotonic time the rollout started)
        self._progress: dict[str, tuple[tuple[str, int], float]] = {}

    def routes(self) -> dict[tuple[str, str], Router]:
        def deleted(event: Event) -> list[Key]:
            if event.type == "DELETED":
                self._progress.pop(uid_of(event.object), None)
                return []
            return [(event.namespace, event.name)]

        return {
            self.ctx.rt["Deployment"].key: deleted,
            self.ctx.rt["ReplicaSet"].key: owner_key("Deployment"),
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(o), name_of(o)) for o in self.ctx.iter_stored("Deployment")]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        dep = self.ctx.get("Deployment", ns, name)
        if dep is None or is_deleting(dep):
            return
        uid = uid_of(dep)
        spec = spec_of(dep)
        template = spec.get("template") or {}
        replicas = as_int(spec.get("replicas"), 1)
        paused = bool(spec.get("paused"))
        surge, _ = rollout_limits(dep)
        rss = sorted(self.ctx.owned("ReplicaSet", uid), key=creation_order)
        new_rs = next(
            (rs for rs in rss if templates_equal(spec_of(rs).get("template"), template)), None
        )
        max_rev = max((_revision(rs) for rs in rss), default=0)
        collisions = as_int(status_of(dep).get("collisionCount"), 0)
        if not paused:
            if new_rs is None:
                new_rs, collisions = self._create_rs(dep, max_rev + 1, collisions)
            else:
                self._sync_rs(dep, new_rs, max_rev)
            for rs in rss:
                if uid_of(rs) != uid_of(new_rs) and as_int(spec_of(rs).get("replicas"), 1):
                    self.ctx.modify("ReplicaSet", ns, name_of(rs), _scale_to(0))
            self._cleanup(dep, new_rs)
            rev = str(_revision(self.ctx.get("ReplicaSet", ns, name_of(new_rs)) or new_rs))
            if annotations_of(dep).get(REVISION) != rev:
                def annotate(current: Obj) -> None:
                    current["metadata"].setdefault("annotations", {})[REVISION] = rev

                self.ctx.modify("Deployment", ns, name, annotate)
        self._write_status(dep, new_rs, replicas, surge, paused, collisions)

    # ------------------------------------------------------------------ replica sets

    def _create_rs(self, dep: Obj, revision: int, collisions: int) -> tuple[Obj, int]:
        ns, name, uid = namespace_of(dep), name_of(dep), uid_of(dep)
        spec = spec_of(dep)
        template = spec.get("template") or {}
        replicas = as_int(spec.get("replicas"), 1)
        surge, _ = rollout_limits(dep)
        for _ in range(20):
            digest = template_hash(template, collisions)
            rs_name = f"{name}-{digest}"
            existing = self.ctx.get("ReplicaSet", ns, rs_name)
            if existing is None:
                break
            same = templates_equal(spec_of(existing).get("template"), template)
            if same and controller_ref(existing) is None:
                adopted = self.ctx.modify("ReplicaSet", ns, rs_name, _adopt(dep))
                return adopted or existing, collisions
            if same and is_controlled_by(existing, uid):
                return existing, collisions
            collisions += 1
        tmpl = clone(template)
        tmeta = tmpl.setdefault("metadata", {})
        tmeta.setdefault("labels", {})[HASH_LABEL] = digest
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        annotations = _copied_annotations(dep)
        annotations.update({REVISION: str(revision), DESIRED: str(replicas),
                            MAX: str(replicas + surge)})
        rs_spec: dict[str, Any] = {"replicas": replicas, "selector": selector, "template": tmpl}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": ns,
                "labels": dict(tmeta["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(dep)],
            },
            "spec": rs_spec,
        }
        return self.ctx.create("ReplicaSet", rs), collisions

    def _sync_rs(self, dep: Obj, rs: Obj, max_rev: int) -> None:
        replicas = as_int(spec_of(dep).get("replicas"), 1)
        surge, _ = rollout_limits(dep)
        want = _copied_annotations(dep)
        rev = _revision(rs)
        want[REVISION] = str(rev if rev >= max_rev else max_rev + 1)
        want[DESIRED] = str(replicas)
        want[MAX] = str(replicas + surge)
        have = annotations_of(rs)
        # Drop simulation annotations the Deployment no longer has.
        stale = [k for k in (NEVER_READY_ANNOTATION, READY_AFTER_ANNOTATION)
                 if k in have and k not in want]
        if as_int(spec_of(rs).get("replicas"), 1) == replicas and not stale and all(
            have.get(k) == v for k, v in want.items()
        ):
            return

        def sync(current: Obj) -> None:
            ann = current["metadata"].setdefault("annotations", {})
            for k in stale:
                ann.pop(k, None)
            ann.update(want)
            current.setdefault("spec", {})["replicas"] = replicas

        self.ctx.modify("ReplicaSet", namespace_of(rs), name_of(rs), sync)

    def _cleanup(self, dep: Obj, new_rs: Obj) -> None:
        limit = as_int(spec_of(dep).get("revisionHistoryLimit"), 10)
        old = [
            rs for rs in self.ctx.owned("ReplicaSet", uid_of(dep))
            if uid_of(rs) != uid_of(new_rs)
            and as_int(spec_of(rs).get("replicas"), 1) == 0
            and as_int(status_of(rs).get("replicas"), 0) == 0
        ]
        old.sort(key=_revision)
        for rs in old[: max(0, len(old) - limit)]:
            self.ctx.delete("ReplicaSet", namespace_of(rs), name_of(rs))

    # ------------------------------------------------------------------ status

    def _write_status(
        self,
        dep: Obj,
        new_rs: Obj | None,
        replicas: int,
        surge: int,
        paused: bool,
        collisions: int,
    ) -> None:
        uid = uid_of(dep)
        rss = self.ctx.owned("ReplicaSet", uid)
        new = next((rs for rs in rss if new_rs is not None and uid_of(rs) == uid_of(new_rs)), None)
        total = sum(as_int(status_of(rs).get("replicas"), 0) for rs in rss)
        ready = sum(as_int(status_of(rs).get("readyReplicas"), 0) for rs in rss)
        available = sum(as_int(status_of(rs).get("availableReplicas"), 0) for rs in rss)
        updated = as_int(status_of(new).get("replicas"), 0) if new is not None else 0
        _, max_unavailable = rollout_limits(dep)
        status: dict[str, Any] = {"observedGeneration": generation_of(dep)}
        for field, value in (("replicas", total), ("updatedReplicas", updated),
                             ("readyReplicas", ready), ("availableReplicas", available),
                             ("unavailableReplicas", max(0, replicas - available))):
            if value:
                status[field] = value
        rs_name = name_of(new) if new is not None else ""
        if available >= replicas - max_unavailable:
            avail = condition("Available", "True", "MinimumReplicasAvailable",
                              "Deployment has minimum availability.", update_time=True)
        else:
            avail = condition("Available", "False", "MinimumReplicasUnavailable",
                              "Deployment does not have minimum availability.", update_time=True)
        complete = (
            new is not None
            and updated == replicas
            and total == replicas
            and available >= replicas
            and as_int(status_of(new).get("observedGeneration"), 0) == generation_of(new)
        )
        if paused:
            progress = condition("Progressing", "Unknown", "DeploymentPaused",
                                 "Deployment is paused", update_time=True)
        elif complete:
            self._progress.pop(uid, None)
            progress = condition("Progressing", "True", "NewReplicaSetAvailable",
                                 f'ReplicaSet "{rs_name}" has successfully progressed.',
                                 update_time=True)
        elif self._deadline_exceeded(dep, rs_name):
            progress = condition("Progressing", "False", "ProgressDeadlineExceeded",
                                 f'ReplicaSet "{rs_name}" has timed out progressing.',
                                 update_time=True)
        else:
            reason, message = "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            if new is not None and not any(
                uid_of(rs) != uid_of(new) for rs in rss
            ) and as_int(status_of(new).get("replicas"), 0) == 0:
                reason, message = "NewReplicaSetCreated", f'Created new replica set "{rs_name}"'
            progress = condition("Progressing", "True", reason, message, update_time=True)
        old_status = status_of(dep)
        status["conditions"] = merge_conditions(old_status.get("conditions"), [avail, progress])
        if collisions:
            status["collisionCount"] = collisions
        self.ctx.set_status("Deployment", dep, status)

    def _deadline_exceeded(self, dep: Obj, rs_name: str) -> bool:
        uid = uid_of(dep)
        deadline = spec_of(dep).get("progressDeadlineSeconds")
        if deadline is None:
            return False
        signature = (rs_name, generation_of(dep))
        now = time.monotonic()
        seen = self._progress.get(uid)
        if seen is None or seen[0] != signature:
            previous = status_of(dep).get("conditions") or []
            if any(c.get("reason") == "ProgressDeadlineExceeded" and rs_name in str(
                    c.get("message", "")) for c in previous if isinstance(c, dict)):
                return True
            self._progress[uid] = (signature, now)
            seen = self._progress[uid]
        left = seen[1] + float(deadline) - now
        if left <= 0:
            return True
        self.ctx.requeue_after(self.name, (namespace_of(dep), name_of(dep)), left + 0.001)
        return False


def _scale_to(replicas: int) -> Any:
    def scale(current: Obj) -> None:
        current.setdefault("spec", {})["replicas"] = replicas

    return scale


def _adopt(owner: Obj) -> Any:
    def adopt(current: Obj) -> None:
        refs = [r for r in meta_of(current).get("ownerReferences") or []
                if isinstance(r, dict) and r.get("uid") != uid_of(owner)]
        refs.append(owner_reference(owner))
        current["metadata"]["ownerReferences"] = refs

    return adopt
