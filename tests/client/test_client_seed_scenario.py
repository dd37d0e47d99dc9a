"""The seed document's scenario over gRPC with the client library, on the memory driver.

create -> list -> show -> upgrade with values -> upgrade to another chart version -> history ->
rollback -> delete, as `seed/release-api.zh.md` walks it with climc, against a chart repository
served over HTTP from the project's own sample charts. As in the seed, `bitnami-new` holds only
etcd 8.11.1 at first (so no version is given); 8.11.2 is published and the repository synced
before the upgrade to it.
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from capstan.client import AsyncCapstanClient, CapstanClient, NotFound, to_dict
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle

#: The seed's values.yaml: only the image tag changes.
VALUES_YAML = 'image:\n  tag: "3.5.8-debian-11-r9"\n'
R9 = {"image": {"tag": "3.5.8-debian-11-r9"}}


def test_seed_scenario_with_the_client_library(
    capstan_server: ServerHandle, seed_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    with CapstanClient(capstan_server.grpc_target) as capstan:
        # The seed assumes a cluster `test122` and a repository `bitnami-new`; register both.
        cluster = capstan.create_cluster("test122", fake_kubeconfig)
        repo = capstan.create_repository("bitnami-new", seed_repo.url, type="external")

        # climc k8s-release-create --cluster test122 --namespace default --name etcd-release
        #   bitnami-new/etcd
        release = capstan.create_release(
            "bitnami-new/etcd",
            cluster="test122",
            namespace="default",
            release_name="etcd-release",
        )
        assert uuid.UUID(release.id)
        assert (release.name, release.cluster, release.namespace) == (
            "etcd-release", "test122", "default"
        )
        assert (release.chart, release.chart_version) == ("etcd", "8.11.1")
        assert (release.status, release.version, release.type) == ("deployed", 1, "external")
        assert release.cluster_id == cluster.id
        assert release.repo_id == repo.id
        assert release.external_id == f"{cluster.id}/default/etcd-release"

        # climc k8s-release-list --type external
        # climc k8s-release-list --type external --name etcd-release
        # climc k8s-release-list --cluster test122
        for page in (
            capstan.list_releases(type="external"),
            capstan.list_releases(type="external", name="etcd-release"),
            capstan.list_releases(cluster="test122"),
        ):
            assert [r.id for r in page.releases] == [release.id]
            assert page.total == 1

        # climc k8s-release-show etcd-release
        shown = capstan.get_release("etcd-release")
        assert (shown.id, shown.version, shown.status) == (release.id, 1, "deployed")
        assert to_dict(shown)["config"] == {}

        # climc k8s-chart-show bitnami-new etcd: the defaults the values file overrides.
        chart = capstan.get_chart("etcd", repo="bitnami-new").chart
        assert to_dict(chart)["chart"]["values"]["image"]["tag"] == "3.5.8-debian-11-r8"

        # climc k8s-release-upgrade --values ./values.yaml etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd", values=VALUES_YAML)
        assert (upgraded.version, upgraded.chart_version) == (2, "8.11.1")
        assert to_dict(upgraded)["config"] == R9

        # etcd 8.11.2 is published to bitnami-new; climc k8s-repo-sync bitnami-new
        seed_repo.publish_now("etcd-8.11.2")
        capstan.sync_repository("bitnami-new")

        # climc k8s-release-upgrade --version 8.11.2 etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd", version="8.11.2")
        assert (upgraded.version, upgraded.chart_version) == (3, "8.11.2")
        assert to_dict(upgraded)["config"] == R9  # no new values: the previous ones are kept

        # climc k8s-release-history etcd-release
        history = capstan.get_release_history("etcd-release").revisions
        assert [h.revision for h in history] == [1, 2, 3]
        assert [h.chart for h in history] == ["etcd-8.11.1", "etcd-8.11.1", "etcd-8.11.2"]
        assert [h.status for h in history] == ["superseded", "superseded", "deployed"]

        # climc k8s-release-rollback etcd-release 2
        rolled_back = capstan.rollback_release("etcd-release", 2)
        assert (rolled_back.version, rolled_back.chart_version) == (4, "8.11.1")
        assert to_dict(rolled_back)["config"] == R9
        last = capstan.get_release_history("etcd-release").revisions[-1]
        assert (last.revision, last.description) == (4, "Rollback to 2")

        # climc k8s-release-delete etcd-release: the release and its history are gone.
        deleted = capstan.delete_release("etcd-release")
        assert deleted.release.id == release.id
        with pytest.raises(NotFound):
            capstan.get_release("etcd-release")
        page = capstan.list_releases()
        assert (list(page.releases), page.total) == ([], 0)


async def test_the_async_client_walks_the_same_scenario(
    capstan_server: ServerHandle, seed_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    async with AsyncCapstanClient(capstan_server.grpc_target) as capstan:
        await capstan.create_cluster("test122", fake_kubeconfig)
        await capstan.create_repository("bitnami-new", seed_repo.url)

        await capstan.create_release(
            "bitnami-new/etcd", cluster="test122", namespace="default",
            release_name="etcd-release",
        )
        assert (await capstan.list_releases(type="external", name="etcd-release")).total == 1
        events = [event async for event in capstan.watch_release("etcd-release")]
        assert events[-1].settled and events[-1].release.status == "deployed"
        await capstan.upgrade_release("etcd-release", "bitnami-new/etcd", values=VALUES_YAML)
        await seed_repo.publish("etcd-8.11.2")
        await capstan.sync_repository("bitnami-new")
        await capstan.upgrade_release("etcd-release", "bitnami-new/etcd", version="8.11.2")
        history = (await capstan.get_release_history("etcd-release")).revisions
        assert [h.chart for h in history] == ["etcd-8.11.1", "etcd-8.11.1", "etcd-8.11.2"]
        rolled_back = await capstan.rollback_release("etcd-release", 2)
        assert (rolled_back.version, rolled_back.chart_version) == (4, "8.11.1")
        assert yaml.safe_load(VALUES_YAML) == to_dict(rolled_back)["config"]
        await capstan.delete_release("etcd-release")
        assert (await capstan.list_releases()).total == 0
