"""Helpers shared by the simulated controllers: annotations, owner references, hashes, conditions.

Everything here is pure (no store access) so that it can be unit-tested and reused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..objects import now_rfc3339

#: A workload (or a Pod, PVC) with this annotation set to "true" never becomes ready.
NEVER_READY_ANNOTATION = "kubesim.io/never-ready"
#: Jobs and bare Pods with this annotation set to "true" fail instead of succeeding.
FAIL_ANNOTATION = "kubesim.io/fail"
#: Seconds (``"2"``, ``"1.5s"``, ``"500ms"``) a Pod takes to become ready, or a Job to finish.
READY_AFTER_ANNOTATION = "kubesim.io/ready-after"

#: The simulated node every Pod runs on.
NODE_NAME = "kubesim-node"
NODE_IP = "172.18.0.2"

_SAFE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*$")


# ---------------------------------------------------------------------- metadata access


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta_of(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta_of(obj).get("namespace", ""))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(meta_of(obj).get("uid", ""))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = meta_of(obj).get("labels")
    return dict(labels) if isinstance(labels, Mapping) else {}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    ann = meta_of(obj).get("annotations")
    return dict(ann) if isinstance(ann, Mapping) else {}


def generation_of(obj: Mapping[str, Any]) -> int:
    return int(meta_of(obj).get("generation") or 0)


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta_of(obj).get("deletionTimestamp"))


def as_int(value: Any, default: int) -> int:
    """An integer field that may be missing or null."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------------- simulation annotations


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "yes", "1")


def flag(objs: Iterable[Mapping[str, Any] | None], annotation: str) -> bool:
    """True if any of ``objs`` carries ``annotation: "true"``."""
    return any(obj is not None and _truthy(annotations_of(obj).get(annotation)) for obj in objs)


def parse_duration(text: object) -> float:
    """Seconds from ``"2"``, ``"1.5s"``, ``"500ms"`` or ``"1m"``; 0 when absent or malformed."""
    if text is None:
        return 0.0
    m = _DURATION.match(str(text))
    if not m:
        return 0.0
    value = float(m.group(1))
    unit = m.group(2) or "s"
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit == "m" else value


def ready_after(objs: Iterable[Mapping[str, Any] | None]) -> float:
    """The largest ``kubesim.io/ready-after`` delay among ``objs`` (seconds)."""
    delays = [
        parse_duration(annotations_of(o).get(READY_AFTER_ANNOTATION)) for o in objs if o is not None
    ]
    return max(delays, default=0.0)


# ---------------------------------------------------------------------- owner references


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in meta_of(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    ref = controller_ref(obj)
    return ref is not None and str(ref.get("uid")) == owner_uid


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference naming ``owner`` (``blockOwnerDeletion`` as the real controllers set)."""
    return {
        "apiVersion": str(owner.get("apiVersion", "")),
        "kind": str(owner.get("kind", "")),
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


# ---------------------------------------------------------------------- hashing and naming


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def safe_encode(text: str) -> str:
    """Map characters onto the alphabet Kubernetes uses in generated names (no vowels)."""
    return "".join(_SAFE_CHARS[ord(ch) % len(_SAFE_CHARS)] for ch in text)


def template_hash(template: Any, collision_count: int = 0) -> str:
    """A ``pod-template-hash`` style digest of a pod template (stable, like the real one)."""
    data = canonical_json(template)
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def name_suffix(seed: str, length: int = 5) -> str:
    """A deterministic random-looking suffix (``x7k2p``) derived from ``seed``."""
    out = ""
    counter = 0
    while len(out) < length:
        out += safe_encode(str(fnv32a(f"{seed}#{counter}".encode())))
        counter += 1
    return out[-length:]


def template_without_hash(template: Any, label: str = "pod-template-hash") -> Any:
    """A copy of a pod template without the given label (for Deployment/ReplicaSet matching)."""
    if not isinstance(template, dict):
        return template
    out = dict(template)
    md = out.get("metadata")
    if isinstance(md, dict):
        md = dict(md)
        labels = md.get("labels")
        if isinstance(labels, dict) and label in labels:
            labels = {k: v for k, v in labels.items() if k != label}
            if labels:
                md["labels"] = labels
            else:
                md.pop("labels", None)
        out["metadata"] = md
    return _drop_empty(out)


def _drop_empty(value: Any) -> Any:
    """Normalise for semantic comparison: empty maps/lists count as absent (as in Go)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _drop_empty(v)
            if v in ({}, [], None):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def templates_equal(a: Any, b: Any) -> bool:
    """Semantic equality of two pod templates ignoring ``pod-template-hash``."""
    return bool(template_without_hash(a) == template_without_hash(b))


# ---------------------------------------------------------------------- int-or-percent


def scaled_value(value: Any, total: int, round_up: bool, default: int = 0) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: ``3`` or ``"25%"`` of ``total``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            return default
        raw = pct * total / 100.0
        return math.ceil(raw) if round_up else math.floor(raw)
    try:
        return int(text)
    except ValueError:
        return default


# ---------------------------------------------------------------------- conditions


def condition(
    ctype: str,
    status: str,
    reason: str,
    message: str,
    *,
    update_time: bool = False,
    probe_time: bool = False,
) -> dict[str, Any]:
    """A condition stamped now (``lastUpdateTime``/``lastProbeTime`` too when asked for)."""
    now = now_rfc3339()
    cond: dict[str, Any] = {"type": ctype, "status": status}
    if update_time:
        cond["lastUpdateTime"] = now
    if probe_time:
        cond["lastProbeTime"] = now
    cond["lastTransitionTime"] = now
    cond["reason"] = reason
    cond["message"] = message
    return cond


def merge_conditions(
    old: list[dict[str, Any]] | None, new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Keep the timestamps of conditions whose status, reason and message did not change.

    ``lastTransitionTime`` changes only when ``status`` changes, as Kubernetes does.
    """
    previous = {str(c.get("type")): c for c in old or [] if isinstance(c, dict)}
    out = []
    for cond in new:
        prev = previous.get(str(cond["type"]))
        merged = dict(cond)
        if prev is not None and prev.get("status") == cond["status"]:
            if "lastTransitionTime" in prev:
                merged["lastTransitionTime"] = prev["lastTransitionTime"]
            same = (prev.get("reason"), prev.get("message")) == (
                cond.get("reason"), cond.get("message"))
            for key in ("lastUpdateTime", "lastProbeTime"):
                if same and key in prev and key in merged:
                    merged[key] = prev[key]
        out.append(merged)
    return out


def get_condition(obj: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in status_of(obj).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def condition_true(obj: Mapping[str, Any], ctype: str) -> bool:
    cond = get_condition(obj, ctype)
    return cond is not None and cond.get("status") == "True"


def selector_labels(selector: Any) -> dict[str, str]:
    """``matchLabels`` of a LabelSelector (used to label what a controller creates)."""
    if isinstance(selector, Mapping):
        ml = selector.get("matchLabels")
        if isinstance(ml, Mapping):
            return {str(k): str(v) for k, v in ml.items()}
    return {}

