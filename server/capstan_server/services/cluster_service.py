"""ClusterService: registering clusters by kubeconfig, and listing their namespaces.

A cluster is registered only after its kubeconfig was checked (well-formed, self-contained,
and accepted by the driver), so a bad one leaves nothing behind.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc.aio

from capstan.v1 import cluster_pb2, cluster_pb2_grpc
from capstan_server.auth.access import current_access
from capstan_server.drivers.base import ClusterTarget, Driver
from capstan_server.errors import AlreadyExists, FailedPrecondition, Unavailable
from capstan_server.kubeconfig import parse_kubeconfig
from capstan_server.names import validate_cluster_name
from capstan_server.registry import ClusterRow
from capstan_server.registry_store import RegistryStore
from capstan_server.services import messages as msg
from capstan_server.services.addressing import (
    Resolver,
    UnreachableCluster,
    target,
    unreachable_detail,
)

Context = grpc.aio.ServicerContext[Any, Any]

#: How a refusal names the way around it, for CLI and API callers alike.
_FORCE = "force (--force, or `force` in the request)"


class ClusterServicer(cluster_pb2_grpc.ClusterServiceServicer):
    """See cluster.proto for the contract of each call."""

    def __init__(self, registry: RegistryStore, driver: Driver, resolver: Resolver) -> None:
        self.registry = registry
        self.driver = driver
        self.resolver = resolver

    async def CreateCluster(
        self, request: cluster_pb2.CreateClusterRequest, context: Context
    ) -> cluster_pb2.Cluster:
        name = validate_cluster_name(request.name)
        info = parse_kubeconfig(request.kubeconfig)
        if await self.registry.find_cluster(name) is not None:
            raise AlreadyExists(f"cluster {name!r} is already registered")
        # The id is chosen before the check so that the driver caches its client under it.
        cluster_id = str(uuid.uuid4())
        await self.driver.check_cluster(ClusterTarget(cluster_id, name, request.kubeconfig))
        row = await self.registry.add_cluster(
            name, request.kubeconfig, info.server, cluster_id=cluster_id
        )
        return msg.cluster_message(row)

    async def ListClusters(
        self, request: cluster_pb2.ListClustersRequest, context: Context
    ) -> cluster_pb2.ListClustersResponse:
        limit, offset = msg.page(request.limit, request.offset)
        rows, total = await self.resolver.visible_clusters(limit, offset)
        return cluster_pb2.ListClustersResponse(
            clusters=[msg.cluster_message(r) for r in rows], total=total, limit=limit, offset=offset
        )

    async def GetCluster(
        self, request: cluster_pb2.GetClusterRequest, context: Context
    ) -> cluster_pb2.Cluster:
        return msg.cluster_message(await self.resolver.visible_cluster(request.id))

    async def DeleteCluster(
        self, request: cluster_pb2.DeleteClusterRequest, context: Context
    ) -> cluster_pb2.DeleteClusterResponse:
        row = await self.registry.get_cluster(request.id)
        if request.force:
            # Nothing is asked of the cluster, and nothing in it is changed: its releases stay.
            return await self._unregistered(row)
        try:
            releases = await self.driver.list(target(row))
        except Unavailable as e:
            # Unregistering it would orphan whatever releases it still has, out of sight.
            raise Unavailable(
                f"cluster {row.name!r} cannot be deleted while it is unreachable, because "
                f"Capstan must first check that no releases are left in it ({e.message}); "
                "retry once it is reachable again (delete its releases first, if it has any), "
                f"or, if it is gone for good, unregister it without the check with {_FORCE} "
                "(whatever releases it has are left in it untouched)",
                details=[unreachable_detail(UnreachableCluster(row, e))],
            ) from e
        if releases:
            names = [f"{r.namespace}/{r.name}" for r in releases]
            raise FailedPrecondition(
                f"cluster {row.name!r} still has {len(releases)} release(s): "
                f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}; delete them "
                f"first, or unregister the cluster anyway with {_FORCE} (they are then left in "
                "it untouched, out of Capstan's sight)",
                details=[{"release": n} for n in names],
            )
        return await self._unregistered(row)

    async def _unregistered(self, row: ClusterRow) -> cluster_pb2.DeleteClusterResponse:
        """Unregister `row`; the driver stops watching it (other replicas stop theirs when
        their readiness sync finds it gone from the registry)."""
        await self.registry.delete_cluster(row.id)
        forget = getattr(self.driver, "forget", None)
        if forget is not None:
            forget(row.id)
        return cluster_pb2.DeleteClusterResponse(cluster=msg.cluster_message(row))

    async def ListNamespaces(
        self, request: cluster_pb2.ListNamespacesRequest, context: Context
    ) -> cluster_pb2.ListNamespacesResponse:
        limit, offset = msg.page(request.limit, request.offset)
        row = await self.resolver.cluster(request.cluster)
        access = current_access()
        namespaces = sorted(
            (n for n in await self.driver.namespaces(target(row))
             if not access.hidden(row.name, n.name)),
            key=lambda n: n.name,
        )
        return cluster_pb2.ListNamespacesResponse(
            namespaces=[msg.namespace_message(n, row) for n in namespaces[offset : offset + limit]],
            total=len(namespaces),
            limit=limit,
            offset=offset,
        )
