"""A watch-fed cache of one cluster's latest Helm release records, the way client-go informers
work, so that listing releases costs memory lookups instead of API reads and decodes.

Per storage driver (Secrets, ConfigMaps) a reflector lists the records selected by
`records.LATEST_SELECTOR` (never `superseded` ones: about one per release) and watches from the
list's resourceVersion, with bookmarks; a watch that ends is resumed from the last
resourceVersion seen, `410 Gone` (as an HTTP status or as an ERROR event) means relisting, and
errors back off exponentially (0.2 s to 10 s, with jitter). Each record is kept decoded
without its values, manifest and notes (`ReleaseRecord.complete` is False; the driver reads
the whole record when show, history or an upgrade need it), and the latest revision per
release is served from memory.

Exactness:

- The driver's own writes are exact: after each write it reads that release's records back
  (`refresh`) and puts them in the cache with the list's resourceVersion as a floor, so a watch
  event older than that read cannot bring back an older state.
- Records written by plain helm or another replica arrive over the watch (milliseconds, well
  within a second).
- `releases()` answers only while every reflector is watching and the API has shown signs of
  life within `fresh_for` seconds; otherwise it waits up to `read_timeout` (for a watch to
  resume, or for a one-request liveness probe), then answers the last state as `StaleCluster`
  (or Unavailable when it never had one). Once a cluster is found stale, later reads do not
  wait for it: they answer stale at once while one probe at a time checks whether it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from capstan_server.drivers.base import ReleaseRecord, StaleCluster, newest_first
from capstan_server.drivers.helm import records
from capstan_server.drivers.helm.kube import KubeClient, ResourceExpired
from capstan_server.drivers.helm.records import Storage, StoredRecord
from capstan_server.errors import CapstanError, Unavailable

log = logging.getLogger(__name__)

#: Default of `--cluster-read-timeout`: the longest a list or name lookup waits for a cluster.
DEFAULT_READ_TIMEOUT = 2.0
#: How long an answer from the API (event, bookmark, probe) counts as proof the cache is live.
DEFAULT_FRESH_FOR = 1.0
#: Server-side length of one watch request; it is resumed from its resourceVersion after.
WATCH_SECONDS = 300.0
_BACKOFF_MIN, _BACKOFF_MAX = 0.2, 10.0
_LIST_PAGE = 500
STORAGES: tuple[Storage, ...] = ("secret", "configmap")

_ObjKey = tuple[Storage, str, str]  # storage, namespace, object name
_ReleaseKey = tuple[str, str]  # namespace, release name


def records_path(storage: Storage, namespace: str = "") -> str:
    """The API collection of a storage driver's records, in one namespace or all."""
    plural = "secrets" if storage == "secret" else "configmaps"
    return f"/api/v1/namespaces/{namespace}/{plural}" if namespace else f"/api/v1/{plural}"


def _rv(obj: Mapping[str, Any]) -> int:
    # resourceVersions are opaque to clients in principle; every API server (etcd revisions)
    # and kubesim use increasing integers, which is what the floors below rely on.
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _summary(stored: StoredRecord) -> StoredRecord:
    """The record without the parts lists never show (values, manifest, notes, hooks): those
    can be megabytes a release, and a cluster has thousands."""
    slim = dataclasses.replace(stored.record, config={}, manifest="", notes="",
                               hook_manifests=(), complete=False)
    return dataclasses.replace(stored, record=slim)


class ReleaseInformer:
    """The cache of one cluster (see the module docstring); lives on one event loop."""

    def __init__(self, client: KubeClient, *,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 fresh_for: float = DEFAULT_FRESH_FOR,
                 watch_seconds: float = WATCH_SECONDS) -> None:
        self.client = client
        self.read_timeout = read_timeout
        self.fresh_for = fresh_for
        self.watch_seconds = watch_seconds
        self._by_release: dict[_ReleaseKey, dict[_ObjKey, StoredRecord]] = {}
        #: (storage, namespace, name) -> resourceVersion of a read-through; older events of
        #: that release and storage are already reflected (or overtaken) and are ignored.
        self._floors: dict[tuple[Storage, str, str], int] = {}
        self._synced = {s: asyncio.Event() for s in STORAGES}
        self._watching = {s: asyncio.Event() for s in STORAGES}
        self._last_ok = 0.0  # monotonic time of the last answer from the API
        self._synced_at: datetime | None = None  # wall time of the same
        self._error = ""
        self._stale = False
        #: Set to cut a reflector's backoff short (a probe found the API answering again).
        self._wake = asyncio.Event()
        self._probe: asyncio.Task[bool] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: The latest records, newest first; rebuilt after a change (callers may rely on
        #: getting the very same list while nothing changed).
        self._view: list[ReleaseRecord] | None = None

    # -- lifecycle

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(self._reflect(s)) for s in STORAGES]

    @property
    def running(self) -> bool:
        """Started and not closed: its watches are kept open (or being reopened)."""
        return any(not task.done() for task in self._tasks)

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._probe] if self._probe else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    # -- state for metrics and readiness

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    @property
    def size(self) -> int:
        return len(self._by_release)

    def status_counts(self) -> dict[str, int]:
        """Releases by the status of their latest revision."""
        counts: dict[str, int] = {}
        for record in self._latest():
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        return counts

    @property
    def settled(self) -> bool:
        """Synced, or known not to answer (readiness must not wait on a cluster that is down)."""
        return self.synced or bool(self._error)

    def stale_seconds(self) -> float:
        """0 while the cache is live; else seconds since the API last answered."""
        if not self._stale and all(e.is_set() for e in self._watching.values()):
            return 0.0
        return time.monotonic() - self._last_ok if self._last_ok else 0.0

    # -- reads

    async def releases(self) -> list[ReleaseRecord]:
        """The latest record of every release, newest first (see the module docstring)."""
        self.start()
        if not self.synced:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.read_timeout):
                    await asyncio.gather(*(e.wait() for e in self._synced.values()))
            if not self.synced:
                raise Unavailable(
                    f"cluster {self.client.cluster_name} is unreachable: "
                    f"{self._error or f'no answer within {self.read_timeout:g}s'}",
                    details=[{"cluster": self.client.cluster_name}])
        if not await self._live():
            raise StaleCluster(
                f"cluster {self.client.cluster_name} is unreachable: "
                f"{self._error or f'no answer within {self.read_timeout:g}s'}; "
                "answered from its last known state",
                records=self._latest(), synced_at=self._synced_at or datetime.now(UTC),
                stale_seconds=round(self.stale_seconds(), 3),
                details=[{"cluster": self.client.cluster_name}])
        return self._latest()

    async def _live(self) -> bool:
        if self._stale:
            # Known stale: never make a reader wait; one probe at a time looks for recovery.
            self._start_probe()
            return False
        if not all(e.is_set() for e in self._watching.values()):
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.read_timeout):
                    await asyncio.gather(*(e.wait() for e in self._watching.values()))
            if not all(e.is_set() for e in self._watching.values()):
                self._stale = True
                return False
        if time.monotonic() - self._last_ok <= self.fresh_for:
            return True
        return await asyncio.shield(self._start_probe())

    def _start_probe(self) -> asyncio.Task[bool]:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._run_probe())
        return self._probe

    async def _run_probe(self) -> bool:
        """One small read: does the API answer within `read_timeout`?"""
        try:
            await self.client.request(
                "GET", records_path("secret"),
                params={"labelSelector": records.LATEST_SELECTOR, "limit": "1"},
                timeout_s=self.read_timeout)
        except CapstanError as e:
            self._error = e.message.removeprefix(
                f"cluster {self.client.cluster_name} is unreachable: ")
            self._stale = True
            return False
        self._touch()
        live = all(e.is_set() for e in self._watching.values())
        if not live:
            self._wake.set()  # the API answers: the reflectors need not sit out their backoff
        self._stale = not live
        return live

    def _latest(self) -> list[ReleaseRecord]:
        if self._view is None:
            latest = [max(objs.values(), key=lambda s: s.record.revision).record
                      for objs in self._by_release.values() if objs]
            self._view = newest_first(latest)
        return self._view

    # -- writes by this server

    async def refresh(self, namespace: str, name: str) -> None:
        """Read one release's records from the API and put them in the cache (exact reads of
        this server's own writes). Errors are left to the next read to report."""
        selector = f"{records.LATEST_SELECTOR},name={name}"
        reads = await asyncio.gather(
            *(self.client.list_objects(records_path(s, namespace), label_selector=selector)
              for s in STORAGES), return_exceptions=True)
        for storage, read in zip(STORAGES, reads, strict=True):
            if isinstance(read, BaseException):
                continue
            items, list_rv = read
            try:
                floor = int(list_rv)
            except ValueError:
                floor = 0
            objs = self._by_release.setdefault((namespace, name), {})
            for key in [k for k in objs if k[0] == storage]:
                del objs[key]
            for obj in items:
                self._put(storage, obj)
            if floor:
                self._floors[(storage, namespace, name)] = max(
                    floor, self._floors.get((storage, namespace, name), 0))
            self._changed()

    # -- the reflectors

    def _touch(self) -> None:
        self._last_ok = time.monotonic()
        self._synced_at = datetime.now(UTC)

    def _changed(self) -> None:
        self._view = None
        for key in [k for k, objs in self._by_release.items() if not objs]:
            del self._by_release[key]

    def _put(self, storage: Storage, obj: Mapping[str, Any],
             into: dict[_ReleaseKey, dict[_ObjKey, StoredRecord]] | None = None) -> None:
        if not records.is_record_object(obj):
            return
        try:
            # Not through the driver's decode cache (records.RecordCache): that keeps whole
            # records, manifests included, which is what this cache exists to leave out.
            stored = _summary(records.stored_from_object(obj, storage))
        except CapstanError as e:
            log.warning("skipping an undecodable release record: %s", e.message)
            return
        meta = obj.get("metadata") or {}
        key = (storage, stored.record.namespace or str(meta.get("namespace", "")),
               stored.object_name)
        release = (key[1], str((meta.get("labels") or {}).get("name", stored.record.name)))
        (self._by_release if into is None else into).setdefault(release, {})[key] = stored

    def _apply(self, storage: Storage, event: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        name = str((meta.get("labels") or {}).get("name", ""))
        floor = self._floors.get((storage, namespace, name))
        if floor is not None:
            if _rv(obj) <= floor:
                return
            del self._floors[(storage, namespace, name)]
        objs = self._by_release.get((namespace, name), {})
        objs.pop((storage, namespace, str(meta.get("name", ""))), None)
        if event != "DELETED":
            self._put(storage, obj)
        self._changed()

    async def _relist(self, storage: Storage, path: str) -> str:
        """List the storage's records page by page, decoding each page before the next is
        asked for (a big cluster's raw list never sits in memory at once), then make them the
        storage's part of the cache; the list's resourceVersion."""
        listed: dict[_ReleaseKey, dict[_ObjKey, StoredRecord]] = {}
        list_rv = ""
        # In pages, also so that no single request runs into the request timeout.
        async for items, version in self.client.list_pages(
                path, label_selector=records.LATEST_SELECTOR, page_size=_LIST_PAGE):
            list_rv = list_rv or version
            for obj in items:
                self._put(storage, obj, into=listed)
        self._replace(storage, listed, _rv({"metadata": {"resourceVersion": list_rv}}))
        return list_rv

    def _replace(self, storage: Storage,
                 listed: dict[_ReleaseKey, dict[_ObjKey, StoredRecord]], list_rv: int) -> None:
        """A relist: the storage's records become `listed`, except for releases read through
        after the list was taken."""
        kept = {(ns, n) for (s, ns, n), floor in self._floors.items()
                if s == storage and floor > list_rv}
        self._floors = {k: v for k, v in self._floors.items()
                        if k[0] != storage or (k[1], k[2]) in kept}
        for release, objs in self._by_release.items():
            if release not in kept:
                for key in [k for k in objs if k[0] == storage]:
                    del objs[key]
        for release, objs in listed.items():
            if release not in kept:
                self._by_release.setdefault(release, {}).update(objs)
        self._changed()

    async def _reflect(self, storage: Storage) -> None:
        path = records_path(storage)
        resource_version = ""
        backoff = _BACKOFF_MIN
        while True:
            try:
                if not resource_version:
                    resource_version = await self._relist(storage, path)
                    self._touch()
                    self._synced[storage].set()
                resource_version = await self._watch(storage, path, resource_version)
                backoff = _BACKOFF_MIN
            except asyncio.CancelledError:
                raise
            except ResourceExpired:
                resource_version = ""  # relist at once
            except CapstanError as e:
                self._watching[storage].clear()
                self._error = e.message.removeprefix(
                    f"cluster {self.client.cluster_name} is unreachable: ")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff * random.uniform(0.8, 1.2)):
                        await self._wake.wait()
                backoff = min(backoff * 2, _BACKOFF_MAX)
            except Exception:
                self._watching[storage].clear()
                log.exception("release cache of cluster %s failed", self.client.cluster_name)
                await asyncio.sleep(_BACKOFF_MAX)
                resource_version = ""

    async def _watch(self, storage: Storage, path: str, resource_version: str) -> str:
        """Follow one watch request; the resourceVersion to resume from ("" to relist)."""
        def opened() -> None:
            self._touch()
            self._stale = False
            self._watching[storage].set()

        events = self.client.watch(path, resource_version=resource_version,
                                   seconds=self.watch_seconds,
                                   label_selector=records.LATEST_SELECTOR, on_open=opened)
        async for event, obj in events:
            self._touch()
            if event == "ERROR":
                if obj.get("code") == 410:
                    return ""
                raise Unavailable(f"cluster {self.client.cluster_name} is unreachable: watch "
                                  f"error: {obj.get('message', obj)}")
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
            if event in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(storage, event, obj)
            resource_version = rv
        return resource_version
