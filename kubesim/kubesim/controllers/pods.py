"""Simulated Pods: how controllers build them, the status a kubelet would report, bare Pods.

There are no containers: a Pod is "scheduled" on the one simulated node and its status says
what it would be once its containers ran -- Running and Ready, Running but not Ready
(``kubesim.io/never-ready``), Succeeded (Job pods, bare pods with ``restartPolicy`` Never or
OnFailure) or Failed (``kubesim.io/fail``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ..objects import Obj, clone, now_rfc3339
from ..store import Event
from .base import Context, Controller, Key, Router
from .common import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    READY_AFTER_ANNOTATION,
    annotations_of,
    controller_ref,
    flag,
    is_deleting,
    merge_conditions,
    meta_of,
    name_of,
    name_suffix,
    namespace_of,
    owner_reference,
    parse_duration,
    spec_of,
    status_of,
    uid_of,
)

PodState = Literal["pending", "ready", "unready", "succeeded", "failed"]

#: Owner kinds whose Pods are managed by a simulated controller (not by `BarePodController`).
MANAGED_OWNER_KINDS = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "Job"})

_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]


# ---------------------------------------------------------------------- reading pod state


def pod_state(pod: Mapping[str, Any]) -> PodState:
    status = status_of(pod)
    phase = status.get("phase")
    if phase == "Succeeded":
        return "succeeded"
    if phase == "Failed":
        return "failed"
    if phase == "Running":
        return "ready" if is_pod_ready(pod) else "unready"
    return "pending"


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in status_of(pod).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return not is_deleting(pod) and status_of(pod).get("phase") not in ("Succeeded", "Failed")


# ---------------------------------------------------------------------- building pods


def _containers(spec: Mapping[str, Any], key: str = "containers") -> list[dict[str, Any]]:
    return [c for c in spec.get(key) or [] if isinstance(c, dict)]


def qos_class(spec: Mapping[str, Any]) -> str:
    """BestEffort / Burstable / Guaranteed, from the containers' requests and limits."""
    containers = _containers(spec) + _containers(spec, "initContainers")
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or str(req.get(r, lim[r])) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _container_id(pod_uid: str, name: str) -> str:
    return "containerd://" + hashlib.sha256(f"{pod_uid}/{name}".encode()).hexdigest()


def _image_id(image: str) -> str:
    repo = image.rsplit("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/", 1)[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def pod_status(
    pod: Mapping[str, Any],
    state: PodState,
    *,
    pod_ip: str,
    host_ip: str,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status a kubelet would report for ``pod`` in ``state``.

    Times already in ``previous`` (the current status) are kept, so rewriting the status of
    an unchanged pod changes nothing.
    """
    prev = dict(previous or {})
    now = now_rfc3339()
    start = str(prev.get("startTime") or now)
    spec = spec_of(pod)
    uid = uid_of(pod)
    terminal = state in ("succeeded", "failed")
    ready = state == "ready"
    running = state in ("ready", "unready")
    names = [str(c.get("name", "")) for c in _containers(spec)]

    def cond(ctype: str, ok: bool, reason: str = "") -> dict[str, Any]:
        c: dict[str, Any] = {"type": ctype, "status": "True" if ok else "False",
                             "lastProbeTime": None, "lastTransitionTime": now}
        if reason and not ok:
            c["reason"] = reason
        return c

    if state == "pending":
        conditions = [cond("PodScheduled", True)]
    else:
        not_ready = "PodCompleted" if terminal else "ContainersNotReady"
        conditions = [
            cond("PodReadyToStartContainers", running),
            cond("Initialized", True),
            cond("Ready", ready, not_ready),
            cond("ContainersReady", ready, not_ready),
            cond("PodScheduled", True),
        ]
        if not ready and not terminal:
            msg = f"containers with unready status: [{' '.join(names)}]"
            conditions[2]["message"] = msg
            conditions[3]["message"] = msg
    conditions = merge_conditions(prev.get("conditions"), conditions)
    for c in conditions:
        if c.get("reason") is None:
            c.pop("reason", None)

    prev_cs = {str(c.get("name")): c for c in prev.get("containerStatuses") or []
               if isinstance(c, dict)}

    def container_status(c: Mapping[str, Any]) -> dict[str, Any]:
        name = str(c.get("name", ""))
        image = str(c.get("image", ""))
        old_state = (prev_cs.get(name) or {}).get("state") or {}
        started = str((old_state.get("running") or old_state.get("terminated") or {}).get(
            "startedAt") or start)
        cs: dict[str, Any] = {
            "name": name,
            "image": image,
            "imageID": _image_id(image),
            "containerID": _container_id(uid, name),
            "ready": ready,
            "restartCount": 0,
            "started": running,
            "lastState": {},
        }
        if running:
            cs["state"] = {"running": {"startedAt": started}}
        elif terminal:
            old_term = old_state.get("terminated") or {}
            cs["state"] = {"terminated": {
                "exitCode": 0 if state == "succeeded" else 1,
                "reason": "Completed" if state == "succeeded" else "Error",
                "startedAt": started,
                "finishedAt": str(old_term.get("finishedAt") or now),
                "containerID": _container_id(uid, name),
            }}
        else:
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            cs.pop("containerID")
        return cs

    status: dict[str, Any] = {
        "phase": {"pending": "Pending", "ready": "Running", "unready": "Running",
                  "succeeded": "Succeeded", "failed": "Failed"}[state],
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "qosClass": qos_class(spec),
        "startTime": start,
    }
    if state != "pending":
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
        status["containerStatuses"] = [container_status(c) for c in _containers(spec)]
        inits = _containers(spec, "initContainers")
        if inits:
            status["initContainerStatuses"] = [
                {
                    "name": str(c.get("name", "")),
                    "image": str(c.get("image", "")),
                    "imageID": _image_id(str(c.get("image", ""))),
                    "containerID": _container_id(uid, str(c.get("name", ""))),
                    "ready": True,
                    "restartCount": 0,
                    "started": False,
                    "lastState": {},
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                             "startedAt": start, "finishedAt": start}},
                }
                for c in inits
            ]
    return status


def build_pod(
    ctx: Context,
    owner: Mapping[str, Any],
    template: Mapping[str, Any],
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    spec_extra: Mapping[str, Any] | None = None,
) -> Obj:
    """A Pod for ``owner`` from a pod ``template``, scheduled on the simulated node.

    It has no status yet; `initial_status` gives the one to create it with.
    """
    tmeta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    assert isinstance(tmeta, dict)
    spec = clone(template.get("spec") or {})
    spec.update(clone(dict(spec_extra or {})))
    spec["nodeName"] = ctx.node_name
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("tolerations", clone(_DEFAULT_TOLERATIONS))
    md: dict[str, Any] = {
        "name": name,
        "namespace": namespace_of(owner),
        "labels": {**(tmeta.get("labels") or {}), **dict(labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    ann = {**(tmeta.get("annotations") or {}), **dict(annotations or {})}
    if ann:
        md["annotations"] = ann
    if tmeta.get("finalizers"):
        md["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def free_pod_name(ctx: Context, ns: str, base: str, seed: str) -> str:
    """``<base>-<suffix>`` with a suffix derived from ``seed`` that no Pod in ``ns`` uses yet."""
    for attempt in range(100):
        candidate = f"{base}-{name_suffix(f'{seed}/{attempt}')}"
        if ctx.get("Pod", ns, candidate) is None:
            return candidate
    raise RuntimeError(f"no free pod name for {base}")


def create_pod(ctx: Context, pod: Obj, state: PodState) -> Obj:
    """Create ``pod`` with the status of ``state`` and an address from the pod pool."""
    key = f"{namespace_of(pod)}/{name_of(pod)}"
    ip = ctx.pod_ips.allocate(key)
    pod["status"] = pod_status(pod, state, pod_ip=ip, host_ip=ctx.node_ip)
    try:
        created = ctx.create("Pod", pod)
    except Exception:
        ctx.pod_ips.release(ip, key)
        raise
    ctx.manager.note_created(uid_of(created))
    return created


def set_pod_state(ctx: Context, pod: Mapping[str, Any], state: PodState) -> None:
    """Rewrite a pod's status for ``state`` (no write if it is already in that state)."""
    if pod_state(pod) == state:
        return
    status = status_of(pod)
    ip = str(status.get("podIP") or ctx.pod_ips.allocate(f"{namespace_of(pod)}/{name_of(pod)}"))
    new_status = pod_status(pod, state, pod_ip=ip, host_ip=ctx.node_ip, previous=status)

    def put(current: Obj) -> None:
        current["status"] = new_status

    ctx.modify("Pod", namespace_of(pod), name_of(pod), put, status=True)


def running_state(
    ctx: Context, pod: Mapping[str, Any], never_ready: bool, delay: float
) -> tuple[PodState, float]:
    """"ready" or "unready" for a long-running pod, and how long until it may become ready."""
    if never_ready or flag([pod], NEVER_READY_ANNOTATION):
        return "unready", 0.0
    remaining = ctx.manager.remaining(uid_of(pod), delay)
    if remaining > 0:
        return "unready", remaining
    return "ready", 0.0


# ---------------------------------------------------------------------- bare pods


class BarePodController(Controller):
    """Runs Pods that no simulated controller owns: schedules them and reports their status."""

    name = "pod"

    def routes(self) -> dict[tuple[str, str], Router]:
        def route(event: Event) -> list[Key]:
            if event.type == "DELETED":
                ip = status_of(event.object).get("podIP")
                if ip:
                    self.ctx.pod_ips.release(str(ip), f"{event.namespace}/{event.name}")
                self.ctx.manager.forget(uid_of(event.object))
                return []
            if _managed(event.object):
                return []
            return [(event.namespace, event.name)]

        return {self.ctx.rt["Pod"].key: route}

    def on_start(self) -> None:
        for pod in self.ctx.iter_stored("Pod"):
            ip = status_of(pod).get("podIP")
            if ip:
                self.ctx.pod_ips.mark(str(ip), f"{namespace_of(pod)}/{name_of(pod)}")

    def resync(self) -> Iterable[Key]:
        return [
            (namespace_of(p), name_of(p)) for p in self.ctx.iter_stored("Pod") if not _managed(p)
        ]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        pod = self.ctx.get("Pod", ns, name)
        if pod is None or is_deleting(pod) or _managed(pod):
            return
        state = pod_state(pod)
        if state in ("succeeded", "failed"):
            return
        spec = spec_of(pod)
        if not spec.get("nodeName"):
            def bind(current: Obj) -> None:
                current.setdefault("spec", {})["nodeName"] = self.ctx.node_name

            pod = self.ctx.modify("Pod", ns, name, bind)
            if pod is None:
                return
        delay = parse_duration(annotations_of(pod).get(READY_AFTER_ANNOTATION))
        remaining = self.ctx.manager.remaining(uid_of(pod), delay)
        if flag([pod], FAIL_ANNOTATION):
            target: PodState = "failed" if remaining <= 0 else "unready"
        elif spec.get("restartPolicy", "Always") != "Always":
            target = "succeeded" if remaining <= 0 else "unready"
            if flag([pod], NEVER_READY_ANNOTATION):
                target = "unready"
        else:
            target, remaining = running_state(self.ctx, pod, False, delay)
        if remaining > 0:
            self.ctx.requeue_after(self.name, key, remaining)
        if state != target:
            set_pod_state(self.ctx, pod, target)


def _managed(pod: Mapping[str, Any]) -> bool:
    ref = controller_ref(pod)
    return ref is not None and ref.get("kind") in MANAGED_OWNER_KINDS


def creation_order(pod: Mapping[str, Any]) -> tuple[str, str]:
    return (str(meta_of(pod).get("creationTimestamp", "")), name_of(pod))
