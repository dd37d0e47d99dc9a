"""The helm driver's watch-fed namespace cache (`drivers/helm/namespace_cache.py`) against
kubesim: while nothing changes a read is the same list from memory; a namespace created,
deleted or deleted and created again (a new UID) by someone else shows within the watch's
latency; one a caller expects is read through at once; one helm creates for a write through
the driver is there on the very next read.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_release_cache import LABELS, eventually, source

from capstan_server.drivers.base import ClusterTarget, InstallOptions, ReleaseRef
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.drivers.helm.kube import KubeClient, KubeConfig
from capstan_server.drivers.helm.namespace_cache import NamespaceCache
from kubesim.testing import KubeSimThread

pytestmark = pytest.mark.timeout(180)


def cluster_of(sim: KubeSimThread) -> ClusterTarget:
    return ClusterTarget(id="c-namespaces", name="namespaces", kubeconfig=sim.kubeconfig)


def create_namespace(sim: KubeSimThread, name: str) -> str:
    """Create a namespace behind the driver's back; its UID."""
    made = sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name}})
    return str(made["metadata"]["uid"])


async def uids(driver: HelmDriver, cluster: ClusterTarget, *expect: str) -> dict[str, str]:
    return {n.name: n.uid for n in await driver.namespaces(cluster, expect=expect)}


async def live(driver: HelmDriver, cluster: ClusterTarget) -> None:
    """Wait until reads come from the cache: the same list object, read after read."""
    async def same() -> bool:
        return await driver.namespaces(cluster) is await driver.namespaces(cluster)

    await eventually(same, "the namespace cache to answer")


async def test_reads_follow_namespaces_created_deleted_and_recreated_by_others(
        driver: HelmDriver, kubesim: KubeSimThread) -> None:
    cluster = cluster_of(kubesim)
    assert "default" in await uids(driver, cluster)  # the first read: from the cluster
    await live(driver, cluster)

    name = f"t-{uuid.uuid4().hex[:10]}"
    first = create_namespace(kubesim, name)

    async def has(uid: str) -> bool:
        return (await uids(driver, cluster)).get(name) == uid

    await eventually(lambda: has(first), "the new namespace over the watch")

    kubesim.store.delete("namespaces", name)

    async def gone() -> bool:
        return name not in await uids(driver, cluster)

    await eventually(gone, "the deleted namespace to leave the cache")

    second = create_namespace(kubesim, name)
    assert second != first
    await eventually(lambda: has(second), "the recreated namespace's new UID")
    await live(driver, cluster)


async def test_an_expected_namespace_missing_from_the_cache_is_read_through(
        driver: HelmDriver, kubesim: KubeSimThread) -> None:
    cluster = cluster_of(kubesim)
    await uids(driver, cluster)
    await live(driver, cluster)

    name = f"t-{uuid.uuid4().hex[:10]}"
    uid = create_namespace(kubesim, name)
    # Whether or not the watch has brought it yet: asked for by name, it is there.
    assert (await uids(driver, cluster, name))[name] == uid
    # A name that does not exist is read for, found missing, and not made up.
    assert "t-nowhere" not in await uids(driver, cluster, "t-nowhere")


async def test_a_namespace_helm_creates_for_a_write_is_there_on_the_next_read(
        driver: HelmDriver, kubesim: KubeSimThread, charts: dict[str, Path]) -> None:
    cluster = cluster_of(kubesim)
    await uids(driver, cluster)
    await live(driver, cluster)

    name = f"t-{uuid.uuid4().hex[:10]}"
    await driver.install(InstallOptions(
        ref=ReleaseRef(cluster, name, "ours"), chart=source(charts, "etcd", "8.11.1"),
        values={}, labels=LABELS, create_namespace=True))

    # No waiting and no `expect`: the driver read the namespace back after the write.
    created = kubesim.store.get("namespaces", name)
    assert (await uids(driver, cluster))[name] == created["metadata"]["uid"]
    await driver.uninstall(ReleaseRef(cluster, name, "ours"))


def _namespace(name: str, uid: str, rv: int) -> dict[str, object]:
    return {"metadata": {"name": name, "uid": uid, "resourceVersion": str(rv)}}


def test_an_older_answer_never_undoes_a_newer_one() -> None:
    """Reads of the cluster (read-throughs) race the watch: whichever arrives last, what is
    kept is the newest state of each name (resourceVersions), and a name a read did not find
    is not read for again until the watch brings it or `ABSENT_FOR` passes."""
    cache = NamespaceCache(KubeClient(KubeConfig(server="https://127.0.0.1:9")))
    cache._replace([_namespace("kept", "u1", 5), _namespace("gone", "u2", 6)], "10")
    assert [(n.name, n.uid) for n in cache.namespaces()] == [("gone", "u2"), ("kept", "u1")]

    cache._apply("DELETED", _namespace("gone", "u2", 12))
    cache.absorb([_namespace("gone", "u2", 6)])  # a read from before the deletion
    cache.absorb([_namespace("old", "u0", 8)])  # deleted before the list was taken
    assert [n.name for n in cache.namespaces()] == ["kept"]

    cache._apply("ADDED", _namespace("gone", "u3", 14))  # created again: a new UID
    cache.absorb([_namespace("gone", "u2", 6)])
    assert {n.name: n.uid for n in cache.namespaces()} == {"gone": "u3", "kept": "u1"}

    assert cache.misses(["new"]) and not cache.misses(["kept"])
    cache.not_found(["new"])
    assert not cache.misses(["new"])  # read for a moment ago
    cache._apply("ADDED", _namespace("new", "u4", 15))
    assert not cache.misses(["new"]) and "new" in {n.name for n in cache.namespaces()}
