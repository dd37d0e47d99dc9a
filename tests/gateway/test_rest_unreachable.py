"""ListReleases over REST while a cluster is unreachable: `unreachable_clusters` is always in the
page (`[]` normally), the reachable clusters' releases are listed with 200, and a call that
cannot be answered is 503 UNAVAILABLE naming the cluster. Deleting the cluster, or a repository,
is 503 then too, unless `?force=true` is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.memory import MemoryDriver
from capstan_server.threaded import ServerHandle

if TYPE_CHECKING:
    from conftest import Rest


def test_the_release_page_names_unreachable_clusters(
    capstan_server_factory: Callable[..., ServerHandle],
    rest_to: Callable[[ServerHandle], Rest],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> None:
    driver = MemoryDriver()
    rest = rest_to(capstan_server_factory(driver=driver))
    cluster_ids = {}
    for name in ("test122", "far"):
        answer = rest.post("/api/clusters", {"name": name, "kubeconfig": fake_kubeconfig})
        assert answer.status == 200, answer.text
        cluster_ids[name] = answer.body["id"]
    assert rest.post("/api/repos", {"name": "bitnami-new", "url": chart_repo.url}).status == 200
    for cluster, release in (("test122", "etcd-near"), ("far", "etcd-far")):
        answer = rest.post("/api/releases", {
            "chart_name": "bitnami-new/etcd", "cluster": cluster, "namespace": "default",
            "release_name": release, "version": "8.11.1",
        })
        assert answer.status == 200, answer.text

    answer = rest.get("/api/releases")
    assert answer.status == 200, answer.text
    assert set(answer.body) == {"releases", "total", "limit", "offset", "unreachable_clusters"}
    assert (answer.body["total"], answer.body["unreachable_clusters"]) == (2, [])

    driver.unreachable.add(cluster_ids["far"])

    answer = rest.get("/api/releases?limit=20&offset=0")
    assert answer.status == 200, answer.text
    assert [r["name"] for r in answer.body["releases"]] == ["etcd-near"]
    assert answer.body["total"] == 1
    (down,) = answer.body["unreachable_clusters"]
    assert set(down) == {"name", "id", "message", "stale_seconds", "last_synced"}
    # Nothing known of its last state (the memory driver keeps none): its releases are missing.
    assert (down["stale_seconds"], down["last_synced"]) == (0, None)
    assert (down["name"], down["id"]) == ("far", cluster_ids["far"])
    assert down["message"].startswith("cluster far is unreachable")

    answer = rest.get("/api/releases?cluster=far")
    assert (answer.status, answer.body["status"]) == (503, "UNAVAILABLE")
    assert "cluster far is unreachable" in answer.body["message"]

    answer = rest.get("/api/releases/etcd-near")
    assert (answer.status, answer.body["status"]) == (503, "UNAVAILABLE")
    assert "cluster 'far' could not be reached" in answer.body["message"]
    assert "--cluster test122" in answer.body["message"]
    assert rest.get("/api/releases/etcd-near?cluster=test122").status == 200

    driver.unreachable.clear()
    answer = rest.get("/api/releases")
    assert (answer.body["total"], answer.body["unreachable_clusters"]) == (2, [])


def test_a_cluster_and_a_repository_are_deleted_with_force_while_unreachable(
    capstan_server_factory: Callable[..., ServerHandle],
    rest_to: Callable[[ServerHandle], Rest],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> None:
    driver = MemoryDriver()
    rest = rest_to(capstan_server_factory(driver=driver))
    for name in ("test122", "far"):
        answer = rest.post("/api/clusters", {"name": name, "kubeconfig": fake_kubeconfig})
        assert answer.status == 200, answer.text
    far_id = answer.body["id"]
    assert rest.post("/api/repos", {"name": "bitnami-new", "url": chart_repo.url}).status == 200
    driver.unreachable.add(far_id)

    for path in ("/api/repos/bitnami-new", "/api/clusters/far"):
        for query in ("", "?force=false"):
            answer = rest.delete(path + query)
            assert (answer.status, answer.body["status"]) == (503, "UNAVAILABLE"), path + query
            assert "--force" in answer.body["message"]

    answer = rest.delete("/api/repos/bitnami-new?force=true")
    assert answer.status == 200, answer.text
    assert answer.body["repo"]["name"] == "bitnami-new"
    answer = rest.delete(f"/api/clusters/{far_id}?force=true")
    assert answer.status == 200, answer.text
    assert answer.body["cluster"]["id"] == far_id

    assert rest.get("/api/repos").body["total"] == 0
    assert [c["name"] for c in rest.get("/api/clusters").body["clusters"]] == ["test122"]
    answer = rest.delete("/api/clusters/test122?force=maybe")
    assert (answer.status, answer.body["status"]) == (400, "INVALID_ARGUMENT")
