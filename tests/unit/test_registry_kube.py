"""`registry_kube.KubeRegistry` against kubesim: secrets go through the Sealer, declarative
Secrets with plain values are read, names stay unique, and another instance (replica) sees
the same ids."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from capstan_server.errors import AlreadyExists
from capstan_server.registry_kube import KubeRegistry
from kubesim.testing import running_kubesim


class Reversed:
    """A test Sealer: visibly different when stored, reversible."""

    def seal(self, plain: str) -> str:
        return "sealed:" + plain[::-1]

    def open(self, stored: str) -> str:
        return stored.removeprefix("sealed:")[::-1] if stored.startswith("sealed:") else stored


def _data(obj: dict[str, object], key: str) -> str:
    return base64.b64decode(obj["data"][key]).decode()  # type: ignore[index]


async def test_sealed_shared_and_unique() -> None:
    with running_kubesim() as sim:
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": "reg"}})
        a = await KubeRegistry.open(sim.kubeconfig, "reg", Reversed())
        b = await KubeRegistry.open(sim.kubeconfig, "reg", Reversed())
        try:
            row = await a.add_cluster("one", sim.kubeconfig, "https://x")
            stored = sim.store.get("secrets", "capstan-cluster-one", "reg")
            assert _data(stored, "kubeconfig").startswith("sealed:")
            assert _data(stored, "name") == "one"
            repo = await a.add_repo("r", "http://repo", username="u", password="pw")
            assert _data(sim.store.get("secrets", "capstan-repo-r", "reg"),
                         "password") == "sealed:wp"
            with pytest.raises(AlreadyExists):
                await b.add_cluster("one", sim.kubeconfig, "https://x")
            for _ in range(100):  # b's watch delivers
                if await b.find_repo("r") is not None:
                    break
                await asyncio.sleep(0.02)
            seen = await b.get_cluster("one")
            assert (seen.id, seen.kubeconfig) == (row.id, sim.kubeconfig)
            assert (await b.get_repo(repo.id)).password == "pw"
            updated = await b.update_repo(repo.id, password="new")
            assert updated.password == "new"
            # Declarative and plain: read as it is.
            sim.store.create("secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {
                    "name": "by-hand", "namespace": "reg",
                    "labels": {"capstan.io/registry": "cluster"}},
                "stringData": {"name": "two", "kubeconfig": sim.kubeconfig}})
            for _ in range(100):
                if None not in (await a.find_cluster("two"), await b.find_cluster("two")):
                    break
                await asyncio.sleep(0.02)
            two = await a.get_cluster("two")
            assert two.kubeconfig == sim.kubeconfig
            assert two.id == (await b.get_cluster("two")).id  # derived from the uid
            await a.delete_cluster(two.id)
            assert await a.find_cluster("two") is None
            rows, total = await a.list_clusters(limit=1)
            assert ([r.name for r in rows], total) == (["one"], 1)
        finally:
            await a.close()
            await b.close()


async def test_reads_follow_every_change_of_the_secrets() -> None:
    """The rows are kept decoded between changes; each change through the API (a write of
    this replica, another replica's, an admin's `kubectl apply` or delete) shows in the next
    read, and nothing else makes a read decode the Secrets again."""

    class Counting(Reversed):
        opened = 0

        def open(self, stored: str) -> str:
            Counting.opened += 1
            return super().open(stored)

    with running_kubesim() as sim:
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": "reg"}})
        a = await KubeRegistry.open(sim.kubeconfig, "reg", Counting())
        b = await KubeRegistry.open(sim.kubeconfig, "reg", Reversed())

        async def seen_by_a(check: Callable[[], bool]) -> None:
            for _ in range(200):  # a's watch delivers
                if check():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the change did not reach the other replica")

        try:
            row = await a.add_cluster("one", "first", "https://x")
            assert [r.kubeconfig for r in (await a.list_clusters())[0]] == ["first"]
            before = Counting.opened
            for _ in range(5):
                assert (await a.get_cluster("one")).kubeconfig == "first"
                await a.list_clusters()
            assert Counting.opened == before  # no change, nothing decoded again

            await a.update_cluster(row.id, kubeconfig="second")  # this replica's write
            assert (await a.list_clusters())[0][0].kubeconfig == "second"

            await b.update_cluster(row.id, kubeconfig="third")  # another replica's
            await seen_by_a(lambda: a._clusters()[0][1].kubeconfig == "third")
            assert (await a.get_cluster(row.id)).kubeconfig == "third"

            stored = sim.store.get("secrets", "capstan-cluster-one", "reg")
            stored["data"]["kubeconfig"] = base64.b64encode(b"by-hand").decode()
            sim.store.update("secrets", stored, "reg")  # an admin's
            await seen_by_a(lambda: a._clusters()[0][1].kubeconfig == "by-hand")

            sim.store.delete("secrets", "capstan-cluster-one", "reg")
            await seen_by_a(lambda: not a._clusters())
            assert await a.list_clusters() == ([], 0)
        finally:
            await a.close()
            await b.close()
