"""The helm driver's watch-fed release cache (`drivers/helm/informer.py`) against kubesim:
every write (through the driver, through plain helm, through a second driver with its own cache,
as another replica would) shows in the next list; a watch broken by kubesim (connection dropped,
410 Gone as a status and as an ERROR event) recovers without missing or duplicating a release.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    InstallOptions,
    ReleaseRef,
    UpgradeOptions,
)
from capstan_server.drivers.helm import informer, records
from capstan_server.drivers.helm.driver import HelmDriver
from kubesim.store import Store
from kubesim.testing import KubeSimThread, running_kubesim

TOOLS_BIN = Path(__file__).resolve().parents[3] / ".tools" / "bin"
LABELS = {"capstan.io/type": "external"}


def helm_path(name: str) -> Path:
    path = TOOLS_BIN / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed; run `make setup`")
    return path


def source(charts: dict[str, Path], name: str, version: str) -> ChartSource:
    return ChartSource(repo_id="r", repo_name="samples", repo_url="http://127.0.0.1/charts",
                       name=name, version=version, app_version="",
                       archive=charts[f"{name}-{version}"])


def release_doc(name: str, namespace: str, version: int, status: str) -> dict[str, object]:
    return {"name": name, "namespace": namespace, "version": version, "manifest": "",
            "config": {}, "chart": {"metadata": {"name": "etcd", "version": "8.11.1"}},
            "info": {"status": status, "description": "Install complete"}}

pytestmark = pytest.mark.timeout(180)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll an async check until it returns something truthy (generous: the machine is busy)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def replica(tmp_path: Path) -> AsyncIterator[HelmDriver]:
    """A second driver with its own cache and helm: what another Capstan process is."""
    driver = HelmDriver(data_dir=tmp_path / "b", helm_bin=helm_path("helm3"), term_grace=10)
    yield driver
    await driver.close()


def cluster_of(sim: KubeSimThread) -> ClusterTarget:
    return ClusterTarget(id="c-cache", name="cache", kubeconfig=sim.kubeconfig)


async def names(driver: HelmDriver, cluster: ClusterTarget, ns: str) -> list[tuple[str, int]]:
    return sorted((r.name, r.revision) for r in await driver.list(cluster, ns))


async def test_every_write_shows_in_the_next_list(
        driver: HelmDriver, replica: HelmDriver, kubesim: KubeSimThread, helm_cli: Any,
        charts: dict[str, Path], unique_namespace: str) -> None:
    cluster, ns = cluster_of(kubesim), unique_namespace
    assert await names(driver, cluster, ns) == []  # the cache is synced (and empty)

    ref = ReleaseRef(cluster, ns, "ours")
    await driver.install(InstallOptions(ref=ref, chart=source(charts, "etcd", "8.11.1"),
                                        values={}, labels=LABELS))
    assert await names(driver, cluster, ns) == [("ours", 1)]  # at once, no waiting
    values = {"commonLabels": {"team": "a"}}
    await driver.upgrade(UpgradeOptions(ref=ref, chart=source(charts, "etcd", "8.11.2"),
                                        values=values, labels=LABELS))
    assert await names(driver, cluster, ns) == [("ours", 2)]
    (listed,) = await driver.list(cluster, ns)
    # Summaries only in memory: no values, manifest, notes or hooks ...
    assert not listed.complete and listed.manifest == "" and listed.config == {}
    whole = await driver.get(ref)  # ... the whole record is read when asked for
    assert whole.manifest and whole.config == values

    helm_cli("install", "plain", str(charts["etcd-8.11.1"]), "-n", ns)
    # A name lookup reads through on a miss; the whole list has it within a second or so.
    assert [r.name for r in await driver.list(cluster, ns, name="plain")] == ["plain"]

    async def plain_listed() -> bool:
        return await names(driver, cluster, ns) == [("ours", 2), ("plain", 1)]

    await eventually(plain_listed, "the plain-helm release in the list")

    await replica.install(InstallOptions(ref=ReleaseRef(cluster, ns, "theirs"),
                                         chart=source(charts, "etcd", "8.11.1"), values={},
                                         labels=LABELS))

    async def replica_listed() -> bool:
        return ("theirs", 1) in await names(driver, cluster, ns)

    await eventually(replica_listed, "the other replica's release in the list")

    await driver.uninstall(ref)
    assert await names(driver, cluster, ns) == [("plain", 1), ("theirs", 1)]
    helm_cli("uninstall", "plain", "-n", ns)
    await replica.uninstall(ReleaseRef(cluster, ns, "theirs"))

    async def all_gone() -> bool:
        return await names(driver, cluster, ns) == []

    await eventually(all_gone, "the uninstalled releases to leave the list")


def _record(sim: KubeSimThread, ns: str, name: str, revision: int = 1,
            status: str = "deployed") -> None:
    sim.store.create("secrets", records.record_object(release_doc(name, ns, revision, status)),
                     ns)


def _drop_watches(sim: KubeSimThread) -> None:
    sim.loop.call_soon_threadsafe(sim.server.api.close_watches)


@pytest.fixture
def short_history_sim() -> Iterator[KubeSimThread]:
    """A kubesim that keeps few events, so a resumed watch soon finds its version compacted
    (a 410 ERROR event in the stream, as the API server sends it)."""
    with running_kubesim(store=Store(history=5), controllers=False) as sim:
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": "w"}})
        yield sim


async def test_broken_watches_recover_without_missing_or_duplicating(
        driver: HelmDriver, short_history_sim: KubeSimThread) -> None:
    sim, ns = short_history_sim, "w"
    cluster = cluster_of(sim)
    _record(sim, ns, "a")
    assert await names(driver, cluster, ns) == [("a", 1)]
    expected = {("a", 1)}

    async def listed_exactly() -> bool:
        found = [(r.name, r.revision) for r in await driver.list(cluster, ns)]
        assert len(found) == len(set(found)), f"duplicated: {found}"
        return set(found) == expected

    # 1. The connection dropped: the watch resumes from its resourceVersion.
    _drop_watches(sim)
    _record(sim, ns, "b")
    expected.add(("b", 1))
    await eventually(listed_exactly, "the list after a dropped watch")

    # 2. 410 Gone as an HTTP status when resuming: relist.
    sim.faults.fail("watch", "*", 410, count=2)
    _drop_watches(sim)
    sim.store.delete("secrets", "sh.helm.release.v1.a.v1", ns)
    _record(sim, ns, "c")
    expected = {("b", 1), ("c", 1)}
    await eventually(listed_exactly, "the list after 410 Gone")

    # 3. 410 as an ERROR event: the watch's version was compacted away while it was down.
    sim.faults.add(verb="watch", path="*", latency=1.0, count=2)
    _drop_watches(sim)
    for i in range(8):  # more events than kubesim keeps
        _record(sim, ns, f"n{i}")
    sim.store.delete("secrets", "sh.helm.release.v1.b.v1", ns)
    _record(sim, ns, "c", 2, "failed")
    expected = {("c", 2), *((f"n{i}", 1) for i in range(8))}
    await eventually(listed_exactly, "the list after a compacted watch")


async def test_an_unregistered_cluster_s_cache_stops(
        driver: HelmDriver, kubesim: KubeSimThread) -> None:
    # Nothing goes on watching a cluster (with its credentials) once it is unregistered.
    cluster = cluster_of(kubesim)
    driver.warm(cluster)
    await driver.list(cluster)
    informer = driver.caches()[cluster.id]
    namespaces = driver._namespace_caches[cluster.id][2]
    assert informer.running and namespaces.running

    driver.forget(cluster.id)

    assert cluster.id not in driver.caches()
    assert cluster.id not in driver._namespace_caches
    await eventually(lambda: _stopped(informer), "the release cache's watches to end")
    await eventually(lambda: _stopped(namespaces), "the namespace cache's watch to end")
    assert await driver.list(cluster) is not None  # registered again: a new cache starts
    assert driver.caches()[cluster.id] is not informer


async def _stopped(cache: Any) -> bool:
    return not cache.running


async def test_a_relist_in_many_pages_finds_every_release_once(
        driver: HelmDriver, short_history_sim: KubeSimThread,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The first list and every relist read page by page (decoding as they go); a release
    # is neither lost nor doubled at a page boundary.
    monkeypatch.setattr(informer, "_LIST_PAGE", 2)
    sim, ns = short_history_sim, "w"
    cluster = cluster_of(sim)
    for i in range(7):
        _record(sim, ns, f"p{i}")
    _record(sim, ns, "p0", 2, "failed")  # two latest-looking records of one release
    expected = [("p0", 2), *((f"p{i}", 1) for i in range(1, 7))]
    assert await names(driver, cluster, ns) == expected

    sim.faults.fail("watch", "*", 410, count=2)  # relist, in pages again
    _drop_watches(sim)
    sim.store.delete("secrets", "sh.helm.release.v1.p3.v1", ns)
    expected.remove(("p3", 1))

    async def relisted() -> bool:
        return await names(driver, cluster, ns) == expected

    await eventually(relisted, "the list after a relist in pages")
