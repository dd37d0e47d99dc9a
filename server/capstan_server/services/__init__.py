"""The gRPC servicers of Capstan's three services, and `open_services` that wires them to the
registry, the chart catalog and a driver (the app adds them to its grpc.aio server)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capstan_server.charts.catalog import Catalog
from capstan_server.charts.limits import RepoLimits
from capstan_server.drivers.base import Driver
from capstan_server.registry import Registry
from capstan_server.services.addressing import Resolver
from capstan_server.services.chart_service import ChartServicer
from capstan_server.services.cluster_service import ClusterServicer
from capstan_server.services.release_service import ReleaseServicer

__all__ = ["ChartServicer", "ClusterServicer", "ReleaseServicer", "Services", "open_services"]


@dataclass
class Services:
    """The servicers and what they share. The driver belongs to the caller: `close()` leaves it
    open."""

    release: ReleaseServicer
    chart: ChartServicer
    cluster: ClusterServicer
    registry: Registry
    catalog: Catalog

    async def close(self) -> None:
        """Close the catalog's HTTP session and the registry."""
        try:
            await self.catalog.close()
        finally:
            await self.registry.close()


async def open_services(
    *,
    data_dir: Path,
    driver: Driver,
    repo_limits: RepoLimits | None = None,
    secret_key_file: Path | None = None,
) -> Services:
    """Open the registry under `data_dir` (its secrets encrypted with `secret_key_file`,
    default `<data_dir>/secret.key`) and build the servicers on `driver`; chart repositories
    are fetched under `repo_limits` (default: `RepoLimits()`)."""
    registry = await Registry.open(data_dir, secret_key_file=secret_key_file)
    catalog = Catalog(data_dir, registry, repo_limits)
    resolver = Resolver(registry, driver)
    return Services(
        release=ReleaseServicer(registry, catalog, driver, resolver),
        chart=ChartServicer(registry, catalog, resolver),
        cluster=ClusterServicer(registry, driver, resolver),
        registry=registry,
        catalog=catalog,
    )
