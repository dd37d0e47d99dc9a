"""Finding what a request names: a cluster (by name or UUID, or the only one), a namespace,
and a release (by UUID or by name, narrowed by cluster and namespace). Also the per-release
write guard that keeps two writes to one release from running at once in this server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from capstan_server.drivers.base import (
    LABEL_RELEASE_ID,
    ClusterTarget,
    Driver,
    ReleaseRecord,
    ReleaseRef,
)
from capstan_server.errors import Aborted, InvalidArgument, NotFound
from capstan_server.names import validate_namespace, validate_release_name
from capstan_server.registry import ClusterRow, Registry
from capstan_server.services.messages import external_id, release_id


def target(row: ClusterRow) -> ClusterTarget:
    """The cluster as a driver needs it."""
    return ClusterTarget(id=row.id, name=row.name, kubeconfig=row.kubeconfig)


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
        return ReleaseRef(target(self.cluster), self.record.namespace, self.record.name)

    @property
    def id(self) -> str:
        return release_id(self.record, self.cluster.id)


class Resolver:
    """Resolves clusters, namespaces and release addresses against the registry and driver."""

    def __init__(self, registry: Registry, driver: Driver) -> None:
        self.registry = registry
        self.driver = driver

    async def cluster(self, id_or_name: str) -> ClusterRow:
        """A cluster by name or UUID; when empty, the only registered cluster."""
        if id_or_name:
            return await self.registry.get_cluster(id_or_name)
        rows, total = await self.registry.list_clusters(limit=2)
        if total == 1:
            return rows[0]
        if total == 0:
            raise NotFound("no cluster is registered; register one with CreateCluster")
        raise InvalidArgument(
            f"cluster is required: {total} clusters are registered",
            details=[{"field": "cluster", "reason": "required when several clusters exist"}],
        )

    async def clusters(self, id_or_name: str) -> list[ClusterRow]:
        """The named cluster, or every registered cluster when the name is empty."""
        if id_or_name:
            return [await self.registry.get_cluster(id_or_name)]
        rows, _ = await self.registry.list_clusters()
        return rows

    async def namespace_uids(self, cluster: ClusterRow) -> dict[str, str]:
        """Namespace name -> UID in a cluster."""
        return {ns.name: ns.uid for ns in await self.driver.namespaces(target(cluster))}

    async def require_namespace(self, cluster: ClusterRow, namespace: str) -> dict[str, str]:
        """NotFound unless the namespace exists in the cluster; the cluster's namespace UIDs
        (as `namespace_uids`) when it does."""
        uids = await self.namespace_uids(cluster)
        if namespace not in uids:
            raise NotFound(
                f"namespace {namespace!r} not found in cluster {cluster.name!r} "
                "(set create_namespace to create it)",
                details=[{"resource": "namespace", "name": namespace, "cluster": cluster.name}],
            )
        return uids

    async def releases(
        self,
        clusters: list[ClusterRow],
        namespace: str = "",
        *,
        name: str = "",
        labels: dict[str, str] | None = None,
    ) -> list[LocatedRelease]:
        """The latest revision of every matching release in the given clusters."""
        found = await asyncio.gather(
            *(self.driver.list(target(c), namespace, name=name, labels=labels) for c in clusters)
        )
        return [
            LocatedRelease(c, r)
            for c, records in zip(clusters, found, strict=True)
            for r in records
        ]

    async def release(
        self, id_or_name: str, cluster: str = "", namespace: str = ""
    ) -> LocatedRelease:
        """A release by UUID or name, narrowed by cluster and namespace.

        NotFound when there is none; InvalidArgument when a name matches several releases
        (the candidates are in the error details) or is not a valid release name.
        """
        if not id_or_name:
            raise InvalidArgument("release id or name is required")
        if namespace:
            validate_namespace(namespace)
        clusters = await self.clusters(cluster)
        if is_uuid(id_or_name):
            wanted = id_or_name.lower()
            by_label = await self.releases(clusters, namespace, labels={LABEL_RELEASE_ID: wanted})
            if not by_label:
                # Releases installed outside Capstan have derived ids, not labels.
                everything = await self.releases(clusters, namespace)
                by_label = [r for r in everything if r.id == wanted]
            if len(by_label) == 1:
                return by_label[0]
        validate_release_name(id_or_name)
        candidates = await self.releases(clusters, namespace, name=id_or_name)
        if not candidates:
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
                details=[
                    {
                        "id": c.id,
                        "name": c.record.name,
                        "cluster": c.cluster.name,
                        "cluster_id": c.cluster.id,
                        "namespace": c.record.namespace,
                        "external_id": external_id(c.cluster.id, c.record.namespace, c.record.name),
                    }
                    for c in candidates
                ],
            )
        return candidates[0]


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
