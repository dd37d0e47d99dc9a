"""Prometheus metrics (prometheus-client), served at `GET /metrics` on the gateway's port.

Counters and histograms of what happened are process-wide (`REGISTRY`, the library's default):
RPCs by method and code, helm runs by operation, helm major and outcome. Gauges of the current
state (helm pool, release caches, releases by status) are read when scraped from the server's
driver by `StateCollector`, registered in a registry of the server's own, so that several
servers in one process (tests) each report their own state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Content type of the exposition format `exposition()` returns.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

RPC_REQUESTS = Counter("capstan_rpc_requests", "RPCs served, by method and status code",
                       ["method", "code"])
RPC_SECONDS = Histogram("capstan_rpc_duration_seconds", "RPC latency, by method and code",
                        ["method", "code"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                 60, 120, 300))
HELM_RUNS = Counter("capstan_helm_runs", "helm processes run, by operation, helm major version "
                    "and outcome", ["operation", "helm_major", "outcome"])
HELM_SECONDS = Histogram("capstan_helm_run_duration_seconds", "How long helm ran, by operation "
                         "and helm major version", ["operation", "helm_major"],
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))


def rpc_done(method: str, code: str, seconds: float) -> None:
    RPC_REQUESTS.labels(method, code).inc()
    RPC_SECONDS.labels(method, code).observe(seconds)


def helm_run_done(operation: str, major: int, seconds: float, ok: bool) -> None:
    """`HelmCommand.on_run`: one helm process finished."""
    major_label = str(major) if major else "unknown"
    HELM_RUNS.labels(operation, major_label, "ok" if ok else "error").inc()
    HELM_SECONDS.labels(operation, major_label).observe(seconds)


class StateCollector(Collector):
    """Gauges read from a driver when scraped; a driver without a helm pool or release caches
    (the memory driver) just has none of them."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    def collect(self) -> Iterator[Metric]:
        pool = getattr(getattr(self._driver, "command", None), "pool", None)
        if pool is not None:
            yield GaugeMetricFamily("capstan_helm_queue_depth",
                                    "Writes waiting for a helm process", value=pool.queued)
            yield GaugeMetricFamily("capstan_helm_processes_running",
                                    "helm processes running now", value=pool.running)
            yield GaugeMetricFamily("capstan_helm_processes_max",
                                    "--max-helm-processes", value=pool.max_processes)
        caches = getattr(self._driver, "caches", None)
        if caches is None:
            return
        size = GaugeMetricFamily("capstan_release_cache_releases",
                                 "Releases held in a cluster's release cache", labels=["cluster"])
        stale = GaugeMetricFamily("capstan_release_cache_stale_seconds",
                                  "Seconds since a cluster whose cache is not live last "
                                  "answered (0: live)", labels=["cluster"])
        synced = GaugeMetricFamily("capstan_release_cache_synced",
                                   "1 once a cluster's release cache has listed its records",
                                   labels=["cluster"])
        by_status = GaugeMetricFamily("capstan_releases", "Releases by cluster and status of "
                                      "their latest revision", labels=["cluster", "status"])
        for informer in caches().values():
            cluster = informer.client.cluster_name
            size.add_metric([cluster], informer.size)
            stale.add_metric([cluster], informer.stale_seconds())
            synced.add_metric([cluster], 1 if informer.synced else 0)
            for status, count in sorted(informer.status_counts().items()):
                by_status.add_metric([cluster, status], count)
        yield from (size, stale, synced, by_status)


def server_registry(driver: Any) -> CollectorRegistry:
    """A registry with the state gauges of one server's driver."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(driver))
    return registry


def exposition(server: CollectorRegistry) -> bytes:
    """The text exposition of the process-wide metrics and of one server's state."""
    return generate_latest(REGISTRY) + generate_latest(server)


__all__ = ["CONTENT_TYPE", "exposition", "helm_run_done", "rpc_done",
           "server_registry"]
