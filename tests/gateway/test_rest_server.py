"""The gateway's own endpoints and plumbing: /healthz, /openapi.json, auth headers, NDJSON."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from aiohttp.test_utils import TestClient, TestServer

from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.gateway import build_gateway, capstan_services
from capstan_server.gateway.openapi import openapi_path
from capstan_server.gateway.routes import build_routes
from capstan_server.threaded import ServerHandle

if TYPE_CHECKING:
    from conftest import Rest


def test_healthz_answers_200_serving_once_ready(rest: Rest) -> None:
    answer = rest.get("/healthz")
    assert (answer.status, answer.body) == (200, {"status": "SERVING"})


async def test_healthz_answers_503_while_not_ready() -> None:
    ready = False
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never dialled by /healthz
    app = build_gateway(channel, is_ready=lambda: ready)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        assert (response.status, await response.json()) == (503, {"status": "NOT_SERVING"})
        ready = True
        assert (await client.get("/healthz")).status == 200
    await channel.close()


def test_openapi_lists_every_routed_path_and_method(rest: Rest) -> None:
    document = rest.get("/openapi.json").body
    assert document["openapi"].startswith("3.")
    for route in build_routes(capstan_services()):
        path = openapi_path(route.template)
        assert path in document["paths"], path
        operation = document["paths"][path][route.http_method.lower()]
        assert operation["operationId"].endswith(route.method.name)
        assert "200" in operation["responses"]
        path_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert path_params == {v.field_path for v in route.variables}


def test_openapi_describes_messages_with_the_proto_comments(rest: Rest) -> None:
    document = rest.get("/openapi.json").body
    schemas = document["components"]["schemas"]
    release = schemas["Release"]
    assert "current revision" in release["description"]
    external_id = release["properties"]["external_id"]
    assert external_id["description"] == "`<cluster_id>/<namespace>/<name>`."
    assert release["properties"]["created_at"]["format"] == "date-time"
    get_release = document["paths"]["/api/releases/{id}"]["get"]
    assert get_release["summary"].startswith("Shows one release")
    list_query = {p["name"] for p in document["paths"]["/api/releases"]["get"]["parameters"]}
    assert {"cluster", "namespace", "name", "type", "limit", "offset", "deployed"} <= list_query
    history = document["paths"]["/api/releases/{id}/history"]["get"]["responses"]["200"]
    assert history["content"]["application/json"]["schema"]["type"] == "array"
    watch = document["paths"]["/api/releases/{id}/watch"]["get"]["responses"]["200"]
    assert "application/x-ndjson" in watch["content"]
    # The JSON rules of the one encoding: resources are {kind key: [...]}, objects inlined.
    assert schemas["ReleaseResourceList"]["type"] == "array"
    resource = schemas["ReleaseResource"]["properties"]
    assert "object" in resource and "object_json" not in resource


class MetadataSpy(grpc.aio.ServerInterceptor):
    """Records the metadata of every call (test-only)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        metadata = dict(handler_call_details.invocation_metadata or ())
        self.seen.append((handler_call_details.method, metadata))
        return await continuation(handler_call_details)


def test_auth_headers_arrive_as_grpc_metadata(
    capstan_server_factory: Callable[..., ServerHandle], rest_to: Callable[[ServerHandle], Rest]
) -> None:
    spy = MetadataSpy()
    rest = rest_to(capstan_server_factory(interceptors=[spy]))
    headers = {"Authorization": "Bearer abc.def", "X-Auth-Token": "gAAAAABkW-Y7PQ18"}
    assert rest.get("/api/releases", headers=headers).status == 200
    [metadata] = [seen for method, seen in spy.seen if method.endswith("/ListReleases")]
    assert metadata["authorization"] == "Bearer abc.def"
    assert metadata["x-auth-token"] == "gAAAAABkW-Y7PQ18"
    rest.get("/api/releases")
    assert "authorization" not in spy.seen[-1][1]


def test_watch_streams_newline_delimited_json(
    rest: Rest, chart_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    rest.post("/api/clusters", {"name": "test122", "kubeconfig": fake_kubeconfig})
    rest.post("/api/repos", {"name": "bitnami-new", "url": chart_repo.url})
    created = rest.post("/api/releases", {"chart_name": "bitnami-new/etcd", "cluster": "test122",
                                          "release_name": "etcd-release"})
    assert created.status == 200, created.text

    answer = rest.get("/api/releases/etcd-release/watch?timeout=10")
    assert answer.status == 200
    assert answer.content_type.startswith("application/x-ndjson")
    events = [json.loads(line) for line in answer.text.splitlines()]
    assert events, "at least the event of the current state"
    assert events[-1]["settled"] is True
    assert events[-1]["release"]["name"] == "etcd-release"

    missing = rest.get("/api/releases/no-such-release/watch")
    assert (missing.status, missing.body["status"]) == (404, "NOT_FOUND")
