"""The bounded helm pool (`drivers/helm/pool.py`): never more helm processes than the bound
(counted in /proc while they run), queued runs report their place, a full queue answers
RESOURCE_EXHAUSTED with a retry hint; end to end, a queued create shows `queued` in
WatchRelease and a refused one is 429 with Retry-After over REST.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from capstan.client import CapstanClient, DeadlineExceeded
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.helm.command import HelmCommand
from capstan_server.drivers.helm.pool import HelmPool
from capstan_server.errors import ResourceExhausted
from capstan_server.threaded import ServerHandle
from kubesim.testing import running_kubesim

pytestmark = pytest.mark.timeout(180)

HELM3 = Path(__file__).resolve().parents[3] / ".tools" / "bin" / "helm3"


def helm_children(name: str) -> int:
    """Processes called `name` whose parent is this process, from /proc."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if stat and stat[stat.index("(") + 1:stat.rindex(")")] == name:
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            count += parent == os.getpid()
    return count


async def test_never_more_processes_than_the_bound(tmp_path: Path) -> None:
    # A stand-in binary that takes a while, so that /proc sampling sees them overlap; the pool
    # counts processes, not what they do.
    fake = tmp_path / "slow-helm"
    fake.write_text("#!/bin/sh\nsleep 0.4\necho v3.17.2\n")
    fake.chmod(0o755)
    command = HelmCommand(fake, tmp_path / "data", max_processes=2)
    seen: list[int] = []

    async def sample() -> None:
        while True:
            seen.append(helm_children(fake.name))
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    runs = [asyncio.ensure_future(command.run(["version"], deadline=30, operation="version",
                                              queue_key=f"r{i}")) for i in range(6)]
    await asyncio.sleep(0.1)
    assert command.pool.running == 2 and command.pool.queued == 4
    assert [command.pool.position(f"r{i}") for i in range(6)] == [0, 0, 1, 2, 3, 4]
    await asyncio.gather(*runs)
    sampler.cancel()
    assert max(seen) == 2  # they did overlap, and never beyond the bound
    assert (command.pool.running, command.pool.queued) == (0, 0)


async def test_a_full_queue_is_refused_with_a_retry_hint() -> None:
    pool = HelmPool(max_processes=1, max_queued=1)
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with pool.slot("install", key):
            await release.wait()

    first, second = asyncio.ensure_future(hold("a")), asyncio.ensure_future(hold("b"))
    await asyncio.sleep(0.01)
    assert (pool.running, pool.queued, pool.position("b")) == (1, 1, 1)
    with pytest.raises(ResourceExhausted) as refused:
        async with pool.slot("install", "c"):
            pass
    (detail,) = refused.value.details
    assert detail["reason"] == "helm_queue_full" and detail["retry_after_seconds"] >= 1
    # A queued run that is cancelled leaves the queue; the slot passes on in order.
    third = asyncio.ensure_future(hold("c"))
    await asyncio.sleep(0.01)
    assert pool.queued == 1  # refused: the queue still holds only "b"
    with pytest.raises(ResourceExhausted):
        await third
    second.cancel()
    await asyncio.sleep(0.01)
    assert pool.queued == 0
    release.set()
    await first
    assert (pool.running, pool.queued) == (0, 0)


@pytest.fixture
def kubesim_cluster() -> Iterator[str]:
    with running_kubesim(tls=True) as sim:
        yield sim.kubeconfig


def test_queued_writes_report_queued_and_a_full_queue_is_429(
    capstan_server_factory: Callable[..., ServerHandle], chart_repo: ChartRepoServer,
    kubesim_cluster: str,
) -> None:
    if not os.access(HELM3, os.X_OK):
        pytest.skip(f"{HELM3} is not installed; run `make setup`")
    server = capstan_server_factory(driver="helm", helm_bin=HELM3, max_helm_processes=1,
                                    max_queued_writes=1)
    with CapstanClient(server.grpc_target, timeout=90, retries=0) as client, \
            ThreadPoolExecutor(4) as pool:
        client.create_cluster("one", kubesim_cluster)
        client.create_repository("samples", chart_repo.url)
        where = {"cluster": "one", "namespace": "default"}
        # Holds the only helm slot for its whole wait (it never gets ready).
        blocker = pool.submit(client.create_release, "samples/never-ready", **where,
                              release_name="blocker", wait=True, timeout=6)
        deadline = time.monotonic() + 60
        while not client.list_releases(name="blocker").releases:
            assert time.monotonic() < deadline, "the first install never started"
            time.sleep(0.05)
        queued = pool.submit(client.create_release, "samples/etcd", **where,
                             release_name="queued", version="8.11.1")
        events: list[tuple[bool, int]] = []
        watched = threading.Event()

        def watch() -> None:
            with CapstanClient(server.grpc_target, timeout=90, retries=0) as watcher:
                while not watched.is_set():
                    try:
                        for event in watcher.watch_release("queued", **where, timeout=30):
                            events.append((event.queued, event.queue_position))
                            if event.queued:
                                watched.set()
                                return
                    except Exception:  # NOT_FOUND until the create is queued
                        time.sleep(0.05)

        watching = pool.submit(watch)
        assert watched.wait(60), "no queued event"
        assert events[-1] == (True, 1)

        body = json.dumps({"chart_name": "samples/etcd", "release_name": "refused",
                           "version": "8.11.1", **where}).encode()
        request = urllib.request.Request(f"{server.http_url}/api/releases", data=body,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        answer = json.loads(refused.value.read())
        assert (refused.value.code, answer["status"]) == (429, "RESOURCE_EXHAUSTED")
        assert int(refused.value.headers["Retry-After"]) >= 1
        assert any(d.get("retry_after_seconds") for d in answer["details"])

        with pytest.raises(DeadlineExceeded):
            blocker.result(90)
        assert queued.result(90).status == "deployed"
        watching.result(30)
        assert not client.list_releases(name="refused").releases
