"""Finding what a request names: a cluster (by name or UUID, or the only one), a namespace,
and a release (by UUID or by name, narrowed by cluster and namespace). Also the per-release
write guard that keeps two writes to one release from running at once in this server.

Clusters that cannot be reached (the driver raises `Unavailable`) are never silently skipped:
`reachable_releases` reports them next to what the others answered (ListReleases lists those
and names the missing clusters), and a release lookup that could not ask every cluster in its
scope is refused with Unavailable naming them, since the release, or another of that name,
may be in one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from capstan_server.auth.access import Action, current_access
from capstan_server.auth.tenancy import tenancy_of
from capstan_server.drivers.base import (
    LABEL_RELEASE_ID,
    ClusterTarget,
    Driver,
    NamespaceInfo,
    ReleaseRecord,
    ReleaseRef,
    StaleCluster,
)
from capstan_server.errors import Aborted, InvalidArgument, NotFound, Unavailable
from capstan_server.names import validate_namespace, validate_release_name
from capstan_server.registry import ClusterRow
from capstan_server.registry_store import RegistryStore
from capstan_server.services.messages import external_id, release_id


def target(row: ClusterRow, namespace: str = "") -> ClusterTarget:
    """The cluster as a driver needs it. With a namespace: for work on behalf of the caller
    there, acting as the caller's project (auth.tenancy; the stored identity for admins and
    without a policy). Without one: Capstan's own bookkeeping, with the stored identity."""
    identity = None
    if namespace:
        found = tenancy_of(current_access(), row.name, namespace)
        identity = found.identity if found is not None else None
    return ClusterTarget(id=row.id, name=row.name, kubeconfig=row.kubeconfig, act_as=identity)


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


@dataclass(frozen=True)
class LocatedRelease:
    """A release found by its address: where it lives and its latest revision."""

    cluster: ClusterRow
    record: ReleaseRecord

    @property
    def ref(self) -> ReleaseRef:
        return ReleaseRef(target(self.cluster, self.record.namespace), self.record.namespace,
                          self.record.name)

    @property
    def id(self) -> str:
        return release_id(self.record, self.cluster.id)


@dataclass(frozen=True)
class UnreachableCluster:
    """A cluster that could not be asked, and the error that said so (a `StaleCluster` when
    the driver answered from the cluster's last known state)."""

    cluster: ClusterRow
    error: Unavailable

    @property
    def stale(self) -> StaleCluster | None:
        return self.error if isinstance(self.error, StaleCluster) else None


def unreachable_error(down: list[UnreachableCluster]) -> Unavailable:
    """The error for a call none of whose clusters could be reached: the driver's own error
    when there was one cluster in scope, else one that names each of them."""
    if len(down) == 1:
        return down[0].error
    reasons = "; ".join(f"{d.cluster.name!r}: {d.error.message}" for d in down)
    return Unavailable(
        f"none of the {len(down)} clusters could be reached: {reasons}",
        details=[unreachable_detail(d) for d in down],
    )


def unreachable_detail(down: UnreachableCluster) -> dict[str, str]:
    """The error detail naming one unreachable cluster."""
    return {
        "cluster": down.cluster.name,
        "cluster_id": down.cluster.id,
        "reason": "unreachable",
        "message": down.error.message,
    }


def _candidate_detail(found: LocatedRelease) -> dict[str, str]:
    record, cluster = found.record, found.cluster
    return {
        "id": found.id,
        "name": record.name,
        "cluster": cluster.name,
        "cluster_id": cluster.id,
        "namespace": record.namespace,
        "external_id": external_id(cluster.id, record.namespace, record.name),
    }


def _partial_lookup_error(
    id_or_name: str, candidates: list[LocatedRelease], down: list[UnreachableCluster]
) -> Unavailable:
    """A release lookup without a cluster that could not ask every registered cluster."""
    names = ", ".join(repr(d.cluster.name) for d in down)
    plural = "s" if len(down) > 1 else ""
    reasons = "; ".join(d.error.message for d in down)
    if candidates:
        where = sorted({c.cluster.name for c in candidates})
        text = (
            f"release {id_or_name!r} was found in cluster{'s' if len(where) > 1 else ''} "
            f"{', '.join(map(repr, where))}, but cluster{plural} {names} could not be reached "
            f"to rule out another release matching it ({reasons}); give the cluster "
            f"(--cluster {where[0]}, or `cluster` in the request) to address it without "
            f"asking cluster{plural} {names}"
        )
    else:
        text = (
            f"release {id_or_name!r} was not found in the reachable clusters, but cluster"
            f"{plural} {names} could not be reached and may hold it ({reasons}); retry once "
            f"{'they are' if plural else 'it is'} reachable"
        )
    return Unavailable(
        text,
        details=[unreachable_detail(d) for d in down] + [_candidate_detail(c) for c in candidates],
    )


class Resolver:
    """Resolves clusters, namespaces and release addresses against the registry and driver."""

    def __init__(self, registry: RegistryStore, driver: Driver) -> None:
        self.registry = registry
        self.driver = driver
        #: The last answer of `reachable_releases` per scope, with the driver lists it was
        #: made from: while a driver answers with the very same lists (its cache did not
        #: change), the same `found` list is returned, which callers may key derived views on.
        self._last: dict[tuple[Any, ...], tuple[list[Any], list[LocatedRelease]]] = {}
        #: What a restricted caller may see of one such `found` list, per read scope (see
        #: `_visible`): (found, visible, how many were hidden).
        self._visible_memo: dict[
            tuple[int, tuple[Any, ...]], tuple[list[LocatedRelease], list[LocatedRelease], int]
        ] = {}
        #: The last namespace UIDs per cluster id, with the driver's list they were made from.
        self._uids: dict[str, tuple[list[NamespaceInfo], dict[str, str]]] = {}

    async def visible_cluster(self, id_or_name: str) -> ClusterRow:
        """A registered cluster by name or UUID that the caller may see (else NotFound, as for
        an unregistered one: the caller's projects decide what exists for it)."""
        row = await self.registry.get_cluster(id_or_name)
        if not current_access().sees_cluster(row.name):
            raise NotFound(
                f"cluster {id_or_name!r} is not registered",
                details=[{"resource": "cluster", "name": id_or_name}],
            )
        return row

    async def visible_clusters(
        self, limit: int = -1, offset: int = 0
    ) -> tuple[list[ClusterRow], int]:
        """One page of the clusters the caller may see, and how many it may see."""
        access = current_access()
        if not access.restricted:
            return await self.registry.list_clusters(limit, offset)
        rows, _ = await self.registry.list_clusters()
        visible = [r for r in rows if access.sees_cluster(r.name)]
        end = None if limit < 0 else offset + limit
        return visible[offset:end], len(visible)

    async def cluster(self, id_or_name: str) -> ClusterRow:
        """A cluster by name or UUID; when empty, the only registered (visible) cluster."""
        if id_or_name:
            return await self.visible_cluster(id_or_name)
        rows, total = await self.visible_clusters(limit=2)
        if total == 1:
            return rows[0]
        if total == 0:
            raise NotFound("no cluster is registered; register one with CreateCluster")
        raise InvalidArgument(
            f"cluster is required: {total} clusters are registered",
            details=[{"field": "cluster", "reason": "required when several clusters exist"}],
        )

    async def clusters(self, id_or_name: str) -> list[ClusterRow]:
        """The named cluster, or every registered cluster (the caller may see) when the name is
        empty."""
        if id_or_name:
            return [await self.visible_cluster(id_or_name)]
        rows, _ = await self.visible_clusters()
        return rows

    async def namespace_uids(
        self, cluster: ClusterRow, expect: Collection[str] = ()
    ) -> dict[str, str]:
        """Namespace name -> UID in a cluster (`expect`: see `Driver.namespaces`). Callers
        must not change it: while the driver answers with the same list (from its cache),
        the same map is returned."""
        found = await self.driver.namespaces(target(cluster), expect=expect)
        held = self._uids.get(cluster.id)
        if held is not None and held[0] is found:
            return held[1]
        uids = {ns.name: ns.uid for ns in found}
        if len(self._uids) > 1024:
            self._uids.clear()
        self._uids[cluster.id] = (found, uids)
        return uids

    async def require_namespace(self, cluster: ClusterRow, namespace: str) -> dict[str, str]:
        """NotFound unless the namespace exists in the cluster; the cluster's namespace UIDs
        (as `namespace_uids`) when it does."""
        uids = await self.namespace_uids(cluster, expect=(namespace,))
        if namespace not in uids:
            raise NotFound(
                f"namespace {namespace!r} not found in cluster {cluster.name!r} "
                "(set create_namespace to create it)",
                details=[{"resource": "namespace", "name": namespace, "cluster": cluster.name}],
            )
        return uids

    async def reachable_releases(
        self,
        clusters: list[ClusterRow],
        namespace: str = "",
        *,
        name: str = "",
        labels: dict[str, str] | None = None,
        include_stale: bool = False,
    ) -> tuple[list[LocatedRelease], list[UnreachableCluster]]:
        """The latest revision of every matching release in the given clusters. A cluster that
        cannot be reached (Unavailable) is reported, in the order of `clusters`, instead of
        failing the call; any other error still fails it. With `include_stale`, the releases
        of a cluster the driver answered from its last known state (`StaleCluster`) are
        listed too (the cluster is still reported). Releases in namespaces the caller may not
        read are left out, as if they did not exist (after the per-scope memo, which is the
        same for every caller)."""
        answers = await asyncio.gather(
            *(self.driver.list(target(c), namespace, name=name, labels=labels) for c in clusters),
            return_exceptions=True,
        )
        scope = (tuple(c.id for c in clusters), namespace, name,
                 tuple(sorted((labels or {}).items())), include_stale)
        last = self._last.get(scope)
        if last is not None and len(last[0]) == len(answers) and all(
                a is b for a, b in zip(last[0], answers, strict=True)):
            return self._visible(last[1]), []
        found: list[LocatedRelease] = []
        down: list[UnreachableCluster] = []
        for c, answer in zip(clusters, answers, strict=True):
            if isinstance(answer, Unavailable):
                down.append(UnreachableCluster(c, answer))
                if include_stale and isinstance(answer, StaleCluster):
                    found.extend(LocatedRelease(c, r) for r in answer.records)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found.extend(LocatedRelease(c, r) for r in answer)
        if not down:
            if len(self._last) > 64:
                self._last.clear()
            self._last[scope] = (list(answers), found)
        return self._visible(found), down

    def _visible(self, found: list[LocatedRelease]) -> list[LocatedRelease]:
        """The releases the caller may read (`auth.access`); the others do not exist for it.

        `found` itself when nothing is hidden from the caller, so that views keyed on its
        identity (ListReleases' sorted pages) stay valid; for a restricted caller, one list
        per (`found`, read scope), so that its pages are views of an unchanging list too and
        cost O(page) rather than a pass over every release."""
        access = current_access()
        if access.reads_everywhere:
            return found
        key = (id(found), access.read_scope)
        held = self._visible_memo.get(key)
        if held is None or held[0] is not found:
            visible = [r for r in found
                       if access.may(Action.READ, r.cluster.name, r.record.namespace)]
            held = (found, visible, len(found) - len(visible))
            if len(self._visible_memo) > 64:
                self._visible_memo.clear()
            self._visible_memo[key] = held
        access.hidden_count += held[2]
        return held[1]

    async def release(
        self, id_or_name: str, cluster: str = "", namespace: str = ""
    ) -> LocatedRelease:
        """A release by UUID or name, narrowed by cluster and namespace.

        NotFound when there is none; InvalidArgument when a name matches several releases
        (the candidates are in the error details) or is not a valid release name. Unavailable
        when a cluster in scope could not be asked, even if the release was found in another
        (it could be ambiguous, or be there): the message names the clusters and, when the
        release was found, suggests giving its cluster.
        """
        if not id_or_name:
            raise InvalidArgument("release id or name is required")
        if namespace:
            validate_namespace(namespace)
        clusters = await self.clusters(cluster)
        down: list[UnreachableCluster] = []

        async def ask(
            *, name: str = "", labels: dict[str, str] | None = None
        ) -> list[LocatedRelease]:
            # A cluster found unreachable is not asked again by the next read of this lookup.
            nonlocal clusters
            found, missing = await self.reachable_releases(
                clusters, namespace, name=name, labels=labels
            )
            if missing:
                down.extend(missing)
                gone = {d.cluster.id for d in missing}
                clusters = [c for c in clusters if c.id not in gone]
                if not clusters:
                    raise unreachable_error(down)
            return found

        if is_uuid(id_or_name):
            wanted = id_or_name.lower()
            by_label = await ask(labels={LABEL_RELEASE_ID: wanted})
            if not by_label:
                # Releases installed outside Capstan have derived ids, not labels.
                everything = await ask()
                by_label = [r for r in everything if r.id == wanted]
            if len(by_label) == 1:
                if down:
                    raise _partial_lookup_error(id_or_name, by_label, down)
                return by_label[0]
            if id_or_name != wanted:
                # An upper-case UUID names no release (names are lower-case): an unknown id,
                # not a bad name.
                if down:
                    raise _partial_lookup_error(id_or_name, [], down)
                raise NotFound(
                    f"release {id_or_name!r} not found",
                    details=[{"resource": "release", "id": id_or_name}],
                )
        validate_release_name(id_or_name)
        candidates = await ask(name=id_or_name)
        if down:
            raise _partial_lookup_error(id_or_name, candidates, down)
        if not candidates:
            if current_access().hidden_count:
                # It exists where the caller may not look: answered as not found, but audited.
                current_access().denied.append(f"read release {id_or_name!r}")
            scope = "".join(
                [
                    f" in namespace {namespace!r}" if namespace else "",
                    f" of cluster {cluster!r}" if cluster else "",
                ]
            )
            raise NotFound(
                f"release {id_or_name!r} not found{scope}",
                details=[{"resource": "release", "name": id_or_name}],
            )
        if len(candidates) > 1:
            raise InvalidArgument(
                f"release name {id_or_name!r} is ambiguous: {len(candidates)} releases have it; "
                "give cluster and/or namespace, or the release id",
                details=[_candidate_detail(c) for c in candidates],
            )
        return candidates[0]


    async def release_for_write(
        self, id_or_name: str, cluster: str = "", namespace: str = ""
    ) -> LocatedRelease:
        """As `release`, for a call that changes it: PermissionDenied (before anything is
        looked up) when `namespace` is given and the caller may not change releases there in
        any cluster in scope, and (after) when it may read the release but not change it."""
        access = current_access()
        if namespace and access.restricted:
            validate_namespace(namespace)
            names = [c.name for c in await self.clusters(cluster)]
            if not access.may_in_some_cluster(Action.WRITE, names, namespace):
                access.refuse(Action.WRITE, cluster or (names[0] if len(names) == 1 else "*"),
                              namespace)
        found = await self.release(id_or_name, cluster, namespace)
        access.require(Action.WRITE, found.cluster.name, found.record.namespace)
        return found


class ReleaseLocks:
    """Writes in flight in this server, per release: a second write to the same release is
    refused at once with Aborted (naming the first and since when) rather than queued, since
    it would otherwise run against a release its caller has not seen."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, str], tuple[str, datetime]] = {}

    @contextlib.contextmanager
    def hold(self, cluster_id: str, namespace: str, name: str, operation: str) -> Iterator[None]:
        key = (cluster_id, namespace, name)
        held = self._held.get(key)
        if held is not None:
            running, since = held
            stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise Aborted(
                f"release {name!r} in namespace {namespace!r} has an operation in flight: "
                f"{running} since {stamp}",
                details=[{"operation": running, "since": stamp}],
            )
        self._held[key] = (operation, datetime.now(UTC))
        try:
            yield
        finally:
            self._held.pop(key, None)
