"""HTTP request <-> proto message: query parameters, JSON bodies, path variables, JSON answers."""

from __future__ import annotations

import json

import pytest

from capstan.v1 import release_pb2
from capstan_server.gateway import capstan_services
from capstan_server.gateway.routes import Route, build_routes
from capstan_server.gateway.transcode import (
    TranscodeError,
    build_request,
    message_json,
    response_json,
)

#: Every key the documented release JSON shows (DESIGN.md, issue 2).
RELEASE_KEYS = {
    "chart", "chart_version", "cluster", "cluster_id", "config", "created_at", "external_id",
    "id", "is_emulated", "name", "namespace", "namespace_id", "progress", "project_domain",
    "repo_id", "resources", "status", "type", "version",
}


def route(rpc: str) -> Route:
    return next(r for r in build_routes(capstan_services()) if r.method.name == rpc)


def test_query_parameters_fill_the_request_with_their_types() -> None:
    query = [("cluster", "test122"), ("type", "external"), ("limit", "20"), ("offset", "0"),
             ("details", "false"), ("deployed", "1"), ("all", "true"), ("failed", "0")]
    request = build_request(route("ListReleases"), {}, query, b"")
    assert request == release_pb2.ListReleasesRequest(
        cluster="test122", type="external", limit=20, deployed=True, all=True
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("limit", "twenty")], "query parameter 'limit': expected an integer, got 'twenty'"),
        ([("deployed", "yes")], "query parameter 'deployed': expected true/false/1/0"),
        ([("colour", "blue")], "unknown query parameter 'colour'"),
    ],
)
def test_bad_query_parameters_are_refused_by_name(
    query: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(TranscodeError, match=message):
        build_request(route("ListReleases"), {}, query, b"")


def test_the_seed_create_body_becomes_a_create_request() -> None:
    body = {"chart_name": "bitnami-new/etcd", "cluster": "test122", "namespace": "default",
            "release_name": "etcd-release"}
    request = build_request(route("CreateRelease"), {}, [], json.dumps(body).encode())
    assert request == release_pb2.CreateReleaseRequest(**body)


def test_the_seed_upgrade_body_and_path_become_an_upgrade_request() -> None:
    body = {"chart_name": "bitnami-new/etcd", "release_name": "etcd-release",
            "values_json": {"image": {"tag": "3.5.8-debian-11-r9"}}}
    request = build_request(
        route("UpgradeRelease"), {"id": "etcd-release"}, [("cluster", "test122")],
        json.dumps(body).encode(),
    )
    assert isinstance(request, release_pb2.UpgradeReleaseRequest)
    assert (request.id, request.cluster, request.chart_name) == (
        "etcd-release", "test122", "bitnami-new/etcd"
    )
    assert dict(request.values_json)["image"]["tag"] == "3.5.8-debian-11-r9"


def test_the_path_decides_over_the_body() -> None:
    request = build_request(
        route("RollbackRelease"), {"id": "etcd-release"}, [], b'{"id": "other", "revision": 2}'
    )
    assert (request.id, request.revision) == ("etcd-release", 2)  # type: ignore[attr-defined]


def test_an_empty_body_is_an_empty_message() -> None:
    request = build_request(route("RollbackRelease"), {"id": "r"}, [], b"")
    assert request == release_pb2.RollbackReleaseRequest(id="r")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON body"),
        (b"[1, 2]", "the JSON body must be an object, not list"),
        (b'{"chart": "x"}', "unknown field 'chart' of CreateReleaseRequest; known fields: "
                            "chart_name, "),
        (b'{"timeout": "soon"}', "Failed to parse timeout field"),
        (b'{"values_json": 5}', "Failed to parse values_json field"),
    ],
)
def test_bad_bodies_are_refused_with_a_message_naming_the_problem(
    body: bytes, message: str
) -> None:
    with pytest.raises(TranscodeError) as caught:
        build_request(route("CreateRelease"), {}, [], body)
    assert str(caught.value).startswith(message)


def test_values_json_takes_any_keys() -> None:
    # Only the fields of Capstan's own messages are checked; a Struct holds whatever it is given.
    body = b'{"values_json": {"anything": {"goes": [1, "x", null]}}}'
    request = build_request(route("CreateRelease"), {}, [], body)
    assert request.values_json["anything"]["goes"][1] == "x"  # type: ignore[attr-defined]


def test_a_release_answer_always_shows_every_documented_key() -> None:
    data = message_json(release_pb2.Release(name="etcd-release", version=1))
    assert data.keys() >= RELEASE_KEYS
    assert data["config"] == {}  # an unset Struct is an empty object, as in the seed
    assert data["created_at"] is None  # an unset timestamp is null, not missing
    assert data["resources"] == {}
    assert data["is_emulated"] is False
    assert data["clusterID"] == ""  # the original API's duplicate key is kept


def test_history_answers_a_bare_array() -> None:
    response = release_pb2.GetReleaseHistoryResponse(
        revisions=[release_pb2.ReleaseRevision(revision=1, chart="etcd-8.11.1")]
    )
    data = response_json(route("GetReleaseHistory"), response)
    assert isinstance(data, list)
    assert data[0]["chart"] == "etcd-8.11.1"
    assert data[0]["updated"] is None
    assert set(data[0]) == {"revision", "status", "chart", "app_version", "description",
                            "updated"}


def test_nested_messages_get_their_defaults_too() -> None:
    data = message_json(release_pb2.DeleteReleaseResponse())
    assert data == {"release": None}
    data = message_json(release_pb2.ReleaseEvent(release=release_pb2.Release(name="r")))
    assert data["release"]["config"] == {}
    assert data["resources"] == []
