"""Every row of `shared/kubeserver-wire.md`'s wire table, in the kubeserver dialect.

Each test sends the request exactly as climc sends it (`climc.py`) and checks that the answer
has the keys climc reads. Memory driver; the seed's cluster `test122` and repo `bitnami-new`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle
from kubeserver.climc import VALUES, Climc, ClimcError, register_cluster


@pytest.fixture
def climc(kubeserver: Callable[..., ServerHandle], climc_for: Callable[..., Climc],
          chart_repo: ChartRepoServer, fake_kubeconfig: str) -> Iterator[Climc]:
    server = kubeserver()
    register_cluster(server, "test122", fake_kubeconfig)
    client = climc_for(server)
    client.repo_create("bitnami-new", chart_repo.url)
    yield client


@pytest.fixture
def installed(climc: Climc) -> dict[str, Any]:
    return climc.release_create("bitnami-new/etcd", cluster="test122", namespace="default",
                                name="etcd-release", version="8.11.1")


def test_cluster_list(climc: Climc) -> None:
    rows = climc.cluster_list()
    assert climc.last is not None and climc.last.path == (
        "/kubeclusters?details=false&limit=20&offset=0&summary_stats=false")
    assert [row["name"] for row in rows] == ["test122"]


def test_namespace_list(climc: Climc) -> None:
    rows = climc.namespace_list("test122")
    assert "default" in [row["name"] for row in rows]


def test_repo_list(climc: Climc) -> None:
    rows = climc.repo_list()
    assert [(row["name"], row["type"]) for row in rows] == [("bitnami-new", "external")]


def test_repo_create_answers_the_wrapped_repo(climc: Climc, chart_repo: ChartRepoServer) -> None:
    repo = climc.repo_create("bitnami-new2", chart_repo.url)
    assert (repo["name"], repo["url"], repo["type"]) == ("bitnami-new2", chart_repo.url,
                                                          "external")


def test_chart_list_rows_nest_the_chart(climc: Climc) -> None:
    assert "bitnami-new/etcd" in climc.chart_list()
    _, body = climc.request("GET", "/charts", {"details": False, "limit": 20, "offset": 0,
                                               "summary_stats": False})
    row = next(r for r in body["charts"] if r["chart"]["name"] == "etcd")
    assert (row["repo"], row["type"]) == ("bitnami-new", "external")
    assert {"name", "version", "description"} <= row["chart"].keys()


def test_chart_show(climc: Climc) -> None:
    chart = climc.chart_show("bitnami-new", "etcd")
    assert chart["name"] == "etcd" and chart["repo"] == "bitnami-new"
    assert climc.chart_show("bitnami-new", "etcd", version="8.11.1")["version"] == "8.11.1"


def test_release_create(installed: dict[str, Any]) -> None:
    assert (installed["name"], installed["cluster"], installed["namespace"]) == (
        "etcd-release", "test122", "default")
    assert (installed["chart"], installed["chart_version"]) == ("etcd", "8.11.1")
    assert installed["repo"] == "bitnami-new" and "clusterID" not in installed


@pytest.mark.parametrize("filters", [{"type": "external"}, {"cluster": "test122"},
                                     {"cluster": "test122", "namespace": "default",
                                      "name": "etcd-release", "deployed": True}])
def test_release_list(climc: Climc, installed: dict[str, Any], filters: dict[str, Any]) -> None:
    rows = climc.release_list(**filters)
    assert [row["id"] for row in rows] == [installed["id"]]
    row = rows[0]
    assert (row["repo"], row["repo_id"], row["cluster"]) == (
        "bitnami-new", installed["repo_id"], "test122")
    assert {"namespace", "namespace_id", "chart", "chart_version", "type",
            "cluster_id", "status", "name", "id", "creationTimestamp", "created_at"} <= row.keys()


def test_release_list_type_internal_is_empty(climc: Climc, installed: dict[str, Any]) -> None:
    assert climc.release_list(type="internal") == []


def test_release_show_reads_resources(climc: Climc, installed: dict[str, Any]) -> None:
    # The memory driver creates no objects; the e2e test checks the records on kubesim.
    resources = climc.release_show("etcd-release")
    assert isinstance(resources, dict)
    scoped = climc.release_show("etcd-release", cluster="test122", namespace="default")
    assert scoped.keys() == resources.keys()


def test_release_show_fallback_list_finds_one_by_name(climc: Climc,
                                                      installed: dict[str, Any]) -> None:
    rows = climc._list("/releases", "releases", {"name": "etcd-release"})
    assert [row["name"] for row in rows] == ["etcd-release"]
    with pytest.raises(ClimcError) as error:
        climc.release_show("no-such-release")
    assert error.value.status == 0  # the 404, then the empty fallback list: "not found"


def test_release_upgrade_with_values(climc: Climc, installed: dict[str, Any]) -> None:
    release = climc.release_upgrade("etcd-release", values_json=VALUES)
    assert release["version"] == 2 and release["config"] == VALUES


def test_release_upgrade_version(climc: Climc, installed: dict[str, Any]) -> None:
    release = climc.release_upgrade("etcd-release", version="8.11.2", cluster="test122",
                                    namespace="default", reuse_values=True)
    assert (release["version"], release["chart_version"]) == (2, "8.11.2")


def test_release_history_is_wrapped(climc: Climc, installed: dict[str, Any]) -> None:
    climc.release_upgrade("etcd-release", values_json=VALUES)
    history = climc.release_history("etcd-release")
    assert [item["revision"] for item in history] == [1, 2]
    assert len(climc.release_history("etcd-release", cluster="test122", max=1)) == 1


def test_release_rollback(climc: Climc, installed: dict[str, Any]) -> None:
    climc.release_upgrade("etcd-release", values_json=VALUES)
    release = climc.release_rollback("etcd-release", 1, cluster="test122", namespace="default")
    assert release["version"] == 3 and release["description"] == "Rollback to 1"


@pytest.mark.parametrize("scope", [{}, {"cluster": "test122", "namespace": "default"}])
def test_release_delete_scope_in_body(climc: Climc, installed: dict[str, Any],
                                      scope: dict[str, str]) -> None:
    deleted = climc.release_delete("etcd-release", **scope)
    assert deleted["name"] == "etcd-release"
    assert climc.last is not None and climc.last.path == "/releases/etcd-release"
    assert climc.release_list() == []


def test_errors_have_kubeservers_body(climc: Climc) -> None:
    with pytest.raises(ClimcError) as error:
        climc.request("GET", "/releases/no-such-release")
    assert error.value.status == 404
    assert error.value.body["error"]["class"] == "NotFoundError"
    assert error.value.body["error"]["code"] == 404
    assert "no-such-release" in error.value.body["error"]["details"]
    with pytest.raises(ClimcError) as error:
        climc.request("GET", "/no-such-route")
    assert error.value.body["error"]["class"] == "NotFoundError"


def test_current_field_names(climc: Climc) -> None:
    """kubeserver's current create form: cluster_id/namespace_id/name, repo + chart, sets."""
    body = {"release": {"cluster_id": "test122", "namespace_id": "default", "name": "e2",
                        "repo": "bitnami-new", "chart": "etcd", "sets": {"image.tag": "x1"},
                        "unknown_field": 1}}
    release = climc._submit("POST", "/releases", "release", body)
    assert (release["name"], release["chart"]) == ("e2", "etcd")
    assert release["config"] == {"image": {"tag": "x1"}}
