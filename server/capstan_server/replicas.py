"""What makes several Capstan replicas behave as one: the replica's identity, the per-release
Lease settings (`drivers/helm/leases.py`) and the automatic recovery of releases a dead replica
left pending (`drivers/helm/recovery.py`). `capstan-server`'s `--replica-id`,
`--lease-duration` and `--on-stuck` map onto `ReplicaOptions`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from capstan_server.drivers.helm.leases import DEFAULT_LEASE_DURATION

if TYPE_CHECKING:
    from capstan_server.drivers.base import ClusterTarget, Driver

#: `--on-stuck`: what a surviving replica does with a release a dead one left `pending-*`.
StuckPolicy = Literal["mark-failed", "rollback", "none"]
STUCK_POLICIES: tuple[StuckPolicy, ...] = ("mark-failed", "rollback", "none")


@dataclass(frozen=True)
class ReplicaOptions:
    #: This replica's name in Leases and in recovered revisions' descriptions ("": hostname-pid).
    replica_id: str = ""
    #: Seconds a Lease lives without renewal; a dead replica's writes are recovered within twice it.
    lease_duration: float = DEFAULT_LEASE_DURATION
    #: What a surviving replica does with a release a dead one left `pending-*`.
    on_stuck: StuckPolicy = "mark-failed"


def start_recovery(driver: Driver, clusters: Callable[[], Awaitable[list[ClusterTarget]]],
                   options: ReplicaOptions) -> asyncio.Task[None] | None:
    """The recovery sweep as a task, for a driver that keeps Leases (the helm driver)."""
    from capstan_server.drivers.helm.driver import HelmDriver
    from capstan_server.drivers.helm.recovery import run_recovery

    if not isinstance(driver, HelmDriver) or options.on_stuck == "none":
        return None
    return asyncio.create_task(run_recovery(driver, clusters, options.on_stuck),
                               name="capstan-recovery")


__all__ = ["STUCK_POLICIES", "ReplicaOptions", "StuckPolicy", "start_recovery"]
