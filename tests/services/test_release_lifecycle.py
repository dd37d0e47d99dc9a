"""ReleaseService over real gRPC on the memory driver: the seed scenario, the Release message,
addressing, listing, concurrency and recovery."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format
from grpc_api import Api

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.base import ReleaseRef, Status
from capstan_server.drivers.memory import MemoryDriver, Operation
from capstan_server.services.addressing import target
from capstan_server.threaded import ServerHandle

R9 = "image:\n  tag: 3.5.8-debian-11-r9\n"


def config(release: release_pb2.Release) -> dict:
    return json_format.MessageToDict(release.config)


def test_seed_scenario(api: Api) -> None:
    # create
    created = api.create(release_name="etcd-release")
    assert (created.name, created.status, created.version) == ("etcd-release", "deployed", 1)
    assert (created.chart, created.chart_version, created.app_version) == (
        "etcd",
        "8.11.1",
        "3.5.8",
    )

    # list
    listed = api.releases.ListReleases(
        release_pb2.ListReleasesRequest(type="external", name="etcd-release")
    )
    assert [r.id for r in listed.releases] == [created.id] and listed.total == 1
    assert api.releases.ListReleases(release_pb2.ListReleasesRequest(cluster="test122")).total == 1

    # show
    shown = api.releases.GetRelease(release_pb2.GetReleaseRequest(id="etcd-release"))
    assert shown.id == created.id and shown.status == "deployed"

    # upgrade with values (chart and version as in the seed: latest stable)
    upgraded = api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(
            id="etcd-release", chart_name="bitnami-new/etcd", version="8.11.1", values=R9
        )
    )
    assert (upgraded.version, upgraded.status, upgraded.id) == (2, "deployed", created.id)
    assert config(upgraded) == {"image": {"tag": "3.5.8-debian-11-r9"}}

    # upgrade to another chart version: no new values, so the previous ones are kept
    upgraded = api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(
            id="etcd-release", chart_name="bitnami-new/etcd", version="8.11.2"
        )
    )
    assert (upgraded.version, upgraded.chart_version) == (3, "8.11.2")
    assert config(upgraded) == {"image": {"tag": "3.5.8-debian-11-r9"}}

    # history
    history = api.releases.GetReleaseHistory(
        release_pb2.GetReleaseHistoryRequest(id="etcd-release")
    )
    assert [(h.revision, h.status, h.chart, h.description) for h in history.revisions] == [
        (1, "superseded", "etcd-8.11.1", "Install complete"),
        (2, "superseded", "etcd-8.11.1", "Upgrade complete"),
        (3, "deployed", "etcd-8.11.2", "Upgrade complete"),
    ]

    # rollback to 2
    rolled = api.releases.RollbackRelease(
        release_pb2.RollbackReleaseRequest(id="etcd-release", revision=2)
    )
    assert (rolled.version, rolled.chart_version, rolled.description) == (
        4,
        "8.11.1",
        "Rollback to 2",
    )
    assert config(rolled) == {"image": {"tag": "3.5.8-debian-11-r9"}}

    # delete
    deleted = api.releases.DeleteRelease(release_pb2.DeleteReleaseRequest(id="etcd-release"))
    assert (deleted.release.name, deleted.release.version) == ("etcd-release", 4)
    assert api.releases.ListReleases(release_pb2.ListReleasesRequest()).total == 0


def test_release_message_has_the_documented_fields(api: Api) -> None:
    release = api.create(release_name="etcd-release", values="replicaCount: 3\n")
    cluster = api.clusters.GetCluster(cluster_pb2.GetClusterRequest(id="test122"))
    namespaces = api.clusters.ListNamespaces(cluster_pb2.ListNamespacesRequest(cluster="test122"))
    default_uid = next(n.id for n in namespaces.namespaces if n.name == "default")

    assert uuid.UUID(release.id)
    assert release.cluster == "test122" and release.cluster_id == release.clusterID == cluster.id
    assert release.external_id == f"{cluster.id}/default/etcd-release"
    assert release.namespace == "default" and release.namespace_id == default_uid
    assert (
        release.repo_id
        == api.charts.ListRepositories(chart_pb2.ListRepositoriesRequest()).repos[0].id
    )
    assert (release.type, release.project_domain, release.is_emulated) == (
        "external",
        "Default",
        False,
    )
    assert config(release) == {"replicaCount": 3.0}
    assert release.created_at.seconds > 0 and release.description == "Install complete"
    as_json = json_format.MessageToDict(release, preserving_proto_field_name=True)
    assert {
        "chart",
        "chart_version",
        "cluster",
        "cluster_id",
        "config",
        "created_at",
        "external_id",
        "id",
        "name",
        "namespace",
        "namespace_id",
        "project_domain",
        "repo_id",
        "status",
        "type",
        "version",
    } <= set(as_json)


def test_create_generates_a_name_and_can_dry_run(api: Api) -> None:
    generated = api.create()
    assert generated.name.startswith("etcd-") and generated.version == 1

    dry = api.create(release_name="dry", dry_run=True, values=R9)
    assert dry.dry_run and dry.status == "pending-install" and dry.description == "Dry run complete"
    names = [r.name for r in api.releases.ListReleases(release_pb2.ListReleasesRequest()).releases]
    assert names == [generated.name]


def test_create_namespace(api: Api) -> None:
    release = api.create(release_name="r", namespace="team-a", create_namespace=True)
    assert release.namespace == "team-a" and release.namespace_id
    names = [
        n.name for n in api.clusters.ListNamespaces(cluster_pb2.ListNamespacesRequest()).namespaces
    ]
    assert "team-a" in names


def test_upgrade_without_chart_name_keeps_the_chart_and_follows_helm_values(api: Api) -> None:
    api.create(release_name="r", values="replicaCount: 3\nimage:\n  tag: a\n")

    def upgrade(**fields: object) -> release_pb2.Release:
        request = release_pb2.UpgradeReleaseRequest(id="r", version="8.11.1")
        json_format.ParseDict(fields, request)
        return api.releases.UpgradeRelease(request)

    assert config(upgrade()) == {"replicaCount": 3.0, "image": {"tag": "a"}}  # kept
    assert config(upgrade(values_json={"image": {"tag": "b"}})) == {
        "image": {"tag": "b"}
    }  # replaced
    reused = upgrade(reuse_values=True, values="replicaCount: 5\n")
    assert config(reused) == {"replicaCount": 5.0, "image": {"tag": "b"}}
    assert config(upgrade(reset_values=True, reuse_values=True)) == {}
    assert upgrade().chart == "etcd"


def test_an_upgrade_by_id_keeps_the_release_id(api: Api) -> None:
    created = api.create(release_name="r")
    upgraded = api.releases.UpgradeRelease(
        release_pb2.UpgradeReleaseRequest(id=created.id, release_name="r")
    )
    assert upgraded.id == created.id and upgraded.version == 2
    assert api.releases.GetRelease(release_pb2.GetReleaseRequest(id=created.id)).version == 2


def test_an_ambiguous_name_lists_the_candidates(api: Api, fake_kubeconfig: str) -> None:
    api.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test123", kubeconfig=fake_kubeconfig)
    )
    first = api.create(release_name="twin")
    second = api.create(release_name="twin", cluster="test123")

    failure = api.fails(api.releases.GetRelease, release_pb2.GetReleaseRequest(id="twin"))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and "ambiguous" in failure.message
    assert {d["id"] for d in failure.details} == {first.id, second.id}
    assert {d["cluster"] for d in failure.details} == {"test122", "test123"}
    assert all(d["external_id"].endswith("/default/twin") for d in failure.details)

    narrowed = api.releases.GetRelease(release_pb2.GetReleaseRequest(id="twin", cluster="test123"))
    assert narrowed.id == second.id
    assert api.releases.GetRelease(release_pb2.GetReleaseRequest(id=first.id)).cluster == "test122"
    # With two clusters registered, creating needs a cluster.
    failure = api.fails(
        api.releases.CreateRelease,
        release_pb2.CreateReleaseRequest(chart_name="bitnami-new/etcd", release_name="x"),
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT


def test_list_filters_and_pages(api: Api) -> None:
    api.create(release_name="alpha")
    api.create(release_name="beta", type="internal")
    api.create(release_name="gamma", namespace="kube-system")
    api.releases.UpgradeRelease(release_pb2.UpgradeReleaseRequest(id="alpha"))

    def names(**filters: object) -> list[str]:
        request = release_pb2.ListReleasesRequest()
        json_format.ParseDict(filters, request)
        return [r.name for r in api.releases.ListReleases(request).releases]

    assert names() == ["alpha", "gamma", "beta"]  # newest first (alpha was just upgraded)
    assert names(type="internal") == ["beta"]
    assert names(type="external") == ["alpha", "gamma"]
    assert names(namespace="kube-system") == ["gamma"]
    assert names(name="beta") == ["beta"]
    assert names(search="amm") == ["gamma"]
    assert names(search="etcd") == ["alpha", "gamma", "beta"]  # chart name matches too
    assert names(deployed=True) == ["alpha", "gamma", "beta"]
    assert names(failed=True, pending=True, deleting=True, superseded=True) == []
    page = api.releases.ListReleases(release_pb2.ListReleasesRequest(limit=1, offset=1))
    assert ([r.name for r in page.releases], page.total, page.limit, page.offset) == (
        ["gamma"],
        3,
        1,
        1,
    )
    assert api.releases.ListReleases(release_pb2.ListReleasesRequest()).limit == 20


def test_history_max(api: Api) -> None:
    api.create(release_name="r")
    for _ in range(3):
        api.releases.UpgradeRelease(release_pb2.UpgradeReleaseRequest(id="r", history_max=2))
    history = api.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(id="r"))
    assert [h.revision for h in history.revisions] == [3, 4]
    latest = api.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(id="r", max=1))
    assert [h.revision for h in latest.revisions] == [4]


def test_watch_of_a_settled_release(api: Api) -> None:
    api.create(release_name="r")
    events = list(api.releases.WatchRelease(release_pb2.WatchReleaseRequest(id="r", timeout=10)))
    assert events and events[-1].settled and events[-1].release.status == "deployed"


# -- with a slow or stuck driver ------------------------------------------------------------------


@pytest.fixture
def slow_api(
    capstan_server_factory: Callable[..., ServerHandle],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> Api:
    """A server whose memory driver takes 2 s over every `wait`ed operation."""

    async def slow(op: Operation) -> None:
        if op.wait:
            await asyncio.sleep(2)

    server = capstan_server_factory(driver=MemoryDriver(hook=slow))
    client = Api(server)
    client.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig)
    )
    client.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )
    return client


def test_a_second_write_while_one_runs_is_aborted(slow_api: Api) -> None:
    slow_api.create(release_name="r")
    first = threading.Thread(
        target=slow_api.releases.UpgradeRelease,
        args=(release_pb2.UpgradeReleaseRequest(id="r", wait=True),),
    )
    first.start()
    try:
        deadline = time.monotonic() + 10
        while (
            slow_api.releases.GetRelease(release_pb2.GetReleaseRequest(id="r")).status
            != "pending-upgrade"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        failure = slow_api.fails(
            slow_api.releases.UpgradeRelease, release_pb2.UpgradeReleaseRequest(id="r")
        )
        assert failure.code == grpc.StatusCode.ABORTED
        assert "upgrade" in failure.message and "since" in failure.message
        events = list(
            slow_api.releases.WatchRelease(release_pb2.WatchReleaseRequest(id="r", timeout=30))
        )
        assert events[0].release.status == "pending-upgrade" and not events[0].settled
        assert events[-1].settled and events[-1].release.status == "deployed"
    finally:
        first.join()
    history = slow_api.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(id="r"))
    assert [(h.revision, h.status) for h in history.revisions] == [
        (1, "superseded"),
        (2, "deployed"),
    ]


@pytest.fixture
def stuck(
    capstan_server_factory: Callable[..., ServerHandle],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> tuple[Api, Callable[[str, float], None]]:
    """A server and a way to leave a release stuck in pending-upgrade for N seconds already."""
    driver = MemoryDriver()
    server = capstan_server_factory(driver=driver)
    client = Api(server)
    cluster = client.clusters.CreateCluster(
        cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig)
    )
    client.charts.CreateRepository(
        chart_pb2.CreateRepositoryRequest(name="bitnami-new", url=chart_repo.url)
    )

    def make_stuck(name: str, seconds: float) -> None:
        async def inject() -> None:
            row = await server.server.services.registry.get_cluster(cluster.id)
            since = datetime.now(UTC) - timedelta(seconds=seconds)
            driver.inject_stuck_revision(
                ReleaseRef(target(row), "default", name), status=Status.PENDING_UPGRADE, since=since
            )

        server.run(inject())

    return client, make_stuck


def test_recover_by_rollback(stuck: tuple[Api, Callable[[str, float], None]]) -> None:
    api, make_stuck = stuck
    api.create(release_name="r", values=R9)
    make_stuck("r", 3600)
    assert (
        api.fails(api.releases.UpgradeRelease, release_pb2.UpgradeReleaseRequest(id="r")).code
        == grpc.StatusCode.ABORTED
    )

    recovered = api.releases.RecoverRelease(
        release_pb2.RecoverReleaseRequest(id="r", action=release_pb2.RECOVERY_ACTION_ROLLBACK)
    )
    assert (recovered.version, recovered.status, recovered.description) == (
        3,
        "deployed",
        "Rollback to 1",
    )
    history = api.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(id="r"))
    assert [(h.revision, h.status) for h in history.revisions] == [
        (1, "superseded"),
        (2, "failed"),
        (3, "deployed"),
    ]
    assert history.revisions[1].description.startswith("Marked failed by Capstan")


def test_recover_by_marking_failed_and_refusals(
    stuck: tuple[Api, Callable[[str, float], None]],
) -> None:
    api, make_stuck = stuck
    api.create(release_name="r")
    request = release_pb2.RecoverReleaseRequest(
        id="r", action=release_pb2.RECOVERY_ACTION_MARK_FAILED
    )
    failure = api.fails(api.releases.RecoverRelease, request)
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION and "not pending" in failure.message

    make_stuck("r", 10)  # pending, but not for long enough
    failure = api.fails(api.releases.RecoverRelease, request)
    assert (
        failure.code == grpc.StatusCode.FAILED_PRECONDITION
        and "stuck after 300s" in failure.message
    )

    request.stuck_after_seconds = 5
    recovered = api.releases.RecoverRelease(request)
    assert (recovered.version, recovered.status) == (2, "failed")
    upgraded = api.releases.UpgradeRelease(release_pb2.UpgradeReleaseRequest(id="r"))
    assert (upgraded.version, upgraded.status) == (3, "deployed")
