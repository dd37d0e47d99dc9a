"""Per-release write locks shared by every Capstan replica: a `coordination.k8s.io/v1` Lease.

Helm's own `pending-*` record is written only once helm runs, so two replicas checking it at
the same moment would both go ahead. Before helm runs, the writing replica therefore creates
the Lease `capstan-release-<release name>` in the release's namespace, in the release's own
cluster (the one place every replica writing that release can reach; no extra namespace or
permission to configure). Its shape:

    metadata.labels:      app.kubernetes.io/managed-by: capstan, capstan.io/lock: release,
                          capstan.io/release: <release name>
    metadata.annotations: capstan.io/operation: <install|upgrade|rollback|uninstall|...>
    spec: holderIdentity (the replica id, `--replica-id`), leaseDurationSeconds
          (`--lease-duration`), acquireTime, renewTime, leaseTransitions

- The Lease exists and is unexpired (renewTime + leaseDurationSeconds in the future): the
  write is refused with Aborted naming the holder, the operation and since when.
- It exists but expired (its replica died): it is taken over with an update checked by
  resourceVersion, so of two replicas taking it over at once exactly one wins.
- While helm runs the holder renews it every third of the duration; afterwards it is deleted
  (preconditioned on its resourceVersion: a Lease someone took over is left to them).
- The namespace does not exist yet (an install with create_namespace): there is nowhere to
  put a Lease, and the write goes ahead guarded by helm's own record alone.

Expired Leases are also how a surviving replica finds releases a dead one left `pending-*`
(`expired`, used by `HelmDriver.recover_stuck`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from capstan_server.drivers.base import ReleaseRef, describe_release, format_since
from capstan_server.drivers.helm.kube import KubeClient
from capstan_server.errors import Aborted, CapstanError, NotFound

log = logging.getLogger("capstan.leases")

GROUP_PATH = "/apis/coordination.k8s.io/v1"
LOCK_LABEL = "capstan.io/lock"
RELEASE_LABEL = "capstan.io/release"
OPERATION_ANNOTATION = "capstan.io/operation"
SELECTOR = f"{LOCK_LABEL}=release"
DEFAULT_LEASE_DURATION = 15.0


def default_replica_id() -> str:
    """`<hostname>-<pid>`: unique per process, readable in an ABORTED message."""
    return f"{socket.gethostname()}-{os.getpid()}"


def lease_name(release: str) -> str:
    # Release names are at most 53 characters, so this stays a valid object name.
    return f"capstan-release-{release}"


def _now() -> datetime:
    return datetime.now(UTC)


def _micro_time(t: datetime) -> str:
    # Kubernetes MicroTime, as client-go writes it.
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseState:
    """What a Lease says about its holder."""

    holder: str
    operation: str
    acquired: datetime | None
    expires: datetime | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> LeaseState:
        spec = obj.get("spec") or {}
        meta = obj.get("metadata") or {}
        renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
        duration = spec.get("leaseDurationSeconds")
        expires = (renewed + timedelta(seconds=float(duration))
                   if renewed is not None and isinstance(duration, int | float) else None)
        return cls(holder=str(spec.get("holderIdentity") or ""),
                   operation=str((meta.get("annotations") or {}).get(OPERATION_ANNOTATION, "")),
                   acquired=_parse_time(spec.get("acquireTime")), expires=expires)

    def expired(self, now: datetime | None = None) -> bool:
        # A Lease without a holder or times is nobody's: free to take.
        return not self.holder or self.expires is None or self.expires <= (now or _now())


class ReleaseLeases:
    """Takes, renews and releases the Lease of a release (see the module docstring)."""

    def __init__(self, *, identity: str, duration: float = DEFAULT_LEASE_DURATION) -> None:
        self.identity = identity
        self.duration = max(1.0, duration)

    def _seconds(self) -> int:
        return max(1, math.ceil(self.duration))

    def _path(self, namespace: str, name: str = "") -> str:
        base = f"{GROUP_PATH}/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    def _body(self, ref: ReleaseRef, operation: str, *, transitions: int = 0,
              old: dict[str, Any] | None = None) -> dict[str, Any]:
        now = _micro_time(_now())
        meta: dict[str, Any] = {
            "name": lease_name(ref.name), "namespace": ref.namespace,
            "labels": {"app.kubernetes.io/managed-by": "capstan", LOCK_LABEL: "release",
                       RELEASE_LABEL: ref.name},
            "annotations": {OPERATION_ANNOTATION: operation},
        }
        if old is not None:
            meta["resourceVersion"] = (old.get("metadata") or {}).get("resourceVersion", "")
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self._seconds(),
                         "acquireTime": now, "renewTime": now, "leaseTransitions": transitions}}

    def _refusal(self, ref: ReleaseRef, state: LeaseState) -> Aborted:
        since = format_since(state.acquired) if state.acquired else "an unknown time"
        what = f"{state.operation} " if state.operation else "a write "
        return Aborted(
            f"{describe_release(ref)} is being written by replica {state.holder}: "
            f"{what}since {since}",
            details=[{"holder": state.holder, "operation": state.operation, "since": since}])

    async def _acquire(self, client: KubeClient, ref: ReleaseRef, operation: str
                       ) -> dict[str, Any] | None:
        """The Lease now held, or None when the namespace does not exist (no Lease)."""
        path = self._path(ref.namespace)
        for _ in range(3):  # a Lease deleted between our create and get: try again
            try:
                return await client.request("POST", path, body=self._body(ref, operation))
            except NotFound:
                return None  # no such namespace yet
            except Aborted:
                pass  # it exists: whose, and is it still alive?
            current = await client.get(self._path(ref.namespace, lease_name(ref.name)))
            if current is None:
                continue
            state = LeaseState.of(current)
            if not state.expired():
                raise self._refusal(ref, state)
            transitions = int((current.get("spec") or {}).get("leaseTransitions") or 0) + 1
            try:
                taken = await client.replace(
                    self._path(ref.namespace, lease_name(ref.name)),
                    self._body(ref, operation, transitions=transitions, old=current))
            except Aborted:
                latest = await client.get(self._path(ref.namespace, lease_name(ref.name)))
                if latest is not None:
                    raise self._refusal(ref, LeaseState.of(latest)) from None
                continue
            log.info("took over the expired lease of %s from replica %s",
                     describe_release(ref), state.holder)
            return taken
        raise Aborted(f"{describe_release(ref)}: its lease keeps changing; try again")

    async def _renew(self, client: KubeClient, ref: ReleaseRef,
                     held: dict[str, Any]) -> None:
        """Renew `held` until cancelled; `held` is updated in place with each new version."""
        path = self._path(ref.namespace, lease_name(ref.name))
        while True:
            await asyncio.sleep(self.duration / 3)
            body = {**held, "spec": {**(held.get("spec") or {}),
                                     "renewTime": _micro_time(_now())}}
            try:
                new = await client.replace(path, body)
            except Aborted:
                log.warning("the lease of %s was taken over by another replica while this "
                            "one was writing it", describe_release(ref))
                return
            except CapstanError as e:  # the API is briefly unreachable: keep trying
                log.warning("renewing the lease of %s failed: %s", describe_release(ref), e)
                continue
            held.clear()
            held.update(new)

    async def _release(self, client: KubeClient, ref: ReleaseRef, held: dict[str, Any]) -> None:
        version = (held.get("metadata") or {}).get("resourceVersion", "")
        try:
            await client.request(
                "DELETE", self._path(ref.namespace, lease_name(ref.name)),
                body={"apiVersion": "v1", "kind": "DeleteOptions",
                      "preconditions": {"resourceVersion": version}})
        except CapstanError as e:  # taken over, gone, or unreachable: it expires by itself
            log.info("lease of %s not released: %s", describe_release(ref), e)

    @contextlib.asynccontextmanager
    async def hold(self, client: KubeClient, ref: ReleaseRef, operation: str
                   ) -> AsyncIterator[None]:
        """Hold the release's Lease for the block (Aborted when another replica holds it)."""
        held = await self._acquire(client, ref, operation)
        if held is None:
            yield
            return
        renewer = asyncio.ensure_future(self._renew(client, ref, held))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await asyncio.shield(self._release(client, ref, held))

    async def expired(self, client: KubeClient) -> list[tuple[str, str, LeaseState,
                                                               dict[str, Any]]]:
        """(namespace, release, state, object) of every expired release Lease of a cluster."""
        items, _ = await client.list_objects(f"{GROUP_PATH}/leases", label_selector=SELECTOR)
        now = _now()
        out = []
        for obj in items:
            meta = obj.get("metadata") or {}
            release = str((meta.get("labels") or {}).get(RELEASE_LABEL, ""))
            state = LeaseState.of(obj)
            if release and state.expired(now):
                out.append((str(meta.get("namespace", "")), release, state, obj))
        return out

    async def delete_stale(self, client: KubeClient, namespace: str, obj: dict[str, Any]
                           ) -> None:
        """Delete an expired Lease whose release is not pending (nothing to recover)."""
        meta = obj.get("metadata") or {}
        with contextlib.suppress(CapstanError):
            await client.request(
                "DELETE", self._path(namespace, str(meta.get("name", ""))),
                body={"apiVersion": "v1", "kind": "DeleteOptions",
                      "preconditions": {"resourceVersion": meta.get("resourceVersion", "")}})


__all__ = ["DEFAULT_LEASE_DURATION", "LeaseState", "ReleaseLeases", "default_replica_id",
           "lease_name"]
