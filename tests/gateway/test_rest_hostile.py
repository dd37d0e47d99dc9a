"""Issue 8's table over REST: forged writes (Content-Type, Origin, Host), huge or deep bodies,
long paths, slow versions, alias bombs. Each gets its answer in the JSON error shape, at once,
and leaves nothing created or changed. (The gRPC side: tests/services/test_hostile_input.py.)"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from capstan_server import limits
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle

if TYPE_CHECKING:
    from conftest import Rest

QUICK = 5.0
EVIL = "http://evil.example"
CREATE = {
    "chart_name": "bitnami-new/etcd",
    "cluster": "test122",
    "namespace": "default",
    "release_name": "fresh-release",
    "version": "8.11.1",
}


def _seed(rest: Rest, chart_repo: ChartRepoServer, kubeconfig: str) -> Rest:
    for path, body in (
        ("/api/clusters", {"name": "test122", "kubeconfig": kubeconfig}),
        ("/api/repos", {"name": "bitnami-new", "url": chart_repo.url}),
        ("/api/releases", {**CREATE, "release_name": "etcd-release"}),
    ):
        answer = rest.post(path, body)
        assert answer.status == 200, answer.text
    return rest


@pytest.fixture
def seeded(rest: Rest, chart_repo: ChartRepoServer, fake_kubeconfig: str) -> Rest:
    """Cluster `test122`, repository `bitnami-new` and release `etcd-release` (revision 1)."""
    return _seed(rest, chart_repo, fake_kubeconfig)


def state(rest: Rest) -> Any:
    releases = rest.get("/api/releases?limit=1000").body["releases"]
    return {
        "releases": sorted((r["name"], r["version"], r["status"]) for r in releases),
        "history": rest.get("/api/releases/etcd-release/history").body,
        "repos": sorted(r["name"] for r in rest.get("/api/repos").body["repos"]),
        "clusters": sorted(c["name"] for c in rest.get("/api/clusters").body["clusters"]),
    }


def assert_error(answer: Any, http: int, grpc_code: str) -> None:
    assert answer.status == http, answer.text
    assert answer.content_type.startswith("application/json"), answer.text
    assert set(answer.body) == {"code", "status", "message", "details"}
    assert (answer.body["code"], answer.body["status"]) == (http, grpc_code)
    assert 0 < len(answer.body["message"]) <= limits.MAX_ERROR_MESSAGE_CHARS + 40


# -- forged writes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "http", "code"),
    [
        ({"Content-Type": "text/plain", "Origin": EVIL}, 403, "PERMISSION_DENIED"),
        ({"Content-Type": "application/json", "Origin": EVIL}, 403, "PERMISSION_DENIED"),
        ({"Content-Type": "application/json", "Origin": "null"}, 403, "PERMISSION_DENIED"),
        ({"Content-Type": "text/plain"}, 415, "INVALID_ARGUMENT"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "INVALID_ARGUMENT"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "INVALID_ARGUMENT"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "INVALID_ARGUMENT"),
    ],
)
def test_forged_writes_are_refused(
    seeded: Rest, headers: dict[str, str], http: int, code: str
) -> None:
    before = state(seeded)
    answer = seeded.post("/api/releases", data=json.dumps(CREATE).encode(), headers=headers)
    assert_error(answer, http, code)
    for method in ("PUT", "DELETE"):
        assert_error(
            seeded.call(method, "/api/releases/etcd-release", data=b"{}", headers=headers),
            http,
            code,
        )
    assert state(seeded) == before


def test_reads_from_any_origin_and_writes_without_origin_pass(seeded: Rest) -> None:
    assert seeded.get("/api/releases", headers={"Origin": EVIL}).status == 200
    answer = seeded.post("/api/releases", CREATE)  # curl, scripts: no Origin
    assert answer.status == 200, answer.text
    answer = seeded.post(
        "/api/releases", {**CREATE, "release_name": "charset"},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert answer.status == 200, answer.text


def test_allowed_origins_write_and_get_cors_headers(
    capstan_server_factory: Callable[..., ServerHandle],
    rest_to: Callable[[ServerHandle], Rest],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> None:
    ui = "https://ui.example.com"
    server = capstan_server_factory(cors_allow_origins=[ui])
    rest = _seed(rest_to(server), chart_repo, fake_kubeconfig)

    preflight = rest.call("OPTIONS", "/api/releases", headers={"Origin": ui})
    assert preflight.status == 204
    assert preflight_header(server, ui) == ui
    assert_error(rest.call("OPTIONS", "/api/releases", headers={"Origin": EVIL}), 403,
                 "PERMISSION_DENIED")
    answer = rest.post("/api/releases", CREATE, headers={"Origin": ui})
    assert answer.status == 200, answer.text
    assert_error(rest.post("/api/releases", {**CREATE, "release_name": "x"},
                           headers={"Origin": EVIL}), 403, "PERMISSION_DENIED")


def preflight_header(server: ServerHandle, origin: str) -> str | None:
    request = urllib.request.Request(
        server.http_url + "/api/releases", method="OPTIONS", headers={"Origin": origin}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        value: str | None = response.headers.get("Access-Control-Allow-Origin")
        return value


def test_a_foreign_host_is_refused_when_hosts_are_listed(
    capstan_server_factory: Callable[..., ServerHandle],
    rest_to: Callable[[ServerHandle], Rest],
    chart_repo: ChartRepoServer,
    fake_kubeconfig: str,
) -> None:
    server = capstan_server_factory(allowed_hosts=["127.0.0.1", "capstan.example.com"])
    rest = _seed(rest_to(server), chart_repo, fake_kubeconfig)
    before = state(rest)

    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example"):
        answer = rest.post("/api/releases", CREATE, headers={"Host": host})
        assert_error(answer, 403, "PERMISSION_DENIED")
        assert_error(rest.get("/api/releases", headers={"Host": host}), 403, "PERMISSION_DENIED")
    assert rest.get("/healthz", headers={"Host": "capstan.example.com:443"}).status == 200
    assert state(rest) == before


def test_any_host_is_answered_by_default(seeded: Rest) -> None:
    assert seeded.get("/api/releases", headers={"Host": "evil.example"}).status == 200


def test_bodiless_writes_are_the_empty_request(seeded: Rest) -> None:
    """Decided: a POST or PUT without a body is the request `{}` (no Content-Type needed):
    `POST /api/repos/{id}/sync` syncs; `PUT /api/releases/{id}` upgrades to the latest
    version of the release's chart, keeping its values, as `{}` would."""
    synced = seeded.call("POST", "/api/repos/bitnami-new/sync", headers={"Content-Type": ""})
    assert synced.status == 200, synced.text
    upgraded = seeded.call("PUT", "/api/releases/etcd-release", headers={"Content-Type": ""})
    assert upgraded.status == 200, upgraded.text
    assert (upgraded.body["version"], upgraded.body["chart_version"]) == (2, "8.11.2")


# -- oversized and deep input -----------------------------------------------------------------


def test_a_deep_json_body_is_400(seeded: Rest) -> None:
    before = state(seeded)
    for depth in (100_000, limits.MAX_JSON_DEPTH + 1):
        body = '{"values_json": {"a": ' + "[" * depth + "]" * depth + "}}"
        answer = seeded.post("/api/releases", data=body.encode())
        assert_error(answer, 400, "INVALID_ARGUMENT")
        assert "nested too deeply" in answer.body["message"]
    assert state(seeded) == before


def test_a_long_path_gets_the_json_error_body(seeded: Rest) -> None:
    for path in ("/api/releases/" + "e" * 10_000, "/" + "x" * 10_000):
        assert_error(seeded.get(path), 414, "INVALID_ARGUMENT")
    assert_error(seeded.get("/api/releases/" + "e" * 1000), 400, "INVALID_ARGUMENT")


def test_a_body_over_the_limit_is_413(seeded: Rest) -> None:
    before = state(seeded)
    body = json.dumps({**CREATE, "values": "x" * limits.MAX_BODY_BYTES}).encode()
    assert_error(seeded.post("/api/releases", data=body), 413, "RESOURCE_EXHAUSTED")
    assert state(seeded) == before


# -- slow parsing, long echoes -----------------------------------------------------------------


def _alias_bomb() -> str:
    text = "a0: &a0 [" + ",".join(['"lol"'] * 9) + "]\n"
    for level in range(1, 6):
        text += f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "1" * 8000},
        {"version": "1" * 16000},
        {"version": "9" * 4301},
        {"version": "x" * 8000},  # echoed: the trailers passed 16 KiB (429 after 3.9 s)
        {"values": _alias_bomb()},
        {"description": "d" * (limits.MAX_DESCRIPTION_CHARS + 1)},
        {"timeout": -(2**31)},
        {"timeout": 2**40},
    ],
)
def test_hostile_bodies_are_refused_at_once(seeded: Rest, changes: dict[str, Any]) -> None:
    before = state(seeded)
    started = time.perf_counter()
    answer = seeded.post("/api/releases", {**CREATE, **changes})
    assert time.perf_counter() - started < QUICK
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert state(seeded) == before


def test_hostile_versions_never_stall_other_requests(seeded: Rest) -> None:
    with ThreadPoolExecutor(4) as pool:
        hostile = [
            pool.submit(seeded.post, "/api/releases", {**CREATE, "version": "1" * n})
            for n in (8000, 16000, 16000)
        ]
        started = time.perf_counter()
        assert seeded.get("/api/clusters").status == 200
        assert time.perf_counter() - started < QUICK
        assert all(f.result().status == 400 for f in hostile)


@pytest.mark.parametrize(
    "query",
    [
        "limit=99999999999",
        "limit=-2147483648",
        "limit=1001",
        "offset=-1",
        "search=" + "s" * 5000,
    ],
)
def test_hostile_queries_are_400(seeded: Rest, query: str) -> None:
    assert_error(seeded.get(f"/api/releases?{query}"), 400, "INVALID_ARGUMENT")


def test_null_fields_are_refused(seeded: Rest) -> None:
    """Found by `make fuzz`: a null was read as the default, though the document forbids it."""
    before = state(seeded)
    answer = seeded.put("/api/releases/etcd-release", {"details": None})
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert "must not be null" in answer.body["message"]
    assert_error(seeded.post("/api/repos", {"name": "r", "url": "http://0", "type": None}), 400,
                 "INVALID_ARGUMENT")
    assert state(seeded) == before
    # Inside values, null keeps its meaning (delete the chart's key).
    answer = seeded.post("/api/releases", {**CREATE, "values_json": {"image": None}})
    assert answer.status == 200, answer.text


def test_long_strings_are_checked_for_unpaired_surrogates(seeded: Rest) -> None:
    """Long strings skip json_format's slow check (0.6 s on 5 MB); the gateway's own one
    refuses the same texts."""
    before = state(seeded)
    body = json.dumps({**CREATE, "values": "a: " + "x" * 5000 + "\ud800"}).encode()
    answer = seeded.post("/api/releases", data=body)
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert "surrogate" in answer.body["message"]
    assert state(seeded) == before


def test_errors_to_allowed_origins_carry_cors_headers(
    capstan_server_factory: Callable[..., ServerHandle],
) -> None:
    ui = "https://ui.example.com"
    server = capstan_server_factory(cors_allow_origins=[ui])
    request = urllib.request.Request(
        server.http_url + "/api/releases/no-such-release", headers={"Origin": ui}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 404
    assert err.value.headers["Access-Control-Allow-Origin"] == ui


@pytest.mark.parametrize("url", ["oci://[\u0091", "http://[::1", "https://[bad/charts"])
def test_unparsable_repository_urls_are_400(seeded: Rest, url: str) -> None:
    # Found by `make fuzz`: an unclosed IPv6 bracket made urlsplit raise (500).
    before = state(seeded)
    answer = seeded.post("/api/repos", {"name": "broken", "url": url})
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert state(seeded) == before


@pytest.mark.parametrize("header", ["Authorization", "X-Auth-Token"])
def test_credentials_grpc_cannot_carry_are_401(seeded: Rest, header: str) -> None:
    # Found by `make fuzz`: such a header made the gRPC hop fail (500).
    before = state(seeded)
    answer = seeded.delete("/api/releases/etcd", headers={header: "Bearer caf\xe9"})
    assert_error(answer, 401, "UNAUTHENTICATED")
    assert answer.body["message"].startswith("malformed credential")
    assert "caf" not in answer.text  # the token is never echoed
    assert state(seeded) == before
