"""The seed document's scenario, verbatim, on the real helm 3.17.2 and 4.1.4 against kubesim.

Over gRPC with the client library, through a Capstan server on the `helm` driver: repository
`bitnami-new` holding the sample etcd chart, cluster `test122` (a kubesim), namespace
`default`, release `etcd-release` — create; list; show with resources; upgrade with a values
file (the StatefulSet's image in kubesim changes); upgrade to 8.11.2; history; rollback to 2;
delete (the objects are gone from kubesim). As in the seed, `bitnami-new` holds only etcd
8.11.1 at first (so no version is given); 8.11.2 is published and the repository synced before
the upgrade to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capstan.client import Aborted, CapstanClient, FailedPrecondition, NotFound, to_dict
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.helm import records
from kubesim.testing import KubeSimThread, running_kubesim

TOOLS_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin"
R8, R9 = "3.5.8-debian-11-r8", "3.5.8-debian-11-r9"
#: The seed's values.yaml for the first upgrade.
VALUES_YAML = 'image:\n  tag: "3.5.8-debian-11-r9"\n'


@pytest.fixture(scope="module")
def kubesim() -> Iterator[KubeSimThread]:
    with running_kubesim(tls=True) as sim:
        yield sim


@pytest.fixture(params=["helm3", "helm4"])
def helm_bin(request: pytest.FixtureRequest) -> Path:
    path = TOOLS_BIN / request.param
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed; run `make setup`")
    return path


def statefulset_image(kubesim: KubeSimThread) -> str:
    sts = kubesim.store.get("statefulsets", "etcd-release", "default")
    return str(sts["spec"]["template"]["spec"]["containers"][0]["image"])


def test_seed_scenario_on_helm(capstan_server_factory: Callable[..., Any],
                               seed_repo: ChartRepoServer, kubesim: KubeSimThread,
                               helm_bin: Path) -> None:
    server = capstan_server_factory(driver="helm", helm_bin=helm_bin)
    with CapstanClient(server.grpc_target, timeout=120) as capstan:
        cluster = capstan.create_cluster("test122", kubesim.kubeconfig)
        repo = capstan.create_repository("bitnami-new", seed_repo.url, type="external")
        namespaces = {n.name: n for n in capstan.list_namespaces(cluster="test122").namespaces}
        assert "default" in namespaces

        # k8s-release-create --cluster test122 --namespace default --name etcd-release
        #   bitnami-new/etcd
        created = capstan.create_release("bitnami-new/etcd", cluster="test122",
                                         namespace="default", release_name="etcd-release")
        assert (created.name, created.chart, created.chart_version) == (
            "etcd-release", "etcd", "8.11.1")
        assert (created.status, created.version, created.type) == ("deployed", 1, "external")
        assert created.repo_id == repo.id and created.cluster_id == cluster.id
        assert created.external_id == f"{cluster.id}/default/etcd-release"
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R8}"

        # k8s-release-list --type external / --name etcd-release / --cluster test122
        for filters in ({"type": "external"}, {"type": "external", "name": "etcd-release"},
                        {"cluster": "test122"}):
            page = capstan.list_releases(**filters)
            assert [r.id for r in page.releases] == [created.id], filters
            assert page.total == 1
        assert capstan.list_releases(type="internal").total == 0

        # k8s-release-show etcd-release
        shown = to_dict(capstan.get_release("etcd-release"))
        assert (shown["id"], shown["version"], shown["status"]) == (created.id, 1, "deployed")
        assert shown["namespace_id"] == namespaces["default"].id
        resources = shown["resources"]
        assert {"k8s_service", "secret", "statefulset"} <= resources.keys()
        assert {s["name"] for s in resources["k8s_service"]} == {
            "etcd-release", "etcd-release-headless"}
        assert [s["name"] for s in resources["statefulset"]] == ["etcd-release"]

        # k8s-release-upgrade --values ./values.yaml etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd",
                                           values=VALUES_YAML)
        assert (upgraded.version, upgraded.chart_version) == (2, "8.11.1")
        assert to_dict(upgraded)["config"] == {"image": {"tag": R9}}
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"

        # etcd 8.11.2 is published to bitnami-new; k8s-repo-sync bitnami-new
        seed_repo.publish_now("etcd-8.11.2")
        capstan.sync_repository("bitnami-new")

        # k8s-release-upgrade --version 8.11.2 etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd",
                                           version="8.11.2")
        assert (upgraded.version, upgraded.chart_version) == (3, "8.11.2")
        assert to_dict(upgraded)["config"] == {"image": {"tag": R9}}

        # k8s-release-history etcd-release
        history = capstan.get_release_history("etcd-release").revisions
        assert [(h.revision, h.chart, h.status) for h in history] == [
            (1, "etcd-8.11.1", "superseded"), (2, "etcd-8.11.1", "superseded"),
            (3, "etcd-8.11.2", "deployed")]

        # k8s-release-rollback etcd-release 2
        rolled = capstan.rollback_release("etcd-release", 2)
        assert (rolled.version, rolled.chart_version) == (4, "8.11.1")
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"
        last = capstan.get_release_history("etcd-release").revisions[-1]
        assert (last.revision, last.description) == (4, "Rollback to 2")

    # The release's identity survives a restart: it is read back from helm's own records
    # (Capstan's labels on them), not from memory.
    server.stop()
    server = capstan_server_factory(driver="helm", helm_bin=helm_bin, data_dir=server.data_dir)
    with CapstanClient(server.grpc_target, timeout=120) as capstan:
        again = capstan.get_release("etcd-release")
        assert (again.id, again.repo_id, again.version) == (created.id, repo.id, 4)

        # k8s-release-delete etcd-release
        capstan.delete_release("etcd-release")
        with pytest.raises(NotFound):
            capstan.get_release("etcd-release")
        assert kubesim.store.try_get("statefulsets", "etcd-release", "default") is None
        assert kubesim.store.try_get("services", "etcd-release", "default") is None
        assert kubesim.store.list("secrets", "default", "owner=helm") == []


def test_stuck_release_is_recovered_on_helm(capstan_server_factory: Callable[..., Any],
                                            chart_repo: ChartRepoServer,
                                            kubesim: KubeSimThread, helm_bin: Path) -> None:
    """A release left `pending-upgrade` by a helm killed with SIGKILL (simulated by writing
    the record helm leaves): writes are ABORTED saying which operation and since when; once
    it has been pending longer than `stuck_after_seconds`, RecoverRelease rolls it back."""
    server = capstan_server_factory(driver="helm", helm_bin=helm_bin)
    with CapstanClient(server.grpc_target, timeout=120) as capstan:
        capstan.create_cluster("test122", kubesim.kubeconfig)
        capstan.create_repository("bitnami-new", chart_repo.url)
        name = f"stuck-{helm_bin.name}"
        capstan.create_release("bitnami-new/etcd", cluster="test122", namespace="default",
                               release_name=name, version="8.11.1")
        latest = kubesim.store.get("secrets", records.record_object_name(name, 1), "default")
        doc = records.decode_payload(records.payload_of(latest, "secret"))
        doc["version"] = 2
        doc["info"].update(status="pending-upgrade", description="Preparing upgrade",
                           last_deployed="2020-01-01T00:00:00Z")
        kubesim.store.create("secrets", records.record_object(
            doc, labels=latest["metadata"]["labels"]), "default")

        with pytest.raises(Aborted) as aborted:
            capstan.upgrade_release(name, "bitnami-new/etcd", version="8.11.2")
        assert "pending-upgrade" in aborted.value.message
        assert "2020-01-01T00:00:00Z" in aborted.value.message
        with pytest.raises(FailedPrecondition):  # not stuck for that long yet
            capstan.recover_release(name, "rollback", stuck_after_seconds=10 ** 9)
        recovered = capstan.recover_release(name, "rollback")
        assert (recovered.version, recovered.status) == (3, "deployed")
        history = capstan.get_release_history(name).revisions
        assert [(h.revision, h.status) for h in history] == [
            (1, "superseded"), (2, "failed"), (3, "deployed")]
        capstan.delete_release(name)
