"""The acceptance list's error cases over REST: the mapped HTTP status, the JSON error body, and
nothing left behind. One release (`etcd-release`, revision 1) exists before each case."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from capstan_server.dev.chart_repo import ChartRepoServer

if TYPE_CHECKING:
    from conftest import Rest

CREATE = {
    "chart_name": "bitnami-new/etcd",
    "cluster": "test122",
    "namespace": "default",
    "release_name": "fresh-release",
    "version": "8.11.1",
}


@pytest.fixture
def seeded(rest: Rest, chart_repo: ChartRepoServer, fake_kubeconfig: str) -> Rest:
    """Cluster `test122`, repository `bitnami-new` and release `etcd-release` (revision 1)."""
    for path, body in (
        ("/api/clusters", {"name": "test122", "kubeconfig": fake_kubeconfig}),
        ("/api/repos", {"name": "bitnami-new", "url": chart_repo.url}),
        ("/api/releases", {**CREATE, "release_name": "etcd-release"}),
    ):
        answer = rest.post(path, body)
        assert answer.status == 200, answer.text
    return rest


def assert_error(answer: Any, http: int, grpc_code: str) -> None:
    assert answer.status == http, answer.text
    assert answer.content_type.startswith("application/json")
    assert set(answer.body) == {"code", "status", "message", "details"}
    assert (answer.body["code"], answer.body["status"]) == (http, grpc_code)
    assert answer.body["message"]
    assert isinstance(answer.body["details"], list)


def assert_nothing_left_behind(rest: Rest) -> None:
    listed = rest.get("/api/releases").body
    assert [r["name"] for r in listed["releases"]] == ["etcd-release"]
    history = rest.get("/api/releases/etcd-release/history").body
    assert [h["revision"] for h in history] == [1]


@pytest.mark.parametrize(
    ("case", "changes", "http", "grpc_code"),
    [
        ("uppercase name", {"release_name": "Etcd-release"}, 400, "INVALID_ARGUMENT"),
        ("underscore in name", {"release_name": "etcd_release"}, 400, "INVALID_ARGUMENT"),
        ("name over 53 characters", {"release_name": "e" * 54}, 400, "INVALID_ARGUMENT"),
        ("name starting with -", {"release_name": "-etcd"}, 400, "INVALID_ARGUMENT"),
        ("unknown repo", {"chart_name": "no-such-repo/etcd"}, 404, "NOT_FOUND"),
        ("unknown chart", {"chart_name": "bitnami-new/no-such-chart"}, 404, "NOT_FOUND"),
        ("unknown version", {"version": "9.9.9"}, 404, "NOT_FOUND"),
        ("unknown cluster", {"cluster": "no-such-cluster"}, 404, "NOT_FOUND"),
        ("unknown namespace", {"namespace": "no-such-namespace"}, 404, "NOT_FOUND"),
        ("taken name", {"release_name": "etcd-release"}, 409, "ALREADY_EXISTS"),
        ("invalid YAML values", {"values": "image: [unclosed"}, 400, "INVALID_ARGUMENT"),
        ("values not a mapping", {"values": "- a\n- b\n"}, 400, "INVALID_ARGUMENT"),
        ("relative path chart", {"chart_name": "./etcd"}, 400, "INVALID_ARGUMENT"),
        ("absolute path chart", {"chart_name": "/tmp/etcd"}, 400, "INVALID_ARGUMENT"),
        ("file:// chart", {"chart_name": "file:///tmp/etcd-8.11.1.tgz"}, 400, "INVALID_ARGUMENT"),
        ("URL chart", {"chart_name": "https://example.com/etcd-8.11.1.tgz"}, 400,
         "INVALID_ARGUMENT"),
    ],
)
def test_create_errors(
    seeded: Rest, case: str, changes: dict[str, str], http: int, grpc_code: str
) -> None:
    answer = seeded.post("/api/releases", {**CREATE, **changes})
    assert_error(answer, http, grpc_code)
    assert_nothing_left_behind(seeded)


@pytest.mark.parametrize(
    ("case", "method", "path", "body"),
    [
        ("show", "GET", "/api/releases/no-such-release", None),
        ("upgrade", "PUT", "/api/releases/no-such-release", {"chart_name": "bitnami-new/etcd"}),
        ("history", "GET", "/api/releases/no-such-release/history", None),
        ("rollback", "POST", "/api/releases/no-such-release/rollback", {"revision": 1}),
        ("delete", "DELETE", "/api/releases/no-such-release", None),
        ("unknown revision", "POST", "/api/releases/etcd-release/rollback", {"revision": 9}),
    ],
)
def test_unknown_release_or_revision_is_not_found(
    seeded: Rest, case: str, method: str, path: str, body: Any
) -> None:
    assert_error(seeded.call(method, path, body), 404, "NOT_FOUND")
    assert_nothing_left_behind(seeded)


def test_an_upgrade_with_an_unknown_version_changes_nothing(seeded: Rest) -> None:
    answer = seeded.put("/api/releases/etcd-release",
                        {"chart_name": "bitnami-new/etcd", "version": "9.9.9"})
    assert_error(answer, 404, "NOT_FOUND")
    assert_nothing_left_behind(seeded)


def test_not_found_errors_carry_structured_details(seeded: Rest) -> None:
    answer = seeded.post("/api/releases", {**CREATE, "chart_name": "no-such-repo/etcd"})
    assert answer.body["details"], "the caller should learn what was missing"
    assert all(isinstance(detail, dict) for detail in answer.body["details"])


# -- refusals by the gateway itself, before any RPC ---------------------------------------------


def test_malformed_json_is_a_400(rest: Rest) -> None:
    answer = rest.post("/api/releases", data=b'{"chart_name": "bitnami-new/etcd",}')
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert "malformed JSON" in answer.body["message"]


def test_an_unknown_body_field_is_a_400_naming_it(rest: Rest) -> None:
    answer = rest.post("/api/releases", {"chart_name": "bitnami-new/etcd", "releasename": "x"})
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert "'releasename'" in answer.body["message"]


def test_a_bad_query_parameter_is_a_400_naming_it(rest: Rest) -> None:
    answer = rest.get("/api/releases?limit=many")
    assert_error(answer, 400, "INVALID_ARGUMENT")
    assert "'limit'" in answer.body["message"]


def test_unrouted_paths_and_methods_answer_json_errors(rest: Rest) -> None:
    assert_error(rest.get("/api/nothing-here"), 404, "NOT_FOUND")
    assert_error(rest.call("PATCH", "/api/releases/x"), 405, "UNIMPLEMENTED")
