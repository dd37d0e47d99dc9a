"""Automatic recovery of releases a dead replica left `pending-*` (`--on-stuck`).

Every replica sweeps the release Leases (`leases.py`) of every registered cluster every half
Lease duration. An expired Lease means its replica stopped renewing it: it died (kill -9, a
lost node) while its helm ran, or right after. If the release's latest revision is still
`pending-*`, nobody is going to finish it, and the policy applies:

- `mark-failed` (default): the revision is marked failed (as `RecoverRelease` does), its
  description naming the operation, the dead replica and the recovering one;
- `rollback`: marked failed as above, then rolled back to the previous revision;
- `none`: left alone (an operator recovers it with `k8s-release-recover`).

The recovering replica takes the expired Lease over through the driver's ordinary write path
(resourceVersion-checked), so of several surviving replicas exactly one recovers a release. A
Lease expires `duration` after its last renewal and is seen at most `duration / 2` later, so
a release is recovered within 1.5 times the Lease duration. Expired Leases of releases that are not
pending (the replica died after helm finished) are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from capstan_server.drivers.base import (
    ClusterTarget,
    ReleaseRef,
    RollbackOptions,
    describe_release,
    format_since,
)
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.errors import CapstanError, NotFound
from capstan_server.replicas import StuckPolicy

log = logging.getLogger("capstan.recovery")


async def recover_cluster(driver: HelmDriver, cluster: ClusterTarget,
                          policy: StuckPolicy) -> list[str]:
    """Apply `policy` to the releases of `cluster` with an expired Lease; what was done."""
    client = driver.kube(cluster)
    done: list[str] = []
    for namespace, release, state, obj in await driver.leases.expired(client):
        ref = ReleaseRef(cluster, namespace, release)
        try:
            latest = await driver.get(ref)
        except NotFound:
            latest = None
        if latest is None or not latest.status.is_pending:
            await driver.leases.delete_stale(client, namespace, obj)
            continue
        if policy == "none":
            continue
        since = format_since(state.expires)
        what = (f"{state.operation or 'operation'} interrupted: replica {state.holder} stopped "
                f"(its lease expired at {since}); marked failed by replica "
                f"{driver.leases.identity}")
        try:
            await driver.mark_failed(ref, what)
            if policy == "rollback" and latest.revision > 1:
                await driver.rollback(RollbackOptions(
                    ref, 0, description=f"rollback after {what}"))
        except CapstanError as e:  # another replica got there first, or the cluster is down
            log.info("recovering %s: %s", describe_release(ref), e)
            continue
        log.warning("recovered %s (%s): %s", describe_release(ref), policy, what)
        done.append(f"{namespace}/{release}")
    return done


async def run_recovery(driver: HelmDriver,
                       clusters: Callable[[], Awaitable[list[ClusterTarget]]],
                       policy: StuckPolicy) -> None:
    """Sweep every cluster every half Lease duration until cancelled (see the docstring)."""
    if policy == "none":
        return
    while True:
        await asyncio.sleep(driver.leases.duration / 2)
        targets: list[ClusterTarget] = []
        with contextlib.suppress(CapstanError):
            targets = await clusters()
        for cluster in targets:
            try:
                await recover_cluster(driver, cluster, policy)
            except CapstanError as e:  # unreachable clusters are retried next sweep
                log.debug("recovery sweep of cluster %s: %s", cluster.name, e)
            except Exception:
                log.exception("recovery sweep of cluster %s failed", cluster.name)


__all__ = ["recover_cluster", "run_recovery"]
