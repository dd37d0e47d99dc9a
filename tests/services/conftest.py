"""Fixtures of the service tests: a running Capstan server (memory driver) reached over real
gRPC, with cluster `test122` and repository `bitnami-new` (the sample charts) registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from grpc_api import Api

from capstan.v1 import chart_pb2, cluster_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle


@pytest.fixture
def api(
    capstan_server: ServerHandle, chart_repo: ChartRepoServer, fake_kubeconfig: str
) -> Iterator[Api]:
    """A server with cluster `test122` and repository `bitnami-new` registered."""
    client = Api(capstan_server)
    client.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig)
    )
    client.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )
    yield client
    client.channel.close()
