"""A test client of the three services over real gRPC, which also snapshots the server's state
(to check that a failed request left nothing behind)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from grpc_status import rpc_status

from capstan.v1 import (
    chart_pb2,
    chart_pb2_grpc,
    cluster_pb2,
    cluster_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from capstan_server.threaded import ServerHandle


@dataclass(frozen=True)
class Failure:
    """A failed call: its status code, message and details (each a dict), without the
    request id the server adds as the last detail (that is `request_id`)."""

    code: grpc.StatusCode
    message: str
    details: list[dict[str, Any]]
    request_id: str = ""


class Api:
    """The three services of one server over a real gRPC channel."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.releases = release_pb2_grpc.ReleaseServiceStub(self.channel)
        self.charts = chart_pb2_grpc.ChartServiceStub(self.channel)
        self.clusters = cluster_pb2_grpc.ClusterServiceStub(self.channel)

    def fails(self, call: Callable[[Any], Any], request: Any) -> Failure:
        """Make a call that must fail; return how it failed."""
        try:
            call(request, timeout=60)
        except grpc.RpcError as err:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            details = []
            for packed in status.details if status else []:
                struct = struct_pb2.Struct()
                packed.Unpack(struct)
                details.append(json_format.MessageToDict(struct))
            request_id = ""
            if details and set(details[-1]) == {"request_id"}:
                request_id = details.pop()["request_id"]
            assert request_id, "every error answer names its request id"
            return Failure(err.code(), err.details() or "", details,  # type: ignore[attr-defined]
                           request_id)
        raise AssertionError(f"{request!r} succeeded")

    def state(self) -> dict[str, Any]:
        """Everything a failed request must leave as it was: releases (with their revisions),
        clusters and repositories."""
        listed = self.releases.ListReleases(release_pb2.ListReleasesRequest(limit=1000))
        histories = {
            r.id: [
                (h.revision, h.status)
                for h in self.releases.GetReleaseHistory(
                    release_pb2.GetReleaseHistoryRequest(id=r.id)
                ).revisions
            ]
            for r in listed.releases
        }
        clusters = self.clusters.ListClusters(cluster_pb2.ListClustersRequest(limit=1000))
        repos = self.charts.ListRepositories(chart_pb2.ListRepositoriesRequest(limit=1000))
        namespaces = self.clusters.ListNamespaces(
            cluster_pb2.ListNamespacesRequest(cluster="test122", limit=1000)
        )
        return {
            "releases": sorted(
                (r.cluster, r.namespace, r.name, r.version, r.status) for r in listed.releases
            ),
            "histories": histories,
            "clusters": sorted((c.id, c.name, c.server) for c in clusters.clusters),
            "repos": sorted((r.id, r.name, r.url) for r in repos.repos),
            "namespaces": sorted(n.name for n in namespaces.namespaces),
        }

    def create(self, **fields: Any) -> release_pb2.Release:
        request = release_pb2.CreateReleaseRequest(
            chart_name="bitnami-new/etcd", cluster="test122", namespace="default", version="8.11.1"
        )
        json_format.ParseDict(fields, request)
        release: release_pb2.Release = self.releases.CreateRelease(request, timeout=60)
        return release
