"""How many driver reads a call costs. The services must not multiply them: on the helm driver
each is an API round trip (a list of release records, or of namespaces)."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from grpc_api import Api

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.base import ClusterTarget, NamespaceInfo, ReleaseRecord, ReleaseRef
from capstan_server.drivers.memory import MemoryDriver, Operation
from capstan_server.errors import DeadlineExceeded
from capstan_server.threaded import ServerHandle


class CountingDriver(MemoryDriver):
    """The memory driver, counting the reads the services make of it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    async def namespaces(
        self, cluster: ClusterTarget, **kwargs: Any
    ) -> builtins.list[NamespaceInfo]:
        self.reads["namespaces"] += 1
        return await super().namespaces(cluster, **kwargs)

    async def history(self, ref: ReleaseRef) -> builtins.list[ReleaseRecord]:
        self.reads["history"] += 1
        return await super().history(ref)

    async def list(self, *args: Any, **kwargs: Any) -> builtins.list[ReleaseRecord]:
        self.reads["list"] += 1
        return await super().list(*args, **kwargs)


@pytest.fixture
def counted(
    capstan_server_factory: Callable[..., ServerHandle],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> Iterator[tuple[Api, CountingDriver]]:
    driver = CountingDriver()
    server = capstan_server_factory(driver=driver)
    api = Api(server)
    api.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig)
    )
    api.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )
    yield api, driver
    api.channel.close()


def test_a_release_list_reads_namespaces_once_per_cluster(
    counted: tuple[Api, CountingDriver],
) -> None:
    api, driver = counted
    for i in range(5):
        api.create(release_name=f"etcd-{i}")
    driver.reads.clear()

    listed = api.releases.ListReleases(release_pb2.ListReleasesRequest(details=True))

    assert listed.total == 5 and all(r.namespace_id for r in listed.releases)
    assert driver.reads == {"list": 1, "namespaces": 1}


def test_create_reads_namespaces_once(counted: tuple[Api, CountingDriver]) -> None:
    api, driver = counted

    created = api.create(release_name="etcd-release")

    assert created.namespace_id
    assert driver.reads == {"namespaces": 1}


def test_upgrading_a_deployed_release_reads_it_once(
    counted: tuple[Api, CountingDriver],
) -> None:
    api, driver = counted
    created = api.create(release_name="etcd-release", values="replicaCount: 3\n")
    driver.reads.clear()

    upgraded = api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(id=created.id, reuse_values=True)
    )

    assert (upgraded.version, upgraded.namespace_id) == (2, created.namespace_id)
    assert driver.reads == {"list": 1, "namespaces": 1}


def test_upgrading_after_a_failed_upgrade_reads_the_history(
    counted: tuple[Api, CountingDriver],
) -> None:
    api, driver = counted
    api.create(release_name="etcd-release", values="replicaCount: 3\n")
    driver.hook = refuse_upgrades
    api.fails(
        api.releases.UpgradeRelease,
        release_pb2.UpgradeReleaseRequest(id="etcd-release", values="replicaCount: 5\n"),
    )
    driver.hook = None
    driver.reads.clear()

    upgraded = api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(id="etcd-release", reuse_values=True)
    )

    # It starts from revision 1, the last deployed one, not from the failed revision 2.
    assert upgraded.version == 3
    assert json_format.MessageToDict(upgraded.config) == {"replicaCount": 3}
    assert driver.reads == {"list": 1, "history": 1, "namespaces": 1}


async def refuse_upgrades(operation: Operation) -> None:
    if operation.name == "upgrade":
        raise DeadlineExceeded("timed out waiting for the condition")
