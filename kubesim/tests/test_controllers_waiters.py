"""Helm's two waiters, re-stated in Python, judge the workloads kubesim's controllers run.

``helm3_ready`` follows helm 3's legacy waiter (pkg/kube/ready.go): Deployments through their
newest ReplicaSet, StatefulSet partition and revision checks, DaemonSet scheduling, PVC phase,
Service cluster IP, Job completions. ``kstatus`` follows the kstatus rules helm 4's watcher uses
(generation observed, then per-kind replica counts and conditions). Both are written from the
documented behaviour; the tests check that ready workloads satisfy both, and never-ready ones
neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubesim import controllers
from kubesim.controllers import NEVER_READY_ANNOTATION
from kubesim.selectors import LabelSelector
from kubesim.store import Store


def _i(obj: dict[str, Any], *path: str, default: int = 0) -> int:
    cur: Any = obj
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return default if cur is None else int(cur)


def _conds(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    pct = float(str(value).rstrip("%")) * total / 100
    return int(-(-pct // 1)) if round_up else int(pct // 1)


def helm3_ready(store: Store, kind: str, obj: dict[str, Any]) -> bool:
    md, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    gen_ok = _i(status, "observedGeneration") == _i(md, "generation")
    if kind == "Deployment":
        selector = LabelSelector.from_dict(spec.get("selector"))
        owned = [
            rs for rs in store.list("replicasets.apps", md["namespace"])
            if selector.matches(rs["metadata"].get("labels"))
            and any(r.get("controller") and r["uid"] == md["uid"]
                    for r in rs["metadata"].get("ownerReferences") or [])
        ]

        def strip(t: dict[str, Any]) -> dict[str, Any]:
            t = dict(t)
            t["metadata"] = dict(t.get("metadata") or {})
            t["metadata"]["labels"] = {k: v for k, v in (t["metadata"].get("labels") or {}).items()
                                       if k != "pod-template-hash"}
            return t

        new = [rs for rs in owned if strip(rs["spec"]["template"]) == strip(spec["template"])]
        if not new:
            return False
        rs = new[0]
        if _i(rs["status"], "observedGeneration") != _i(rs["metadata"], "generation"):
            return False
        if not gen_ok:
            return False
        replicas = int(spec["replicas"])
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        surge = _scaled(ru.get("maxSurge"), replicas, True)
        unavailable = _scaled(ru.get("maxUnavailable"), replicas, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return _i(rs["status"], "readyReplicas") >= replicas - min(unavailable, replicas)
    if kind == "ReplicaSet":
        selector = LabelSelector.from_dict(spec.get("selector"))
        pods = [p for p in store.list("pods", md["namespace"])
                if selector.matches(p["metadata"].get("labels"))]
        return gen_ok and all(_conds(p).get("Ready", {}).get("status") == "True" for p in pods)
    if kind == "StatefulSet":
        if not gen_ok:
            return False
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") != "RollingUpdate":
            return True
        partition = _i(strategy, "rollingUpdate", "partition")
        replicas = _i(spec, "replicas", default=1)
        if _i(status, "updatedReplicas") < replicas - partition:
            return False
        if _i(status, "readyReplicas") != replicas:
            return False
        return partition != 0 or status.get("currentRevision") == status.get("updateRevision")
    if kind == "DaemonSet":
        if not gen_ok:
            return False
        strategy = spec["updateStrategy"]
        if strategy.get("type") != "RollingUpdate":
            return True
        desired = _i(status, "desiredNumberScheduled")
        if _i(status, "updatedNumberScheduled") != desired:
            return False
        max_unavailable = _scaled(strategy["rollingUpdate"].get("maxUnavailable"), desired, True)
        return _i(status, "numberReady") >= desired - max_unavailable
    if kind == "PersistentVolumeClaim":
        return status.get("phase") == "Bound"
    if kind == "Service":
        if spec.get("type") == "ExternalName":
            return True
        if not spec.get("clusterIP"):
            return False
        if spec.get("type") == "LoadBalancer":
            return bool((status.get("loadBalancer") or {}).get("ingress"))
        return True
    if kind == "Job":
        if _i(status, "failed") > int(spec["backoffLimit"]):
            return False
        return _i(status, "succeeded") >= int(spec["completions"])
    if kind == "Pod":
        return _conds(obj).get("Ready", {}).get("status") == "True"
    return True


def kstatus(obj: dict[str, Any]) -> str:
    """"Current", "InProgress" or "Failed"."""
    md, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    kind = obj["kind"]
    if md.get("deletionTimestamp"):
        return "Terminating"
    if "observedGeneration" in status and status["observedGeneration"] != md.get("generation"):
        return "InProgress"
    conds = _conds(obj)
    replicas = _i(spec, "replicas", default=1)
    if kind == "Deployment":
        progress = conds.get("Progressing", {})
        if progress.get("reason") == "ProgressDeadlineExceeded":
            return "Failed"
        counts = [_i(status, f) for f in ("replicas", "updatedReplicas", "availableReplicas",
                                           "readyReplicas")]
        if any(c < replicas for c in counts) or counts[0] > replicas:
            return "InProgress"
        ok = progress.get("status") == "True" and progress.get("reason") == "NewReplicaSetAvailable"
        ok = ok and conds.get("Available", {}).get("status") == "True"
        return "Current" if ok else "InProgress"
    if kind == "ReplicaSet":
        fields = ("fullyLabeledReplicas", "availableReplicas", "readyReplicas")
        if any(_i(status, f) < replicas for f in fields) or _i(status, "replicas") > replicas:
            return "InProgress"
        return "Current"
    if kind == "StatefulSet":
        if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
            return "Current"
        if _i(status, "replicas") < replicas or _i(status, "readyReplicas") < replicas:
            return "InProgress"
        if _i(status, "replicas") > replicas:
            return "InProgress"
        partition = (((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                     .get("partition"))
        if partition is not None:
            ok = _i(status, "updatedReplicas") >= replicas - int(partition)
            return "Current" if ok else "InProgress"
        if _i(status, "currentReplicas") < replicas:
            return "InProgress"
        same = status.get("currentRevision") == status.get("updateRevision")
        return "Current" if same else "InProgress"
    if kind == "DaemonSet":
        if "observedGeneration" not in status or "desiredNumberScheduled" not in status:
            return "InProgress"
        desired = _i(status, "desiredNumberScheduled")
        names = ("currentNumberScheduled", "updatedNumberScheduled", "numberAvailable",
                 "numberReady")
        return "InProgress" if any(_i(status, f) < desired for f in names) else "Current"
    if kind == "PersistentVolumeClaim":
        return "Current" if status.get("phase") == "Bound" else "InProgress"
    if kind == "Job":
        if conds.get("Failed", {}).get("status") == "True":
            return "Failed"
        if conds.get("Complete", {}).get("status") == "True":
            return "Current"
        return "InProgress"  # helm 4's own job reader: only a finished Job is Current
    if kind == "Pod":
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            return "Current"
        if phase == "Running" and conds.get("Ready", {}).get("status") == "True":
            return "Current"
        return "InProgress"
    if kind == "Service":
        if spec.get("type") == "LoadBalancer" and not spec.get("clusterIP"):
            return "InProgress"
        return "Current"
    return "Current"


# ---------------------------------------------------------------------- workloads to judge


def _template(app: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"labels": {"app": app}}
    if annotations:
        md["annotations"] = annotations
    return {"metadata": md, "spec": {"containers": [{"name": "c", "image": f"{app}:1"}]}}


def _workload(kind: str, name: str, replicas: int, never_ready: bool) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "default"}
    if never_ready:
        md["annotations"] = {NEVER_READY_ANNOTATION: "true"}
    api = {"Job": "batch/v1", "PersistentVolumeClaim": "v1", "Service": "v1"}.get(kind, "apps/v1")
    obj: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": md}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        obj["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": _template(name)}
        if kind != "DaemonSet":
            obj["spec"]["replicas"] = replicas
        if kind == "StatefulSet":
            obj["spec"]["serviceName"] = name
            obj["spec"]["volumeClaimTemplates"] = [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]
    elif kind == "Job":
        obj["spec"] = {"template": {**_template(name), "spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    elif kind == "PersistentVolumeClaim":
        obj["spec"] = {"accessModes": ["ReadWriteOnce"],
                       "resources": {"requests": {"storage": "2Gi"}}}
    elif kind == "Service":
        obj["spec"] = {"type": "LoadBalancer", "selector": {"app": name},
                       "ports": [{"port": 80}]}
    return obj


RESOURCE = {
    "Deployment": "deployments.apps",
    "ReplicaSet": "replicasets.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "Job": "jobs.batch",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Service": "services",
}
KINDS = list(RESOURCE)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store()
    manager = controllers.start(s)
    yield s
    manager.stop_now()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("replicas", [1, 3])
def test_ready_workloads_satisfy_both_waiters(store: Store, kind: str, replicas: int) -> None:
    store.create(RESOURCE[kind], _workload(kind, "w", replicas, never_ready=False))
    obj = store.get(RESOURCE[kind], "w", "default")
    assert helm3_ready(store, kind, obj), obj.get("status")
    assert kstatus(obj) == "Current", obj.get("status")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "Job",
                                  "PersistentVolumeClaim"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_never_ready_workloads_satisfy_neither(store: Store, kind: str, replicas: int) -> None:
    store.create(RESOURCE[kind], _workload(kind, "w", replicas, never_ready=True))
    obj = store.get(RESOURCE[kind], "w", "default")
    assert not helm3_ready(store, kind, obj), obj.get("status")
    assert kstatus(obj) == "InProgress", obj.get("status")


def test_never_ready_daemonset_is_in_progress_for_kstatus(store: Store) -> None:
    # helm 3 tolerates maxUnavailable (1 by default) unready DaemonSet pods, as on a real
    # single-node cluster; kstatus wants all of them ready.
    store.create("daemonsets.apps", _workload("DaemonSet", "w", 1, never_ready=True))
    obj = store.get("daemonsets.apps", "w", "default")
    assert kstatus(obj) == "InProgress"
    assert obj["status"]["numberReady"] == 0 and obj["status"]["desiredNumberScheduled"] == 1


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_template_change_is_ready_again_for_both(store: Store, kind: str) -> None:
    store.create(RESOURCE[kind], _workload(kind, "w", 2, never_ready=False))

    def bump(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "w:2"

    store.modify(RESOURCE[kind], "w", bump, "default")
    obj = store.get(RESOURCE[kind], "w", "default")
    assert obj["metadata"]["generation"] == 2
    assert helm3_ready(store, kind, obj), obj["status"]
    assert kstatus(obj) == "Current", obj["status"]


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_adding_never_ready_to_a_ready_workload_unreadies_it(store: Store, kind: str) -> None:
    store.create(RESOURCE[kind], _workload(kind, "w", 2, never_ready=False))

    def mark(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("annotations", {})[NEVER_READY_ANNOTATION] = "true"

    store.modify(RESOURCE[kind], "w", mark, "default")
    obj = store.get(RESOURCE[kind], "w", "default")
    assert not helm3_ready(store, kind, obj)
    assert kstatus(obj) == "InProgress"

    def unmark(obj: dict[str, Any]) -> None:
        del obj["metadata"]["annotations"][NEVER_READY_ANNOTATION]

    store.modify(RESOURCE[kind], "w", unmark, "default")
    obj = store.get(RESOURCE[kind], "w", "default")
    assert helm3_ready(store, kind, obj)
    assert kstatus(obj) == "Current"
