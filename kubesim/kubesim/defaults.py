"""A few API-server defaults that clients and waiters rely on (replicas, Service type, ports)."""

from __future__ import annotations

import base64
from typing import Any

from .objects import Obj
from .resources import ResourceType


def _pod_spec_defaults(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = str(c.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")


def _dict_field(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _template(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            _pod_spec_defaults(tmpl.get("spec"))


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Fill defaults in place (only where Kubernetes would and waiters need them)."""
    if rt.crd_name:
        return
    kind = rt.kind
    spec = obj.get("spec")
    if kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            current = obj.get("data")
            data: dict[str, Any] = current if isinstance(current, dict) else {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            if kind == "Deployment":
                spec.setdefault("progressDeadlineSeconds", 600)
                strategy = _dict_field(spec, "strategy")
                strategy.setdefault("type", "RollingUpdate")
                if strategy["type"] == "RollingUpdate":
                    rolling = _dict_field(strategy, "rollingUpdate")
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
            if kind == "StatefulSet":
                spec.setdefault("podManagementPolicy", "OrderedReady")
                strategy = _dict_field(spec, "updateStrategy")
                strategy.setdefault("type", "RollingUpdate")
                if strategy["type"] == "RollingUpdate":
                    _dict_field(strategy, "rollingUpdate").setdefault("partition", 0)
        _template(obj)
    elif kind == "DaemonSet":
        if isinstance(spec, dict):
            spec.setdefault("revisionHistoryLimit", 10)
            strategy = _dict_field(spec, "updateStrategy")
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _dict_field(strategy, "rollingUpdate")
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
        _template(obj)
    elif kind == "Job":
        if isinstance(spec, dict):
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
        _template(obj)
    elif kind == "CronJob":
        if isinstance(spec, dict):
            spec.setdefault("concurrencyPolicy", "Allow")
            spec.setdefault("suspend", False)
            jt = spec.get("jobTemplate")
            if isinstance(jt, dict):
                _template(jt)
    elif kind == "Pod":
        _pod_spec_defaults(spec)
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
