"""The helm driver: writes through the official helm binary, reads from Helm's own records.

Writes (install, upgrade, rollback, uninstall) run helm through `command.HelmCommand`; they are
serialised per release inside the server and, through the release's Lease (`leases.py`), across
replicas; a release whose latest revision is `pending-*` (a helm run outside Capstan, or one a
dead replica left: `recovery.py`) is refused with Aborted before helm is started. Reads never
spawn helm: `list` answers from a watch-fed cache per cluster (`informer.py`), get and history
decode the release records over the Kubernetes API (`kube.py`, `records.py`); resources are
read live and concurrently.

Two writes Capstan makes to Helm's records itself, both through the API with optimistic
concurrency (a concurrent change makes them fail with Aborted, never overwrite it):

- `mark_failed` rewrites a stuck `pending-*` record to `failed` (status label and JSON), the
  same change helm makes when an operation fails, so a new operation may run;
- a rollback with a custom description rewrites the new revision's description, because
  `helm rollback` has no `--description` flag.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import dataclasses
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from capstan_server import metrics
from capstan_server.drivers.base import (
    ClusterTarget,
    InflightWrites,
    InstallOptions,
    KubeIdentity,
    LiveObject,
    NamespaceInfo,
    ReadinessSnapshot,
    ReleaseRecord,
    ReleaseRef,
    RollbackOptions,
    StaleCluster,
    Status,
    UpgradeOptions,
    describe_release,
    kind_key,
    newest_first,
    refuse_pending,
)
from capstan_server.drivers.helm import records
from capstan_server.drivers.helm.argv import validate_labels
from capstan_server.drivers.helm.command import (
    DEFAULT_TERM_GRACE,
    HelmCommand,
    HelmStopped,
    queue_key,
)
from capstan_server.drivers.helm.informer import (
    DEFAULT_READ_TIMEOUT,
    ReleaseInformer,
    records_path,
)
from capstan_server.drivers.helm.kube import KubeClient, load_kubeconfig
from capstan_server.drivers.helm.leases import (
    DEFAULT_LEASE_DURATION,
    ReleaseLeases,
    default_replica_id,
)
from capstan_server.drivers.helm.manifest import (
    WORKLOAD_KINDS,
    ManifestObject,
    parse_manifest,
    readiness,
)
from capstan_server.drivers.helm.namespace_cache import NamespaceCache, namespace_info
from capstan_server.drivers.helm.pool import DEFAULT_MAX_QUEUED
from capstan_server.drivers.helm.process_limits import HelmLimits
from capstan_server.drivers.helm.records import StoredRecord
from capstan_server.drivers.helm.release_index import ReleaseIndex, matches
from capstan_server.errors import (
    AlreadyExists,
    CapstanError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from capstan_server.helm_binary import CHECKOUT_HELM, default_helm_bin
from capstan_server.names import validate_release_name


def _latest_selector(ref: ReleaseRef) -> str:
    # Every revision but the latest is `superseded` (or, after a failed upgrade, an older
    # `deployed`/`failed` one), so this selects few records; the highest is the latest.
    return f"owner=helm,name={ref.name},status!=superseded"


@functools.lru_cache(maxsize=256)
def _digest(kubeconfig: str) -> str:
    """What tells one kubeconfig of a cluster from the next (asked on every call)."""
    return hashlib.sha256(kubeconfig.encode()).hexdigest()


def _highest(found: list[StoredRecord]) -> StoredRecord | None:
    return max(found, key=lambda s: s.record.revision, default=None)


_records_path = records_path


class _ClusterCache(Protocol):
    """A watch-fed cache of one cluster (releases, namespaces)."""

    def start(self) -> None: ...
    async def close(self) -> None: ...


_C = TypeVar("_C", bound=_ClusterCache)
#: Caches by cluster id: (kubeconfig digest, loop, cache).
_Caches = dict[str, tuple[str, asyncio.AbstractEventLoop, _C]]


class HelmDriver:
    """The `helm` driver (see the module docstring). Safe to call concurrently."""

    name = "helm"

    def __init__(self, *, data_dir: Path, helm_bin: Path | None = None,
                 term_grace: float = DEFAULT_TERM_GRACE, poll_interval: float = 1.0,
                 limits: HelmLimits | None = None,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, max_helm_processes: int | None = None,
                 max_queued_writes: int = DEFAULT_MAX_QUEUED, replica_id: str = "",
                 lease_duration: float = DEFAULT_LEASE_DURATION) -> None:
        # Absolute: helm runs in the driver's own working directory (see helm_binary).
        binary = Path(helm_bin).absolute() if helm_bin else default_helm_bin() or CHECKOUT_HELM
        self.command = HelmCommand(binary, data_dir, term_grace=term_grace,
                                   limits=limits, max_processes=max_helm_processes,
                                   max_queued=max_queued_writes)
        self.command.on_run = metrics.helm_run_done
        self.poll_interval = poll_interval
        #: The longest a list waits for a cluster before answering from its last state.
        self.read_timeout = read_timeout
        self._clients: dict[tuple[str, str, KubeIdentity | None], KubeClient] = {}
        self._informers: _Caches[ReleaseInformer] = {}
        self._namespace_caches: _Caches[NamespaceCache] = {}
        #: Lookups into the latest list of each cluster's release cache, by cluster id.
        self._indexes: dict[str, ReleaseIndex] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._cache = records.RecordCache()
        self._namespace_reads: dict[tuple[KubeClient, asyncio.AbstractEventLoop],
                                    asyncio.Future[builtins.list[NamespaceInfo]]] = {}
        #: Writes in flight in this server.
        self._inflight = InflightWrites()
        #: Writes in flight in any replica (`leases.py`).
        self.leases = ReleaseLeases(identity=replica_id or default_replica_id(),
                                    duration=lease_duration)

    # -- clusters -------------------------------------------------------------------------------

    def _client(self, cluster: ClusterTarget) -> KubeClient:
        digest = _digest(cluster.kubeconfig)
        key = (cluster.id, digest, cluster.act_as)
        client = self._clients.get(key)
        if client is None:
            client = KubeClient(load_kubeconfig(cluster.kubeconfig), cluster_name=cluster.name,
                                act_as=cluster.act_as)
            # A replaced kubeconfig replaces the clients; the old ones' connections close.
            for old in [k for k in self._clients if k[0] == cluster.id and k[1] != digest]:
                self._spawn_close(self._clients.pop(old).close())
            self._clients[key] = client
        return client

    def kube(self, cluster: ClusterTarget) -> KubeClient:
        """The API client of a cluster (as its stored kubeconfig), shared with the driver."""
        return self._client(cluster)

    def _cluster_cache(self, caches: _Caches[_C], cluster: ClusterTarget,
                       make: Callable[[KubeClient], _C]) -> _C:
        """A cache of the cluster, started on first use (one per kubeconfig and loop)."""
        digest = _digest(cluster.kubeconfig)
        loop = asyncio.get_running_loop()
        held = caches.get(cluster.id)
        if held is not None and held[:2] == (digest, loop):
            return held[2]
        if held is not None and held[1] is loop:
            self._spawn_close(held[2].close())
        # A cache reads as the stored kubeconfig, never as a caller it may be asked for.
        cache = make(self._client(dataclasses.replace(cluster, act_as=None)))
        caches[cluster.id] = (digest, loop, cache)
        cache.start()
        return cache

    def _informer(self, cluster: ClusterTarget) -> ReleaseInformer:
        """The cluster's release cache."""
        return self._cluster_cache(self._informers, cluster, lambda client: ReleaseInformer(
            client, read_timeout=self.read_timeout))

    def _namespace_cache(self, cluster: ClusterTarget) -> NamespaceCache:
        """The cluster's namespace cache (`namespace_cache.py`)."""
        return self._cluster_cache(self._namespace_caches, cluster, NamespaceCache)

    def _loaded(self, caches: _Caches[_C], cluster: ClusterTarget) -> _C | None:
        """The cluster's cache in `caches` if one runs on this loop (never starts one)."""
        held = caches.get(cluster.id)
        return held[2] if held is not None and held[1] is asyncio.get_running_loop() else None

    def queue_position(self, ref: ReleaseRef) -> int:
        """Where a write to `ref` waits for a helm process (1: next), 0 when it does not."""
        return self.command.pool.position(queue_key(ref))

    def warm(self, cluster: ClusterTarget) -> None:
        """Start the cluster's caches now (at server start), not at the first list."""
        self._informer(cluster)
        self._namespace_cache(cluster)

    def caches(self) -> dict[str, ReleaseInformer]:
        """The release caches started so far, by cluster id (metrics and readiness)."""
        return {cid: held[2] for cid, held in self._informers.items()}

    def forget(self, cluster_id: str) -> None:
        """A cluster was unregistered: stop its caches and close its API clients, so nothing
        keeps watching it (or holds its credentials) for the server's lifetime."""
        caches: list[_Caches[Any]] = [self._informers, self._namespace_caches]
        for held in (c.pop(cluster_id, None) for c in caches):
            if held is not None and held[1] is asyncio.get_running_loop():
                self._spawn_close(held[2].close())
        self._indexes.pop(cluster_id, None)
        for key in [k for k in self._clients if k[0] == cluster_id]:
            self._spawn_close(self._clients.pop(key).close())

    def _spawn_close(self, closing_coro: Any) -> None:
        closing = asyncio.ensure_future(closing_coro)
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _refresh(self, ref: ReleaseRef) -> None:
        """After a write: the caches read the release (and its namespace, which helm may have
        created) back, so the next list shows them."""
        informer = self._loaded(self._informers, ref.cluster)
        namespaces = self._loaded(self._namespace_caches, ref.cluster)
        await asyncio.gather(
            *([informer.refresh(ref.namespace, ref.name)] if informer else []),
            *([namespaces.refresh(ref.namespace)] if namespaces else []),
            return_exceptions=True)  # errors are left to the next read to report

    async def check_cluster(self, cluster: ClusterTarget) -> None:
        client = self._client(cluster)
        try:
            # A list, not /version (which clusters often serve anonymously): it proves the
            # credentials are accepted too.
            await client.request("GET", "/api/v1/namespaces", params={"limit": "1"})
        except FailedPrecondition as e:
            raise InvalidArgument(f"the kubeconfig of cluster {cluster.name!r} cannot be "
                                  f"used: {e.message}") from e

    async def namespaces(self, cluster: ClusterTarget, *, expect: Collection[str] = ()
                         ) -> builtins.list[NamespaceInfo]:
        # From the watch-fed cache while it is live and holds every expected name (see
        # namespace_cache.py); else a read of the cluster, which concurrent calls for one
        # cluster share (a page of 1,000 releases asks for namespace UIDs once per release):
        # a call gets the answer of a read that was in flight when it was made, or of a new one.
        cache = self._namespace_cache(cluster) if cluster.act_as is None else None
        if cache is not None and cache.live and not cache.misses(expect):
            return cache.namespaces()
        # Per client, i.e. per kubeconfig and identity: what one identity may read (or is
        # refused) is never another's answer.
        key = (self._client(cluster), asyncio.get_running_loop())
        shared = self._namespace_reads.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._read_namespaces(cluster))
            self._namespace_reads[key] = shared
            shared.add_done_callback(lambda _: self._namespace_reads.pop(key, None))
        found = list(await asyncio.shield(shared))
        if cache is not None and expect:
            names = {n.name for n in found}
            cache.not_found([n for n in expect if n not in names])
        return found

    async def namespaced(self, cluster: ClusterTarget, api_version: str, kind: str
                         ) -> bool | None:
        info = await self._client(cluster).resource_for(api_version, kind)
        return None if info is None else info.namespaced

    async def _read_namespaces(self, cluster: ClusterTarget) -> builtins.list[NamespaceInfo]:
        items, _ = await self._client(cluster).list_objects("/api/v1/namespaces")
        cache = self._loaded(self._namespace_caches, cluster)
        if cluster.act_as is None and cache is not None:
            cache.absorb(items)
        return sorted((namespace_info(ns) for ns in items), key=lambda n: n.name)

    # -- records --------------------------------------------------------------------------------

    async def _stored(self, cluster: ClusterTarget, namespace: str, selector: str
                      ) -> builtins.list[StoredRecord]:
        """Decoded record objects matching `selector`, from both storage drivers at once."""
        return (await self._stored_at(cluster, namespace, selector))[0]

    async def _stored_at(self, cluster: ClusterTarget, namespace: str, selector: str
                         ) -> tuple[builtins.list[StoredRecord], str]:
        """`_stored`, and the resourceVersion of the Secret list (to watch from)."""
        client = self._client(cluster)
        secrets, configmaps = await asyncio.gather(
            client.list_objects(_records_path("secret", namespace), label_selector=selector),
            client.list_objects(_records_path("configmap", namespace), label_selector=selector))
        out = [self._cache.decode(o, "secret") for o in secrets[0] if records.is_record_object(o)]
        out += [self._cache.decode(o, "configmap") for o in configmaps[0]
                if records.is_record_object(o)]
        return out, secrets[1]

    async def _latest(self, ref: ReleaseRef) -> StoredRecord | None:
        return _highest(await self._stored(ref.cluster, ref.namespace, _latest_selector(ref)))

    async def _existing(self, ref: ReleaseRef) -> StoredRecord:
        """The latest record of a release; NotFound when there is none."""
        stored = await self._latest(ref)
        if stored is None:
            raise NotFound(f"{describe_release(ref)} not found")
        return stored

    async def _revision(self, ref: ReleaseRef, revision: int) -> StoredRecord | None:
        client = self._client(ref.cluster)
        object_name = records.record_object_name(ref.name, revision)
        for storage in ("secret", "configmap"):
            obj = await client.get(f"{_records_path(storage, ref.namespace)}/{object_name}")
            if obj is not None and records.is_record_object(obj):
                return self._cache.decode(obj, storage)
        return None

    async def get(self, ref: ReleaseRef, revision: int = 0) -> ReleaseRecord:
        validate_release_name(ref.name)
        if revision:
            stored = await self._revision(ref, revision)
            if stored is None:
                raise NotFound(f"revision {revision} of {describe_release(ref)} not found")
        else:
            stored = await self._existing(ref)
        return stored.record

    async def history(self, ref: ReleaseRef) -> builtins.list[ReleaseRecord]:
        validate_release_name(ref.name)
        found = await self._stored(ref.cluster, ref.namespace, f"owner=helm,name={ref.name}")
        if not found:
            raise NotFound(f"{describe_release(ref)} not found")
        by_revision = {s.record.revision: s.record for s in found}
        return [by_revision[r] for r in sorted(by_revision)]

    async def list(self, cluster: ClusterTarget, namespace: str = "", *, name: str = "",
                   labels: Mapping[str, str] | None = None) -> builtins.list[ReleaseRecord]:
        if name:
            try:
                validate_release_name(name)
            except InvalidArgument:
                return []  # no release can have that name
        if labels:
            validate_labels(labels)
        if cluster.act_as is not None:
            # Acting as a caller: the cluster's own access rules decide what it may list, so
            # the read goes to the API as that caller, not to the shared cache.
            return await self._list_direct(cluster, namespace, name=name, labels=labels)
        try:
            cached = await self._informer(cluster).releases()
        except StaleCluster as stale:
            raise StaleCluster(
                stale.message, records=[r for r in stale.records
                                        if matches(r, namespace, name, labels)],
                synced_at=stale.synced_at, stale_seconds=stale.stale_seconds,
                details=stale.details) from None
        if not (namespace or name or labels):
            return cached  # the cache's own list, unchanged until the cache changes
        index = self._indexes.get(cluster.id)
        if index is None or index.records is not cached:
            index = self._indexes[cluster.id] = ReleaseIndex(cached)
        found = index.matching(namespace, name, labels)
        if name and not found:
            # A release named moments ago by someone else (plain helm, another replica) may
            # not have come over the watch yet: a miss by name reads through.
            return await self._list_direct(cluster, namespace, name=name, labels=labels)
        return found

    async def _list_direct(self, cluster: ClusterTarget, namespace: str = "", *,
                           name: str = "", labels: Mapping[str, str] | None = None
                           ) -> builtins.list[ReleaseRecord]:
        """`list` read from the API instead of the cache."""
        selector = records.LATEST_SELECTOR
        if name:
            selector += f",name={name}"
        if labels:
            selector += "".join(f",{k}={v}" for k, v in sorted(labels.items()))
        found = await self._stored(cluster, namespace, selector)
        latest: dict[tuple[str, str], StoredRecord] = {}
        for stored in found:
            key = (stored.record.namespace, stored.record.name)
            if key not in latest or stored.record.revision > latest[key].record.revision:
                latest[key] = stored
        return newest_first([s.record for s in latest.values()])

    # -- live objects ---------------------------------------------------------------------------

    async def _complete(self, record: ReleaseRecord, cluster: ClusterTarget) -> ReleaseRecord:
        """The whole record of a cached summary (manifest and notes included)."""
        if record.complete:
            return record
        stored = await self._revision(ReleaseRef(cluster, record.namespace, record.name),
                                      record.revision)
        return stored.record if stored is not None else record

    async def resources(self, record: ReleaseRecord, cluster: ClusterTarget
                        ) -> builtins.list[LiveObject]:
        record = await self._complete(record, cluster)
        refs = parse_manifest(record.manifest)
        fetched = await self._fetch(refs, record, cluster)
        out = []
        for ref, (info, obj) in zip(refs, fetched, strict=True):
            namespaced = info.namespaced if info is not None else bool(ref.namespace)
            out.append(LiveObject(
                api_version=ref.api_version, kind=ref.kind,
                namespace=(ref.namespace or record.namespace) if namespaced else "",
                name=ref.name, object=obj, error=ref.error))
        return out

    async def _fetch(self, refs: builtins.list[ManifestObject], record: ReleaseRecord,
                     cluster: ClusterTarget) -> builtins.list[tuple[Any, Any]]:
        """The live (kind info, object) of each ref; (None, None) for one that cannot be
        looked up (a document that could not be parsed far enough to name it)."""
        known = [r for r in refs if r.identified]
        fetched = iter(await self._client(cluster).get_objects(
            [(r.api_version, r.kind, r.namespace or record.namespace, r.name) for r in known]))
        return [next(fetched) if r.identified else (None, None) for r in refs]

    async def _workloads(self, record: ReleaseRecord, cluster: ClusterTarget
                         ) -> builtins.list[tuple[str, str, bool, str]]:
        refs = [r for r in parse_manifest(record.manifest) if r.kind in WORKLOAD_KINDS]
        fetched = await self._fetch(refs, record, cluster)
        # A document that could not be parsed far enough to name its object is reported, not
        # ready, with its error: the watch must not settle as if it were not there.
        return [(kind_key(r.kind), r.name, *readiness(obj)) if r.identified
                else (kind_key(r.kind), r.name or "?", False, r.error)
                for r, (_, obj) in zip(refs, fetched, strict=True)]

    async def watch(self, ref: ReleaseRef, *, timeout: float  # noqa: ASYNC109 (Protocol)
                    ) -> AsyncIterator[ReadinessSnapshot]:
        # Each round reads the release's latest record and its workloads (a few objects);
        # between rounds an API watch on the release's records wakes it as soon as helm
        # changes the status, and `poll_interval` bounds how stale workload readiness gets.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Any = None
        first = True
        while True:
            found, version = await self._stored_at(ref.cluster, ref.namespace,
                                                   _latest_selector(ref))
            stored = _highest(found)
            if stored is None:
                if first:
                    raise NotFound(f"{describe_release(ref)} not found")
                return  # uninstalled while being watched
            record = stored.record
            workloads = await self._workloads(record, ref.cluster)
            in_flight = record.status.is_pending or record.status is Status.UNINSTALLING
            settled = not in_flight and (record.status is Status.FAILED
                                         or all(ready for _, _, ready, _ in workloads))
            state = (record.revision, record.status, tuple(workloads))
            if first or settled or state != last:
                yield ReadinessSnapshot(record=record, workloads=workloads, settled=settled)
            first, last = False, state
            remaining = deadline - loop.time()
            if settled or remaining <= 0:
                return
            await self._records_change(ref, version, min(self.poll_interval, remaining))

    async def _records_change(self, ref: ReleaseRef, resource_version: str,
                              seconds: float) -> None:
        """Return when a record of the release changes after `resource_version`, or after
        `seconds`. A watch that cannot be made only means waiting the full time."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        client = self._client(ref.cluster)
        with contextlib.suppress(TimeoutError, CapstanError):
            async with asyncio.timeout(seconds):
                async for event, _ in client.watch(
                        _records_path("secret", ref.namespace), resource_version=resource_version,
                        seconds=seconds, label_selector=f"owner=helm,name={ref.name}"):
                    if event != "BOOKMARK":  # bookmarks only move the resourceVersion on
                        return
        await asyncio.sleep(max(0.0, end - loop.time()))

    # -- writes ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, ref: ReleaseRef, operation: str) -> AsyncIterator[None]:
        """The one gate of every write: no other write to the release in flight in this
        server (InflightWrites, checked first: no API call for a refusal) nor in any other
        replica (the release's Lease, held until the write is done). The Lease is Capstan's
        own bookkeeping, so it is written as the stored kubeconfig even when helm acts as a
        project (`act_as`), whose role need not allow Leases. Afterwards, whatever the
        outcome (a failed helm run may still have written a revision), the release cache
        reads the release back."""
        with self._inflight.hold(ref, operation):
            admin = dataclasses.replace(ref.cluster, act_as=None)
            try:
                async with self.leases.hold(self._client(admin), ref, operation):
                    yield
            finally:
                await asyncio.shield(self._refresh(ref))

    async def _after_interruption(self, ref: ReleaseRef, before: int, operation: str) -> None:
        """After helm was stopped (deadline or cancellation): helm marks install/upgrade
        failed on SIGTERM, but `rollback` does not handle signals and SIGKILL leaves nothing
        to chance, so a revision this operation left `pending-*` is marked failed here."""
        with contextlib.suppress(Exception):
            stored = await self._latest(ref)
            if (stored is not None and stored.record.revision > before
                    and stored.record.status.is_pending):
                await self._rewrite(ref, stored, status=Status.FAILED,
                                    description=f"{operation} interrupted: helm was stopped")

    @contextlib.asynccontextmanager
    async def _guard(self, ref: ReleaseRef, operation: str, before: int) -> AsyncIterator[None]:
        # Only when Capstan itself stopped helm: when helm fails on its own it records the
        # failure itself, and a pending revision then belongs to someone else's operation.
        try:
            yield
        except asyncio.CancelledError:
            await asyncio.shield(self._after_interruption(ref, before, operation))
            raise
        except HelmStopped:
            await self._after_interruption(ref, before, operation)
            raise

    async def install(self, opts: InstallOptions) -> ReleaseRecord:
        async with self._writing(opts.ref, "install"):
            existing = await self._latest(opts.ref)
            if existing is not None:
                refuse_pending(opts.ref, existing.record)
                raise AlreadyExists(
                    f"{describe_release(opts.ref)} already exists: cannot re-use a name that is "
                    "still in use", details=[{"name": opts.ref.name}])
            async with self._guard(opts.ref, "install", 0):
                doc = await self.command.install(opts)
            # helm prints the release it stored; its labels are not in the JSON, but they are
            # exactly the ones passed (no second API read on the write path).
            return records.record_from_release(doc, opts.labels)

    async def upgrade(self, opts: UpgradeOptions) -> ReleaseRecord:
        async with self._writing(opts.ref, "upgrade"):
            current = await self._existing(opts.ref)
            refuse_pending(opts.ref, current.record)
            async with self._guard(opts.ref, "upgrade", current.record.revision):
                doc = await self.command.upgrade(opts, storage=current.storage)
            # helm merges the new labels over the release's previous ones, as here.
            return records.record_from_release(doc, {**current.record.labels, **opts.labels})

    async def rollback(self, opts: RollbackOptions) -> ReleaseRecord:
        async with self._writing(opts.ref, "rollback"):
            current = await self._existing(opts.ref)
            refuse_pending(opts.ref, current.record)
            target = opts.revision or current.record.revision - 1
            if target < 1 or await self._revision(opts.ref, target) is None:
                what = f"revision {opts.revision}" if opts.revision else "a previous revision"
                raise NotFound(f"{what} of {describe_release(opts.ref)} not found")
            async with self._guard(opts.ref, "rollback", current.record.revision):
                await self.command.rollback(opts, storage=current.storage)
            latest = await self._latest(opts.ref)
            if latest is None:
                raise NotFound(f"{describe_release(opts.ref)} vanished during the rollback")
            if opts.description and latest.record.description != opts.description:
                return await self._rewrite(opts.ref, latest, description=opts.description)
            return latest.record

    async def uninstall(self, ref: ReleaseRef, *,
                        timeout: float = 300.0) -> ReleaseRecord:  # noqa: ASYNC109
        async with self._writing(ref, "uninstall"):
            current = await self._existing(ref)
            refuse_pending(ref, current.record)
            await self.command.uninstall(ref, timeout_s=timeout, storage=current.storage)
            return current.record

    async def mark_failed(self, ref: ReleaseRef, description: str) -> ReleaseRecord:
        async with self._writing(ref, "mark-failed"):
            current = await self._existing(ref)
            if not current.record.status.is_pending:
                raise FailedPrecondition(
                    f"{describe_release(ref)} is {current.record.status.value}, not pending")
            return await self._rewrite(ref, current, status=Status.FAILED,
                                       description=description)

    async def _rewrite(self, ref: ReleaseRef, stored: StoredRecord, *,
                       status: Status | None = None, description: str | None = None
                       ) -> ReleaseRecord:
        """Change a record's status and/or description as helm would (JSON and labels)."""
        client = self._client(ref.cluster)
        path = f"{_records_path(stored.storage, ref.namespace)}/{stored.object_name}"
        obj = await client.get(path)
        if obj is None:
            raise NotFound(f"record {stored.object_name} of {describe_release(ref)} vanished")
        doc = records.decode_payload(records.payload_of(obj, stored.storage))
        info = doc.setdefault("info", {})
        # The resourceVersion of the record as the caller judged it: if helm (or anyone)
        # changed it since, the API refuses the write (409 -> Aborted) instead of losing that.
        meta = {**(obj.get("metadata") or {}), "resourceVersion": stored.resource_version}
        labels = dict(meta.get("labels") or {})
        if status is not None:
            info["status"] = labels["status"] = status.value
        if description is not None:
            info["description"] = description
        labels["modifiedAt"] = str(int(time.time()))  # as helm's own record updates do
        payload = records.encode_payload(doc)
        new = {**obj, "metadata": {**meta, "labels": labels},
               "data": {"release": base64.b64encode(payload.encode()).decode()
                        if stored.storage == "secret" else payload}}
        written = await client.replace(path, new)
        return self._cache.decode(written, stored.storage).record

    async def close(self) -> None:
        caches: builtins.list[tuple[str, asyncio.AbstractEventLoop, _ClusterCache]] = [
            *self._informers.values(), *self._namespace_caches.values()]
        self._informers, self._namespace_caches = {}, {}
        for _, loop, cache in caches:
            if loop is asyncio.get_running_loop():
                await cache.close()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


__all__ = ["HelmDriver"]
