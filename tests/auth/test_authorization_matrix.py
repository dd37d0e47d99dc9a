"""Acceptance 1: every RPC, over gRPC and over REST, as every kind of caller.

Callers: no credential, a malformed one, an unknown token, an expired JWT, a JWT for another
audience, a viewer, an editor and an admin of team-a, and an editor of team-b. Each call aims at
team-a (cluster test122, namespace team-a, release rel-a). Refused writes must change nothing:
the releases (with their histories), clusters and repositories are compared before and after.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from auth_kit import TOKENS
from auth_server import Secured

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.auth.methods import METHOD_ACTIONS
from capstan_server.errors import http_status
from capstan_server.gateway import capstan_services

Code = grpc.StatusCode
OK, DENIED, UNAUTH, NOT_FOUND = (Code.OK, Code.PERMISSION_DENIED, Code.UNAUTHENTICATED,
                                 Code.NOT_FOUND)
WHERE = {"cluster": "test122", "namespace": "team-a"}
QUERY = "?cluster=test122&namespace=team-a"


@dataclass(frozen=True)
class Rpc:
    """One RPC aimed at team-a: its gRPC request and its REST form; `kind` says who may call
    it: read (anyone known; other projects do not see the release), list (anyone known,
    filtered), write (editors of team-a), admin."""

    service: str
    method: str
    request: Any
    http: tuple[str, str, dict[str, Any] | None]
    kind: str
    #: The code an allowed caller gets (a write that passes authorization but is refused for
    #: its own reason still shows that the check let it through).
    allowed: Code = OK


def _rpcs(kubeconfig: str, repo_url: str) -> list[Rpc]:
    r, c, k = "ReleaseService", "ChartService", "ClusterService"
    chart = {"chart_name": "bitnami-new/etcd"}
    return [
        Rpc(r, "ListReleases", release_pb2.ListReleasesRequest(cluster="test122"),
            ("GET", "/api/releases?cluster=test122", None), "list"),
        Rpc(r, "GetRelease", release_pb2.GetReleaseRequest(id="rel-a", **WHERE),
            ("GET", "/api/releases/rel-a" + QUERY, None), "read"),
        Rpc(r, "GetReleaseHistory", release_pb2.GetReleaseHistoryRequest(id="rel-a", **WHERE),
            ("GET", "/api/releases/rel-a/history" + QUERY, None), "read"),
        Rpc(r, "WatchRelease", release_pb2.WatchReleaseRequest(id="rel-a", timeout=2, **WHERE),
            ("GET", "/api/releases/rel-a/watch" + QUERY + "&timeout=2", None), "read"),
        Rpc(r, "CreateRelease",
            release_pb2.CreateReleaseRequest(release_name="new-a", dry_run=True, **chart,
                                             **WHERE),
            ("POST", "/api/releases", {"release_name": "new-a", "dry_run": True, **chart,
                                       **WHERE}), "write"),
        Rpc(r, "UpgradeRelease",
            release_pb2.UpgradeReleaseRequest(id="rel-a", version="8.11.2", dry_run=True,
                                              **chart, **WHERE),
            ("PUT", "/api/releases/rel-a", {"version": "8.11.2", "dry_run": True, **chart,
                                            **WHERE}), "write"),
        Rpc(r, "RollbackRelease",
            release_pb2.RollbackReleaseRequest(id="rel-a", revision=1, **WHERE),
            ("POST", "/api/releases/rel-a/rollback", {"revision": 1, **WHERE}), "write"),
        Rpc(r, "RecoverRelease",
            release_pb2.RecoverReleaseRequest(
                id="rel-a", action=release_pb2.RECOVERY_ACTION_ROLLBACK, **WHERE),
            ("POST", "/api/releases/rel-a/recover",
             {"action": "RECOVERY_ACTION_ROLLBACK", **WHERE}), "write",
            allowed=Code.FAILED_PRECONDITION),  # not stuck: nothing to recover
        Rpc(r, "DeleteRelease", release_pb2.DeleteReleaseRequest(id="rel-a", **WHERE),
            ("DELETE", "/api/releases/rel-a" + QUERY, None), "write"),
        Rpc(c, "ListRepositories", chart_pb2.ListRepositoriesRequest(),
            ("GET", "/api/repos", None), "any"),
        Rpc(c, "GetRepository", chart_pb2.GetRepositoryRequest(id="bitnami-new"),
            ("GET", "/api/repos/bitnami-new", None), "any"),
        Rpc(c, "ListCharts", chart_pb2.ListChartsRequest(), ("GET", "/api/charts", None), "any"),
        Rpc(c, "GetChart", chart_pb2.GetChartRequest(name="etcd", repo="bitnami-new"),
            ("GET", "/api/charts/etcd?repo=bitnami-new", None), "any"),
        Rpc(c, "CreateRepository", chart_pb2.CreateRepositoryRequest(name="extra", url=repo_url),
            ("POST", "/api/repos", {"name": "extra", "url": repo_url}), "admin"),
        Rpc(c, "SyncRepository", chart_pb2.SyncRepositoryRequest(id="extra"),
            ("POST", "/api/repos/extra/sync", {}), "admin"),
        Rpc(c, "DeleteRepository", chart_pb2.DeleteRepositoryRequest(id="extra", force=True),
            ("DELETE", "/api/repos/extra?force=true", None), "admin"),
        Rpc(k, "ListClusters", cluster_pb2.ListClustersRequest(),
            ("GET", "/api/clusters", None), "any"),
        Rpc(k, "GetCluster", cluster_pb2.GetClusterRequest(id="test122"),
            ("GET", "/api/clusters/test122", None), "any"),
        Rpc(k, "ListNamespaces", cluster_pb2.ListNamespacesRequest(cluster="test122"),
            ("GET", "/api/namespaces?cluster=test122", None), "any"),
        Rpc(k, "CreateCluster", cluster_pb2.CreateClusterRequest(name="extra",
                                                                 kubeconfig=kubeconfig),
            ("POST", "/api/clusters", {"name": "extra", "kubeconfig": kubeconfig}), "admin"),
        Rpc(k, "DeleteCluster", cluster_pb2.DeleteClusterRequest(id="extra", force=True),
            ("DELETE", "/api/clusters/extra?force=true", None), "admin"),
    ]


#: Caller -> the code for each kind of RPC.
EXPECTED: dict[str, dict[str, Code]] = {
    **{who: dict.fromkeys(("list", "read", "any", "write", "admin"), UNAUTH)
       for who in ("none", "malformed", "unknown", "expired-jwt", "wrong-audience-jwt")},
    "viewer-a": {"list": OK, "read": OK, "any": OK, "write": DENIED, "admin": DENIED},
    "editor-a": {"list": OK, "read": OK, "any": OK, "write": OK, "admin": DENIED},
    "admin": {"list": OK, "read": OK, "any": OK, "write": OK, "admin": OK},
    "editor-b": {"list": OK, "read": NOT_FOUND, "any": OK, "write": DENIED, "admin": DENIED},
}
#: The words of the UNAUTHENTICATED message for each unauthenticated caller.
UNAUTH_WORDS = {"none": "missing", "malformed": "malformed", "unknown": "unknown",
                "expired-jwt": "expired", "wrong-audience-jwt": "audience"}


def _credentials(secured: Secured) -> dict[str, dict[str, str]]:
    """Caller -> HTTP headers (the gRPC metadata is the same, lower-cased)."""
    return {
        "none": {},
        "malformed": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "unknown": {"Authorization": "Bearer not-a-token-of-the-policy"},
        "expired-jwt": {"Authorization": "Bearer " + secured.signer.token(exp_in=-600)},
        "wrong-audience-jwt": {"Authorization": "Bearer " + secured.signer.token(aud="other")},
        "viewer-a": {"X-Auth-Token": TOKENS["viewer-a"]},  # the documented API's header
        "editor-a": {"Authorization": "Bearer " + TOKENS["editor-a"]},
        "admin": {"Authorization": "Bearer " + TOKENS["admin"]},
        "editor-b": {"Authorization": "Bearer " + TOKENS["editor-b"]},
    }


def _state(secured: Secured) -> dict[str, Any]:
    """What a refused write must leave alone, as the admin sees it."""
    admin = secured.admin
    releases = secured.releases().ListReleases(
        release_pb2.ListReleasesRequest(limit=1000), metadata=admin).releases
    histories = {
        (r.namespace, r.name): [
            (h.revision, h.status) for h in secured.releases().GetReleaseHistory(
                release_pb2.GetReleaseHistoryRequest(id=r.id), metadata=admin).revisions
        ]
        for r in releases
    }
    clusters = secured.clusters().ListClusters(cluster_pb2.ListClustersRequest(), metadata=admin)
    repos = secured.charts().ListRepositories(chart_pb2.ListRepositoriesRequest(), metadata=admin)
    return {
        "releases": sorted((r.namespace, r.name, r.version, r.status) for r in releases),
        "histories": histories,
        "clusters": sorted((c.id, c.name) for c in clusters.clusters),
        "repos": sorted((r.id, r.name) for r in repos.repos),
    }


def _grpc_call(secured: Secured, rpc: Rpc, headers: dict[str, str]) -> tuple[Code, str, Any]:
    metadata = tuple((k.lower(), v) for k, v in headers.items())
    stub = {"ReleaseService": secured.releases, "ChartService": secured.charts,
            "ClusterService": secured.clusters}[rpc.service]()
    try:
        answer = getattr(stub, rpc.method)(rpc.request, metadata=metadata, timeout=60)
        if rpc.method == "WatchRelease":
            answer = list(answer)
        return OK, "", answer
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None  # type: ignore[attr-defined]


def _rest_call(secured: Secured, rpc: Rpc, headers: dict[str, str]) -> tuple[int, str, Any]:
    method, path, body = rpc.http
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        secured.server.http_url + path, data=data, method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            return response.status, text, response.headers
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, text, exc.headers


def _restore(secured: Secured) -> None:
    """Put rel-a back after an allowed DeleteRelease."""
    names = {(r.namespace, r.name) for r in secured.releases().ListReleases(
        release_pb2.ListReleasesRequest(), metadata=secured.admin).releases}
    if ("team-a", "rel-a") not in names:
        secured.create("rel-a", "team-a")


def test_the_method_table_covers_every_rpc() -> None:
    every = {f"/{s.full_name}/{m.name}" for s in capstan_services() for m in s.methods}
    assert every == set(METHOD_ACTIONS)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_every_rpc_as_every_caller(
    secured: Secured, chart_repo: Any, fake_kubeconfig: str, transport: str
) -> None:
    rpcs = _rpcs(fake_kubeconfig, chart_repo.url)
    every = {f"/capstan.v1.{r.service}/{r.method}" for r in rpcs}
    assert every == set(METHOD_ACTIONS), "the matrix must cover every RPC"
    credentials = _credentials(secured)
    problems: list[str] = []
    for who, headers in credentials.items():
        before = _state(secured)
        refused_everything = all(
            EXPECTED[who][kind] in (UNAUTH, DENIED) for kind in ("write", "admin"))
        for rpc in rpcs:
            expected = EXPECTED[who][rpc.kind]
            if expected is OK:
                expected = rpc.allowed
            if transport == "grpc":
                code, message, answer = _grpc_call(secured, rpc, headers)
                got, want = code.name, expected.name
            else:
                status, message, answer = _rest_call(secured, rpc, headers)
                got, want = str(status), str(http_status(expected))
                if status == 401 and "Bearer" not in answer.get("WWW-Authenticate", ""):
                    problems.append(f"{who} {rpc.method}: 401 without WWW-Authenticate: Bearer")
            if got != want:
                problems.append(f"{who} {rpc.method}: {got}, expected {want} ({message[:200]})")
            if expected is UNAUTH and UNAUTH_WORDS[who] not in message:
                problems.append(f"{who} {rpc.method}: message {message!r} does not say "
                                f"{UNAUTH_WORDS[who]!r}")
            for secret in headers.values():
                token = secret.split(" ", 1)[-1]
                if len(token) > 8 and token in message:
                    problems.append(f"{who} {rpc.method}: the credential is echoed")
            if who == "editor-b" and rpc.method == "ListReleases" and expected is OK:
                if transport == "grpc":
                    names, total = [r.name for r in answer.releases], answer.total
                else:
                    page = json.loads(message)
                    names, total = [r["name"] for r in page["releases"]], page["total"]
                if names != ["rel-b"] or total != 1:
                    problems.append(f"editor-b sees {names} (total {total})")
        after = _state(secured)
        if refused_everything:
            if after != before:
                problems.append(f"{who}: refused writes changed the state: {before} -> {after}")
        else:
            for part in ("clusters", "repos"):
                if who != "admin" and after[part] != before[part]:
                    problems.append(f"{who}: refused admin writes changed {part}")
        _restore(secured)
    assert not problems, "\n".join(problems)
