"""The seed document's scenario through the `capstan` CLI, on the memory driver.

The climc command lines of `seed/release-api.zh.md`, with `climc` replaced by `capstan`:
create -> list -> show -> upgrade with a values file -> upgrade to another chart version ->
history -> rollback -> delete, against a chart repository served over HTTP from the project's
own sample charts. As in the seed, `bitnami-new` holds only etcd 8.11.1 at first (so no version
is given); 8.11.2 is published and the repository synced (`k8s-repo-sync`) before the upgrade to
it. Results are checked in the REST JSON shape (`--output json`) and, where a user reads them,
in the default tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle

from .runner import Result, capstan

R9 = {"image": {"tag": "3.5.8-debian-11-r9"}}


def test_seed_scenario_through_the_cli(
    capstan_server: ServerHandle,
    seed_repo: ChartRepoServer,
    fake_kubeconfig: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def climc(*argv: str) -> Result:
        """`capstan --debug ARGV...`, which must succeed; the seed runs climc with --debug."""
        result = capstan(capstan_server.grpc_target, "--debug", *argv)
        assert result.code == 0, result.stderr
        return result

    def json(*argv: str) -> Any:
        """The same, with `--output json`: the REST gateway's JSON, decoded."""
        return climc("--output", "json", *argv).json()

    # The seed assumes a cluster `test122` and a repository `bitnami-new`; register both.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(fake_kubeconfig)
    cluster = json("k8s-cluster-create", "test122", "--kubeconfig", str(kubeconfig))
    repo = json("k8s-repo-create", "bitnami-new", seed_repo.url)
    assert "test122" in climc("k8s-cluster-list").stdout
    assert "default" in climc("k8s-namespace-list", "--cluster", "test122").stdout

    # $ climc --debug k8s-release-create --cluster test122 --namespace default
    #     --name etcd-release bitnami-new/etcd
    release = json(
        "k8s-release-create", "--cluster", "test122", "--namespace", "default",
        "--name", "etcd-release", "bitnami-new/etcd",
    )
    assert (release["name"], release["cluster"], release["namespace"]) == (
        "etcd-release", "test122", "default"
    )
    assert (release["chart"], release["chart_version"], release["version"]) == (
        "etcd", "8.11.1", 1
    )
    assert (release["status"], release["type"]) == ("deployed", "external")
    assert release["cluster_id"] == cluster["id"]
    assert release["repo_id"] == repo["id"]
    assert release["external_id"] == f"{cluster['id']}/default/etcd-release"

    # $ climc --debug k8s-release-list --type external
    # $ climc --debug k8s-release-list --type external --name etcd-release
    # $ climc --debug k8s-release-list --cluster test122
    for filters in (
        ["--type", "external"],
        ["--type", "external", "--name", "etcd-release"],
        ["--cluster", "test122"],
    ):
        page = json("k8s-release-list", *filters)
        assert [r["id"] for r in page["releases"]] == [release["id"]], filters
        assert page["total"] == 1
    table = climc("k8s-release-list", "--cluster", "test122").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "NAMESPACE", "CLUSTER", "REVISION", "STATUS", "CHART", "APP", "VERSION", "UPDATED"
    ]
    assert table[1].split()[:6] == [
        "etcd-release", "default", "test122", "1", "deployed", "etcd-8.11.1"
    ]

    # $ climc --debug k8s-release-show etcd-release
    shown = json("k8s-release-show", "etcd-release")
    assert (shown["id"], shown["version"], shown["config"]) == (release["id"], 1, {})
    assert isinstance(shown["resources"], dict)

    # $ climc --debug k8s-chart-show bitnami-new etcd   (`jq .chart.chart.values`)
    chart = json("k8s-chart-show", "bitnami-new", "etcd")
    assert chart["chart"]["chart"]["values"]["image"]["tag"] == "3.5.8-debian-11-r8"

    # $ cat values.yaml
    # image:
    #   tag: "3.5.8-debian-11-r9"
    # $ climc --debug k8s-release-upgrade --values ./values.yaml etcd-release bitnami-new/etcd
    monkeypatch.chdir(tmp_path)
    Path("values.yaml").write_text('image:\n  tag: "3.5.8-debian-11-r9"\n')
    upgraded = json(
        "k8s-release-upgrade", "--values", "./values.yaml", "etcd-release", "bitnami-new/etcd"
    )
    assert (upgraded["version"], upgraded["chart_version"]) == (2, "8.11.1")
    assert upgraded["config"] == R9

    # etcd 8.11.2 is published to bitnami-new; then
    # $ climc --debug k8s-repo-sync bitnami-new
    seed_repo.publish_now("etcd-8.11.2")
    assert json("k8s-repo-sync", "bitnami-new")["id"] == repo["id"]

    # $ climc --debug k8s-release-upgrade --version 8.11.2 etcd-release bitnami-new/etcd
    upgraded = json(
        "k8s-release-upgrade", "--version", "8.11.2", "etcd-release", "bitnami-new/etcd"
    )
    assert (upgraded["version"], upgraded["chart_version"]) == (3, "8.11.2")
    assert upgraded["config"] == R9

    # $ climc --debug k8s-release-history etcd-release   (a bare JSON array)
    history = json("k8s-release-history", "etcd-release")
    assert isinstance(history, list)
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert [h["chart"] for h in history] == ["etcd-8.11.1", "etcd-8.11.1", "etcd-8.11.2"]
    assert all({"chart", "description", "revision", "status", "updated"} <= h.keys()
               for h in history)
    table = climc("k8s-release-history", "etcd-release").stdout.splitlines()
    assert [line.split()[0] for line in table] == ["REVISION", "1", "2", "3"]

    # $ climc --debug k8s-release-rollback etcd-release 2
    rolled_back = json("k8s-release-rollback", "etcd-release", "2")
    assert (rolled_back["version"], rolled_back["chart_version"]) == (4, "8.11.1")
    assert rolled_back["config"] == R9
    history = json("k8s-release-history", "etcd-release")
    assert (history[-1]["revision"], history[-1]["description"]) == (4, "Rollback to 2")

    # $ climc --debug k8s-release-delete etcd-release
    assert climc("k8s-release-delete", "etcd-release").stdout == (
        'release "etcd-release" uninstalled\n'
    )
    gone = capstan(capstan_server.grpc_target, "k8s-release-show", "etcd-release")
    assert (gone.code, gone.stderr.split(":")[:2]) == (4, ["Error", " NOT_FOUND"])
    assert json("k8s-release-list") == {
        "releases": [], "total": 0, "limit": 20, "offset": 0, "unreachable_clusters": []
    }


def test_wait_shows_the_outcome_against_the_server(
    capstan_server: ServerHandle, chart_repo: ChartRepoServer, fake_kubeconfig: str,
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(fake_kubeconfig)
    endpoint = capstan_server.grpc_target
    registered = capstan(endpoint, "k8s-cluster-create", "test122", "--kubeconfig", str(kubeconfig))
    assert registered.code == 0
    assert capstan(endpoint, "k8s-repo-create", "bitnami-new", chart_repo.url).code == 0

    created = capstan(
        endpoint, "k8s-release-create", "--wait", "--cluster", "test122", "--name",
        "etcd-release", "--version", "8.11.1", "bitnami-new/etcd",
    )
    upgraded = capstan(
        endpoint, "k8s-release-upgrade", "--wait", "--version", "8.11.2", "etcd-release",
        "bitnami-new/etcd",
    )

    assert (created.code, upgraded.code) == (0, 0), created.stderr + upgraded.stderr
    assert created.stderr.splitlines()[-1] == "etcd-release: deployed (revision 1) [100%]"
    assert upgraded.stderr.splitlines()[-1] == "etcd-release: deployed (revision 2) [100%]"
