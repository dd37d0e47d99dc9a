"""`watch_release` iterates ReleaseEvents; opening the stream is retried, later failures are not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from capstan.client import AsyncCapstanClient, CapstanClient, RetryPolicy, Unavailable
from capstan.v1 import release_pb2

from .fake_capstan import Failure, FakeCapstan

FAST = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.02)
UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, "draining")


def event(status: str, progress: int = 0, settled: bool = False) -> release_pb2.ReleaseEvent:
    release = release_pb2.Release(name="etcd-release", status=status, progress=progress)
    return release_pb2.ReleaseEvent(release=release, settled=settled)


EVENTS = [event("pending-install", 10), event("pending-install", 60), event("deployed", 0, True)]


def test_events_arrive_in_order_until_the_release_settles(fake: FakeCapstan) -> None:
    fake.reply("WatchRelease", EVENTS)

    with CapstanClient(fake.target) as client:
        events = list(client.watch_release("etcd-release", cluster="test122", timeout=60))

    assert [(e.release.status, e.release.progress, e.settled) for e in events] == [
        ("pending-install", 10, False),
        ("pending-install", 60, False),
        ("deployed", 0, True),
    ]
    (request,) = fake.received("WatchRelease")
    assert (request.id, request.cluster, request.timeout) == ("etcd-release", "test122", 60)


def test_opening_the_stream_is_retried_on_unavailable(fake: FakeCapstan) -> None:
    fake.reply("WatchRelease", UNAVAILABLE, UNAVAILABLE, EVENTS)

    with CapstanClient(fake.target, retries=FAST) as client:
        events = list(client.watch_release("etcd-release"))

    assert len(events) == 3
    assert len(fake.received("WatchRelease")) == 3


def test_a_failure_after_the_first_event_is_raised(fake: FakeCapstan) -> None:
    def one_then_fail(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield EVENTS[0]
        context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down")

    fake.reply("WatchRelease", one_then_fail, EVENTS)

    received = []
    with CapstanClient(fake.target, retries=FAST) as client, pytest.raises(Unavailable):
        for item in client.watch_release("etcd-release"):
            received.append(item)

    assert len(received) == 1
    assert len(fake.received("WatchRelease")) == 1


def test_cancel_from_another_thread_ends_the_iteration(fake: FakeCapstan) -> None:
    def forever(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield EVENTS[0]
        while context.is_active():
            time.sleep(0.01)

    fake.reply("WatchRelease", forever)

    with CapstanClient(fake.target) as client:
        stream = client.watch_release("etcd-release")
        first = next(stream)
        threading.Timer(0.2, stream.cancel).start()
        rest = list(stream)

    assert first.release.status == "pending-install"
    assert rest == []


async def test_the_async_watch_retries_its_set_up_too(fake: FakeCapstan) -> None:
    fake.reply("WatchRelease", UNAVAILABLE, EVENTS)

    async with AsyncCapstanClient(fake.target, retries=FAST) as client:
        events = [e async for e in client.watch_release("etcd-release")]

    assert [e.settled for e in events] == [False, False, True]
    assert len(fake.received("WatchRelease")) == 2
