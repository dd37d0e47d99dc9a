"""The HTTP surface: auth, discovery, OpenAPI, bodies, lists, watches, faults, TLS, restarts."""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from kubesim.protobuf_codec import encode_k8s_protobuf
from kubesim.testing import KubeSimThread, running_kubesim


def call(
    sim: KubeSimThread,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    token: str | None = "default",
    timeout: float = 10,
) -> tuple[int, Any, dict[str, str]]:
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(sim.url + path, data=data, method=method)
    req.add_header("Content-Type", ctype)
    req.add_header("Accept", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {sim.token if token == 'default' else token}")
    context = None
    if sim.ca_pem:
        context = ssl.create_default_context(cadata=sim.ca_pem.decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, headers = err.read(), err.code, dict(err.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, parsed, headers


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": {"k": name}}


CMS = "/api/v1/namespaces/default/configmaps"


def test_auth(kubesim: KubeSimThread) -> None:
    status, body, _ = call(kubesim, "GET", "/api/v1/namespaces", token="wrong")
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    assert call(kubesim, "GET", "/api/v1/namespaces")[0] == 200
    # client-go sends no credentials over plain HTTP, so no header at all is let in there
    assert call(kubesim, "GET", "/api/v1/namespaces", token=None)[0] == 200


def test_tls_and_token_required(kubesim_tls: KubeSimThread) -> None:
    sim = kubesim_tls
    assert sim.url.startswith("https://127.0.0.1:")
    config = yaml.safe_load(sim.kubeconfig)
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]
    assert config["users"][0]["user"]["token"] == sim.token
    assert call(sim, "GET", "/version")[0] == 200
    assert call(sim, "GET", "/version", token=None)[0] == 401
    assert call(sim, "GET", "/healthz", token=None)[0] == 200


def test_discovery_documents(kubesim: KubeSimThread) -> None:
    _, version, _ = call(kubesim, "GET", "/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    _, api, _ = call(kubesim, "GET", "/api")
    assert api["versions"] == ["v1"]
    _, core, _ = call(kubesim, "GET", "/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["namespaced"]
    assert not by_name["namespaces"]["namespaced"]
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert "watch" in by_name["secrets"]["verbs"]
    _, groups, headers = call(kubesim, "GET", "/apis")
    assert headers["Content-Type"].startswith("application/json")
    names = [g["name"] for g in groups["groups"]]
    for group in ("apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
                  "autoscaling", "apiextensions.k8s.io"):
        assert group in names
    _, apps, _ = call(kubesim, "GET", "/apis/apps/v1")
    kinds = {r["name"]: r["kind"] for r in apps["resources"]}
    assert kinds["deployments"] == "Deployment" and kinds["deployments/scale"] == "Scale"
    assert call(kubesim, "GET", "/apis/nope/v1")[0] == 404


def test_openapi(kubesim: KubeSimThread) -> None:
    status, body, headers = call(kubesim, "GET", "/openapi/v2")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert body.startswith(b"\n\x032.0")
    assert call(kubesim, "GET", "/openapi/v3")[1] == {"paths": {}}


def test_crud_and_status_errors(kubesim: KubeSimThread) -> None:
    status, created, _ = call(kubesim, "POST", CMS, cm("a"))
    assert status == 201 and created["metadata"]["uid"]
    status, err, _ = call(kubesim, "POST", CMS, cm("a"))
    assert status == 409 and err["reason"] == "AlreadyExists"
    assert err["details"] == {"name": "a", "kind": "configmaps"}
    assert err["apiVersion"] == "v1" and err["status"] == "Failure"
    status, err, _ = call(kubesim, "GET", CMS + "/missing")
    assert status == 404 and err["message"] == 'configmaps "missing" not found'
    status, err, _ = call(kubesim, "POST", "/api/v1/namespaces/ghost/configmaps", cm("x"))
    assert status == 404 and err["details"]["kind"] == "namespaces"
    stale = dict(created, data={"k": "new"})
    assert call(kubesim, "PUT", CMS + "/a", stale)[0] == 200
    status, err, _ = call(kubesim, "PUT", CMS + "/a", stale)
    assert status == 409 and err["reason"] == "Conflict"
    status, body, _ = call(kubesim, "DELETE", CMS + "/a")
    assert status == 200 and body["status"] == "Success"
    assert call(kubesim, "DELETE", CMS + "/a")[0] == 404


def test_dry_run(kubesim: KubeSimThread) -> None:
    assert call(kubesim, "POST", CMS + "?dryRun=All", cm("dry"))[0] == 201
    assert call(kubesim, "GET", CMS + "/dry")[0] == 404
    call(kubesim, "POST", CMS, cm("real"))
    assert call(kubesim, "DELETE", CMS + "/real?dryRun=All")[0] == 200
    patch = {"data": {"k": "changed"}}
    _, out, _ = call(kubesim, "PATCH", CMS + "/real?dryRun=All", patch,
                     "application/merge-patch+json")
    assert out["data"]["k"] == "changed"
    assert call(kubesim, "GET", CMS + "/real")[1]["data"]["k"] == "real"


def test_protobuf_bodies(kubesim: KubeSimThread) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "sh.helm.release.v1.r.v1", "labels": {"owner": "helm"}},
              "data": {"release": "aGVsbG8="}, "type": "helm.sh/release.v1"}
    status, body, _ = call(kubesim, "POST", "/api/v1/namespaces/default/secrets",
                           encode_k8s_protobuf(secret), "application/vnd.kubernetes.protobuf")
    assert status == 201 and body["data"] == {"release": "aGVsbG8="}
    assert body["metadata"]["labels"] == {"owner": "helm"}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "made-by-proto"}}
    status, body, _ = call(kubesim, "POST", "/api/v1/namespaces", encode_k8s_protobuf(ns),
                           "application/vnd.kubernetes.protobuf")
    assert status == 201 and body["status"]["phase"] == "Active"


def test_list_selectors_and_pagination(kubesim: KubeSimThread) -> None:
    for i in range(7):
        call(kubesim, "POST", CMS, cm(f"c{i}", parity="even" if i % 2 == 0 else "odd"))
    _, listed, _ = call(kubesim, "GET", CMS + "?labelSelector=parity%3Deven")
    assert listed["kind"] == "ConfigMapList" and listed["apiVersion"] == "v1"
    assert int(listed["metadata"]["resourceVersion"]) > 0
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c0", "c2", "c4", "c6"]
    _, odd, _ = call(kubesim, "GET", CMS + "?labelSelector=parity+notin+%28even%29")
    assert len(odd["items"]) == 3
    _, named, _ = call(kubesim, "GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Dc3")
    assert [i["metadata"]["name"] for i in named["items"]] == ["c3"]
    names: list[str] = []
    path = CMS + "?limit=3"
    while True:
        _, page, _ = call(kubesim, "GET", path)
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        path = CMS + f"?limit=3&continue={token}"
    assert names == [f"c{i}" for i in range(7)]


def test_watch_stream(kubesim: KubeSimThread) -> None:
    _, first, _ = call(kubesim, "POST", CMS, cm("w0"))
    rv = first["metadata"]["resourceVersion"]
    events: list[dict[str, Any]] = []

    def watch() -> None:
        req = urllib.request.Request(
            f"{kubesim.url}{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=2"
            "&allowWatchBookmarks=true"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            for line in resp:
                events.append(json.loads(line))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    call(kubesim, "POST", CMS, cm("w1"))
    call(kubesim, "PATCH", CMS + "/w1", {"data": {"k": "2"}}, "application/merge-patch+json")
    call(kubesim, "DELETE", CMS + "/w1")
    started = time.monotonic()
    thread.join(10)
    assert time.monotonic() - started < 5, "the watch ends at timeoutSeconds"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")
    ]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_initial_events_and_selector(kubesim: KubeSimThread) -> None:
    call(kubesim, "POST", CMS, cm("keep", app="x"))
    call(kubesim, "POST", CMS, cm("skip", app="y"))
    req = urllib.request.Request(
        f"{kubesim.url}{CMS}?watch=true&labelSelector=app%3Dx&timeoutSeconds=1"
        "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        events = [json.loads(line) for line in resp]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "keep"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


def test_patch_types_and_apply(kubesim_bare: KubeSimThread) -> None:
    kubesim = kubesim_bare
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}},
    }
    path = "/apis/apps/v1/namespaces/default/deployments"
    apply = "application/apply-patch+yaml"
    status, out, _ = call(kubesim, "PATCH", path + "/web?fieldManager=me",
                          yaml.safe_dump(deploy).encode(), apply)
    assert status == 201 and out["metadata"]["managedFields"][0]["manager"] == "me"
    status, out, _ = call(kubesim, "PATCH", path + "/web", {"spec": {"replicas": 3}},
                          "application/strategic-merge-patch+json")
    assert status == 200 and out["spec"]["replicas"] == 3 and out["metadata"]["generation"] == 2
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "n:2"}]
    status, out, _ = call(kubesim, "PATCH", path + "/web", patch, "application/json-patch+json")
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "n:2"
    # re-applying the old image conflicts with the json-patch writer's ownership
    status, err, _ = call(kubesim, "PATCH", path + "/web?fieldManager=me",
                          yaml.safe_dump(deploy).encode(), apply)
    assert status == 409 and err["reason"] == "Conflict"
    status, out, _ = call(kubesim, "PATCH", path + "/web?fieldManager=me&force=true",
                          yaml.safe_dump(deploy).encode(), apply)
    assert status == 200 and out["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    status, out, _ = call(kubesim, "PATCH", path + "/web/status",
                          {"status": {"replicas": 3}}, "application/merge-patch+json")
    assert status == 200 and out["status"] == {"replicas": 3}
    _, scale, _ = call(kubesim, "GET", path + "/web/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    call(kubesim, "PATCH", path + "/web/scale", {"spec": {"replicas": 5}},
         "application/merge-patch+json")
    assert call(kubesim, "GET", path + "/web")[1]["spec"]["replicas"] == 5


def test_delete_collection_and_namespace_removal(kubesim: KubeSimThread) -> None:
    call(kubesim, "POST", "/api/v1/namespaces", {"metadata": {"name": "tmp"}})
    for i in range(3):
        call(kubesim, "POST", "/api/v1/namespaces/tmp/configmaps", cm(f"d{i}", grp="a"))
    call(kubesim, "POST", "/api/v1/namespaces/tmp/configmaps", cm("other"))
    status, deleted, _ = call(kubesim, "DELETE",
                              "/api/v1/namespaces/tmp/configmaps?labelSelector=grp%3Da")
    assert status == 200 and len(deleted["items"]) == 3
    status, ns, _ = call(kubesim, "DELETE", "/api/v1/namespaces/tmp")
    assert status == 200 and ns["status"]["phase"] == "Terminating"
    deadline = time.monotonic() + 5
    while call(kubesim, "GET", "/api/v1/namespaces/tmp")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert kubesim.store.list("configmaps", "tmp") == []


def test_faults_from_python_and_admin_path(kubesim: KubeSimThread) -> None:
    kubesim.faults.fail("create", "/api/v1/namespaces/*/configmaps", 503, count=2)
    assert call(kubesim, "POST", CMS, cm("f1"))[0] == 503
    status, err, _ = call(kubesim, "POST", CMS, cm("f1"))
    assert status == 503 and err["reason"] == "ServiceUnavailable"
    assert call(kubesim, "POST", CMS, cm("f1"))[0] == 201
    status, rule, _ = call(kubesim, "POST", "/_kubesim/faults",
                           {"verb": "get", "path": "re:/configmaps/f1$", "latency": 0.3})
    assert status == 201
    started = time.monotonic()
    assert call(kubesim, "GET", CMS + "/f1")[0] == 200
    assert time.monotonic() - started >= 0.3
    assert call(kubesim, "GET", "/_kubesim/faults")[1]["rules"][0]["id"] == rule["id"]
    assert call(kubesim, "GET", "/_kubesim/faults", token="bad")[0] == 401
    call(kubesim, "DELETE", "/_kubesim/faults")
    assert kubesim.faults.rules() == []


def test_stop_and_restart_keep_objects_and_port(kubesim: KubeSimThread) -> None:
    call(kubesim, "POST", CMS, cm("persist"))
    url = kubesim.url
    kubesim.stop()
    try:
        call(kubesim, "GET", CMS + "/persist", timeout=2)
        raise AssertionError("the server should be down")
    except urllib.error.URLError:
        pass
    kubesim.start()
    assert kubesim.url == url
    assert call(kubesim, "GET", CMS + "/persist")[0] == 200


def test_kubeconfig_file_and_snapshot(kubesim: KubeSimThread) -> None:
    config = yaml.safe_load(Path(kubesim.kubeconfig_path).read_text())
    assert config["clusters"][0]["cluster"]["server"] == kubesim.url
    call(kubesim, "POST", CMS, cm("snap"))
    _, snap, _ = call(kubesim, "GET", "/_kubesim/snapshot")
    with tempfile.TemporaryDirectory() as tmp, running_kubesim(workdir=tmp) as other:
        assert call(other, "PUT", "/_kubesim/snapshot", snap)[0] == 200
        assert call(other, "GET", CMS + "/snap")[0] == 200


def test_crd_served_over_http(kubesim: KubeSimThread) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.com"},
           "spec": {"group": "example.com", "scope": "Cluster",
                    "names": {"plural": "gadgets", "kind": "Gadget", "singular": "gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "subresources": {"status": {}}}]}}
    assert call(kubesim, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                crd)[0] == 201
    _, groups, _ = call(kubesim, "GET", "/apis")
    assert "example.com" in [g["name"] for g in groups["groups"]]
    _, res, _ = call(kubesim, "GET", "/apis/example.com/v1")
    assert {r["name"] for r in res["resources"]} == {"gadgets", "gadgets/status"}
    obj = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
           "spec": {"n": 1}}
    assert call(kubesim, "POST", "/apis/example.com/v1/gadgets", obj)[0] == 201
    _, listed, _ = call(kubesim, "GET", "/apis/example.com/v1/gadgets")
    assert listed["kind"] == "GadgetList" and len(listed["items"]) == 1


def test_watch_from_compacted_version_sends_expired_error() -> None:
    from kubesim.store import Store

    with running_kubesim(store=Store(history=3), controllers=False) as sim:
        for i in range(6):
            call(sim, "POST", CMS, cm(f"h{i}"))
        req = urllib.request.Request(f"{sim.url}{CMS}?watch=1&resourceVersion=1&timeoutSeconds=1")
        with urllib.request.urlopen(req, timeout=10) as resp:
            events = [json.loads(line) for line in resp]
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_unsupported_protobuf_kind_is_415(kubesim: KubeSimThread) -> None:
    from kubesim.protobuf_codec import MAGIC, enc_field

    body = MAGIC + enc_field(1, enc_field(1, "v1") + enc_field(2, "Endpoints")) + enc_field(2, b"")
    status, err, _ = call(kubesim, "POST", "/api/v1/namespaces/default/endpoints", body,
                          "application/vnd.kubernetes.protobuf")
    assert status == 415 and err["reason"] == "UnsupportedMediaType"


def test_token_can_be_required_over_http() -> None:
    with running_kubesim(anonymous=False, controllers=False) as sim:
        assert call(sim, "GET", "/api", token=None)[0] == 401
        assert call(sim, "GET", "/api")[0] == 200
