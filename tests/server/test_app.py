"""The assembled gRPC server: health, reflection, and errors carrying rich details end to end."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from capstan.v1 import release_pb2, release_pb2_grpc
from capstan_server.threaded import ServerHandle

CAPSTAN_SERVICES = ["capstan.v1.ChartService", "capstan.v1.ClusterService",
                    "capstan.v1.ReleaseService"]


def test_health_says_serving_for_the_server_and_each_service(capstan_server: ServerHandle) -> None:
    with grpc.insecure_channel(capstan_server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", *CAPSTAN_SERVICES]:
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_services(capstan_server: ServerHandle) -> None:
    with grpc.insecure_channel(capstan_server.grpc_target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = list(reflection.ServerReflectionInfo(iter([request])))
    names = {service.name for service in answer.list_services_response.service}
    assert names >= {*CAPSTAN_SERVICES, "grpc.health.v1.Health"}


def test_a_service_error_reaches_a_grpc_client_with_struct_details(
    capstan_server: ServerHandle,
) -> None:
    with grpc.insecure_channel(capstan_server.grpc_target) as channel:
        releases = release_pb2_grpc.ReleaseServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            releases.GetRelease(release_pb2.GetReleaseRequest(id="no-such-release"))
    error = caught.value
    assert error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    metadata = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    details = []
    for packed in status.details:
        struct = struct_pb2.Struct()
        assert packed.Unpack(struct)
        details.append(json_format.MessageToDict(struct))
    assert details, "a NOT_FOUND says what was not found"
