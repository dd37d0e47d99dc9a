"""Fixtures of the auth tests: `secured`, a server (memory driver) with the kit's policy,
cluster `test122` and repository `bitnami-new` registered by the admin, and a release in each
project's namespace (`rel-a` in team-a, `rel-b` in team-b)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from auth_kit import Signer, write_policy
from auth_server import Secured

from capstan.v1 import chart_pb2, cluster_pb2
from capstan_server.auth.options import SecurityOptions
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle


@pytest.fixture
def secured(
    capstan_server_factory: Callable[..., ServerHandle],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
    tmp_path: Path,
) -> Iterator[Secured]:
    signer = Signer()
    policy = write_policy(tmp_path, signer)
    server = capstan_server_factory(security=SecurityOptions(auth_policy=policy))
    channel = grpc.insecure_channel(server.grpc_target)
    kit = Secured(server, signer, policy, channel)
    kit.clusters().CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig),
        metadata=kit.admin,
    )
    kit.charts().CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url),
        metadata=kit.admin,
    )
    kit.create("rel-a", "team-a")
    kit.create("rel-b", "team-b")
    yield kit
    channel.close()
