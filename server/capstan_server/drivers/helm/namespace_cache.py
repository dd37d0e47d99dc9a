"""A watch-fed cache of one cluster's namespaces, so that the `namespace_id` of every release
message (a list page asks for it on each call) costs a dictionary lookup, not an API read.

Why a watch, and not a cache that expires: a namespace's UID only changes when it is deleted
and created again, and a watch hears of that within milliseconds, where an expiring cache
would be wrong for up to its lifetime and still cost a read of every namespace each time it
expires, on the path of whichever call comes next. The watch costs one long request per
cluster, the pattern the release cache (`informer.py`) already follows.

Exactness:

- Namespaces created or deleted by anyone arrive over the watch (ADDED, MODIFIED for
  Terminating, DELETED; each applied only if newer than what is known of that name).
- Namespaces created by this server's own writes (helm's `--create-namespace`) are read back
  after the write (`refresh`), so the next list has their UID without waiting for the watch.
- A caller that expects names to exist (the namespaces of the releases it is about to show)
  and does not find one reads the cluster instead (`HelmDriver.namespaces`): a namespace
  created moments ago by someone else is not missed. A name such a read did not find is
  not read for again within `ABSENT_FOR` seconds (unless the watch brings it), so a release
  whose namespace is gone does not turn every page into an API read.
- While the watch is not running (not yet synced, reconnecting after an error), the cache
  does not answer (`live` is False) and the driver reads the cluster as it did before the
  cache; the caller's bound on that read (ListReleases' `_list_namespace_uids`) still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Collection, Mapping
from typing import Any

from capstan_server.drivers.base import NamespaceInfo
from capstan_server.drivers.helm import records
from capstan_server.drivers.helm.kube import KubeClient, ResourceExpired
from capstan_server.errors import CapstanError

log = logging.getLogger(__name__)

PATH = "/api/v1/namespaces"
#: How long a name a read of the cluster did not find is taken as missing by `misses`.
ABSENT_FOR = 1.0
WATCH_SECONDS = 300.0
_BACKOFF_MIN, _BACKOFF_MAX = 0.2, 10.0


def namespace_info(obj: Mapping[str, Any]) -> NamespaceInfo:
    """A namespace object as the driver reports it."""
    meta = obj.get("metadata") or {}
    return NamespaceInfo(
        name=str(meta.get("name", "")), uid=str(meta.get("uid", "")),
        phase=str((obj.get("status") or {}).get("phase", "Active")),
        created=records.parse_time(meta.get("creationTimestamp")))


def _rv(obj: Mapping[str, Any]) -> int:
    # Opaque in principle; integers from every API server (etcd revisions) and kubesim.
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class NamespaceCache:
    """The namespaces of one cluster (see the module docstring); lives on one event loop."""

    def __init__(self, client: KubeClient, *, watch_seconds: float = WATCH_SECONDS) -> None:
        self.client = client
        self.watch_seconds = watch_seconds
        #: name -> (resourceVersion, info) of every namespace known to exist.
        self._known: dict[str, tuple[int, NamespaceInfo]] = {}
        #: The resourceVersion up to which every change is reflected (the list's, then each
        #: event's): a name not known, seen in an object no newer than that (a read that
        #: began earlier), has been deleted since.
        self._upto = 0
        #: name -> monotonic time a read of the cluster did not find it (`not_found`).
        self._absent: dict[str, float] = {}
        self._watching = False
        self._view: list[NamespaceInfo] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._reflect())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def running(self) -> bool:
        """Started and not closed: its watch is kept open (or being reopened)."""
        return self._task is not None and not self._task.done()

    @property
    def live(self) -> bool:
        """Listed, and the watch is open: what the cache holds is the cluster's state."""
        return self._watching

    def namespaces(self) -> list[NamespaceInfo]:
        """Every namespace, by name (the same list until something changes)."""
        if self._view is None:
            self._view = sorted((info for _, info in self._known.values()),
                                key=lambda n: n.name)
        return self._view

    def misses(self, expected: Collection[str]) -> bool:
        """Whether one of the `expected` names is unknown, and no read of the cluster found
        it missing within `ABSENT_FOR` seconds (the driver then reads the cluster)."""
        now = time.monotonic()
        for name in expected:
            if name not in self._known:
                absent = self._absent.get(name)
                if absent is None or now - absent >= ABSENT_FOR:
                    return True
        return False

    def absorb(self, items: list[dict[str, Any]]) -> None:
        """What a read of every namespace found (each object taken when newer than what is
        known of its name)."""
        for obj in items:
            self._put(obj)

    def not_found(self, names: Collection[str]) -> None:
        """Names a caller expected that a read of the cluster did not hold."""
        now = time.monotonic()
        if len(self._absent) > 1024:
            self._absent = {k: t for k, t in self._absent.items() if now - t < ABSENT_FOR}
        self._absent.update(dict.fromkeys(names, now))

    async def refresh(self, name: str) -> None:
        """After a write by this server into `name`: read that namespace if it is not known
        (helm may just have created it). Errors are left to the next read to report."""
        if name in self._known:
            return
        self._absent.pop(name, None)
        with contextlib.suppress(CapstanError):
            obj = await self.client.get(f"{PATH}/{name}")
            if obj is not None:
                self._put(obj)

    # -- the reflector

    def _put(self, obj: Mapping[str, Any]) -> None:
        info = namespace_info(obj)
        rv = _rv(obj)
        held = self._known.get(info.name)
        if rv <= (held[0] if held is not None else self._upto):
            return
        self._known[info.name] = (rv, info)
        self._absent.pop(info.name, None)
        self._view = None

    def _apply(self, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (events come in resourceVersion order)."""
        rv = _rv(obj)
        if event == "DELETED":
            name = str((obj.get("metadata") or {}).get("name", ""))
            held = self._known.get(name)
            if held is not None and held[0] < rv:
                del self._known[name]
                self._view = None
        elif event in ("ADDED", "MODIFIED"):
            self._put(obj)
        self._upto = max(self._upto, rv)

    def _replace(self, items: list[dict[str, Any]], list_rv: str) -> None:
        self._known, self._view, self._upto = {}, None, 0
        for obj in items:
            self._put(obj)
        self._upto = _rv({"metadata": {"resourceVersion": list_rv}})

    async def _reflect(self) -> None:
        resource_version = ""
        backoff = _BACKOFF_MIN
        while True:
            try:
                if not resource_version:
                    items, resource_version = await self.client.list_objects(PATH)
                    self._replace(items, resource_version)
                resource_version = await self._watch(resource_version)
                backoff = _BACKOFF_MIN
            except asyncio.CancelledError:
                self._watching = False
                raise
            except ResourceExpired:
                self._watching = False
                resource_version = ""
            except CapstanError as e:
                self._watching = False
                log.debug("namespace watch of cluster %s failed: %s", self.client.cluster_name,
                          e.message)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, _BACKOFF_MAX)
            except Exception:
                self._watching = False
                log.exception("namespace cache of cluster %s failed", self.client.cluster_name)
                await asyncio.sleep(_BACKOFF_MAX)
                resource_version = ""

    async def _watch(self, resource_version: str) -> str:
        """Follow one watch request; the resourceVersion to resume from ("" to relist)."""
        def opened() -> None:
            self._watching = True

        async for event, obj in self.client.watch(PATH, resource_version=resource_version,
                                                  seconds=self.watch_seconds, on_open=opened):
            if event == "ERROR":
                self._watching = False
                return ""  # 410 Gone or another error: list again
            if event == "BOOKMARK":
                self._upto = max(self._upto, _rv(obj))
            else:
                self._apply(event, obj)
            resource_version = str((obj.get("metadata") or {}).get("resourceVersion")
                                   or resource_version)
        return resource_version
