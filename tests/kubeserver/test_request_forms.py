"""kubeserver's request forms are accepted in the documented dialect too, whose answers stay
bare (`seed/release-api.zh.md`); truly unknown parameters are still refused there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle
from kubeserver.climc import VALUES, register_cluster


def call(server: ServerHandle, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.http_url + path, method=method, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


LIST = "details=false&limit=20&offset=0&summary_stats=false&scope=system&order_by=name"


def test_documented_dialect_accepts_kubeserver_forms(
    capstan_server: ServerHandle, chart_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    server = capstan_server
    register_cluster(server, "test122", fake_kubeconfig)
    status, repo = call(server, "POST", "/api/repos",
                        {"repo": {"name": "bitnami-new", "type": "external",
                                  "url": chart_repo.url}})
    assert status == 200 and repo["name"] == "bitnami-new"  # bare answer
    status, body = call(server, "GET", f"/api/kubeclusters?{LIST}")
    assert status == 200 and [c["name"] for c in body["clusters"]] == ["test122"]
    status, body = call(server, "GET", f"/api/charts?{LIST}")
    assert status == 200 and body["charts"]

    status, release = call(server, "POST", "/api/releases", {"release": {
        "cluster_id": "test122", "namespace_id": "default", "name": "etcd-release",
        "repo": "bitnami-new", "chart": "etcd", "version": "8.11.1", "timeout": 600}})
    assert status == 200, release
    assert (release["name"], release["chart"], release["clusterID"]) == (
        "etcd-release", "etcd", release["cluster_id"])

    status, body = call(server, "GET", f"/api/releases?all=true&{LIST}&type=external")
    assert status == 200 and [r["name"] for r in body["releases"]] == ["etcd-release"]

    status, upgraded = call(server, "POST", "/api/releases/etcd-release/upgrade",
                            {"release": {"release_name": "etcd-release", "timeout": 600,
                                         "values_json": VALUES}})
    assert status == 200 and upgraded["version"] == 2 and upgraded["config"] == VALUES
    status, history = call(server, "GET", "/api/releases/etcd-release/history")
    assert status == 200 and [h["revision"] for h in history] == [1, 2]  # bare array

    status, deleted = call(server, "DELETE", "/api/releases/etcd-release",
                           {"release": {"cluster": "test122", "namespace": "default"}})
    assert status == 200 and deleted["release"]["name"] == "etcd-release"


def test_documented_dialect_still_refuses_unknown_parameters(
    capstan_server: ServerHandle,
) -> None:
    status, body = call(capstan_server, "GET", "/api/releases?no_such_option=1")
    assert status == 400 and body["status"] == "INVALID_ARGUMENT"
    status, body = call(capstan_server, "POST", "/api/releases",
                        {"release": {"chart_name": "x/y", "no_such_field": 1}})
    assert status == 400 and "no_such_field" in body["message"]
