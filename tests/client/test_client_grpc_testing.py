"""The server's statuses as the client reads them, with no network: `grpc_testing`'s channel
stands in for the server and answers each call with exactly what the server's interceptor
sends (`interceptors.status_for`), so the two halves of the error contract meet here."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc_testing
import pytest

import capstan.client
from capstan.client import CapstanClient, RetryPolicy
from capstan.v1 import release_pb2
from capstan_server import errors as server_errors
from capstan_server.interceptors import status_for

GET_RELEASE = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"].methods_by_name[
    "GetRelease"
]
FAST = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.02)


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> grpc_testing.Channel:
    """The channel every CapstanClient of the test gets, whatever its endpoint."""
    fake = grpc_testing.channel(
        release_pb2.DESCRIPTOR.services_by_name.values(), grpc_testing.strict_real_time()
    )
    monkeypatch.setattr(grpc, "insecure_channel", lambda target, options=(): fake)
    return fake


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Runs the blocking client call while the test answers it."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def fail(rpc: grpc_testing.UnaryUnaryChannelRpc, error: server_errors.CapstanError) -> None:
    """End `rpc` as the server's interceptor ends a call that raised `error`."""
    status = status_for(error)
    rpc.terminate(None, status.trailing_metadata, status.code, status.details)


@pytest.mark.parametrize(
    "error_type",
    [
        server_errors.InvalidArgument,
        server_errors.NotFound,
        server_errors.AlreadyExists,
        server_errors.FailedPrecondition,
        server_errors.Aborted,
        server_errors.DeadlineExceeded,
    ],
)
def test_a_server_error_is_the_client_exception_of_the_same_name(
    channel: grpc_testing.Channel,
    pool: ThreadPoolExecutor,
    error_type: type[server_errors.CapstanError],
) -> None:
    error = error_type(
        "release name 'etcd' is ambiguous",
        details=[{"id": "0c6f", "cluster": "test122", "namespace": "default", "revision": 3}],
    )
    with CapstanClient("capstan.test:50051", retries=0) as client:
        answer = pool.submit(client.get_release, "etcd", cluster="test122")
        _, request, rpc = channel.take_unary_unary(GET_RELEASE)
        fail(rpc, error)
        with pytest.raises(getattr(capstan.client, error_type.__name__)) as raised:
            answer.result(timeout=10)

    assert (request.id, request.cluster) == ("etcd", "test122")
    assert (raised.value.code, raised.value.message) == (error.code, error.message)
    assert raised.value.details == [
        {"id": "0c6f", "cluster": "test122", "namespace": "default", "revision": 3.0}
    ]


def test_unavailable_is_retried_with_the_same_request(
    channel: grpc_testing.Channel, pool: ThreadPoolExecutor
) -> None:
    with CapstanClient("capstan.test:50051", retries=FAST, metadata={"x-team": "db"}) as client:
        answer = pool.submit(client.get_release, "etcd")
        first_metadata, first, rpc = channel.take_unary_unary(GET_RELEASE)
        fail(rpc, server_errors.Unavailable("cluster test122 is unreachable"))
        second_metadata, second, rpc = channel.take_unary_unary(GET_RELEASE)
        rpc.terminate(release_pb2.Release(name="etcd", version=3), (), grpc.StatusCode.OK, "")
        release = answer.result(timeout=10)

    assert (release.name, release.version) == ("etcd", 3)
    assert first == second
    assert ("x-team", "db") in first_metadata and ("x-team", "db") in second_metadata
