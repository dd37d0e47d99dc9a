"""Helm drivers behind one interface (`base.Driver`); `create_driver` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from capstan_server.drivers.base import Driver

if TYPE_CHECKING:
    from capstan_server.drivers.helm.command import HelmLimits

#: The driver names `capstan-server --driver` accepts.
DRIVER_NAMES = ("helm", "memory")


def create_driver(name: str, *, data_dir: Path, helm_bin: Path | None = None,
                  helm_limits: HelmLimits | None = None) -> Driver:
    """A new driver: `helm` (the official helm binary, state in the clusters, each helm run
    under `helm_limits`) or `memory` (a test double, state in this process). Raises ValueError
    for any other name."""
    if name == "memory":
        from capstan_server.drivers.memory import MemoryDriver

        return MemoryDriver()
    if name == "helm":
        # Imported lazily: the memory driver must not need the helm driver's dependencies.
        from capstan_server.drivers.helm.driver import HelmDriver

        return HelmDriver(data_dir=data_dir, helm_bin=helm_bin, limits=helm_limits)
    raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(DRIVER_NAMES)}")
