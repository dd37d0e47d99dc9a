"""Issue 12's cache exactness across processes: replica A's release list is fed by a watch
(`drivers/helm/informer.py`), so what another `capstan-server` process (replica B, its own cache
and helm, the same kubesim) writes must show in A's next list and show within a second, and
what A writes itself must show in A's very next list, with no waiting at all.

Each write of a release's life (create, upgrade, rollback, delete) in turn, on helm 3 and 4;
`tests/drivers/helm/test_release_cache.py` covers the same with two drivers in one process,
plain helm and broken watches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from replica_procs import HELMS, Replica, replicas, require, within

from capstan.client import NotFound
from capstan_server.dev.chart_repo import ChartRepoServer
from kubesim.testing import KubeSimThread, running_kubesim

pytestmark = pytest.mark.timeout(180)

#: "records written by plain helm or another replica appear within a second" (issue 12).
SEEN_WITHIN = 1.0
#: (name, revision, status, chart version) of a release as a list or a show gives it.
Row = tuple[str, int, str, str]


@pytest.fixture(scope="module", params=HELMS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         chart_repo: ChartRepoServer) -> Iterator[tuple[KubeSimThread, Replica, Replica]]:
    """kubesim and replicas A and B on one helm major, both with cluster `sim` registered;
    shared by this module's tests (each in a namespace of its own)."""
    helm = require(request.param)
    tmp = tmp_path_factory.mktemp(f"replica-cache-{helm.name}")
    with running_kubesim(tls=True) as sim, replicas(tmp, helm, ["A", "B"]) as (a, b):
        for replica in (a, b):
            replica.register(sim.kubeconfig, chart_repo.url)
        yield sim, a, b


def _namespace(sim: KubeSimThread, name: str) -> str:
    sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": name}})
    return name


def _listed(replica: Replica, namespace: str) -> list[Row]:
    page = replica.client.list_releases(cluster="sim", namespace=namespace)
    assert page.total == len(page.releases)
    return sorted((r.name, r.version, r.status, r.chart_version) for r in page.releases)


def _shown(replica: Replica, namespace: str, name: str) -> Row | None:
    try:
        r = replica.client.get_release(name, cluster="sim", namespace=namespace)
    except NotFound:
        return None
    return (r.name, r.version, r.status, r.chart_version)


def _lifecycle(writer: Replica, namespace: str,
               check: Callable[[Row | None], None]) -> None:
    """Create, upgrade, roll back and delete release `life` through `writer`; after each write,
    `check` is given what the reader must now list and show (None once deleted)."""
    where = {"cluster": "sim", "namespace": namespace}
    writer.client.create_release("samples/etcd", release_name="life", version="8.11.1", **where)
    check(("life", 1, "deployed", "8.11.1"))
    writer.client.upgrade_release("life", "samples/etcd", version="8.11.2", **where)
    check(("life", 2, "deployed", "8.11.2"))
    writer.client.rollback_release("life", 1, **where)
    check(("life", 3, "deployed", "8.11.1"))
    writer.client.delete_release("life", **where)
    check(None)


def test_another_replicas_writes_show_within_a_second(
        pair: tuple[KubeSimThread, Replica, Replica]) -> None:
    sim, a, b = pair
    ns = _namespace(sim, "written-by-b")
    assert _listed(a, ns) == []

    def seen_on_a(expected: Row | None) -> None:
        rows = [expected] if expected else []
        # A's cache learns of B's write from its watch: bounded, no tighter than the issue's.
        within(SEEN_WITHIN, lambda: True if _listed(a, ns) == rows else None)
        assert _shown(a, ns, "life") == expected

    _lifecycle(b, ns, seen_on_a)


def test_this_replicas_writes_show_in_its_next_list(
        pair: tuple[KubeSimThread, Replica, Replica]) -> None:
    sim, a, b = pair
    ns = _namespace(sim, "written-by-a")
    assert _listed(a, ns) == []

    def read_your_writes(expected: Row | None) -> None:
        rows = [expected] if expected else []
        assert _listed(a, ns) == rows  # at once: no poll
        assert _shown(a, ns, "life") == expected
        # And B, which only has its watch, within the same second.
        within(SEEN_WITHIN, lambda: True if _listed(b, ns) == rows else None)

    _lifecycle(a, ns, read_your_writes)
