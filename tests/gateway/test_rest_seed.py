"""The seed document's scenario over REST, with plain HTTP, on the memory driver.

create -> list -> show -> upgrade with values -> upgrade to another chart version -> history ->
rollback -> delete, with the request bodies of `seed/release-api.zh.md`, against a chart
repository served over HTTP from the project's own sample charts. As in the seed, `bitnami-new`
holds only etcd 8.11.1 at first (so no version is given); 8.11.2 is published and the repository
synced (`POST /api/repos/{id}/sync`) before the upgrade to it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from capstan_server.dev.chart_repo import ChartRepoServer

if TYPE_CHECKING:
    from conftest import Rest

#: The keys of the documented release JSON (the seed's `GET /api/releases/$id` answer).
RELEASE_KEYS = {
    "chart", "chart_version", "cluster", "cluster_id", "config", "created_at", "external_id",
    "id", "is_emulated", "name", "namespace", "namespace_id", "progress", "project_domain",
    "repo_id", "resources", "status", "type", "version",
}


def test_seed_scenario_over_rest(
    rest: Rest, seed_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    # The seed assumes a cluster `test122` and a repository `bitnami-new`; register both.
    answer = rest.post("/api/clusters", {"name": "test122", "kubeconfig": fake_kubeconfig})
    assert answer.status == 200, answer.text
    cluster_id = answer.body["id"]
    answer = rest.post("/api/repos", {"name": "bitnami-new", "url": seed_repo.url,
                                      "type": "external"})
    assert answer.status == 200, answer.text
    repo_id = answer.body["id"]

    # Create: POST /api/releases with the seed's body.
    answer = rest.post("/api/releases", {
        "chart_name": "bitnami-new/etcd",
        "cluster": "test122",
        "namespace": "default",
        "release_name": "etcd-release",
    })
    assert answer.status == 200, answer.text
    release = answer.body
    assert release.keys() >= RELEASE_KEYS
    assert uuid.UUID(release["id"])
    assert (release["name"], release["cluster"], release["namespace"]) == (
        "etcd-release", "test122", "default")
    assert (release["chart"], release["chart_version"]) == ("etcd", "8.11.1")
    assert (release["status"], release["version"], release["type"]) == ("deployed", 1, "external")
    assert release["cluster_id"] == cluster_id
    assert release["repo_id"] == repo_id
    assert release["external_id"] == f"{cluster_id}/default/etcd-release"
    assert release["is_emulated"] is False
    assert release["config"] == {}
    release_id = release["id"]

    # List: GET /api/releases?type=external&name=etcd-release
    answer = rest.get("/api/releases?type=external&name=etcd-release")
    assert answer.status == 200, answer.text
    assert answer.body["total"] == 1
    assert [r["id"] for r in answer.body["releases"]] == [release_id]
    assert {"limit", "offset"} <= answer.body.keys()
    answer = rest.get("/api/releases?cluster=test122&details=false&limit=20&offset=0")
    assert [r["name"] for r in answer.body["releases"]] == ["etcd-release"]

    # Show: GET /api/releases/etcd-release (by name), and by id.
    answer = rest.get("/api/releases/etcd-release")
    assert answer.status == 200, answer.text
    assert answer.body.keys() >= RELEASE_KEYS
    assert (answer.body["id"], answer.body["version"]) == (release_id, 1)
    assert isinstance(answer.body["resources"], dict)
    assert rest.get(f"/api/releases/{release_id}").body["name"] == "etcd-release"

    # Upgrade with values: PUT /api/releases/etcd-release with the seed's values_json.
    answer = rest.put("/api/releases/etcd-release", {
        "chart_name": "bitnami-new/etcd",
        "release_name": "etcd-release",
        "values_json": {"image": {"tag": "3.5.8-debian-11-r9"}},
    })
    assert answer.status == 200, answer.text
    assert (answer.body["version"], answer.body["chart_version"]) == (2, "8.11.1")
    assert answer.body["config"] == {"image": {"tag": "3.5.8-debian-11-r9"}}

    # etcd 8.11.2 is published to bitnami-new; sync: POST /api/repos/{id}/sync
    seed_repo.publish_now("etcd-8.11.2")
    answer = rest.post(f"/api/repos/{repo_id}/sync", {})
    assert answer.status == 200, answer.text
    assert answer.body["id"] == repo_id

    # Upgrade to another chart version: PUT with version 8.11.2; the values are kept.
    answer = rest.put("/api/releases/etcd-release", {
        "chart_name": "bitnami-new/etcd",
        "release_name": "etcd-release",
        "version": "8.11.2",
    })
    assert answer.status == 200, answer.text
    assert (answer.body["version"], answer.body["chart_version"]) == (3, "8.11.2")
    assert answer.body["config"] == {"image": {"tag": "3.5.8-debian-11-r9"}}

    # History: GET /api/releases/etcd-release/history answers a bare JSON array.
    answer = rest.get("/api/releases/etcd-release/history")
    assert answer.status == 200, answer.text
    history = answer.body
    assert isinstance(history, list)
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert [h["chart"] for h in history] == ["etcd-8.11.1", "etcd-8.11.1", "etcd-8.11.2"]
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]
    assert all({"chart", "description", "revision", "status", "updated"} <= h.keys()
               for h in history)

    # Rollback: POST /api/releases/etcd-release/rollback {"revision": 2}
    answer = rest.post("/api/releases/etcd-release/rollback", {"revision": 2})
    assert answer.status == 200, answer.text
    assert (answer.body["version"], answer.body["chart_version"]) == (4, "8.11.1")
    assert answer.body["config"] == {"image": {"tag": "3.5.8-debian-11-r9"}}
    last = rest.get("/api/releases/etcd-release/history").body[-1]
    assert (last["revision"], last["description"]) == (4, "Rollback to 2")

    # Delete: DELETE /api/releases/etcd-release; the release and its history are gone.
    answer = rest.delete("/api/releases/etcd-release")
    assert answer.status == 200, answer.text
    assert rest.get("/api/releases/etcd-release").status == 404
    assert rest.get("/api/releases").body["total"] == 0
