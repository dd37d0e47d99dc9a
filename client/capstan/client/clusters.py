"""ClusterService calls: clusters registered by kubeconfig and their namespaces.

Bound as methods of `CapstanClient` and `AsyncCapstanClient` (see `calls.py`); every builder
also takes `deadline`, the per-call deadline in seconds (client default when None).
"""

from __future__ import annotations

from capstan.client.calls import Call, Rpc
from capstan.v1 import cluster_pb2 as pb
from capstan.v1.cluster_pb2_grpc import ClusterServiceStub

__all__ = [
    "create_cluster",
    "delete_cluster",
    "get_cluster",
    "list_clusters",
    "list_namespaces",
]

CREATE = Rpc(ClusterServiceStub, "CreateCluster", pb.Cluster, idempotent=False)
LIST = Rpc(ClusterServiceStub, "ListClusters", pb.ListClustersResponse, idempotent=True)
GET = Rpc(ClusterServiceStub, "GetCluster", pb.Cluster, idempotent=True)
DELETE = Rpc(ClusterServiceStub, "DeleteCluster", pb.DeleteClusterResponse, idempotent=False)
LIST_NAMESPACES = Rpc(
    ClusterServiceStub, "ListNamespaces", pb.ListNamespacesResponse, idempotent=True
)


def create_cluster(
    name: str, kubeconfig: str, *, deadline: float | None = None
) -> Call[pb.Cluster]:
    """Register a cluster as `name` from `kubeconfig` (YAML text; its current context is used)."""
    return Call(CREATE, pb.CreateClusterRequest(name=name, kubeconfig=kubeconfig), deadline)


def list_clusters(
    *, limit: int = 0, offset: int = 0, deadline: float | None = None
) -> Call[pb.ListClustersResponse]:
    """List the registered clusters, by name. Returns one page."""
    return Call(LIST, pb.ListClustersRequest(limit=limit, offset=offset), deadline)


def get_cluster(id: str, *, deadline: float | None = None) -> Call[pb.Cluster]:
    """Show cluster `id` (UUID or name)."""
    return Call(GET, pb.GetClusterRequest(id=id), deadline)


def delete_cluster(
    id: str, *, force: bool = False, deadline: float | None = None
) -> Call[pb.DeleteClusterResponse]:
    """Unregister cluster `id`; refused while releases still exist in it or while it cannot be
    reached. With `force`, unregistered without that check; its releases stay in the cluster."""
    return Call(DELETE, pb.DeleteClusterRequest(id=id, force=force), deadline)


def list_namespaces(
    *,
    cluster: str = "",
    limit: int = 0,
    offset: int = 0,
    deadline: float | None = None,
) -> Call[pb.ListNamespacesResponse]:
    """List the namespaces of `cluster` (may be empty when only one cluster is registered)."""
    request = pb.ListNamespacesRequest(cluster=cluster, limit=limit, offset=offset)
    return Call(LIST_NAMESPACES, request, deadline)
