"""ChartService calls: repositories and the charts in them, one builder per RPC.

Bound as methods of `CapstanClient` and `AsyncCapstanClient` (see `calls.py`); every builder
also takes `deadline`, the per-call deadline in seconds (client default when None).
"""

from __future__ import annotations

from collections.abc import Sequence

from capstan.client.calls import Call, Rpc
from capstan.v1 import chart_pb2 as pb
from capstan.v1.chart_pb2_grpc import ChartServiceStub

__all__ = [
    "create_repository",
    "delete_repository",
    "get_chart",
    "get_repository",
    "list_charts",
    "list_repositories",
    "sync_repository",
]

CREATE_REPO = Rpc(ChartServiceStub, "CreateRepository", pb.Repository, idempotent=False)
LIST_REPOS = Rpc(ChartServiceStub, "ListRepositories", pb.ListRepositoriesResponse, idempotent=True)
GET_REPO = Rpc(ChartServiceStub, "GetRepository", pb.Repository, idempotent=True)
DELETE_REPO = Rpc(
    ChartServiceStub, "DeleteRepository", pb.DeleteRepositoryResponse, idempotent=False
)
# Fetching an index again has the same effect however often it is done.
SYNC_REPO = Rpc(ChartServiceStub, "SyncRepository", pb.Repository, idempotent=True)
LIST_CHARTS = Rpc(ChartServiceStub, "ListCharts", pb.ListChartsResponse, idempotent=True)
GET_CHART = Rpc(ChartServiceStub, "GetChart", pb.GetChartResponse, idempotent=True)


def create_repository(
    name: str,
    url: str,
    *,
    type: str = "",
    username: str = "",
    password: str = "",
    plain_http: bool = False,
    ca_pem: str = "",
    charts: Sequence[str] = (),
    deadline: float | None = None,
) -> Call[pb.Repository]:
    """Register the chart repository at `url` as `name` (its index is fetched once now).

    For an OCI registry (`oci://HOST/PATH`): `plain_http` to speak HTTP, `ca_pem` (PEM text)
    for a private CA, `charts` to name the charts when the registry offers no catalog.
    """
    request = pb.CreateRepositoryRequest(
        name=name, url=url, type=type, username=username, password=password,
        plain_http=plain_http, ca_pem=ca_pem, charts=charts,
    )
    return Call(CREATE_REPO, request, deadline)


def list_repositories(
    *,
    limit: int = 0,
    offset: int = 0,
    type: str = "",
    deadline: float | None = None,
) -> Call[pb.ListRepositoriesResponse]:
    """List the registered repositories, by name. Returns one page."""
    request = pb.ListRepositoriesRequest(limit=limit, offset=offset, type=type)
    return Call(LIST_REPOS, request, deadline)


def get_repository(id: str, *, deadline: float | None = None) -> Call[pb.Repository]:
    """Show repository `id` (UUID or name)."""
    return Call(GET_REPO, pb.GetRepositoryRequest(id=id), deadline)


def delete_repository(
    id: str, *, force: bool = False, deadline: float | None = None
) -> Call[pb.DeleteRepositoryResponse]:
    """Unregister repository `id`; refused while releases installed from it exist or while a
    cluster cannot be reached. With `force`, unregistered without that check; the releases
    stay as they are (an upgrade of one then needs a chart of a registered repository)."""
    return Call(DELETE_REPO, pb.DeleteRepositoryRequest(id=id, force=force), deadline)


def sync_repository(id: str, *, deadline: float | None = None) -> Call[pb.Repository]:
    """Fetch the index of repository `id` again (`helm repo update`)."""
    return Call(SYNC_REPO, pb.SyncRepositoryRequest(id=id), deadline)


def list_charts(
    *,
    repo: str = "",
    keyword: str = "",
    version: str = "",
    all_version: bool = False,
    limit: int = 0,
    offset: int = 0,
    deadline: float | None = None,
) -> Call[pb.ListChartsResponse]:
    """List charts (latest version of each, or every version with `all_version`)."""
    request = pb.ListChartsRequest(
        repo=repo,
        keyword=keyword,
        version=version,
        all_version=all_version,
        limit=limit,
        offset=offset,
    )
    return Call(LIST_CHARTS, request, deadline)


def get_chart(
    name: str,
    *,
    repo: str = "",
    version: str = "",
    deadline: float | None = None,
) -> Call[pb.GetChartResponse]:
    """Show chart `name` (`etcd` or `repo/etcd`): metadata, default values, README, versions."""
    request = pb.GetChartRequest(name=name, repo=repo, version=version)
    return Call(GET_CHART, request, deadline)
