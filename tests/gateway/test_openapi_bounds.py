"""The OpenAPI document states what the server enforces (issue 8): REQUIRED fields from
`google.api.field_behavior`, lengths, integer bounds and name patterns; and it is a valid
OpenAPI 3.1 document."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from openapi_spec_validator import validate

from capstan_server import limits

if TYPE_CHECKING:
    from conftest import Rest


@pytest.fixture
def document(rest: Rest) -> Any:
    return rest.get("/openapi.json").body


def _schema(document: Any, name: str) -> Any:
    return document["components"]["schemas"][name]


def _parameter(document: Any, path: str, method: str, name: str) -> Any:
    parameters = document["paths"][path][method]["parameters"]
    return next(p for p in parameters if p["name"] == name)


def test_the_document_passes_openapi_spec_validator(document: Any) -> None:
    validate(document)


def test_required_fields_come_from_field_behavior(document: Any) -> None:
    assert _schema(document, "CreateReleaseRequest")["required"] == ["chart_name"]
    assert _schema(document, "CreateRepositoryRequest")["required"] == ["name", "url"]
    assert _schema(document, "CreateClusterRequest")["required"] == ["name", "kubeconfig"]
    # The path gives the id; the action must be in the body.
    assert _schema(document, "RecoverReleaseRequestBody")["required"] == ["action"]
    assert "required" not in _schema(document, "UpgradeReleaseRequestBody")
    # Answers are not requests: nothing required there.
    assert "required" not in _schema(document, "Release")
    chart_name = _schema(document, "CreateReleaseRequest")["properties"]["chart_name"]
    assert chart_name["minLength"] == 1


def test_bodies_are_required_only_with_required_fields(document: Any) -> None:
    assert document["paths"]["/api/releases"]["post"]["requestBody"]["required"] is True
    assert document["paths"]["/api/releases/{id}"]["put"]["requestBody"]["required"] is False
    sync = document["paths"]["/api/repos/{id}/sync"]["post"]["requestBody"]
    assert sync["required"] is False


@pytest.mark.parametrize(
    ("path", "name", "low", "high"),
    [
        ("/api/releases", "limit", 0, limits.MAX_PAGE_LIMIT),
        ("/api/releases", "offset", 0, 2**31 - 1),
        ("/api/repos", "limit", 0, limits.MAX_PAGE_LIMIT),
        ("/api/namespaces", "limit", 0, limits.MAX_PAGE_LIMIT),
        ("/api/releases/{id}/history", "max", 0, 2**31 - 1),
    ],
)
def test_integer_bounds_are_stated(
    document: Any, path: str, name: str, low: int, high: int
) -> None:
    schema = _parameter(document, path, "get", name)["schema"]
    assert (schema["minimum"], schema["maximum"]) == (low, high)


def test_body_integer_bounds_are_stated(document: Any) -> None:
    upgrade = _schema(document, "UpgradeReleaseRequestBody")["properties"]
    assert upgrade["history_max"]["minimum"] == 0
    assert upgrade["history_max"]["maximum"] == limits.MAX_HISTORY
    assert upgrade["timeout"]["maximum"] == limits.MAX_TIMEOUT_SECONDS


def test_lengths_and_patterns_are_stated(document: Any) -> None:
    create = _schema(document, "CreateReleaseRequest")["properties"]
    assert create["version"]["maxLength"] == limits.MAX_VERSION_CHARS
    assert create["values"]["maxLength"] == limits.MAX_VALUES_BYTES
    name = create["release_name"]
    assert name["maxLength"] == 53
    pattern = re.compile(name["pattern"])
    assert pattern.match("etcd-release") and pattern.match("")
    assert not pattern.match("Etcd_release")
    repo = _schema(document, "CreateRepositoryRequest")["properties"]["name"]
    assert not re.match(repo["pattern"], "")
    assert _schema(document, "CreateReleaseRequest")["properties"]["type"]["enum"] == [
        "", "external", "internal",
    ]
    path_id = _parameter(document, "/api/releases/{id}", "get", "id")
    assert path_id["required"] is True
    assert path_id["schema"]["maxLength"] == 53  # a UUID or a release name
    assert re.match(path_id["schema"]["pattern"], "7E4FEDA2-3EBD-550F-B330-40BC4CABA110")


def test_no_request_string_is_documented_to_take_a_nul(document: Any) -> None:
    """limits.check_string refuses a NUL in any request string; the document says so, or a
    client generating valid requests from it (schemathesis does) sends one and gets a 400."""
    cluster = _parameter(document, "/api/releases/{id}/history", "get", "cluster")["schema"]
    description = _schema(document, "CreateReleaseRequest")["properties"]["description"]
    upgrade = _schema(document, "UpgradeReleaseRequestBody")["properties"]["description"]
    charts = _schema(document, "CreateRepositoryRequest")["properties"]["charts"]["items"]
    for schema in (cluster, description, upgrade, charts):
        assert re.match(schema["pattern"], "any text\n at all")
        assert not re.match(schema["pattern"], "cut\x00short")
