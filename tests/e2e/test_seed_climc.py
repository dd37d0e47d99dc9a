"""The seed scenario in climc's command forms, on the real helm 3 and 4 against kubesim.

A Capstan server under `--rest-dialect kubeserver` on the `helm` driver with a policy that takes
Keystone tokens; the climc-compatible client (`tests/kubeserver/climc.py`) logs in to the test
Keystone (`tests/keystone_server.py`), finds the `k8s` endpoint in the catalog and runs: cluster
list, namespace list, repo list,
chart list, chart show, release create, the three list forms, show, upgrade with values,
upgrade --version, history, rollback 2, delete. As in the seed, `bitnami-new` holds only etcd
8.11.1 at first; 8.11.2 is published and the repository synced before the upgrade to it.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from keystone_server import KeystoneUser, LoopbackKeystone, run_keystone
from kubeserver.climc import VALUES, Climc, keystone_login, register_cluster

from capstan_server.auth.options import SecurityOptions
from capstan_server.dev.chart_repo import ChartRepoServer
from kubesim.testing import KubeSimThread, running_kubesim

TOOLS_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin"
R8, R9 = "3.5.8-debian-11-r8", "3.5.8-debian-11-r9"


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


def sync_repo(base_url: str, repo_id: str, token: str) -> None:
    """`POST /api/repos/{id}/sync` (set-up: the wire table has no repo sync)."""
    request = urllib.request.Request(f"{base_url}/api/repos/{repo_id}/sync", method="POST",
                                     data=b"{}", headers={"Content-Type": "application/json",
                                                          "X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200


def test_seed_scenario_in_climc_forms(capstan_server_factory: Callable[..., Any],
                                      seed_repo: ChartRepoServer, kubesim: KubeSimThread,
                                      helm_bin: Path, tmp_path: Path) -> None:
    users = {"admin": KeystoneUser("admin-pw", {"system": ["admin"]})}
    with run_keystone(LoopbackKeystone(users=users)) as keystone:
        policy = tmp_path / "policy.yaml"
        policy.write_text(f'keystone: {{url: "{keystone.url}"}}\nsubjects:\n'
                          "  - {keystone_project: system, keystone_roles: [admin], role: admin}\n")
        server = capstan_server_factory(driver="helm", helm_bin=helm_bin,
                                        rest_dialect="kubeserver",
                                        security=SecurityOptions(auth_policy=policy))
        keystone.k8s_url = server.http_url + "/api"
        token, endpoint = keystone_login(keystone.url, "admin", "admin-pw", "system")
        register_cluster(server, "test122", kubesim.kubeconfig, token=token)
        scenario(Climc(endpoint, token), server.http_url, seed_repo, kubesim)


def scenario(climc: Climc, base_url: str, seed_repo: ChartRepoServer,
             kubesim: KubeSimThread) -> None:

    assert [row["name"] for row in climc.cluster_list()] == ["test122"]
    assert "default" in [row["name"] for row in climc.namespace_list("test122")]
    repo = climc.repo_create("bitnami-new", seed_repo.url)
    assert [row["name"] for row in climc.repo_list()] == ["bitnami-new"]
    assert "bitnami-new/etcd" in climc.chart_list()
    assert climc.chart_show("bitnami-new", "etcd")["version"] == "8.11.1"

    created = climc.release_create("bitnami-new/etcd", cluster="test122", namespace="default",
                                   name="etcd-release")
    assert (created["name"], created["chart_version"], created["status"]) == (
        "etcd-release", "8.11.1", "deployed")
    assert created["repo"] == "bitnami-new"
    assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R8}"

    for filters in ({"type": "external"}, {"cluster": "test122"},
                    {"cluster": "test122", "name": "etcd-release"}):
        rows = climc.release_list(**filters)
        assert [(r["name"], r["repo"], r["cluster"]) for r in rows] == [
            ("etcd-release", "bitnami-new", "test122")], filters

    resources = climc.release_show("etcd-release")
    assert {"statefulset", "k8s_service"} <= resources.keys(), resources.keys()
    # Flat records per object (the charts issue's summaries), as kubeserver's table prints them.
    assert [(item["name"], item["namespace"]) for item in resources["statefulset"]] == [
        ("etcd-release", "default")]
    assert all("metadata" not in item for items in resources.values() for item in items)

    upgraded = climc.release_upgrade("etcd-release", values_json=VALUES)
    assert (upgraded["version"], upgraded["config"]) == (2, VALUES)
    assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"

    seed_repo.publish_now("etcd-8.11.2")
    sync_repo(base_url, repo["id"], climc.token)
    upgraded = climc.release_upgrade("etcd-release", version="8.11.2")
    assert (upgraded["version"], upgraded["chart_version"]) == (3, "8.11.2")

    history = climc.release_history("etcd-release")
    assert [item["revision"] for item in history] == [1, 2, 3]
    assert json.dumps(history)  # climc prints it as YAML

    rolled = climc.release_rollback("etcd-release", 2)
    assert (rolled["version"], rolled["chart_version"]) == (4, "8.11.1")
    assert statefulset_image(kubesim) == f"docker.io/bitnami/etcd:{R9}"

    deleted = climc.release_delete("etcd-release", cluster="test122", namespace="default")
    assert deleted["name"] == "etcd-release"
    assert climc.release_list() == []
    assert kubesim.store.try_get("statefulsets", "etcd-release", "default") is None
