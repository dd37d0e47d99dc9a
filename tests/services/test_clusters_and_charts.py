"""ClusterService and ChartService over real gRPC: registration leaves nothing behind when it
fails, in-use clusters and repositories cannot be removed, and charts show as documented."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format
from grpc_api import Api

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.dev.chart_repo import ChartRepoServer

INVALID = grpc.StatusCode.INVALID_ARGUMENT

EXEC_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://c.invalid"}}]
users: [{name: u, user: {exec: {command: /bin/sh, args: ["-c", "id"]}}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize(
    ("name", "kubeconfig", "code"),
    [
        ("Bad_Name", None, INVALID),
        ("test122", None, grpc.StatusCode.ALREADY_EXISTS),
        ("other", "", INVALID),
        ("other", "clusters: [unterminated", INVALID),
        ("other", "apiVersion: v1\nkind: Config\n", INVALID),  # no current-context
        ("other", EXEC_KUBECONFIG, INVALID),  # would run a program on the server
    ],
)
def test_create_cluster_errors(
    api: Api, fake_kubeconfig: str, name: str, kubeconfig: str | None, code: grpc.StatusCode
) -> None:
    before = api.state()
    request = cluster_pb2.CreateClusterRequest(
        name=name, kubeconfig=fake_kubeconfig if kubeconfig is None else kubeconfig
    )
    failure = api.fails(api.clusters.CreateCluster, request)
    assert failure.code == code, failure.message
    assert api.state() == before


def test_clusters(api: Api, fake_kubeconfig: str) -> None:
    created = api.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test123", kubeconfig=fake_kubeconfig)
    )
    assert created.server == "https://test122.invalid:6443" and created.created_at.seconds
    listed = api.clusters.ListClusters(cluster_pb2.ListClustersRequest())
    assert [c.name for c in listed.clusters] == ["test122", "test123"] and listed.total == 2
    assert api.clusters.GetCluster(cluster_pb2.GetClusterRequest(id=created.id)).name == "test123"
    namespaces = api.clusters.ListNamespaces(cluster_pb2.ListNamespacesRequest(cluster="test123"))
    assert {"default", "kube-system"} <= {n.name for n in namespaces.namespaces}
    assert all(n.cluster_id == created.id and n.status == "Active" for n in namespaces.namespaces)
    # Namespaces need a cluster when several are registered.
    assert (
        api.fails(api.clusters.ListNamespaces, cluster_pb2.ListNamespacesRequest()).code == INVALID
    )
    assert (
        api.fails(api.clusters.GetCluster, cluster_pb2.GetClusterRequest(id="nope")).code
        == grpc.StatusCode.NOT_FOUND
    )


def test_a_cluster_in_use_cannot_be_deleted(api: Api) -> None:
    api.create(release_name="etcd-release")
    before = api.state()
    failure = api.fails(api.clusters.DeleteCluster, cluster_pb2.DeleteClusterRequest(id="test122"))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "default/etcd-release" in failure.message
    assert "force (--force, or `force` in the request)" in failure.message
    assert api.state() == before

    api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-release"))
    deleted = api.clusters.DeleteCluster(cluster_pb2.DeleteClusterRequest(id="test122"))
    assert deleted.cluster.name == "test122"
    assert api.clusters.ListClusters(cluster_pb2.ListClustersRequest()).total == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": "Bad_Repo", "url": "REPO"}, INVALID),
        ({"name": "bitnami-new", "url": "REPO"}, grpc.StatusCode.ALREADY_EXISTS),
        ({"name": "other", "url": "ftp://example.com/charts"}, INVALID),
        ({"name": "other", "url": "file:///etc"}, INVALID),
        ({"name": "other", "url": "REPO/no/such/dir"}, INVALID),  # no index there
        ({"name": "other", "url": "http://127.0.0.1:9"}, grpc.StatusCode.UNAVAILABLE),
        ({"name": "other", "url": "REPO", "type": "sideways"}, INVALID),
        ({"name": "other", "url": "REPO", "password": "no-user"}, INVALID),
    ],
)
def test_create_repository_errors(
    api: Api, chart_repo: ChartRepoServer, fields: dict[str, str], code: grpc.StatusCode
) -> None:
    before = api.state()
    fields = {k: v.replace("REPO", chart_repo.url) for k, v in fields.items()}
    failure = api.fails(api.charts.CreateRepository, chart_pb2.CreateRepositoryRequest(**fields))
    assert failure.code == code, failure.message
    assert api.state() == before


def test_repositories(api: Api, chart_repo: ChartRepoServer) -> None:
    internal = api.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="platform", url=chart_repo.url, type="internal")
    )
    assert (internal.type, internal.chart_count, internal.has_password) == ("internal", 8, False)
    assert internal.synced_at.seconds > 0
    listed = api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest())
    assert [r.name for r in listed.repos] == ["bitnami-new", "platform"]
    only = api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest(type="internal"))
    assert [r.name for r in only.repos] == ["platform"]
    synced = api.charts.SyncRepository(chart_pb2.SyncRepositoryRequest(id="platform"))
    assert synced.synced_at.ToDatetime() >= internal.synced_at.ToDatetime()
    assert (
        api.charts.GetRepository(chart_pb2.GetRepositoryRequest(id=internal.id)).name == "platform"
    )
    deleted = api.charts.DeleteRepository(chart_pb2.DeleteRepositoryRequest(id="platform"))
    assert deleted.repo.id == internal.id
    assert (
        api.fails(api.charts.GetRepository, chart_pb2.GetRepositoryRequest(id="platform")).code
        == grpc.StatusCode.NOT_FOUND
    )


def test_a_repository_in_use_cannot_be_deleted(api: Api) -> None:
    api.create(release_name="etcd-release")
    before = api.state()
    failure = api.fails(
        api.charts.DeleteRepository, chart_pb2.DeleteRepositoryRequest(id="bitnami-new")
    )
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "test122/default/etcd-release" in failure.message
    assert "force (--force, or `force` in the request)" in failure.message
    assert api.state() == before
    api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-release"))
    api.charts.DeleteRepository(chart_pb2.DeleteRepositoryRequest(id="bitnami-new"))


def test_get_chart_shows_values_versions_and_readme(api: Api) -> None:
    answer = api.charts.GetChart(chart_pb2.GetChartRequest(name="etcd", repo="bitnami-new"))
    as_json = json_format.MessageToDict(answer, preserving_proto_field_name=True)
    # `.chart.chart.values` reads as in the original API.
    assert as_json["chart"]["chart"]["values"]["image"]["tag"] == "3.5.8-debian-11-r8"
    assert as_json["chart"]["version"] == "8.11.2"
    assert [v.version for v in answer.chart.versions] == ["8.11.2", "8.11.1"]
    assert answer.chart.chart.metadata.app_version == "3.5.9"
    assert answer.chart.chart.schema.fields["properties"]
    assert answer.chart.readme

    older = api.charts.GetChart(
        chart_pb2.GetChartRequest(name="bitnami-new/etcd", version="8.11.1")
    )
    assert older.chart.chart.metadata.version == "8.11.1" and older.chart.repo == "bitnami-new"
    unique = api.charts.GetChart(chart_pb2.GetChartRequest(name="hooked"))  # only one repo has it
    assert unique.chart.name == "hooked"

    assert (
        api.fails(api.charts.GetChart, chart_pb2.GetChartRequest(name="etcd", version="9.9.9")).code
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        api.fails(api.charts.GetChart, chart_pb2.GetChartRequest(name="nope")).code
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        api.fails(api.charts.GetChart, chart_pb2.GetChartRequest(name="../etc/passwd")).code
        == INVALID
    )


def test_list_charts(api: Api) -> None:
    def listed(**fields: object) -> list[tuple[str, str]]:
        request = chart_pb2.ListChartsRequest()
        json_format.ParseDict(fields, request)
        return [(c.name, c.version) for c in api.charts.ListCharts(request).charts]

    assert listed() == [
        ("big-manifest", "1.0.0"),
        ("crd-demo", "0.1.0"),
        ("deep-crd", "1.0.0"),
        ("etcd", "8.11.2"),
        ("guarded", "1.0.0"),
        ("hooked", "0.1.0"),
        ("never-ready", "0.1.0"),
        ("webhooks", "1.0.0"),
    ]
    assert listed(keyword="etcd", all_version=True) == [("etcd", "8.11.2"), ("etcd", "8.11.1")]
    assert listed(keyword="key-value") == [("etcd", "8.11.2")]  # a keyword of the chart
    assert listed(version="<8.11.2", keyword="etcd") == [("etcd", "8.11.1")]
    assert listed(repo="bitnami-new", limit=1, offset=3) == [("etcd", "8.11.2")]
    assert (
        api.fails(api.charts.ListCharts, chart_pb2.ListChartsRequest(version="newest")).code
        == INVALID
    )


def test_a_repository_in_use_is_deleted_with_force(api: Api) -> None:
    repo = api.charts.GetRepository(chart_pb2.GetRepositoryRequest(id="bitnami-new"))
    api.create(release_name="etcd-release")

    api.charts.DeleteRepository(chart_pb2.DeleteRepositoryRequest(id="bitnami-new", force=True))

    assert api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest()).total == 0
    release = api.releases.GetRelease(release_pb2.GetReleaseRequest(id="etcd-release"))
    assert (release.repo_id, release.version, release.status) == (repo.id, 1, "deployed")
    failure = api.fails(
        api.releases.UpgradeRelease, release_pb2.UpgradeReleaseRequest(id="etcd-release")
    )
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no longer registered" in failure.message
    # Deleting the release does not need the repository.
    api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-release"))
