"""The one simulated Node every Pod is "scheduled" on (created when the controllers start)."""

from __future__ import annotations

from typing import Any

from ..discovery import GIT_VERSION
from ..objects import Obj, now_rfc3339
from .base import Controller, Key
from .common import NODE_IP


def node_object(name: str, ip: str = NODE_IP) -> Obj:
    """A Ready control-plane node with the labels and status ``kubectl get nodes`` shows."""
    now = now_rfc3339()

    def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {"type": ctype, "status": status, "lastHeartbeatTime": now,
                "lastTransitionTime": now, "reason": reason, "message": message}

    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi",
                "hugepages-2Mi": "0"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": "",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"],
                 "providerID": f"kubesim://{name}"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                     "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID",
                     "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "kubesim (simulated)",
                "kernelVersion": "0.0.0-kubesim",
                "containerRuntimeVersion": "kubesim://0.1.0",
                "kubeletVersion": GIT_VERSION,
                "kubeProxyVersion": GIT_VERSION,
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    }


class NodeController(Controller):
    """Creates the simulated node if it does not exist yet. Deleting it is allowed (DaemonSets
    then schedule nothing); it comes back on the next start."""

    name = "node"

    def resync(self) -> list[Key]:
        return [("", self.ctx.node_name)]

    def reconcile(self, key: Key) -> None:
        if self.ctx.get("Node", "", self.ctx.node_name) is None:
            self.ctx.create("Node", node_object(self.ctx.node_name, self.ctx.node_ip))
