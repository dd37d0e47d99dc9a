"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

Columns follow ``kubectl get`` on a real cluster for common kinds (workloads, Services, webhook
configurations, APIServices, Ingresses, PDBs, HPAs, ...); other kinds get Name and Age.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .objects import Obj

Column = tuple[str, str, Callable[[Obj], Any]]


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """``5s``, ``3m12s``, ``2h5m``, ``4d`` -- the short durations kubectl shows."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d"


def _get(obj: Obj, *path: str, default: Any = None) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(part)
    return default if cur is None else cur


def _ready(obj: Obj) -> str:
    return f"{_get(obj, 'status', 'readyReplicas', default=0)}/{_get(obj, 'spec', 'replicas', default=0)}"  # noqa: E501


def _pod_ready(obj: Obj) -> str:
    statuses = _get(obj, "status", "containerStatuses", default=[])
    total = len(_get(obj, "spec", "containers", default=[]))
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{total}"


def _pod_restarts(obj: Obj) -> int:
    statuses = _get(obj, "status", "containerStatuses", default=[])
    return sum(int(s.get("restartCount", 0)) for s in statuses if isinstance(s, dict))


def _ports(obj: Obj) -> str:
    out = []
    for p in _get(obj, "spec", "ports", default=[]):
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(obj: Obj) -> str:
    ingress = _get(obj, "status", "loadBalancer", "ingress", default=[])
    ips = [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)]
    if ips:
        return ",".join(str(i) for i in ips if i)
    return "<pending>" if _get(obj, "spec", "type") == "LoadBalancer" else "<none>"


def _job_status(obj: Obj) -> str:
    for cond in _get(obj, "status", "conditions", default=[]):
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return "Running"


def _apiservice_service(obj: Obj) -> str:
    service = _get(obj, "spec", "service")
    if not isinstance(service, dict):
        return "Local"
    return f"{service.get('namespace', '')}/{service.get('name', '')}"


def _apiservice_available(obj: Obj) -> str:
    for c in _get(obj, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == "Available":
            status = str(c.get("status", "Unknown"))
            return status if status == "True" else f"{status} ({c.get('reason', '')})"
    return "Unknown"


_COLUMNS: dict[str, list[Column]] = {
    "Deployment": [
        ("Ready", "string", _ready),
        ("Up-to-date", "integer", lambda o: _get(o, "status", "updatedReplicas", default=0)),
        ("Available", "integer", lambda o: _get(o, "status", "availableReplicas", default=0)),
    ],
    "StatefulSet": [("Ready", "string", _ready)],
    "ReplicaSet": [
        ("Desired", "integer", lambda o: _get(o, "spec", "replicas", default=0)),
        ("Current", "integer", lambda o: _get(o, "status", "replicas", default=0)),
        ("Ready", "integer", lambda o: _get(o, "status", "readyReplicas", default=0)),
    ],
    "DaemonSet": [
        ("Desired", "integer", lambda o: _get(o, "status", "desiredNumberScheduled", default=0)),
        ("Current", "integer", lambda o: _get(o, "status", "currentNumberScheduled", default=0)),
        ("Ready", "integer", lambda o: _get(o, "status", "numberReady", default=0)),
    ],
    "Pod": [
        ("Ready", "string", _pod_ready),
        ("Status", "string", lambda o: _get(o, "status", "phase", default="Pending")),
        ("Restarts", "integer", _pod_restarts),
    ],
    "Service": [
        ("Type", "string", lambda o: _get(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", lambda o: _get(o, "spec", "clusterIP", default="<none>")),
        ("External-IP", "string", _external_ip),
        ("Port(s)", "string", _ports),
    ],
    "Secret": [
        ("Type", "string", lambda o: o.get("type", "Opaque")),
        ("Data", "integer", lambda o: len(o.get("data") or {})),
    ],
    "ConfigMap": [
        ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ],
    "Namespace": [("Status", "string", lambda o: _get(o, "status", "phase", default="Active"))],
    "Job": [
        ("Status", "string", _job_status),
        ("Completions", "string",
         lambda o: f"{_get(o, 'status', 'succeeded', default=0)}/"
                   f"{_get(o, 'spec', 'completions', default=1)}"),
    ],
    "PersistentVolumeClaim": [
        ("Status", "string", lambda o: _get(o, "status", "phase", default="Pending")),
        ("Volume", "string", lambda o: _get(o, "spec", "volumeName", default="")),
    ],
    "ServiceAccount": [],
    **{kind: [("Webhooks", "integer", lambda o: len(o.get("webhooks") or []))]
       for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")},
    "APIService": [
        ("Service", "string", _apiservice_service),
        ("Available", "string", _apiservice_available),
    ],
    "Ingress": [
        ("Class", "string", lambda o: _get(o, "spec", "ingressClassName", default="<none>")),
        ("Hosts", "string", lambda o: ",".join(
            str(r.get("host") or "*") for r in _get(o, "spec", "rules", default=[])
            if isinstance(r, dict)) or "*"),
        ("Address", "string", lambda o: ",".join(
            str(i.get("ip") or i.get("hostname") or "")
            for i in _get(o, "status", "loadBalancer", "ingress", default=[])
            if isinstance(i, dict))),
        ("Ports", "string", lambda o: "80, 443" if _get(o, "spec", "tls") else "80"),
    ],
    "PodDisruptionBudget": [
        ("Min Available", "string", lambda o: _get(o, "spec", "minAvailable", default="N/A")),
        ("Max Unavailable", "string",
         lambda o: _get(o, "spec", "maxUnavailable", default="N/A")),
        ("Allowed Disruptions", "integer",
         lambda o: _get(o, "status", "disruptionsAllowed", default=0)),
    ],
    "HorizontalPodAutoscaler": [
        ("Reference", "string", lambda o: f"{_get(o, 'spec', 'scaleTargetRef', 'kind')}/"
                                          f"{_get(o, 'spec', 'scaleTargetRef', 'name')}"),
        ("MinPods", "integer", lambda o: _get(o, "spec", "minReplicas", default=1)),
        ("MaxPods", "integer", lambda o: _get(o, "spec", "maxReplicas", default=0)),
        ("Replicas", "integer", lambda o: _get(o, "status", "currentReplicas", default=0)),
    ],
    "CronJob": [
        ("Schedule", "string", lambda o: _get(o, "spec", "schedule", default="")),
        ("Timezone", "string", lambda o: _get(o, "spec", "timeZone", default="<none>")),
        ("Suspend", "boolean", lambda o: bool(_get(o, "spec", "suspend", default=False))),
        ("Active", "integer", lambda o: len(_get(o, "status", "active", default=[]))),
        ("Last Schedule", "string",
         lambda o: human_age(_get(o, "status", "lastScheduleTime")).replace(
             "<unknown>", "<none>")),
    ],
    "PriorityClass": [
        ("Value", "integer", lambda o: o.get("value", 0)),
        ("Global-Default", "boolean", lambda o: bool(o.get("globalDefault", False))),
    ],
    "StorageClass": [
        ("Provisioner", "string", lambda o: o.get("provisioner", "")),
        ("ReclaimPolicy", "string", lambda o: o.get("reclaimPolicy", "Delete")),
        ("VolumeBindingMode", "string", lambda o: o.get("volumeBindingMode", "Immediate")),
        ("AllowVolumeExpansion", "boolean", lambda o: bool(o.get("allowVolumeExpansion"))),
    ],
    "IngressClass": [
        ("Controller", "string", lambda o: _get(o, "spec", "controller", default="")),
    ],
    "Lease": [("Holder", "string", lambda o: _get(o, "spec", "holderIdentity", default=""))],
    **{kind: [("Role", "string", lambda o: f"{_get(o, 'roleRef', 'kind')}/"
                                           f"{_get(o, 'roleRef', 'name')}")]
       for kind in ("RoleBinding", "ClusterRoleBinding")},
}


def is_table_request(accept: str) -> bool:
    return "as=Table" in accept


def to_table(items: list[Obj], kind: str, resource_version: str) -> dict[str, Any]:
    """A Table of ``items`` (each row carries its full object, as ``includeObject=Object``)."""
    extra = _COLUMNS.get(kind, [])
    definitions = [{"name": "Name", "type": "string", "format": "name", "description": "",
                    "priority": 0}]
    definitions += [{"name": n, "type": t, "format": "", "description": "", "priority": 0}
                    for n, t, _ in extra]
    definitions.append({"name": "Age", "type": "string", "format": "", "description": "",
                        "priority": 0})
    now = datetime.now(UTC)
    rows = []
    for obj in items:
        m = obj.get("metadata") or {}
        cells: list[Any] = [m.get("name", "")]
        cells += [fn(obj) for _, _, fn in extra]
        cells.append(human_age(m.get("creationTimestamp"), now))
        rows.append({"cells": cells, "object": obj})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
