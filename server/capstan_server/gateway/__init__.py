"""The HTTP/JSON gateway: REST paths from the protos' `google.api.http` annotations, served by
forwarding to the gRPC server. `build_gateway` is all the server needs from this package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata

import grpc.aio
from aiohttp import web
from google.protobuf.descriptor import ServiceDescriptor

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server.auth.openapi import add_security
from capstan_server.gateway.app import Forward, Gateway
from capstan_server.gateway.guard import GuardOptions, guard_middleware
from capstan_server.gateway.in_process import InProcessCalls
from capstan_server.gateway.kubeserver import CAPSTAN
from capstan_server.gateway.openapi import build_openapi
from capstan_server.gateway.operations import Operations
from capstan_server.gateway.routes import Route, build_routes

_DESCRIPTION = (
    "Capstan runs the Helm release lifecycle on many Kubernetes clusters. This REST API is "
    "a gateway to its gRPC services; both take the same path through the server."
)
_HEALTHZ = {
    "get": {
        "operationId": "healthz",
        "summary": "Readiness: 200 once the server serves, 503 while starting or stopping.",
        "responses": {
            "200": {"description": "Serving", "content": {"application/json": {}}},
            "503": {"description": "Not serving", "content": {"application/json": {}}},
        },
    }
}


def capstan_services() -> list[ServiceDescriptor]:
    """The descriptors of every Capstan gRPC service, in a stable order."""
    return [
        service
        for module in (release_pb2, chart_pb2, cluster_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    ]


def _version() -> str:
    try:
        return metadata.version("capstan")
    except metadata.PackageNotFoundError:
        return "0"


def build_gateway(
    channel: grpc.aio.Channel,
    *,
    is_ready: Callable[[], bool],
    services: Sequence[ServiceDescriptor] | None = None,
    operations: Operations | None = None,
    guard: GuardOptions | None = None,
    forward: Forward | None = None,
    dialect: str = CAPSTAN,
    local: InProcessCalls | None = None,
) -> web.Application:
    """The aiohttp application serving the REST API of `services` (default: Capstan's);
    `forward(request)` gives metadata to add to each gRPC call (the gateway's credential);
    `local`, the server's in-process calls, serves unary calls without the loopback hop."""
    routes: list[Route] = build_routes(services if services is not None else capstan_services())
    document = build_openapi(
        routes,
        title="Capstan",
        version=_version(),
        description=_DESCRIPTION,
        extra_paths={"/healthz": _HEALTHZ},
    )
    add_security(document)
    gateway = Gateway(
        channel,
        routes,
        is_ready=is_ready,
        openapi=document,
        operations=operations,
        middlewares=[guard_middleware(guard or GuardOptions())],
        forward=forward,
        dialect=dialect,
        local=local,
    )
    return gateway.application()


__all__ = ["InProcessCalls", "Operations", "build_gateway", "capstan_services"]
