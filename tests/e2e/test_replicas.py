"""Several `capstan-server` processes against one kubesim (over TLS), on helm 3 and 4.

- Concurrent upgrades of one release through replicas A and B, 10 rounds: each upgrade either
  succeeds or is ABORTED (the release's Lease, `drivers/helm/leases.py`), and the final
  revision is 1 + the number of successes (no revision lost, none written twice).
- kill -9 of replica A (its helm dies with it: PR_SET_PDEATHSIG) in the middle of a `--wait`
  upgrade: replica B marks the pending revision failed by itself once A's Lease expired
  (`drivers/helm/recovery.py`); the next upgrade through B succeeds; history keeps every
  revision.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from replica_procs import HELMS, Replica, replicas, require

from capstan.client import Aborted, CapstanClient
from capstan_server.dev.chart_repo import ChartRepoServer
from kubesim.testing import running_kubesim

pytestmark = pytest.mark.timeout(240)

CHART = "samples/never-ready"
LEASE = 3.0


def _install(client: CapstanClient, name: str) -> None:
    client.create_release(CHART, cluster="sim", namespace="default", release_name=name,
                          values="neverReady: false\n")


@pytest.mark.parametrize("helm", HELMS)
def test_concurrent_upgrades_through_two_replicas(helm: Path, tmp_path: Path,
                                                  chart_repo: ChartRepoServer) -> None:
    require(helm)
    with running_kubesim(tls=True) as sim, replicas(tmp_path, helm, ["A", "B"]) as (a, b):
        for replica in (a, b):
            replica.register(sim.kubeconfig, chart_repo.url)
        _install(a.client, "contended")
        outcomes: list[str] = []
        lock = threading.Lock()

        def upgrade(replica: Replica, round_: int) -> None:
            try:
                # chart_name given: each replica's registry has its own repo id (sqlite).
                replica.client.upgrade_release(
                    "contended", CHART, cluster="sim", namespace="default",
                    values=f"neverReady: false\nround: {round_}\n")
                outcome = "ok"
            except Aborted as e:
                assert "replica" in str(e) or "in flight" in str(e), e
                outcome = "aborted"
            with lock:
                outcomes.append(outcome)

        most = 0
        sampling = threading.Event()

        def sample() -> None:  # helm upgrades of the release running at once, on A and B
            nonlocal most
            while not sampling.is_set():
                most = max(most, len(a.helm_pids("upgrade", "contended"))
                           + len(b.helm_pids("upgrade", "contended")))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for round_ in range(10):
            threads = [threading.Thread(target=upgrade, args=(r, round_)) for r in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        sampling.set()
        sampler.join(timeout=30)
        assert most == 1  # seen running, never two at once
        assert len(outcomes) == 20
        successes = outcomes.count("ok")
        assert successes >= 10  # at least one of each round's two
        release = b.client.get_release("contended", cluster="sim", namespace="default")
        assert (release.version, release.status) == (1 + successes, "deployed")
        history = a.client.get_release_history("contended", cluster="sim", namespace="default")
        # Contiguous up to the last (helm keeps the latest 10 by default).
        revisions = [r.revision for r in history.revisions]
        assert revisions == list(range(revisions[0], 2 + successes))
        assert sim.store.list("leases", "default") == []  # every Lease released


@pytest.mark.parametrize("helm", HELMS)
def test_a_killed_replica_is_recovered_by_another(helm: Path, tmp_path: Path,
                                                  chart_repo: ChartRepoServer) -> None:
    require(helm)
    extra = ["--lease-duration", str(LEASE)]
    with (running_kubesim(tls=True) as sim,
          replicas(tmp_path, helm, ["A", "B"], extra) as (a, b)):
        for replica in (a, b):
            replica.register(sim.kubeconfig, chart_repo.url)
        _install(b.client, "orphan")

        def hanging_upgrade() -> None:
            # Never ready: helm waits (up to 120 s) until A is killed under it.
            try:
                a.client.upgrade_release("orphan", CHART, cluster="sim", namespace="default",
                                         values="neverReady: true\n", wait=True, timeout=120)
            except Exception:
                return

        waiter = threading.Thread(target=hanging_upgrade, daemon=True)
        waiter.start()
        deadline = time.monotonic() + 60
        while b.client.get_release("orphan", cluster="sim",
                                   namespace="default").status != "pending-upgrade":
            assert time.monotonic() < deadline, "the upgrade never became pending"
            time.sleep(0.2)
        assert a.helm_pids(), "A's helm should be running"
        a.kill()
        killed = time.monotonic()
        # PR_SET_PDEATHSIG: A's helm dies with A.
        while a.helm_pids():
            assert time.monotonic() - killed < 10, "A's helm outlived A"
            time.sleep(0.1)

        while True:
            release = b.client.get_release("orphan", cluster="sim", namespace="default")
            if release.status == "failed":
                break
            # Twice the Lease duration, plus slack for a loaded machine.
            assert time.monotonic() - killed < 2 * LEASE + 10, release.status
            time.sleep(0.2)
        assert release.version == 2
        assert "upgrade interrupted: replica A stopped" in release.description
        assert "marked failed by replica B" in release.description

        upgraded = b.client.upgrade_release("orphan", CHART, cluster="sim", namespace="default",
                                            values="neverReady: false\n")
        assert (upgraded.version, upgraded.status) == (3, "deployed")
        history = b.client.get_release_history("orphan", cluster="sim", namespace="default")
        assert [(r.revision, r.status) for r in history.revisions] == [
            (1, "superseded"), (2, "failed"), (3, "deployed")]
