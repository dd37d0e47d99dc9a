"""The objects of a rendered release manifest, and how Capstan names and judges them.

A helm manifest is multi-document YAML (`---` separated, `# Source:` comments); `List` kinds
are expanded into their items. `readiness` gives a kstatus-like verdict for workloads, used
while a release settles (`drivers.base.kind_key` names their group).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capstan_server.errors import InvalidArgument
from capstan_server.values import load_yaml

#: Kinds whose readiness WatchRelease reports.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                            "Pod", "PersistentVolumeClaim"})


@dataclass(frozen=True)
class ManifestObject:
    """One object named by a manifest; `namespace` is empty when the manifest gives none.

    `error` is set for a document that cannot be parsed; its identity is then what could be
    read from the text (possibly incomplete), so it is reported rather than dropped."""

    api_version: str
    kind: str
    namespace: str
    name: str
    error: str = ""

    @property
    def identified(self) -> bool:
        """Whether the object can be looked up in the cluster."""
        return bool(self.api_version and self.kind and self.name)


_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_SOURCE = re.compile(r"^# Source: (\S+)", re.MULTILINE)
_TOP_FIELD = {field: re.compile(rf"^{field}:[ \t]*[\"']?([^\s\"'#]+)", re.MULTILINE)
              for field in ("apiVersion", "kind")}
_META_FIELD = {field: re.compile(rf"^metadata:[^\n]*\n(?:[ \t]+[^\n]*\n)*?[ \t]+{field}:"
                                 rf"[ \t]*[\"']?([^\s\"'#]+)", re.MULTILINE)
               for field in ("name", "namespace")}


def _objects(doc: Any) -> list[Mapping[str, Any]]:
    if not isinstance(doc, dict):
        return []
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        return [item for sub in doc["items"] for item in _objects(sub)]
    return [doc]


def _guess(text: str, error: str) -> ManifestObject:
    """What a document that cannot be parsed says it is, as far as plain text tells."""
    def find(rx: re.Pattern[str]) -> str:
        match = rx.search(text)
        return match.group(1) if match else ""
    return ManifestObject(find(_TOP_FIELD["apiVersion"]), find(_TOP_FIELD["kind"]),
                          find(_META_FIELD["namespace"]), find(_META_FIELD["name"]), error=error)


def _has_content(text: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def parse_manifest(manifest: str) -> list[ManifestObject]:
    """The objects of a manifest in order, duplicates removed, each document parsed as helm
    parses it (`values.load_yaml`). Documents that are not Kubernetes objects (empty, comments
    only, no kind/name) are skipped; one that cannot be parsed is kept with its `error`."""
    seen: set[ManifestObject] = set()
    out: list[ManifestObject] = []
    parts = [part for part in _SEPARATOR.split(manifest) if _has_content(part)]
    for number, part in enumerate(parts, start=1):
        source = _SOURCE.search(part)
        what = f"manifest document {number}" + (f" ({source.group(1)})" if source else "")
        try:
            docs = load_yaml(part, what=what)
        except InvalidArgument as err:
            out.append(_guess(part, err.message))
            continue
        for doc in docs:
            for obj in _objects(doc):
                meta = obj.get("metadata") or {}
                if not isinstance(meta, dict):
                    continue
                ref = ManifestObject(str(obj.get("apiVersion", "")), str(obj.get("kind", "")),
                                     str(meta.get("namespace") or ""),
                                     str(meta.get("name") or ""))
                if ref.identified and ref not in seen:
                    seen.add(ref)
                    out.append(ref)
    return out


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def readiness(obj: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(ready, short message) for a workload object, in the spirit of kstatus: the controller
    has observed the latest generation and the desired replicas are updated and ready."""
    if obj is None:
        return False, "missing"
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False, "terminating"
    generation = _int(meta.get("generation"))
    observed = status.get("observedGeneration")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") and (
            generation and observed is not None and _int(observed) < generation):
        return False, "update not yet observed"
    if kind == "DaemonSet":
        want = _int(status.get("desiredNumberScheduled"))
        ready = _int(status.get("numberReady"))
        updated = _int(status.get("updatedNumberScheduled"))
        return (ready >= want and updated >= want), f"{ready}/{want} ready"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        want = _int(spec.get("replicas", 1))
        ready = _int(status.get("readyReplicas"))
        updated = (_int(status.get("updatedReplicas")) if kind != "ReplicaSet"
                   else _int(status.get("replicas")))
        if kind == "Deployment":
            ready = min(ready, _int(status.get("availableReplicas")))
        ok = ready >= want and updated >= want and observed is not None
        return ok, f"{ready}/{want} ready"
    if kind == "Job":
        for cond in status.get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                return cond["type"] == "Complete", str(cond["type"]).lower()
        return False, "running"
    if kind == "Pod":
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready":
                return cond.get("status") == "True", str(status.get("phase", "")).lower()
        return status.get("phase") == "Succeeded", str(status.get("phase", "pending")).lower()
    if kind == "PersistentVolumeClaim":
        phase = str(status.get("phase", "Pending"))
        return phase == "Bound", phase.lower()
    return True, "exists"
