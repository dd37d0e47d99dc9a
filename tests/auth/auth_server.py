"""The auth tests' view of a secured server: `Secured` (made by the `secured` fixture of
conftest.py) reaches it as any caller; `bearer(token)` is the metadata of a token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from auth_kit import TOKENS, Signer

from capstan.v1 import (
    chart_pb2_grpc,
    cluster_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from capstan_server.app import ServerHandle


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


