"""`registry_kube.KubeRegistry` against kubesim: secrets go through the Sealer, declarative
Secrets with plain values are read, names stay unique, and another instance (replica) sees
the same ids."""

from __future__ import annotations

import asyncio
import base64

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
