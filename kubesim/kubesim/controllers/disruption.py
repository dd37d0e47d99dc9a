"""PodDisruptionBudgets: healthy-pod counts and allowed disruptions, as the disruption controller
reports them (``expectedPods`` is simply the number of Pods the selector picks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..selectors import LabelSelector
from .base import Controller, Key, Router, selecting, self_key
from .common import (
    condition,
    generation_of,
    is_deleting,
    labels_of,
    merge_conditions,
    name_of,
    namespace_of,
    scaled_value,
    spec_of,
    status_of,
)
from .pods import is_pod_active, pod_state


def _selector(pdb: Mapping[str, Any]) -> LabelSelector | None:
    raw = spec_of(pdb).get("selector")
    if raw is None:
        return None
    try:
        return LabelSelector.from_dict(raw)
    except Exception:
        return None


def _pod_matcher(pdb: Mapping[str, Any]) -> Callable[[Mapping[str, str]], bool] | None:
    sel = _selector(pdb)
    return sel.matches if sel is not None and sel else None


class DisruptionController(Controller):
    """Reports PodDisruptionBudget status."""

    name = "disruption"

    def routes(self) -> dict[tuple[str, str], Router]:
        return {
            self.ctx.rt["PodDisruptionBudget"].key: self_key,
            self.ctx.rt["Pod"].key: selecting(self.ctx, "PodDisruptionBudget", _pod_matcher),
        }

    def resync(self) -> Iterable[Key]:
        return [
            (namespace_of(p), name_of(p)) for p in self.ctx.iter_stored("PodDisruptionBudget")
        ]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        pdb = self.ctx.get("PodDisruptionBudget", ns, name)
        if pdb is None or is_deleting(pdb):
            return
        sel = _selector(pdb)
        pods = []
        if sel is not None and sel:
            pods = [p for p in self.ctx.iter_stored("Pod", ns)
                    if is_pod_active(p) and sel.matches(labels_of(p))]
        expected = len(pods)
        healthy = sum(1 for p in pods if pod_state(p) == "ready")
        spec = spec_of(pdb)
        if spec.get("minAvailable") is not None:
            desired = scaled_value(spec["minAvailable"], expected, True)
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, True))
        else:
            desired = expected
        allowed = max(0, healthy - desired)
        if allowed > 0:
            cond = condition("DisruptionAllowed", "True", "SufficientPods", "")
        else:
            cond = condition("DisruptionAllowed", "False", "InsufficientPods", "")
        cond["observedGeneration"] = generation_of(pdb)
        status: dict[str, Any] = {
            "observedGeneration": generation_of(pdb),
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": merge_conditions(status_of(pdb).get("conditions"), [cond]),
        }
        self.ctx.set_status("PodDisruptionBudget", pdb, status)
