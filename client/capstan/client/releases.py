"""ReleaseService calls: one builder per RPC, keyword arguments mirroring the request fields.

These are bound as methods of `CapstanClient` and `AsyncCapstanClient` (see `calls.py`); every
builder also takes `deadline`, the per-call deadline in seconds (client default when None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from capstan.client.calls import Call, Rpc, struct
from capstan.v1 import release_pb2 as pb
from capstan.v1.release_pb2_grpc import ReleaseServiceStub

__all__ = [
    "RecoveryActionName",
    "create_release",
    "delete_release",
    "get_release",
    "get_release_history",
    "list_releases",
    "recover_release",
    "rollback_release",
    "upgrade_release",
    "watch_release",
]

CREATE = Rpc(ReleaseServiceStub, "CreateRelease", pb.Release, idempotent=False)
LIST = Rpc(ReleaseServiceStub, "ListReleases", pb.ListReleasesResponse, idempotent=True)
GET = Rpc(ReleaseServiceStub, "GetRelease", pb.Release, idempotent=True)
UPGRADE = Rpc(ReleaseServiceStub, "UpgradeRelease", pb.Release, idempotent=False)
HISTORY = Rpc(
    ReleaseServiceStub, "GetReleaseHistory", pb.GetReleaseHistoryResponse, idempotent=True
)
ROLLBACK = Rpc(ReleaseServiceStub, "RollbackRelease", pb.Release, idempotent=False)
DELETE = Rpc(ReleaseServiceStub, "DeleteRelease", pb.DeleteReleaseResponse, idempotent=False)
WATCH = Rpc(ReleaseServiceStub, "WatchRelease", pb.ReleaseEvent, idempotent=True)
RECOVER = Rpc(ReleaseServiceStub, "RecoverRelease", pb.Release, idempotent=False)

#: Recovery actions by their CLI names.
RecoveryActionName = Literal["rollback", "mark-failed"]
_RECOVERY_ACTIONS: dict[str, pb.RecoveryAction.ValueType] = {
    "rollback": pb.RECOVERY_ACTION_ROLLBACK,
    "mark-failed": pb.RECOVERY_ACTION_MARK_FAILED,
}


def create_release(
    chart_name: str,
    *,
    cluster: str = "",
    namespace: str = "",
    release_name: str = "",
    version: str = "",
    values: str = "",
    values_json: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    timeout: int = 0,
    wait: bool = False,
    atomic: bool = False,
    description: str = "",
    create_namespace: bool = False,
    details: bool = False,
    type: str = "",
    deadline: float | None = None,
) -> Call[pb.Release]:
    """Install chart `chart_name` (`<repo>/<chart>`, e.g. `bitnami-new/etcd`) as a new release.

    `values` is YAML text (several documents are merged in order), `values_json` an object laid
    over it; `timeout` is the operation's timeout in seconds (Helm's `--timeout`). Returns the
    new `Release`. Never retried.
    """
    request = pb.CreateReleaseRequest(
        chart_name=chart_name,
        cluster=cluster,
        namespace=namespace,
        release_name=release_name,
        version=version,
        values=values,
        values_json=struct(values_json),
        dry_run=dry_run,
        timeout=timeout,
        wait=wait,
        atomic=atomic,
        description=description,
        create_namespace=create_namespace,
        details=details,
        type=type,
    )
    return Call(CREATE, request, deadline, operation_timeout=timeout)


def list_releases(
    *,
    cluster: str = "",
    namespace: str = "",
    name: str = "",
    search: str = "",
    type: str = "",
    limit: int = 0,
    offset: int = 0,
    details: bool = False,
    deployed: bool = False,
    deleting: bool = False,
    failed: bool = False,
    superseded: bool = False,
    pending: bool = False,
    deadline: float | None = None,
) -> Call[pb.ListReleasesResponse]:
    """List releases, newest first; status flags combine with OR. Returns one page."""
    request = pb.ListReleasesRequest(
        cluster=cluster,
        namespace=namespace,
        name=name,
        search=search,
        type=type,
        limit=limit,
        offset=offset,
        details=details,
        deployed=deployed,
        deleting=deleting,
        failed=failed,
        superseded=superseded,
        pending=pending,
    )
    return Call(LIST, request, deadline)


def get_release(
    id: str,
    *,
    cluster: str = "",
    namespace: str = "",
    objects: bool = False,
    deadline: float | None = None,
) -> Call[pb.Release]:
    """Show release `id` (UUID or name) with its config and live resources (a summary per
    object; each whole live object too with `objects`)."""
    request = pb.GetReleaseRequest(id=id, cluster=cluster, namespace=namespace, objects=objects)
    return Call(GET, request, deadline)


def upgrade_release(
    id: str,
    chart_name: str = "",
    *,
    cluster: str = "",
    namespace: str = "",
    release_name: str = "",
    version: str = "",
    values: str = "",
    values_json: Mapping[str, Any] | None = None,
    reuse_values: bool = False,
    reset_values: bool = False,
    dry_run: bool = False,
    timeout: int = 0,
    wait: bool = False,
    atomic: bool = False,
    description: str = "",
    history_max: int = 0,
    details: bool = False,
    deadline: float | None = None,
) -> Call[pb.Release]:
    """Upgrade release `id` to new values and/or another version of `chart_name`.

    With neither `reuse_values` nor `reset_values` and no new values the previous values are
    kept; with new values they replace the old ones (Helm's rules). Never retried.
    """
    request = pb.UpgradeReleaseRequest(
        id=id,
        cluster=cluster,
        namespace=namespace,
        chart_name=chart_name,
        release_name=release_name,
        version=version,
        values=values,
        values_json=struct(values_json),
        reuse_values=reuse_values,
        reset_values=reset_values,
        dry_run=dry_run,
        timeout=timeout,
        wait=wait,
        atomic=atomic,
        description=description,
        history_max=history_max,
        details=details,
    )
    return Call(UPGRADE, request, deadline, operation_timeout=timeout)


def get_release_history(
    id: str,
    *,
    cluster: str = "",
    namespace: str = "",
    max: int = 0,
    deadline: float | None = None,
) -> Call[pb.GetReleaseHistoryResponse]:
    """The revisions of release `id`, oldest first (at most the latest `max` when set)."""
    request = pb.GetReleaseHistoryRequest(id=id, cluster=cluster, namespace=namespace, max=max)
    return Call(HISTORY, request, deadline)


def rollback_release(
    id: str,
    revision: int = 0,
    *,
    cluster: str = "",
    namespace: str = "",
    description: str = "",
    timeout: int = 0,
    wait: bool = False,
    history_max: int = 0,
    deadline: float | None = None,
) -> Call[pb.Release]:
    """Roll release `id` back to `revision` (the previous one when 0); makes a new revision."""
    request = pb.RollbackReleaseRequest(
        id=id,
        cluster=cluster,
        namespace=namespace,
        revision=revision,
        description=description,
        timeout=timeout,
        wait=wait,
        history_max=history_max,
    )
    return Call(ROLLBACK, request, deadline, operation_timeout=timeout)


def delete_release(
    id: str,
    *,
    cluster: str = "",
    namespace: str = "",
    timeout: int = 0,
    deadline: float | None = None,
) -> Call[pb.DeleteReleaseResponse]:
    """Uninstall release `id` and remove its history. Never retried."""
    request = pb.DeleteReleaseRequest(id=id, cluster=cluster, namespace=namespace, timeout=timeout)
    return Call(DELETE, request, deadline, operation_timeout=timeout)


def watch_release(
    id: str,
    *,
    cluster: str = "",
    namespace: str = "",
    timeout: int = 0,
    deadline: float | None = None,
) -> Call[pb.ReleaseEvent]:
    """Stream `ReleaseEvent`s of release `id` until it settles (or `timeout` seconds pass).

    Opening the stream is retried on UNAVAILABLE until the first event has arrived.
    """
    request = pb.WatchReleaseRequest(id=id, cluster=cluster, namespace=namespace, timeout=timeout)
    return Call(WATCH, request, deadline, operation_timeout=timeout)


def recover_release(
    id: str,
    action: RecoveryActionName | pb.RecoveryAction.ValueType,
    *,
    cluster: str = "",
    namespace: str = "",
    stuck_after_seconds: int = 0,
    deadline: float | None = None,
) -> Call[pb.Release]:
    """Recover release `id` stuck in `pending-*`: `"rollback"` or `"mark-failed"`."""
    request = pb.RecoverReleaseRequest(
        id=id,
        cluster=cluster,
        namespace=namespace,
        action=_recovery_action(action),
        stuck_after_seconds=stuck_after_seconds,
    )
    return Call(RECOVER, request, deadline)


def _recovery_action(
    action: RecoveryActionName | pb.RecoveryAction.ValueType,
) -> pb.RecoveryAction.ValueType:
    if not isinstance(action, str):
        return action
    try:
        return _RECOVERY_ACTIONS[action]
    except KeyError:
        choices = ", ".join(_RECOVERY_ACTIONS)
        raise ValueError(f"unknown recovery action {action!r}; choose one of {choices}") from None
