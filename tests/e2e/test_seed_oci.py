"""The seed document's scenario, verbatim, with `bitnami-new` an OCI registry, on the real helm
3.17.2 and 4.1.4 against kubesim: etcd 8.11.1 is pushed to a real registry (Debian's
docker-registry) with the helm under test, registered as `oci://127.0.0.1:PORT/charts`; then
create, list, show with resources, upgrade with values, 8.11.2 pushed and the repository synced,
upgrade to 8.11.2, history, rollback to 2, delete. `test_seed_helm.py` is the same scenario on
an HTTP repository; this one checks in addition what only OCI has: the digest of the chart layer
each revision was installed from. Then a password-protected registry, on both helm majors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oci_registry import OCI_PASSWORD, OCI_USER
from test_seed_helm import (  # the fixtures and helpers of the HTTP scenario
    R8,
    R9,
    VALUES_YAML,
    helm_bin,  # noqa: F401 (fixture)
    kubesim,  # noqa: F401 (fixture)
    statefulset_image,
)

from capstan.client import CapstanClient, CapstanError, InvalidArgument, NotFound, to_dict
from capstan_server.drivers.base import LABEL_CHART_DIGEST
from kubesim.testing import KubeSimThread


def digest_of(archive: Path) -> str:
    """What a release records of the chart it was installed from (see LABEL_CHART_DIGEST)."""
    return hashlib.sha256(archive.read_bytes()).hexdigest()[:63]


def test_seed_scenario_on_oci(capstan_server_factory: Callable[..., Any], oci_registry: Any,
                              packaged_charts: dict[str, Path], kubesim: KubeSimThread,  # noqa: F811
                              helm_bin: Path) -> None:  # noqa: F811
    etcd1, etcd2 = packaged_charts["etcd-8.11.1"], packaged_charts["etcd-8.11.2"]
    oci_registry.push(helm_bin, etcd1)
    server = capstan_server_factory(driver="helm", helm_bin=helm_bin)
    with CapstanClient(server.grpc_target, timeout=120) as capstan:
        cluster = capstan.create_cluster("test122", kubesim.kubeconfig)
        # k8s-repo-create bitnami-new oci://HOST/charts --plain-http
        repo = capstan.create_repository("bitnami-new", oci_registry.url(), type="external",
                                         plain_http=True)
        assert (repo.url, repo.chart_count) == (oci_registry.url(), 1)

        # k8s-release-create --cluster test122 --namespace default --name etcd-release
        #   bitnami-new/etcd
        created = capstan.create_release("bitnami-new/etcd", cluster="test122",
                                         namespace="default", release_name="etcd-release")
        assert (created.name, created.chart, created.chart_version) == (
            "etcd-release", "etcd", "8.11.1")
        assert (created.status, created.version, created.type) == ("deployed", 1, "external")
        assert created.repo_id == repo.id and created.cluster_id == cluster.id
        assert created.chart_digest == digest_of(etcd1)
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R8}"
        # The source is on Helm's own record, as a label.
        (record,) = kubesim.store.list("secrets", "default", "owner=helm,name=etcd-release")
        assert record["metadata"]["labels"][LABEL_CHART_DIGEST] == digest_of(etcd1)

        # k8s-release-list --type external / --name etcd-release / --cluster test122
        for filters in ({"type": "external"}, {"type": "external", "name": "etcd-release"},
                        {"cluster": "test122"}):
            assert [r.id for r in capstan.list_releases(**filters).releases] == [created.id]

        # k8s-release-show etcd-release
        shown = to_dict(capstan.get_release("etcd-release"))
        assert (shown["id"], shown["version"], shown["status"]) == (created.id, 1, "deployed")
        resources = shown["resources"]
        assert {"k8s_service", "secret", "statefulset"} <= resources.keys()
        assert [s["name"] for s in resources["statefulset"]] == ["etcd-release"]

        # k8s-release-upgrade --values ./values.yaml etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd",
                                           values=VALUES_YAML)
        assert (upgraded.version, upgraded.chart_version) == (2, "8.11.1")
        assert to_dict(upgraded)["config"] == {"image": {"tag": R9}}
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"

        # etcd 8.11.2 is pushed to bitnami-new; k8s-repo-sync bitnami-new
        oci_registry.push(helm_bin, etcd2)
        with pytest.raises(NotFound):  # not seen before the sync
            capstan.upgrade_release("etcd-release", "bitnami-new/etcd", version="8.11.2")
        capstan.sync_repository("bitnami-new")

        # k8s-release-upgrade --version 8.11.2 etcd-release bitnami-new/etcd
        upgraded = capstan.upgrade_release("etcd-release", "bitnami-new/etcd",
                                           version="8.11.2")
        assert (upgraded.version, upgraded.chart_version) == (3, "8.11.2")
        assert to_dict(upgraded)["config"] == {"image": {"tag": R9}}
        assert upgraded.chart_digest == digest_of(etcd2)

        # k8s-release-history etcd-release
        history = capstan.get_release_history("etcd-release").revisions
        assert [(h.revision, h.chart, h.status) for h in history] == [
            (1, "etcd-8.11.1", "superseded"), (2, "etcd-8.11.1", "superseded"),
            (3, "etcd-8.11.2", "deployed")]

        # k8s-release-rollback etcd-release 2
        rolled = capstan.rollback_release("etcd-release", 2)
        assert (rolled.version, rolled.chart_version) == (4, "8.11.1")
        assert rolled.chart_digest == digest_of(etcd1)  # helm copies revision 2's labels
        assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"

        # k8s-release-delete etcd-release
        capstan.delete_release("etcd-release")
        with pytest.raises(NotFound):
            capstan.get_release("etcd-release")
        assert kubesim.store.try_get("statefulsets", "etcd-release", "default") is None
        assert kubesim.store.list("secrets", "default", "owner=helm") == []


def test_password_protected_registry_on_helm(
        capstan_server_factory: Callable[..., Any], oci_registry_auth: Any,
        packaged_charts: dict[str, Path], kubesim: KubeSimThread,  # noqa: F811
        helm_bin: Path) -> None:  # noqa: F811
    oci_registry_auth.push(helm_bin, packaged_charts["etcd-8.11.1"])
    server = capstan_server_factory(driver="helm", helm_bin=helm_bin)
    name = f"private-{helm_bin.name}"
    with CapstanClient(server.grpc_target, timeout=120) as capstan:
        capstan.create_cluster("test122", kubesim.kubeconfig)
        with pytest.raises(CapstanError, match="refused the credentials"):
            capstan.create_repository("private", oci_registry_auth.url(), plain_http=True,
                                      username=OCI_USER, password="wrong")
        assert capstan.list_repositories().total == 0
        capstan.create_repository("private", oci_registry_auth.url(), plain_http=True,
                                  username=OCI_USER, password=OCI_PASSWORD, charts=["etcd"])
        assert capstan.get_chart("private/etcd").chart.readme
        created = capstan.create_release("private/etcd", cluster="test122",
                                         namespace="default", release_name=name)
        assert (created.status, created.chart_version) == ("deployed", "8.11.1")
        with pytest.raises(InvalidArgument):  # `latest` is not a version
            capstan.upgrade_release(name, "private/etcd", version="latest")
        capstan.delete_release(name)
