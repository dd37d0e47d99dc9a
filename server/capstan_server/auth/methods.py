"""What each RPC needs: the action the auth interceptor checks before the call runs.

Release writes need `editor` somewhere (the services then check the namespace itself); cluster
and repository changes need `admin`. Reads need any known subject. A Capstan RPC missing from
this table needs `admin`, so a new RPC is never open by accident (a test checks the table
covers every RPC). Health is open to everyone; everything else (reflection included) is a read.
"""

from __future__ import annotations

from capstan_server.auth.access import Action

__all__ = ["OPEN_PREFIXES", "action_of", "is_write"]

#: Methods anyone may call, even without a credential (load balancers, probes).
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

_RELEASE = "/capstan.v1.ReleaseService/"
_CHART = "/capstan.v1.ChartService/"
_CLUSTER = "/capstan.v1.ClusterService/"

METHOD_ACTIONS: dict[str, Action] = {
    **{_RELEASE + m: Action.READ for m in
       ("ListReleases", "GetRelease", "GetReleaseHistory", "WatchRelease")},
    **{_RELEASE + m: Action.WRITE for m in
       ("CreateRelease", "UpgradeRelease", "RollbackRelease", "DeleteRelease", "RecoverRelease")},
    **{_CHART + m: Action.READ for m in
       ("ListRepositories", "GetRepository", "ListCharts", "GetChart")},
    **{_CHART + m: Action.ADMIN for m in
       ("CreateRepository", "DeleteRepository", "SyncRepository")},
    **{_CLUSTER + m: Action.READ for m in ("ListClusters", "GetCluster", "ListNamespaces")},
    **{_CLUSTER + m: Action.ADMIN for m in ("CreateCluster", "DeleteCluster")},
}


def action_of(method: str) -> Action:
    """The action `method` (a full gRPC path) needs."""
    action = METHOD_ACTIONS.get(method)
    if action is not None:
        return action
    return Action.ADMIN if method.startswith("/capstan.") else Action.READ


def is_write(method: str) -> bool:
    """Whether `method` changes something (the audit log has a line for each such call)."""
    return action_of(method) is not Action.READ
