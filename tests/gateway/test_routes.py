"""The REST route table comes from the protos' google.api.http annotations, and only from them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import grpc.aio
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from capstan_server.gateway import build_gateway, capstan_services
from capstan_server.gateway.routes import Route, TemplateError, build_routes, parse_template

#: The REST surface DESIGN.md and the seed document fix, as (method, path) -> RPC.
DOCUMENTED = {
    ("POST", "/api/releases"): "ReleaseService.CreateRelease",
    ("GET", "/api/releases"): "ReleaseService.ListReleases",
    ("GET", "/api/releases/{id}"): "ReleaseService.GetRelease",
    ("PUT", "/api/releases/{id}"): "ReleaseService.UpgradeRelease",
    ("GET", "/api/releases/{id}/history"): "ReleaseService.GetReleaseHistory",
    ("POST", "/api/releases/{id}/rollback"): "ReleaseService.RollbackRelease",
    ("DELETE", "/api/releases/{id}"): "ReleaseService.DeleteRelease",
    ("GET", "/api/charts/{name}"): "ChartService.GetChart",
    ("GET", "/api/charts"): "ChartService.ListCharts",
    ("POST", "/api/repos"): "ChartService.CreateRepository",
    ("GET", "/api/repos"): "ChartService.ListRepositories",
    ("DELETE", "/api/repos/{id}"): "ChartService.DeleteRepository",
    ("POST", "/api/repos/{id}/sync"): "ChartService.SyncRepository",
    ("POST", "/api/clusters"): "ClusterService.CreateCluster",
    ("GET", "/api/clusters"): "ClusterService.ListClusters",
    ("GET", "/api/namespaces"): "ClusterService.ListNamespaces",
}


def _annotated(services: list[ServiceDescriptor]) -> set[str]:
    """Methods carrying a google.api.http option, read straight from the descriptors."""
    return {
        method.full_name
        for service in services
        for method in service.methods
        if method.GetOptions().HasExtension(annotations_pb2.http)
    }


def test_every_annotated_rpc_is_routed_and_nothing_else() -> None:
    services = capstan_services()
    routes = build_routes(services)
    assert {route.method.full_name for route in routes} == _annotated(services)
    every_method = {m.full_name for s in services for m in s.methods}
    assert {route.method.full_name for route in routes} <= every_method


def test_the_documented_rest_paths_are_routed_to_their_rpcs() -> None:
    table = {
        (route.http_method, route.template): route.method.full_name.removeprefix("capstan.v1.")
        for route in build_routes(capstan_services())
    }
    for binding, rpc in DOCUMENTED.items():
        assert table.get(binding) == rpc, binding


def test_history_answers_its_revisions_field_only() -> None:
    routes = {r.method.name: r for r in build_routes(capstan_services())}
    assert routes["GetReleaseHistory"].response_body == "revisions"
    assert routes["CreateRelease"].body == "*"
    assert routes["GetRelease"].body == ""
    assert routes["WatchRelease"].server_streaming


@pytest.fixture
async def gateway_app() -> AsyncIterator[web.Application]:
    # The channel is never used: these tests only resolve paths.
    channel = grpc.aio.insecure_channel("127.0.0.1:9")
    yield build_gateway(channel, is_ready=lambda: True)
    await channel.close()


def _canonical(router_path: str) -> str:
    """aiohttp's canonical form of a router path: variables without their regex."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", router_path)


async def _match(app: web.Application, method: str, path: str) -> web.AbstractMatchInfo:
    return await app.router.resolve(make_mocked_request(method, path, app=app))


async def test_the_application_serves_exactly_the_routes_plus_health_and_openapi(
    gateway_app: web.Application,
) -> None:
    routes = build_routes(capstan_services())
    served = {
        (route.method, route.resource.canonical)
        for route in gateway_app.router.routes()
        if route.resource is not None
    }
    expected = {(r.http_method, _canonical(r.router_path)) for r in routes}
    expected |= {("GET", "/healthz"), ("GET", "/openapi.json")}
    assert served == expected


@pytest.mark.parametrize(
    ("method", "path", "rpc", "params"),
    [
        ("GET", "/api/releases", "ListReleases", {}),
        ("GET", "/api/releases/etcd-release", "GetRelease", {"id": "etcd-release"}),
        ("GET", "/api/releases/etcd-release/history", "GetReleaseHistory", {"id": "etcd-release"}),
        ("POST", "/api/releases/etcd-release/rollback", "RollbackRelease", {"id": "etcd-release"}),
        ("GET", "/api/charts/etcd", "GetChart", {"name": "etcd"}),
    ],
)
async def test_paths_resolve_to_their_rpc_with_path_variables(
    gateway_app: web.Application, method: str, path: str, rpc: str, params: dict[str, str]
) -> None:
    match = await _match(gateway_app, method, path)
    assert match.http_exception is None
    assert dict(match) == params
    route = next(r for r in build_routes(capstan_services()) if r.method.name == rpc)
    assert match.route.resource is not None
    assert match.route.resource.canonical == _canonical(route.router_path)


async def test_a_path_that_no_annotation_names_is_not_found(gateway_app: web.Application) -> None:
    match = await _match(gateway_app, "GET", "/api/releases/a/b/c")
    assert isinstance(match.http_exception, web.HTTPNotFound)
    match = await _match(gateway_app, "PATCH", "/api/releases/a")
    assert isinstance(match.http_exception, web.HTTPMethodNotAllowed)


# -- templates: the full google.api.http grammar, on a service made up for the test ------------


def _demo_service() -> ServiceDescriptor:
    """A service that exists only in this test: proof that nothing is wired per RPC."""
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, http_pb2, annotations_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="demo.proto", package="demo", syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    shelf = file.message_type.add(name="Shelf")
    shelf.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    request = file.message_type.add(name="Request")
    request.field.add(name="name", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    request.field.add(name="shelf", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                      type_name=".demo.Shelf")
    service = file.service.add(name="Demo")
    get = service.method.add(name="Get", input_type=".demo.Request", output_type=".demo.Request")
    rule = get.options.Extensions[annotations_pb2.http]
    rule.get = "/v1/{name=shelves/*/books/*}"
    rule.additional_bindings.add(post="/v1/shelves/{shelf.id}:archive", body="*")
    custom = service.method.add(name="Custom", input_type=".demo.Request",
                                output_type=".demo.Request")
    custom_rule = custom.options.Extensions[annotations_pb2.http]
    custom_rule.custom.kind = "HEAD"
    custom_rule.custom.path = "/v1/{name=**}"
    service.method.add(name="NotOverRest", input_type=".demo.Request",
                       output_type=".demo.Request")
    pool.Add(file)
    return pool.FindServiceByName("demo.Demo")


def test_additional_bindings_custom_verbs_and_nested_variables() -> None:
    routes = build_routes([_demo_service()])
    summary = [(r.method.name, r.http_method, r.template, r.body) for r in routes]
    assert summary == [
        ("Get", "GET", "/v1/{name=shelves/*/books/*}", ""),
        ("Get", "POST", "/v1/shelves/{shelf.id}:archive", "*"),
        ("Custom", "HEAD", "/v1/{name=**}", ""),
    ]
    assert [v.field_path for v in routes[1].variables] == ["shelf.id"]
    assert routes[1].bound_fields == {"shelf"}


async def test_templates_match_what_the_grammar_says() -> None:
    routes = build_routes([_demo_service()])
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    for route in routes:
        app.router.add_route(route.http_method, route.router_path, handler)

    async def params(method: str, path: str) -> dict[str, str] | None:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        return None if match.http_exception else dict(match)

    assert await params("GET", "/v1/shelves/s1/books/b2") == {"name": "shelves/s1/books/b2"}
    assert await params("GET", "/v1/shelves/s1") is None
    assert await params("POST", "/v1/shelves/s1:archive") == {"shelf__id": "s1"}
    assert await params("HEAD", "/v1/a/b/c") == {"name": "a/b/c"}


@pytest.mark.parametrize(
    ("template", "router_path", "fields"),
    [
        ("/api/releases", "/api/releases", []),
        ("/api/releases/{id}", "/api/releases/{id:[^/]+}", ["id"]),
        ("/v1/{a.b}/x/{c=p/*}", "/v1/{a__b:[^/]+}/x/{c:p/[^/]+}", ["a.b", "c"]),
        ("/v1/*/{name}:run", "/v1/{_wildcard0_2:[^/]+}/{name:[^/]+}:run", ["name"]),
    ],
)
def test_parse_template(template: str, router_path: str, fields: list[str]) -> None:
    path, variables = parse_template(template)
    assert path == router_path
    assert [v.field_path for v in variables] == fields


@pytest.mark.parametrize("template", ["api/releases", "/api/{id", "/api/id}"])
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(template)


def test_route_knows_its_grpc_path() -> None:
    routes = build_routes(capstan_services())
    route: Route = next(r for r in routes if r.method.name == "GetRelease")
    assert route.grpc_path == "/capstan.v1.ReleaseService/GetRelease"
