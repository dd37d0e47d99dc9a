"""PersistentVolumeClaims: dynamically "provisioned" and Bound at once.

Each claim gets a PersistentVolume ``pvc-<claim uid>`` (a hostPath under /var/lib/kubesim, never
written) bound to it; deleting the claim deletes a volume whose reclaim policy is Delete. A claim
annotated ``kubesim.io/never-ready: "true"`` stays Pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..objects import Obj, clone
from ..store import Event
from .base import Controller, Key, Router
from .common import (
    NEVER_READY_ANNOTATION,
    annotations_of,
    flag,
    is_deleting,
    name_of,
    namespace_of,
    spec_of,
    status_of,
    uid_of,
)

PROVISIONER = "kubesim.io/hostpath"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


class VolumeClaimController(Controller):
    """Binds PVCs to simulated PersistentVolumes."""

    name = "persistentvolumeclaim"

    def routes(self) -> dict[tuple[str, str], Router]:
        def route(event: Event) -> list[Key]:
            if event.type == "DELETED":
                self._release(event.object)
                return []
            return [(event.namespace, event.name)]

        return {self.ctx.rt["PersistentVolumeClaim"].key: route}

    def resync(self) -> Iterable[Key]:
        return [
            (namespace_of(c), name_of(c)) for c in self.ctx.iter_stored("PersistentVolumeClaim")
        ]

    def _release(self, pvc: Obj) -> None:
        volume = str(spec_of(pvc).get("volumeName") or "")
        if not volume:
            return
        pv = self.ctx.get("PersistentVolume", "", volume)
        if pv is None:
            return
        ref = spec_of(pv).get("claimRef") or {}
        if ref.get("uid") == uid_of(pvc) and spec_of(pv).get(
            "persistentVolumeReclaimPolicy", "Delete"
        ) == "Delete":
            self.ctx.delete("PersistentVolume", "", volume)

    def reconcile(self, key: Key) -> None:
        ns, name = key
        pvc = self.ctx.get("PersistentVolumeClaim", ns, name)
        if pvc is None or is_deleting(pvc):
            return
        if flag([pvc], NEVER_READY_ANNOTATION):
            self.ctx.set_status("PersistentVolumeClaim", pvc, {"phase": "Pending"})
            return
        spec = spec_of(pvc)
        volume = str(spec.get("volumeName") or f"pvc-{uid_of(pvc)}")
        storage = str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
        modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
        if self.ctx.get("PersistentVolume", "", volume) is None:
            self._provision(pvc, volume, storage, modes)
        ann = annotations_of(pvc)
        if spec.get("volumeName") != volume or ann.get(BIND_COMPLETED) != "yes":
            def bind(current: Obj) -> None:
                annotations = current["metadata"].setdefault("annotations", {})
                annotations[BIND_COMPLETED] = "yes"
                annotations[BOUND_BY_CONTROLLER] = "yes"
                current.setdefault("spec", {})["volumeName"] = volume

            bound = self.ctx.modify("PersistentVolumeClaim", ns, name, bind)
            if bound is None:
                return
            pvc = bound
        status: dict[str, Any] = {"phase": "Bound", "accessModes": modes,
                                  "capacity": {"storage": storage}}
        if status_of(pvc) != status:
            self.ctx.set_status("PersistentVolumeClaim", pvc, status)

    def _provision(self, pvc: Obj, volume: str, storage: str, modes: list[str]) -> None:
        spec = spec_of(pvc)
        pv_spec: dict[str, Any] = {
            "capacity": {"storage": storage},
            "accessModes": clone(modes),
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": f"/var/lib/kubesim/volumes/{volume}", "type": ""},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace_of(pvc),
                "name": name_of(pvc),
                "uid": uid_of(pvc),
            },
        }
        if spec.get("storageClassName"):
            pv_spec["storageClassName"] = spec["storageClassName"]
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": pv_spec,
            "status": {"phase": "Bound"},
        }
        self.ctx.create("PersistentVolume", pv)
