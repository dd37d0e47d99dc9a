"""The auth tests' view of a secured server: `Secured` (made by the `secured` fixture of
conftest.py) reaches it as any caller; `bearer(token)` is the metadata of a token;
`on_helm` starts one on the real helm driver against a kubesim."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from auth_kit import TOKENS, Signer, write_policy

from capstan.v1 import (
    chart_pb2,
    chart_pb2_grpc,
    cluster_pb2,
    cluster_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from capstan_server.auth.options import SecurityOptions
from capstan_server.threaded import ServerHandle, start_server
from kubesim.testing import KubeSimThread, running_kubesim


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Secured:
    """A server with the kit's policy; the stubs take each caller's metadata per call."""

    server: ServerHandle
    signer: Signer
    policy: Path
    channel: grpc.Channel

    def releases(self) -> release_pb2_grpc.ReleaseServiceStub:
        return release_pb2_grpc.ReleaseServiceStub(self.channel)

    def charts(self) -> chart_pb2_grpc.ChartServiceStub:
        return chart_pb2_grpc.ChartServiceStub(self.channel)

    def clusters(self) -> cluster_pb2_grpc.ClusterServiceStub:
        return cluster_pb2_grpc.ClusterServiceStub(self.channel)

    @property
    def admin(self) -> tuple[tuple[str, str], ...]:
        return bearer(TOKENS["admin"])

    def create(self, name: str, namespace: str) -> release_pb2.Release:
        release: release_pb2.Release = self.releases().CreateRelease(
            release_pb2.CreateReleaseRequest(
                chart_name="bitnami-new/etcd", version="8.11.1", cluster="test122",
                namespace=namespace, release_name=name, create_namespace=True,
            ),
            metadata=self.admin, timeout=60,
        )
        return release




@contextmanager
def on_helm(helm_bin: Path, repo_url: str, tmp_path: Path
            ) -> Iterator[tuple[KubeSimThread, grpc.Channel]]:
    """A server on the real helm driver with the kit's policy, and a kubesim (TLS) that the
    admin registered as cluster `test122`, with the chart repository `samples` at `repo_url`."""
    policy = write_policy(tmp_path, Signer())
    with running_kubesim(tls=True) as sim, start_server(
        driver="helm", helm_bin=helm_bin, data_dir=tmp_path / "data", grace=5.0,
        security=SecurityOptions(auth_policy=policy), allow_repo_hosts=("127.0.0.1",),
    ) as server, grpc.insecure_channel(server.grpc_target) as channel:
        admin = bearer(TOKENS["admin"])
        cluster_pb2_grpc.ClusterServiceStub(channel).CreateCluster(
            cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=sim.kubeconfig),
            metadata=admin, timeout=60)
        chart_pb2_grpc.ChartServiceStub(channel).CreateRepository(
            chart_pb2.CreateRepositoryRequest(name="samples", url=repo_url),
            metadata=admin, timeout=60)
        yield sim, channel
