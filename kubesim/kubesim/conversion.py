"""Conversion between a served version of a kind and the version its objects are stored in.

Custom resources and most kinds differ only in ``apiVersion``. autoscaling/v1
HorizontalPodAutoscalers (stored as autoscaling/v2) are converted as the API server does for
what v1 can say: ``spec.targetCPUUtilizationPercentage`` is the v2 CPU ``Utilization`` metric,
``status.currentCPUUtilizationPercentage`` its current value. Other v2 metrics, conditions and
``behavior`` are kept across a v1 round trip (the API server keeps them in annotations; kubesim
keeps them in the stored object) but not shown in v1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .objects import Obj, clone
from .resources import ResourceType

_HPA = ("autoscaling", "horizontalpodautoscalers")


def _is_cpu_utilization(metric: Any) -> bool:
    if not isinstance(metric, dict) or metric.get("type") != "Resource":
        return False
    resource = metric.get("resource") or {}
    target = resource.get("target") or {}
    return bool(resource.get("name") == "cpu" and target.get("type") == "Utilization")


def _hpa_to_v1(obj: Obj) -> Obj:
    out = clone(obj)
    spec = out.get("spec")
    if isinstance(spec, dict):
        metrics = spec.pop("metrics", None) or []
        spec.pop("behavior", None)
        cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
        if cpu is not None:
            spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get(
                "averageUtilization")
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentMetrics", None) or []
        status.pop("conditions", None)
        for metric in current:
            resource = (metric or {}).get("resource") or {}
            if metric.get("type") == "Resource" and resource.get("name") == "cpu":
                value = (resource.get("current") or {}).get("averageUtilization")
                if value is not None:
                    status["currentCPUUtilizationPercentage"] = value
    return out


def _hpa_from_v1(body: Obj, current: Obj | None) -> Obj:
    out = clone(body)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out
    target = spec.pop("targetCPUUtilizationPercentage", None)
    # what v1 cannot express is kept from the stored object
    old_spec = (current or {}).get("spec") or {}
    metrics = [m for m in old_spec.get("metrics") or [] if not _is_cpu_utilization(m)]
    if target is not None:
        metrics.insert(0, {"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    if metrics:
        spec["metrics"] = metrics
    if "behavior" in old_spec:
        spec["behavior"] = old_spec["behavior"]
    return out


_TO_SERVED: dict[tuple[str, str, str], Callable[[Obj], Obj]] = {(*_HPA, "v1"): _hpa_to_v1}
_TO_STORED: dict[tuple[str, str, str], Callable[[Obj, Obj | None], Obj]] = {
    (*_HPA, "v1"): _hpa_from_v1,
}


def served(rt: ResourceType, obj: Obj) -> Obj:
    """The stored ``obj`` as served in ``rt``'s version (``obj`` itself when nothing differs)."""
    if obj.get("apiVersion") == rt.api_version:
        return obj
    convert = _TO_SERVED.get((rt.group, rt.plural, rt.version))
    out = convert(obj) if convert else dict(obj)
    out["apiVersion"] = rt.api_version
    return out


def converts(rt: ResourceType) -> bool:
    """Whether bodies in ``rt``'s version need more than a new ``apiVersion`` to be stored."""
    return (rt.group, rt.plural, rt.version) in _TO_STORED


def to_storage(rt: ResourceType, body: Obj, current: Obj | None = None) -> Obj:
    """A request ``body`` in ``rt``'s version as the storage version holds it; ``current`` is
    the stored object it replaces (for what the served version cannot express)."""
    convert = _TO_STORED.get((rt.group, rt.plural, rt.version))
    return convert(body, current) if convert else body
