"""What the driver contract suite (test_contract.py) runs against: a driver with a cluster, a
private namespace and the sample charts (`DriverUnderTest`), one per entry of `HARNESSES`.

To run the contract on another driver, write an async context manager like `memory_harness`
that yields a `DriverUnderTest`, and add it to `HARNESSES` (e.g. "helm3", "helm4").
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    Driver,
    InstallOptions,
    ReleaseRecord,
    ReleaseRef,
    RollbackOptions,
    Status,
    UpgradeOptions,
)
from capstan_server.drivers.memory import MemoryDriver, Operation
from capstan_server.errors import DeadlineExceeded

SAMPLE_CHARTS = Path(__file__).resolve().parents[2] / "samples" / "charts"

#: A kubeconfig that parses, for drivers that never dial the cluster.
FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://c1.invalid:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: c1
  context: {cluster: c1, user: u}
current-context: c1
"""

#: Leave a release as a server killed mid-operation would: latest revision `status` since `when`.
MakeStuck = Callable[[ReleaseRef, Status, datetime], Awaitable[None]]


@dataclass
class DriverUnderTest:
    """A driver plus what the contract needs to exercise it."""

    api: Driver
    cluster: ClusterTarget
    #: An existing namespace no other test uses.
    namespace: str
    #: (chart name, version) -> a ChartSource of the sample chart.
    chart: Callable[[str, str], ChartSource]
    make_stuck: MakeStuck
    #: A `--timeout` after which the `never-ready` chart fails a `wait`; short, for fast tests.
    short_timeout: float = 1.0
    #: Whether releases render objects (manifest, resources, workloads).
    renders: bool = False
    #: Whether check_cluster dials the cluster (so an unreachable one is Unavailable).
    dials: bool = False
    labels: dict[str, str] = field(default_factory=lambda: {"capstan.io/type": "external"})

    def ref(self, name: str, namespace: str = "") -> ReleaseRef:
        return ReleaseRef(self.cluster, namespace or self.namespace, name)

    async def install(
        self,
        name: str,
        chart: str = "etcd",
        version: str = "8.11.1",
        values: Mapping[str, Any] | None = None,
        namespace: str = "",
        **options: Any,
    ) -> ReleaseRecord:
        options.setdefault("labels", self.labels)
        return await self.api.install(
            InstallOptions(
                ref=self.ref(name, namespace),
                chart=self.chart(chart, version),
                values=dict(values or {}),
                **options,
            )
        )

    async def upgrade(
        self,
        name: str,
        chart: str = "etcd",
        version: str = "8.11.1",
        values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ReleaseRecord:
        options.setdefault("labels", self.labels)
        return await self.api.upgrade(
            UpgradeOptions(
                ref=self.ref(name),
                chart=self.chart(chart, version),
                values=dict(values or {}),
                **options,
            )
        )

    async def rollback(self, name: str, revision: int = 0, **options: Any) -> ReleaseRecord:
        return await self.api.rollback(
            RollbackOptions(ref=self.ref(name), revision=revision, **options)
        )

    async def statuses(self, name: str) -> list[tuple[int, Status]]:
        return [(r.revision, r.status) for r in await self.api.history(self.ref(name))]


def _sample_charts() -> dict[tuple[str, str], tuple[Path, dict[str, Any], dict[str, Any]]]:
    found = {}
    for directory in sorted(SAMPLE_CHARTS.iterdir()):
        if (directory / "Chart.yaml").is_file():
            meta = yaml.safe_load((directory / "Chart.yaml").read_text())
            values_file = directory / "values.yaml"
            values = yaml.safe_load(values_file.read_text()) if values_file.is_file() else {}
            found[(meta["name"], str(meta["version"]))] = (directory, meta, values or {})
    return found


async def _never_ready(op: Operation) -> None:
    """What kubesim does to the `never-ready` chart, for the memory driver: a `--wait` on it
    runs until its timeout and fails like helm's."""
    if op.chart is not None and op.chart.name == "never-ready" and op.wait:
        await asyncio.sleep(op.timeout)
        raise DeadlineExceeded("context deadline exceeded")


@contextlib.asynccontextmanager
async def memory_harness(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DriverUnderTest]:
    driver = MemoryDriver(hook=_never_ready)
    charts = _sample_charts()

    def chart(name: str, version: str) -> ChartSource:
        directory, meta, values = charts[(name, version)]
        return ChartSource(
            repo_id="00000000-0000-4000-8000-000000000001",
            repo_name="samples",
            repo_url="http://samples.invalid",
            name=name,
            version=version,
            app_version=str(meta.get("appVersion", "")),
            archive=directory,
            default_values=values,
        )

    async def make_stuck(ref: ReleaseRef, status: Status, since: datetime) -> None:
        driver.inject_stuck_revision(ref, status=status, since=since)

    cluster = ClusterTarget(str(uuid.uuid4()), "c1", FAKE_KUBECONFIG)
    try:
        yield DriverUnderTest(driver, cluster, "default", chart, make_stuck, short_timeout=0.3)
    finally:
        await driver.close()


HarnessFactory = Callable[
    [pytest.FixtureRequest, Path], contextlib.AbstractAsyncContextManager[DriverUnderTest]
]

#: The drivers the contract runs on.
HARNESSES: dict[str, HarnessFactory] = {
    "memory": memory_harness,
}
