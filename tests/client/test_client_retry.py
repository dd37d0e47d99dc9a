"""Deadlines and retries: idempotent calls are retried on UNAVAILABLE within their deadline,
writes never are (but any call a full helm queue refused is sent again after the server's
hint), and calls that start an operation wait at least as long as it may take."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from capstan.client import (
    Aborted,
    CapstanClient,
    DeadlineExceeded,
    NotFound,
    ResourceExhausted,
    RetryPolicy,
    Unavailable,
)
from capstan.client.calls import OPERATION_MARGIN_S, call_timeout
from capstan.client.releases import create_release, get_release, watch_release
from capstan.client.retry import Attempts
from capstan.v1 import chart_pb2, release_pb2

from .fake_capstan import Failure, FakeCapstan

FAST = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.02)
UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, "cluster test122 is unreachable")

#: Every write, with a call that makes it. None of them may ever be sent twice.
WRITES: dict[str, Callable[[CapstanClient], Any]] = {
    "CreateRelease": lambda c: c.create_release("bitnami-new/etcd", release_name="etcd"),
    "UpgradeRelease": lambda c: c.upgrade_release("etcd", "bitnami-new/etcd"),
    "RollbackRelease": lambda c: c.rollback_release("etcd", 1),
    "DeleteRelease": lambda c: c.delete_release("etcd"),
    "RecoverRelease": lambda c: c.recover_release("etcd", "rollback"),
    "CreateRepository": lambda c: c.create_repository("bitnami-new", "http://charts"),
    "DeleteRepository": lambda c: c.delete_repository("bitnami-new"),
    "CreateCluster": lambda c: c.create_cluster("test122", "apiVersion: v1\n"),
    "DeleteCluster": lambda c: c.delete_cluster("test122"),
}

#: Every idempotent call, with a call that makes it.
READS: dict[str, Callable[[CapstanClient], Any]] = {
    "ListReleases": lambda c: c.list_releases(),
    "GetRelease": lambda c: c.get_release("etcd"),
    "GetReleaseHistory": lambda c: c.get_release_history("etcd"),
    "ListRepositories": lambda c: c.list_repositories(),
    "GetRepository": lambda c: c.get_repository("bitnami-new"),
    "SyncRepository": lambda c: c.sync_repository("bitnami-new"),
    "ListCharts": lambda c: c.list_charts(),
    "GetChart": lambda c: c.get_chart("etcd", repo="bitnami-new"),
    "ListClusters": lambda c: c.list_clusters(),
    "GetCluster": lambda c: c.get_cluster("test122"),
    "ListNamespaces": lambda c: c.list_namespaces(cluster="test122"),
}


@pytest.mark.parametrize("method", sorted(READS))
def test_reads_are_retried_on_unavailable(fake: FakeCapstan, method: str) -> None:
    fake.reply(method, UNAVAILABLE, UNAVAILABLE, Failure(grpc.StatusCode.NOT_FOUND, "gone"))

    with CapstanClient(fake.target, retries=FAST) as client, pytest.raises(NotFound):
        READS[method](client)

    assert len(fake.received(method)) == 3


@pytest.mark.parametrize("method", sorted(WRITES))
def test_writes_are_never_retried(fake: FakeCapstan, method: str) -> None:
    fake.reply(method, UNAVAILABLE, release_pb2.Release(name="etcd"))

    with CapstanClient(fake.target, retries=FAST) as client, pytest.raises(Unavailable):
        WRITES[method](client)

    assert len(fake.received(method)) == 1


def test_a_retried_read_returns_the_answer(fake: FakeCapstan) -> None:
    fake.reply("GetRelease", UNAVAILABLE, UNAVAILABLE, release_pb2.Release(name="etcd", version=3))

    with CapstanClient(fake.target, retries=FAST) as client:
        release = client.get_release("etcd")

    assert (release.name, release.version) == ("etcd", 3)
    assert len(fake.received("GetRelease")) == 3


def test_retries_stop_after_the_policy_s_count(fake: FakeCapstan) -> None:
    fake.reply("ListReleases", UNAVAILABLE)

    policy = RetryPolicy(retries=2, initial_backoff=0.01, max_backoff=0.01)
    with CapstanClient(fake.target, retries=policy) as client, pytest.raises(Unavailable):
        client.list_releases()

    assert len(fake.received("ListReleases")) == 3


def test_other_errors_are_not_retried(fake: FakeCapstan) -> None:
    fake.reply("GetRelease", Failure(grpc.StatusCode.ABORTED, "upgrade in progress"))

    with CapstanClient(fake.target, retries=FAST) as client, pytest.raises(Aborted):
        client.get_release("etcd")

    assert len(fake.received("GetRelease")) == 1


def queue_full(retry_after_seconds: float) -> Failure:
    """The server's answer when its helm queue is full (`drivers/helm/pool.py`)."""
    return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many helm operations", [
        {"reason": "helm_queue_full", "retry_after_seconds": retry_after_seconds}])


@pytest.mark.parametrize("method", sorted(WRITES))
def test_writes_refused_by_a_full_queue_are_sent_again(fake: FakeCapstan, method: str) -> None:
    # Refused before anything ran: sending it again is safe, after the server's hint.
    fake.reply(method, queue_full(0.05), release_pb2.Release(name="etcd"))

    started = time.monotonic()
    with CapstanClient(fake.target, retries=FAST) as client:
        WRITES[method](client)

    assert len(fake.received(method)) == 2
    assert time.monotonic() - started >= 0.05


def test_a_full_queue_is_raised_once_the_retries_are_spent(fake: FakeCapstan) -> None:
    fake.reply("CreateRelease", queue_full(0.01))

    policy = RetryPolicy(retries=2, initial_backoff=0.01, max_backoff=0.01)
    with CapstanClient(fake.target, retries=policy) as client, \
            pytest.raises(ResourceExhausted) as caught:
        WRITES["CreateRelease"](client)

    assert len(fake.received("CreateRelease")) == 3
    assert caught.value.details[0]["retry_after_seconds"] == 0.01


def test_a_hint_past_the_deadline_is_not_waited_for(fake: FakeCapstan) -> None:
    # The call's deadline is its operation timeout plus OPERATION_MARGIN_S (31 s here); the
    # hint must lie past it even before jitter (up to +20 %) is added, or it may be waited for.
    hint = 2 * (1 + OPERATION_MARGIN_S)
    fake.reply("CreateRelease", queue_full(hint))

    started = time.monotonic()
    client = CapstanClient(fake.target, timeout=2, retries=FAST)
    with client, pytest.raises(ResourceExhausted):
        client.create_release("bitnami-new/etcd", release_name="etcd", timeout=1)

    assert len(fake.received("CreateRelease")) == 1
    assert time.monotonic() - started < 5


def test_other_resource_exhausted_errors_are_not_retried(fake: FakeCapstan) -> None:
    # E.g. a message over the size limit: sending it again would fail the same way.
    fake.reply("CreateRelease", Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large"))

    with CapstanClient(fake.target, retries=FAST) as client, pytest.raises(ResourceExhausted):
        WRITES["CreateRelease"](client)

    assert len(fake.received("CreateRelease")) == 1


def test_retries_share_the_call_s_deadline(fake: FakeCapstan) -> None:
    fake.reply("ListCharts", UNAVAILABLE)
    patient = RetryPolicy(retries=1000, initial_backoff=0.05, max_backoff=0.05)

    started = time.monotonic()
    client = CapstanClient(fake.target, timeout=0.5, retries=patient)
    with client, pytest.raises(Unavailable):
        client.list_charts()

    assert time.monotonic() - started < 1.5
    assert 2 <= len(fake.received("ListCharts")) < 1000


def test_no_retry_is_started_without_time_left_to_finish() -> None:
    now = [0.0]
    policy = RetryPolicy(retries=5, initial_backoff=0.05, max_backoff=0.05)
    attempts = Attempts(policy, idempotent=True, timeout=0.5, clock=lambda: now[0])
    unavailable = Unavailable(grpc.StatusCode.UNAVAILABLE, "no server")
    assert attempts.next_delay(unavailable) is not None
    now[0] = 0.34  # after the wait (0.025 to 0.05 s), at least 0.11 s is left: one more
    assert attempts.next_delay(unavailable) is not None
    now[0] = 0.38  # at most 0.095 s would be left: the error is raised as it is
    assert attempts.next_delay(unavailable) is None


def test_an_unreachable_server_is_unavailable_after_the_retries() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CapstanClient(f"127.0.0.1:{port}", retries=FAST)
    with client, pytest.raises(Unavailable):
        client.list_releases()


def _slow(seconds: float) -> Callable[[Any, grpc.ServicerContext], Any]:
    def answer(request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(seconds)
        return None

    return answer


def test_the_client_timeout_is_each_call_s_default_deadline(fake: FakeCapstan) -> None:
    fake.reply("GetRelease", _slow(3))

    started = time.monotonic()
    with CapstanClient(fake.target, timeout=0.3) as client, pytest.raises(DeadlineExceeded):
        client.get_release("etcd")

    assert time.monotonic() - started < 2


def test_a_per_call_deadline_overrides_the_default(fake: FakeCapstan) -> None:
    fake.reply("ListReleases", _slow(3))

    started = time.monotonic()
    with CapstanClient(fake.target, timeout=60) as client, pytest.raises(DeadlineExceeded):
        client.list_releases(deadline=0.3)

    assert time.monotonic() - started < 2


def test_the_server_sees_the_deadline(fake: FakeCapstan) -> None:
    remaining: list[float | None] = []

    def record(request: Any, context: grpc.ServicerContext) -> Any:
        remaining.append(context.time_remaining())
        return None

    fake.reply("UpgradeRelease", record)
    fake.reply("GetRelease", record)

    with CapstanClient(fake.target, timeout=10) as client:
        client.get_release("etcd")
        client.upgrade_release("etcd", "bitnami-new/etcd", timeout=600)

    read, write = remaining
    # The client's 10 s, less what a loaded machine took to deliver the call.
    assert read is not None and 1 < read <= 10
    # An upgrade may run 600 s on the server: the client does not give up before that.
    assert write is not None and write > 600


def test_operations_wait_at_least_their_own_timeout() -> None:
    assert call_timeout(get_release("etcd"), 30) == 30
    assert call_timeout(create_release("r/c", timeout=600), 30) == 600 + OPERATION_MARGIN_S
    # 0 means the server's default of 300 s.
    assert call_timeout(create_release("r/c"), 30) == 300 + OPERATION_MARGIN_S
    assert call_timeout(watch_release("etcd", timeout=5), 30) == 5 + OPERATION_MARGIN_S
    assert call_timeout(create_release("r/c", timeout=600, deadline=5), 30) == 5
    assert call_timeout(create_release("r/c"), None) is None


def test_metadata_goes_with_every_call(fake: FakeCapstan) -> None:
    seen: list[dict[str, str | bytes]] = []

    def record(request: Any, context: grpc.ServicerContext) -> Any:
        seen.append(dict(context.invocation_metadata()))
        return chart_pb2.ListRepositoriesResponse(total=0)

    fake.reply("ListRepositories", record)

    with CapstanClient(fake.target, metadata={"x-auth-token": "secret"}) as client:
        client.list_repositories()
    with CapstanClient(fake.target, metadata=[("authorization", "Bearer t")]) as client:
        client.list_repositories()

    assert seen[0]["x-auth-token"] == "secret"
    assert seen[1]["authorization"] == "Bearer t"
