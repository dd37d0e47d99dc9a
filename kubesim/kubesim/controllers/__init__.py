"""Simulated Kubernetes controllers for kubesim, so that waiting on workloads works.

``start(store)`` (called by `kubesim.server.KubeSim` when it starts) returns a running
`ControllerManager`; ``stop()`` it to stop. Controllers react to every committed change
synchronously, before the write that caused it returns to its caller:

- Deployments own ReplicaSets (``pod-template-hash``), ReplicaSets own Pods;
- StatefulSets own Pods ``<name>-<ordinal>`` and PVCs from ``volumeClaimTemplates``;
- DaemonSets own one Pod on the single simulated node ``kubesim-node``;
- Jobs own Pods that succeed at once; finished Jobs honour ``ttlSecondsAfterFinished``;
- Services get cluster IPs, node ports and load-balancer addresses; Endpoints follow Pods;
- PVCs are bound to provisioned PersistentVolumes; PodDisruptionBudgets get status;
- the garbage collector deletes dependents of deleted owners (background propagation);
- aggregated ClusterRoles get the rules of the ClusterRoles their selectors pick.

Simulation annotations (on the workload's metadata, or on its pod template):

- ``kubesim.io/never-ready: "true"``  pods stay Running but not Ready, Jobs never finish,
  PVCs stay Pending; removing the annotation makes them ready.
- ``kubesim.io/ready-after: "2s"``   pods become Ready (Jobs finish) only after that long.
- ``kubesim.io/fail: "true"``        Jobs and bare Pods fail instead of succeeding.
"""

from __future__ import annotations

import asyncio

from ..store import Store
from .base import Context, Controller
from .clusterroles import ClusterRoleAggregationController
from .common import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    NODE_NAME,
    READY_AFTER_ANNOTATION,
)
from .daemonsets import DaemonSetController
from .deployments import DeploymentController, ReplicaSetController
from .disruption import DisruptionController
from .gc import GarbageCollector
from .jobs import JobController
from .manager import ControllerManager
from .nodes import NodeController
from .pods import BarePodController
from .services import EndpointsController, ServiceController
from .statefulsets import StatefulSetController
from .storage import VolumeClaimController

#: Every simulated controller, in the order their initial resync runs.
CONTROLLERS: tuple[type[Controller], ...] = (
    NodeController,
    GarbageCollector,
    ServiceController,
    VolumeClaimController,
    DeploymentController,
    ReplicaSetController,
    StatefulSetController,
    DaemonSetController,
    JobController,
    BarePodController,
    EndpointsController,
    DisruptionController,
    ClusterRoleAggregationController,
)


def start(
    store: Store,
    controllers: tuple[type[Controller], ...] = CONTROLLERS,
    loop: asyncio.AbstractEventLoop | None = None,
) -> ControllerManager:
    """Start the controllers on ``store``; call from the event loop that should run timers.

    Without a running loop (plain synchronous use) everything but delayed work
    (``ready-after``, progress deadlines, Job TTLs, retries) still works.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    return ControllerManager(store, controllers, loop).start()


__all__ = [
    "CONTROLLERS",
    "FAIL_ANNOTATION",
    "NEVER_READY_ANNOTATION",
    "NODE_NAME",
    "READY_AFTER_ANNOTATION",
    "Context",
    "Controller",
    "ControllerManager",
    "start",
]
