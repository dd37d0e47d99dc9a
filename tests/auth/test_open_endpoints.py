"""With a policy loaded, the health service, `/healthz` and `/openapi.json` stay open, and
server reflection needs a credential like every other call."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from auth_kit import TOKENS
from auth_server import Secured, bearer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def test_health_is_open(secured: Secured) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    for path in ("/healthz", "/openapi.json"):
        with urllib.request.urlopen(secured.server.http_url + path, timeout=30) as response:
            assert response.status == 200


def _services(secured: Secured, metadata: tuple[tuple[str, str], ...]) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(secured.channel)
    requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    answers = list(stub.ServerReflectionInfo(requests, metadata=metadata, timeout=30))
    return [s.name for s in answers[0].list_services_response.service]


def test_reflection_needs_a_credential(secured: Secured) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        _services(secured, ())
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "capstan.v1.ReleaseService" in _services(secured, bearer(TOKENS["viewer-a"]))
