"""Helm drivers behind one interface (`base.Driver`); `create_driver` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from capstan_server.drivers.base import Driver

if TYPE_CHECKING:
    from capstan_server.drivers.helm.process_limits import HelmLimits

#: The driver names `capstan-server --driver` accepts.
DRIVER_NAMES = ("helm", "memory")


def create_driver(name: str, *, data_dir: Path, helm_bin: Path | None = None,
                  helm_limits: HelmLimits | None = None,
                  read_timeout: float | None = None,
                  max_helm_processes: int | None = None,
                  max_queued_writes: int | None = None, replica_id: str = "",
                  lease_duration: float = 15.0) -> Driver:
    """A new driver: `helm` (the official helm binary, state in the clusters) or `memory`
    (a test double, state in this process). Raises ValueError for any other name.
    `helm_limits` (memory and CPU time of each helm run), `read_timeout` (the longest a list
    waits for a cluster), `max_helm_processes` and `max_queued_writes` (the helm pool) apply to
    the helm driver; None keeps its defaults. `replica_id` and `lease_duration`: the helm
    driver's per-release Leases (`drivers/helm/leases.py`)."""
    if name == "memory":
        from capstan_server.drivers.memory import MemoryDriver

        return MemoryDriver()
    if name == "helm":
        # Imported lazily: the memory driver must not need the helm driver's dependencies.
        from capstan_server.drivers.helm.driver import HelmDriver

        options: dict[str, Any] = {}
        if read_timeout is not None:
            options["read_timeout"] = read_timeout
        if max_helm_processes is not None:
            options["max_helm_processes"] = max_helm_processes
        if max_queued_writes is not None:
            options["max_queued_writes"] = max_queued_writes
        return HelmDriver(data_dir=data_dir, helm_bin=helm_bin, limits=helm_limits,
                          replica_id=replica_id, lease_duration=lease_duration, **options)
    raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(DRIVER_NAMES)}")
