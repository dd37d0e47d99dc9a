"""Acceptance 2: tenant isolation on the real helm driver (helm 3 and 4) against kubesim.

Two projects, each with a release in its own namespace; each editor's list, show, history and
watch see only its own release, `total` counts only those, and namespaces are filtered too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from auth_kit import TOKENS
from auth_server import bearer, on_helm
from tenancy_kit import apply_tenancy_doc

from capstan.v1 import cluster_pb2, cluster_pb2_grpc, release_pb2, release_pb2_grpc
from capstan_server.dev.chart_repo import ChartRepoServer

pytestmark = [pytest.mark.helm, pytest.mark.timeout(240)]
TOOLS_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin"


@pytest.fixture(params=["helm3", "helm4"])
def helm_bin(request: pytest.FixtureRequest) -> Path:
    path = TOOLS_BIN / str(request.param)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed; run `make setup`")
    return path


@pytest.fixture
def channel(
    helm_bin: Path, chart_repo: ChartRepoServer, tmp_path: Path
) -> Iterator[grpc.Channel]:
    with on_helm(helm_bin, chart_repo.url, tmp_path) as (sim, channel):
        # helm acts as each project (docs/tenancy.md): its namespaces and RoleBindings exist.
        apply_tenancy_doc(sim)
        releases = release_pb2_grpc.ReleaseServiceStub(channel)
        for name, namespace, who in (("rel-a", "team-a", "editor-a"),
                                     ("rel-b", "team-b", "editor-b")):
            releases.CreateRelease(
                release_pb2.CreateReleaseRequest(
                    chart_name="samples/etcd", version="8.11.1", cluster="test122",
                    namespace=namespace, release_name=name),
                metadata=bearer(TOKENS[who]), timeout=120)
        yield channel


def test_each_project_sees_only_its_own(channel: grpc.Channel) -> None:
    releases = release_pb2_grpc.ReleaseServiceStub(channel)
    clusters = cluster_pb2_grpc.ClusterServiceStub(channel)
    admin_view = releases.ListReleases(release_pb2.ListReleasesRequest(),
                                       metadata=bearer(TOKENS["admin"]))
    assert sorted(r.name for r in admin_view.releases) == ["rel-a", "rel-b"]
    assert admin_view.total == 2
    for who, mine, theirs, project in (("editor-a", "rel-a", "rel-b", "team-a"),
                                       ("editor-b", "rel-b", "rel-a", "team-b")):
        me = bearer(TOKENS[who])
        page = releases.ListReleases(release_pb2.ListReleasesRequest(details=True), metadata=me)
        assert [(r.name, r.project) for r in page.releases] == [(mine, project)]
        assert page.total == 1
        shown = releases.GetRelease(release_pb2.GetReleaseRequest(id=mine), metadata=me)
        assert shown.name == mine and shown.project == project
        history = releases.GetReleaseHistory(
            release_pb2.GetReleaseHistoryRequest(id=mine), metadata=me)
        assert [h.revision for h in history.revisions] == [1]
        events = list(releases.WatchRelease(
            release_pb2.WatchReleaseRequest(id=mine, timeout=30), metadata=me, timeout=60))
        assert events and events[-1].settled and events[-1].release.name == mine
        # The other project's release does not exist for this caller, whichever way it asks.
        their_id = next(r.id for r in admin_view.releases if r.name == theirs)
        for address in (theirs, their_id):
            for call, request in (
                (releases.GetRelease, release_pb2.GetReleaseRequest(id=address)),
                (releases.GetReleaseHistory, release_pb2.GetReleaseHistoryRequest(id=address)),
            ):
                with pytest.raises(grpc.RpcError) as hidden:
                    call(request, metadata=me)
                assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as hidden:
                list(releases.WatchRelease(
                    release_pb2.WatchReleaseRequest(id=address, timeout=5), metadata=me))
            assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
        namespaces = clusters.ListNamespaces(
            cluster_pb2.ListNamespacesRequest(cluster="test122"), metadata=me)
        assert [n.name for n in namespaces.namespaces] == [project]
        assert namespaces.total == 1
