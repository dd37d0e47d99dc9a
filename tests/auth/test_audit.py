"""The audit log: one structured line per write and per refused call on `capstan.audit`."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from auth_kit import TOKENS
from auth_server import Secured, bearer

from capstan.v1 import cluster_pb2, cluster_pb2_grpc, release_pb2
from capstan_server.threaded import ServerHandle


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(r.fields) for r in caplog.records if r.name == "capstan.audit"]  # type: ignore[attr-defined]


def test_writes_and_refusals_are_audited(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="capstan.audit")
    caplog.clear()
    releases = secured.releases()
    where = {"cluster": "test122", "namespace": "team-a"}
    releases.RollbackRelease(
        release_pb2.RollbackReleaseRequest(id="rel-a", revision=1, **where),
        metadata=(*bearer(TOKENS["editor-a"]), ("x-request-id", "req-1")),
    )
    with pytest.raises(grpc.RpcError):
        releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="rel-a", **where),
                               metadata=bearer(TOKENS["viewer-a"]))
    with pytest.raises(grpc.RpcError):
        releases.GetRelease(release_pb2.GetReleaseRequest(id="rel-a", **where),
                            metadata=bearer("nope-nope-nope"))
    with pytest.raises(grpc.RpcError):
        releases.GetRelease(release_pb2.GetReleaseRequest(id="rel-a", **where),
                            metadata=bearer(TOKENS["editor-b"]))
    # A plain read that is allowed is not audited.
    releases.ListReleases(release_pb2.ListReleasesRequest(), metadata=bearer(TOKENS["admin"]))

    lines = _audit_lines(caplog)
    assert [(line["subject"], line["method"].rsplit("/", 1)[1], line["code"]) for line in lines] \
        == [
            ("editor-a", "RollbackRelease", "OK"),
            ("viewer-a", "DeleteRelease", "PERMISSION_DENIED"),
            ("unauthenticated", "GetRelease", "UNAUTHENTICATED"),
            ("editor-b", "GetRelease", "NOT_FOUND"),
        ]
    first = lines[0]
    assert (first["cluster"], first["namespace"], first["release"], first["request_id"]) == (
        "test122", "team-a", "rel-a", "req-1")
    assert first["time"] and first["subject_kind"] == "token"
    assert "nope-nope-nope" not in repr(lines)


def test_without_a_policy_writes_are_audited_as_anonymous(
    capstan_server_factory: Callable[..., ServerHandle], fake_kubeconfig: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="capstan.audit")
    server = capstan_server_factory()
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        stub.CreateCluster(cluster_pb2.CreateClusterRequest(name="c", kubeconfig=fake_kubeconfig))
        stub.ListClusters(cluster_pb2.ListClustersRequest())
    lines = _audit_lines(caplog)
    assert [(line["subject"], line["method"], line["cluster"]) for line in lines] == [
        ("anonymous", "/capstan.v1.ClusterService/CreateCluster", "c")]


def test_rest_refusals_are_audited_with_the_request_id(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="capstan.audit")
    caplog.clear()
    request = urllib.request.Request(
        secured.server.http_url + "/api/clusters/test122", method="DELETE",
        headers={"X-Auth-Token": TOKENS["editor-a"], "X-Request-Id": "rest-42"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    [line] = _audit_lines(caplog)
    assert (line["subject"], line["code"], line["cluster"], line["request_id"]) == (
        "editor-a", "PERMISSION_DENIED", "test122", "rest-42")
