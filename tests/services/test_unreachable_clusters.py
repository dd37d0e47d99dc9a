"""One unreachable cluster must not hide the others, and must never make releases silently
disappear: ListReleases without a cluster lists the reachable clusters' releases and names the
unreachable ones in `unreachable_clusters`; a release addressed without its cluster is refused
with UNAVAILABLE naming them (the name could be ambiguous) and suggesting `--cluster`.

Memory driver, clusters `test122` (always reachable) and `far`; the driver's `unreachable` test
hook cuts `far` off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_api import Api

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.base import ClusterTarget
from capstan_server.drivers.memory import MemoryDriver
from capstan_server.threaded import ServerHandle

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@dataclass
class Env:
    api: Api
    driver: MemoryDriver
    near: cluster_pb2.Cluster
    far: cluster_pb2.Cluster
    #: Release name -> id: etcd-one and etcd-two in test122, etcd-far in far.
    ids: dict[str, str]

    def cut_off(self, *clusters: cluster_pb2.Cluster) -> None:
        self.driver.unreachable.update(c.id for c in clusters)

    def reconnect(self) -> None:
        self.driver.unreachable.clear()

    def in_driver(self, cluster: cluster_pb2.Cluster) -> list[str]:
        """The releases the driver still holds in a cluster, registered or not."""
        records = asyncio.run(self.driver.list(ClusterTarget(cluster.id, cluster.name, "")))
        return sorted(r.name for r in records)

    def cluster_names(self) -> list[str]:
        listed = self.api.clusters.ListClusters(cluster_pb2.ListClustersRequest())
        return sorted(c.name for c in listed.clusters)

    def listed(self, **fields: Any) -> release_pb2.ListReleasesResponse:
        request = release_pb2.ListReleasesRequest(**fields)
        page: release_pb2.ListReleasesResponse = self.api.releases.ListReleases(request)
        return page


@pytest.fixture
def env(
    capstan_server_factory: Callable[..., ServerHandle],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> Iterator[Env]:
    driver = MemoryDriver()
    api = Api(capstan_server_factory(driver=driver))
    clusters = api.clusters
    near = clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig)
    )
    far = clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="far", kubeconfig=fake_kubeconfig)
    )
    api.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )
    ids = {
        "etcd-one": api.create(release_name="etcd-one").id,
        "etcd-two": api.create(release_name="etcd-two").id,
        "etcd-far": api.create(release_name="etcd-far", cluster="far").id,
    }
    yield Env(api, driver, near, far, ids)
    api.channel.close()


def names(page: release_pb2.ListReleasesResponse) -> list[str]:
    return [r.name for r in page.releases]


# -- ListReleases -------------------------------------------------------------------------------


def test_the_reachable_clusters_are_listed_and_the_unreachable_one_is_named(env: Env) -> None:
    assert names(env.listed()) == ["etcd-far", "etcd-two", "etcd-one"]
    assert not env.listed().unreachable_clusters
    env.cut_off(env.far)

    page = env.listed()

    assert (names(page), page.total) == (["etcd-two", "etcd-one"], 2)
    (down,) = page.unreachable_clusters
    assert (down.name, down.id) == ("far", env.far.id)
    assert "cluster far is unreachable" in down.message


def test_filters_order_and_paging_apply_to_the_reachable_clusters(env: Env) -> None:
    env.api.create(release_name="etcd-three", namespace="kube-public")
    env.cut_off(env.far)

    second = env.listed(limit=1, offset=1)
    assert (names(second), second.total) == (["etcd-two"], 3)
    assert [c.name for c in second.unreachable_clusters] == ["far"]

    in_namespace = env.listed(namespace="kube-public")
    assert (names(in_namespace), in_namespace.total) == (["etcd-three"], 1)

    # Not found among the reachable clusters, and maybe in `far`: the answer says so.
    by_name = env.listed(name="etcd-far")
    assert (names(by_name), by_name.total) == ([], 0)
    assert [c.name for c in by_name.unreachable_clusters] == ["far"]

    searched = env.listed(search="two", deployed=True)
    assert (names(searched), [c.name for c in searched.unreachable_clusters]) == (
        ["etcd-two"], ["far"]
    )


def test_a_cluster_filter_asks_that_cluster_only(env: Env) -> None:
    env.cut_off(env.far)

    near = env.listed(cluster="test122")
    assert (names(near), list(near.unreachable_clusters)) == (["etcd-two", "etcd-one"], [])

    for cluster in ("far", env.far.id):
        failure = env.api.fails(
            env.api.releases.ListReleases, release_pb2.ListReleasesRequest(cluster=cluster)
        )
        assert failure.code is UNAVAILABLE
        assert "cluster far is unreachable" in failure.message


def test_the_list_fails_when_no_cluster_can_be_reached(env: Env) -> None:
    env.cut_off(env.near, env.far)

    failure = env.api.fails(env.api.releases.ListReleases, release_pb2.ListReleasesRequest())

    assert failure.code is UNAVAILABLE
    assert failure.message.startswith("none of the 2 clusters could be reached")
    assert "'far'" in failure.message and "'test122'" in failure.message
    assert {d["cluster"] for d in failure.details} == {"far", "test122"}


def test_the_list_is_complete_again_once_the_cluster_is_back(env: Env) -> None:
    env.cut_off(env.far)
    assert env.listed().total == 2

    env.reconnect()

    page = env.listed()
    assert (page.total, list(page.unreachable_clusters)) == (3, [])


# -- addressing a release ----------------------------------------------------------------------


def test_a_release_found_elsewhere_is_unavailable_naming_the_unreachable_cluster(
    env: Env,
) -> None:
    env.cut_off(env.far)

    for address in ("etcd-one", env.ids["etcd-one"]):
        failure = env.api.fails(
            env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id=address)
        )
        assert failure.code is UNAVAILABLE
        assert f"release {address!r} was found in cluster 'test122'" in failure.message
        assert "cluster 'far' could not be reached" in failure.message
        assert "cluster far is unreachable" in failure.message
        assert "--cluster test122" in failure.message
        unreachable = [d for d in failure.details if d.get("reason") == "unreachable"]
        assert [(d["cluster"], d["cluster_id"]) for d in unreachable] == [("far", env.far.id)]
        assert [d["id"] for d in failure.details if "id" in d] == [env.ids["etcd-one"]]

    # Giving the cluster does not ask `far`.
    for address in ("etcd-one", env.ids["etcd-one"]):
        shown = env.api.releases.GetRelease(
            release_pb2.GetReleaseRequest(id=address, cluster="test122")
        )
        assert shown.id == env.ids["etcd-one"]


def test_a_release_not_found_in_the_reachable_clusters_is_unavailable(env: Env) -> None:
    env.cut_off(env.far)

    for address in ("etcd-far", env.ids["etcd-far"], "no-such-release"):
        failure = env.api.fails(
            env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id=address)
        )
        assert failure.code is UNAVAILABLE
        assert "not found in the reachable clusters" in failure.message
        assert "cluster 'far' could not be reached" in failure.message
        assert "retry" in failure.message

    # Addressed in `far` itself: the driver's own error, as before.
    failure = env.api.fails(
        env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id="etcd-far", cluster="far")
    )
    assert failure.code is UNAVAILABLE
    assert failure.message.startswith("cluster far is unreachable")


def test_writes_addressed_without_the_cluster_are_refused_and_change_nothing(env: Env) -> None:
    before = env.api.state()
    env.cut_off(env.far)
    releases = env.api.releases

    calls = [
        (releases.GetReleaseHistory, release_pb2.GetReleaseHistoryRequest(id="etcd-one")),
        (releases.UpgradeRelease, release_pb2.UpgradeReleaseRequest(id="etcd-one")),
        (releases.RollbackRelease, release_pb2.RollbackReleaseRequest(id="etcd-one")),
        (releases.DeleteRelease, release_pb2.DeleteReleaseRequest(id=env.ids["etcd-one"])),
    ]
    for call, request in calls:
        failure = env.api.fails(call, request)
        assert failure.code is UNAVAILABLE, request
        assert "'far'" in failure.message and "--cluster test122" in failure.message

    env.reconnect()
    assert env.api.state() == before
    deleted = releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-one"))
    assert deleted.release.id == env.ids["etcd-one"]


def test_a_name_also_in_the_unreachable_cluster_never_resolves_to_the_reachable_one(
    env: Env,
) -> None:
    # `etcd-one` also exists in `far`: once `far` is cut off the name must not resolve to the
    # one in test122 silently.
    env.api.create(release_name="etcd-one", cluster="far")
    env.cut_off(env.far)

    failure = env.api.fails(
        env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id="etcd-one")
    )

    assert failure.code is UNAVAILABLE
    env.reconnect()
    ambiguous = env.api.fails(
        env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id="etcd-one")
    )
    assert ambiguous.code is grpc.StatusCode.INVALID_ARGUMENT


# -- DeleteCluster ------------------------------------------------------------------------------


def test_an_unreachable_cluster_cannot_be_deleted_and_the_message_says_why(env: Env) -> None:
    env.api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-far"))
    env.cut_off(env.far)

    failure = env.api.fails(
        env.api.clusters.DeleteCluster, cluster_pb2.DeleteClusterRequest(id="far")
    )

    assert failure.code is UNAVAILABLE
    assert failure.message.startswith(
        "cluster 'far' cannot be deleted while it is unreachable, because Capstan must first "
        "check that no releases are left in it (cluster far is unreachable"
    )
    assert "retry once it is reachable again" in failure.message
    assert "force (--force, or `force` in the request)" in failure.message
    assert failure.details == [
        {
            "cluster": "far",
            "cluster_id": env.far.id,
            "reason": "unreachable",
            "message": failure.details[0]["message"],
        }
    ]
    registered = env.api.clusters.ListClusters(cluster_pb2.ListClustersRequest())
    assert sorted(c.name for c in registered.clusters) == ["far", "test122"]

    env.reconnect()
    deleted = env.api.clusters.DeleteCluster(cluster_pb2.DeleteClusterRequest(id="far"))
    assert deleted.cluster.id == env.far.id


def test_an_unreachable_cluster_is_deleted_with_force_and_its_releases_stay_in_it(
    env: Env,
) -> None:
    env.cut_off(env.far)

    deleted = env.api.clusters.DeleteCluster(
        cluster_pb2.DeleteClusterRequest(id="far", force=True)
    )

    assert deleted.cluster.id == env.far.id
    assert env.cluster_names() == ["test122"]
    page = env.listed()
    assert (names(page), list(page.unreachable_clusters)) == (["etcd-two", "etcd-one"], [])
    # Nothing was done in the cluster: once it is back, its release is still there.
    env.reconnect()
    assert env.in_driver(env.far) == ["etcd-far"]


def test_a_cluster_with_releases_is_deleted_with_force_and_they_stay_in_it(env: Env) -> None:
    deleted = env.api.clusters.DeleteCluster(
        cluster_pb2.DeleteClusterRequest(id=env.near.id, force=True)
    )

    assert deleted.cluster.name == "test122"
    assert env.cluster_names() == ["far"]
    assert names(env.listed()) == ["etcd-far"]
    assert env.in_driver(env.near) == ["etcd-one", "etcd-two"]
    failure = env.api.fails(
        env.api.releases.GetRelease, release_pb2.GetReleaseRequest(id=env.ids["etcd-one"])
    )
    assert failure.code is grpc.StatusCode.NOT_FOUND


# -- DeleteRepository ---------------------------------------------------------------------------


def test_a_repository_cannot_be_deleted_while_a_cluster_is_unreachable(env: Env) -> None:
    env.api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-far"))
    for name in ("etcd-one", "etcd-two"):
        env.api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id=name))
    env.cut_off(env.far)
    before = env.api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest())

    failure = env.api.fails(
        env.api.charts.DeleteRepository, chart_pb2.DeleteRepositoryRequest(id="bitnami-new")
    )

    assert failure.code is UNAVAILABLE
    assert failure.message.startswith(
        "repository 'bitnami-new' cannot be deleted while cluster 'far' cannot be reached"
    )
    assert "cluster far is unreachable" in failure.message
    assert "force (--force, or `force` in the request)" in failure.message
    assert [(d["cluster"], d["cluster_id"], d["reason"]) for d in failure.details] == [
        ("far", env.far.id, "unreachable")
    ]
    assert env.api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest()) == before

    env.reconnect()
    env.api.charts.DeleteRepository(chart_pb2.DeleteRepositoryRequest(id="bitnami-new"))


def test_a_repository_is_deleted_with_force_while_a_cluster_is_unreachable(
    env: Env, chart_repo: ChartRepoServer
) -> None:
    old = env.api.charts.GetRepository(chart_pb2.GetRepositoryRequest(id="bitnami-new"))
    env.cut_off(env.far)

    deleted = env.api.charts.DeleteRepository(
        chart_pb2.DeleteRepositoryRequest(id="bitnami-new", force=True)
    )

    assert deleted.repo.id == old.id
    assert env.api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest()).total == 0
    env.reconnect()
    # The releases installed from it are untouched, and still name it.
    page = env.listed()
    assert names(page) == ["etcd-far", "etcd-two", "etcd-one"]
    assert {r.repo_id for r in page.releases} == {old.id}

    # Registered again, the repository is a new one: the releases can be upgraded only by
    # naming a chart, which moves them to it.
    again = env.api.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )
    assert again.id != old.id
    failure = env.api.fails(
        env.api.releases.UpgradeRelease,
        release_pb2.UpgradeReleaseRequest(id="etcd-one", cluster="test122"),
    )
    assert failure.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "is no longer registered: give chart_name" in failure.message
    upgraded = env.api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(
            id="etcd-one", cluster="test122", chart_name="bitnami-new/etcd"
        )
    )
    assert (upgraded.version, upgraded.repo_id) == (2, again.id)
