"""The memory driver: a test double with Helm's revision and status semantics, and no cluster.

It renders nothing (no manifest, no resources), but keeps releases exactly as Helm's storage
would: revisions from 1; `pending-install/upgrade/rollback` while an operation runs; the
previous deployed revision `superseded` after a successful upgrade or rollback; `failed` with
Helm's descriptions; `Rollback to N`; history pruned to `history_max`; uninstall removes the
history; dry runs change nothing. Everything is lost when the process ends.

Tests make operations slow or failing with a `hook` (see `OperationHook`), make a release
look stuck after a crash with `inject_stuck_revision`, and make a cluster unreachable by adding
its id to `unreachable` (every call on it then raises `Unavailable`, as the helm driver does).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    InflightWrites,
    InstallOptions,
    LiveObject,
    NamespaceInfo,
    ReadinessSnapshot,
    ReleaseRecord,
    ReleaseRef,
    RollbackOptions,
    Status,
    UpgradeOptions,
    describe_release,
    newest_first,
    refuse_pending,
    upgrade_base,
)
from capstan_server.errors import (
    AlreadyExists,
    CapstanError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    Unavailable,
)
from capstan_server.kubeconfig import parse_kubeconfig
from capstan_server.names import validate_release_name
from capstan_server.values import upgrade_config

__all__ = ["DEFAULT_NAMESPACES", "MemoryDriver", "Operation", "OperationHook"]

#: The namespaces every Kubernetes cluster starts with.
DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")

OperationName = Literal["install", "upgrade", "rollback", "uninstall"]
_Key = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class Operation:
    """An operation in progress, as a test hook sees it (the release is `pending-*` meanwhile)."""

    name: OperationName
    ref: ReleaseRef
    #: The chart being installed or upgraded to; None for rollback and uninstall.
    chart: ChartSource | None
    wait: bool
    timeout: float


#: Called while an operation runs. It may sleep (the release stays `pending-*`, so tests can
#: observe that) and may raise a CapstanError: the operation then fails as Helm's would
#: (e.g. `DeadlineExceeded` for a `--wait` that timed out).
OperationHook = Callable[[Operation], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _key(ref: ReleaseRef) -> _Key:
    return (ref.cluster.id, ref.namespace, ref.name)


def _with(record: ReleaseRecord, **changes: object) -> ReleaseRecord:
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


class MemoryDriver:
    """The `memory` driver (see the module docstring). Safe to call concurrently."""

    name = "memory"

    def __init__(self, *, hook: OperationHook | None = None) -> None:
        self.hook = hook
        self._started = _now()
        #: Revisions of each release, oldest first.
        self._releases: dict[_Key, builtins.list[ReleaseRecord]] = {}
        #: Namespaces made with create_namespace, per cluster id (the defaults always exist).
        self._created_namespaces: dict[str, dict[str, NamespaceInfo]] = {}
        #: Writes in flight in this server.
        self._inflight = InflightWrites()
        #: Set (and replaced) on every change, to wake up watchers.
        self._changed = asyncio.Event()
        #: Test hook: ids of clusters that cannot be reached; every call on one of them raises
        #: Unavailable (its releases are kept, and are back once the id is removed).
        self.unreachable: set[str] = set()

    # -- bookkeeping ----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _reach(self, cluster: ClusterTarget) -> None:
        """Unavailable when a test made the cluster unreachable (see `unreachable`)."""
        if cluster.id in self.unreachable:
            raise Unavailable(
                f"cluster {cluster.name} is unreachable: connection refused (memory driver)",
                details=[{"cluster": cluster.name}],
            )

    def _history_of(self, ref: ReleaseRef) -> builtins.list[ReleaseRecord]:
        history = self._releases.get(_key(ref))
        if not history:
            raise NotFound(
                f"{describe_release(ref)} not found",
                details=[{"resource": "release", "name": ref.name}],
            )
        return history

    def _replace(self, ref: ReleaseRef, record: ReleaseRecord) -> None:
        history = self._releases.get(_key(ref), [])
        for i, old in enumerate(history):
            if old.revision == record.revision:
                history[i] = record
        self._notify()

    async def _run_hook(self, operation: Operation) -> None:
        if self.hook is not None:
            await self.hook(operation)

    def _prune(self, ref: ReleaseRef, history_max: int) -> None:
        """Make room for one more revision under `history_max` (0: unlimited), dropping the
        oldest revisions but never the last deployed one (Helm's storage.removeLeastRecent)."""
        history = self._releases.get(_key(ref), [])
        keep = history_max - 1
        if history_max <= 0 or len(history) <= keep:
            return
        deployed = [r for r in history if r.status is Status.DEPLOYED]
        last_deployed = deployed[-1].revision if deployed else None
        doomed: set[int] = set()
        for record in history:
            if len(history) - len(doomed) == keep:
                break
            if record.revision != last_deployed:
                doomed.add(record.revision)
        history[:] = [r for r in history if r.revision not in doomed]

    # -- namespaces and clusters ----------------------------------------------------------------

    def _namespace_info(
        self, cluster: ClusterTarget, name: str, created: datetime
    ) -> NamespaceInfo:
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"capstan-memory:{cluster.id}/{name}"))
        return NamespaceInfo(name=name, uid=uid, phase="Active", created=created)

    def _has_namespace(self, cluster: ClusterTarget, name: str) -> bool:
        return name in DEFAULT_NAMESPACES or name in self._created_namespaces.get(cluster.id, {})

    async def namespaces(self, cluster: ClusterTarget, *, expect: Collection[str] = ()
                         ) -> builtins.list[NamespaceInfo]:
        self._reach(cluster)
        out = [self._namespace_info(cluster, n, self._started) for n in DEFAULT_NAMESPACES]
        out += self._created_namespaces.get(cluster.id, {}).values()
        return sorted(out, key=lambda n: n.name)

    async def namespaced(self, cluster: ClusterTarget, api_version: str, kind: str
                         ) -> bool | None:
        self._reach(cluster)
        return None  # it renders nothing, so no manifest ever names a kind

    async def check_cluster(self, cluster: ClusterTarget) -> None:
        self._reach(cluster)
        parse_kubeconfig(cluster.kubeconfig)

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, ref: ReleaseRef, revision: int = 0) -> ReleaseRecord:
        self._reach(ref.cluster)
        history = self._history_of(ref)
        if not revision:
            return history[-1]
        for record in history:
            if record.revision == revision:
                return record
        raise NotFound(
            f"revision {revision} of {describe_release(ref)} not found",
            details=[{"resource": "revision", "name": ref.name, "revision": revision}],
        )

    async def history(self, ref: ReleaseRef) -> builtins.list[ReleaseRecord]:
        self._reach(ref.cluster)
        return list(self._history_of(ref))

    async def list(
        self,
        cluster: ClusterTarget,
        namespace: str = "",
        *,
        name: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[ReleaseRecord]:
        self._reach(cluster)
        out = []
        for (cluster_id, ns, release), history in self._releases.items():
            if cluster_id != cluster.id or not history:
                continue
            if (namespace and ns != namespace) or (name and release != name):
                continue
            latest = history[-1]
            if labels and any(latest.labels.get(k) != v for k, v in labels.items()):
                continue
            out.append(latest)
        return newest_first(out)

    async def resources(
        self, record: ReleaseRecord, cluster: ClusterTarget
    ) -> builtins.list[LiveObject]:
        self._reach(cluster)
        return []  # nothing is rendered, so nothing exists in a cluster

    async def watch(
        self,
        ref: ReleaseRef,
        *,
        timeout: float,  # noqa: ASYNC109 (the Protocol's signature)
    ) -> AsyncIterator[ReadinessSnapshot]:
        self._reach(ref.cluster)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: tuple[int, Status] | None = None
        while True:
            history = self._releases.get(_key(ref))
            if not history:
                if last is None:
                    raise NotFound(f"{describe_release(ref)} not found")
                return  # uninstalled while being watched
            record = history[-1]
            settled = not (record.status.is_pending or record.status is Status.UNINSTALLING)
            if (record.revision, record.status) != last or settled:
                yield ReadinessSnapshot(record=record, workloads=[], settled=settled)
            last = (record.revision, record.status)
            remaining = deadline - loop.time()
            if settled or remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # -- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _record(
        ref: ReleaseRef,
        revision: int,
        status: Status,
        chart: ChartSource,
        config: Mapping[str, Any],
        labels: Mapping[str, str],
        first_deployed: datetime | None,
        description: str,
    ) -> ReleaseRecord:
        return ReleaseRecord(
            name=ref.name,
            namespace=ref.namespace,
            revision=revision,
            status=status,
            chart_name=chart.name,
            chart_version=chart.version,
            app_version=chart.app_version,
            description=description,
            config=copy.deepcopy(dict(config)),
            manifest="",
            notes="",
            first_deployed=first_deployed,
            last_deployed=_now(),
            labels=dict(labels),
        )

    async def _settle(
        self, ref: ReleaseRef, record: ReleaseRecord, op: Operation, what: str
    ) -> None:
        """Run the operation (the hook) while `record` is pending; if it fails, record the
        revision `failed` with Helm's description (`<what> "<name>" failed: ...`) and re-raise."""
        try:
            await self._run_hook(op)
        except (CapstanError, asyncio.CancelledError) as err:
            message = err.message if isinstance(err, CapstanError) else "interrupted"
            failed = f'{what} "{ref.name}" failed: {message}'
            self._replace(ref, _with(record, status=Status.FAILED, description=failed))
            raise

    async def install(self, opts: InstallOptions) -> ReleaseRecord:
        ref = opts.ref
        self._reach(ref.cluster)
        validate_release_name(ref.name)
        with self._inflight.hold(ref, "install"):
            existing = self._releases.get(_key(ref))
            if existing:
                refuse_pending(ref, existing[-1])
                raise AlreadyExists(
                    f"{describe_release(ref)} already exists: cannot re-use a name that is "
                    "still in use",
                    details=[{"name": ref.name}],
                )
            if not opts.create_namespace and not self._has_namespace(ref.cluster, ref.namespace):
                raise NotFound(
                    f"namespace {ref.namespace!r} not found in cluster {ref.cluster.name!r}",
                    details=[{"resource": "namespace", "name": ref.namespace}],
                )
            record = self._record(
                ref, 1, Status.PENDING_INSTALL, opts.chart, opts.values, opts.labels,
                _now(), "Initial install underway",
            )  # fmt: skip
            if opts.dry_run:
                return _with(record, description=opts.description or "Dry run complete")
            if not self._has_namespace(ref.cluster, ref.namespace):
                created = self._created_namespaces.setdefault(ref.cluster.id, {})
                created[ref.namespace] = self._namespace_info(ref.cluster, ref.namespace, _now())
            self._releases[_key(ref)] = [record]
            self._notify()
            op = Operation("install", ref, opts.chart, opts.wait or opts.atomic, opts.timeout)
            try:
                await self._settle(ref, record, op, "Release")
            except CapstanError as err:
                if not opts.atomic:
                    raise
                del self._releases[_key(ref)]  # --atomic uninstalls a failed install
                self._notify()
                raise OperationFailed(
                    f"install failed and was rolled back: release {ref.name} failed, and has "
                    f"been uninstalled due to atomic being set: {err.message}",
                    details=[{"operation": "install", "error": err.message}],
                ) from err
            done = _with(record, status=Status.DEPLOYED, last_deployed=_now(),
                         description=opts.description or "Install complete")  # fmt: skip
            self._replace(ref, done)
            return done

    async def upgrade(self, opts: UpgradeOptions) -> ReleaseRecord:
        ref = opts.ref
        self._reach(ref.cluster)
        with self._inflight.hold(ref, "upgrade"):
            history = self._history_of(ref)
            last = history[-1]
            refuse_pending(ref, last)
            current = upgrade_base(history)
            if current is None:
                raise FailedPrecondition(
                    f"{describe_release(ref)} has no deployed revision to upgrade"
                )
            config = upgrade_config(
                current.config, opts.values, reuse=opts.reuse_values, reset=opts.reset_values
            )
            # Helm merges the new labels over the latest revision's; "null" deletes one.
            merged = {k: v for k, v in {**last.labels, **opts.labels}.items() if v != "null"}
            record = self._record(
                ref, last.revision + 1, Status.PENDING_UPGRADE, opts.chart, config, merged,
                current.first_deployed, "Preparing upgrade",
            )  # fmt: skip
            if opts.dry_run:
                return _with(record, description=opts.description or "Dry run complete")
            self._prune(ref, opts.history_max)
            history.append(record)
            self._notify()
            op = Operation("upgrade", ref, opts.chart, opts.wait or opts.atomic, opts.timeout)
            try:
                await self._settle(ref, record, op, "Upgrade")
            except CapstanError as err:
                if not opts.atomic:
                    raise
                self._roll_back_after_failure(ref, opts.history_max, err.message)
                raise OperationFailed(
                    f"upgrade failed and was rolled back: release {ref.name} failed, and has "
                    f"been rolled back due to atomic being set: {err.message}",
                    details=[{"operation": "upgrade", "error": err.message}],
                ) from err
            # Helm supersedes the revision the upgrade started from, whatever its status.
            self._replace(ref, _with(current, status=Status.SUPERSEDED))
            done = _with(record, status=Status.DEPLOYED,
                         description=opts.description or "Upgrade complete")  # fmt: skip
            self._replace(ref, done)
            return done

    def _roll_back_after_failure(self, ref: ReleaseRef, history_max: int, error: str) -> None:
        """What `--atomic` does after a failed upgrade: roll back to the last successful
        revision (deployed or superseded), if there is one."""
        history = self._history_of(ref)
        good = [r for r in history if r.status in (Status.DEPLOYED, Status.SUPERSEDED)]
        if not good:
            raise OperationFailed(
                "an error occurred while rolling back the release: unable to find a previously "
                f"successful release. original upgrade error: {error}"
            )
        record = self._rollback_record(history[-1], good[-1])
        self._prune(ref, history_max)
        history.append(record)
        self._finish_rollback(ref, history, record, "")

    @staticmethod
    def _rollback_record(current: ReleaseRecord, target: ReleaseRecord) -> ReleaseRecord:
        """A new revision with the chart, config and labels of `target` (Helm's rollback)."""
        return _with(
            target,
            revision=current.revision + 1,
            status=Status.PENDING_ROLLBACK,
            description=f"Rollback to {target.revision}",
            config=copy.deepcopy(dict(target.config)),
            first_deployed=current.first_deployed,
            last_deployed=_now(),
        )

    def _finish_rollback(
        self,
        ref: ReleaseRef,
        history: builtins.list[ReleaseRecord],
        record: ReleaseRecord,
        description: str,
    ) -> ReleaseRecord:
        # Helm supersedes every deployed revision (helm/helm#2941), then deploys the new one.
        for i, old in enumerate(history):
            if old.status is Status.DEPLOYED:
                history[i] = _with(old, status=Status.SUPERSEDED)
        done = _with(record, status=Status.DEPLOYED, description=description or record.description)
        self._replace(ref, done)
        return done

    async def rollback(self, opts: RollbackOptions) -> ReleaseRecord:
        ref = opts.ref
        self._reach(ref.cluster)
        if opts.revision < 0:
            raise InvalidArgument(f"invalid revision {opts.revision}: 0 (the previous) or more")
        with self._inflight.hold(ref, "rollback"):
            history = self._history_of(ref)
            current = history[-1]
            refuse_pending(ref, current)
            wanted = opts.revision or current.revision - 1
            target = next((r for r in history if r.revision == wanted), None)
            if target is None:
                raise NotFound(
                    f"revision {wanted} of {describe_release(ref)} not found: release has no "
                    f"{wanted} version",
                    details=[{"resource": "revision", "name": ref.name, "revision": wanted}],
                )
            record = self._rollback_record(current, target)
            self._prune(ref, opts.history_max)
            history.append(record)
            self._notify()
            op = Operation("rollback", ref, None, opts.wait, opts.timeout)
            await self._settle(ref, record, op, "Rollback")
            return self._finish_rollback(ref, history, record, opts.description)

    async def uninstall(
        self,
        ref: ReleaseRef,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 (helm's --timeout)
    ) -> ReleaseRecord:
        self._reach(ref.cluster)
        with self._inflight.hold(ref, "uninstall"):
            history = self._history_of(ref)
            last = history[-1]
            refuse_pending(ref, last)
            self._replace(
                ref,
                _with(
                    last,
                    status=Status.UNINSTALLING,
                    description="Deletion in progress (or silently failed)",
                ),
            )
            try:
                await self._run_hook(Operation("uninstall", ref, None, False, timeout))
            except (CapstanError, asyncio.CancelledError):
                self._replace(ref, last)  # nothing was deleted: the release is as it was
                raise
            del self._releases[_key(ref)]
            self._notify()
            return last

    async def mark_failed(self, ref: ReleaseRef, description: str) -> ReleaseRecord:
        self._reach(ref.cluster)
        with self._inflight.hold(ref, "mark-failed"):
            last = self._history_of(ref)[-1]
            if not last.status.is_pending:
                raise FailedPrecondition(
                    f"{describe_release(ref)} is {last.status.value}, not pending"
                )
            failed = _with(last, status=Status.FAILED, description=description)
            self._replace(ref, failed)
            return failed

    async def close(self) -> None:
        self._notify()

    # -- test support ---------------------------------------------------------------------------

    def inject_stuck_revision(
        self,
        ref: ReleaseRef,
        *,
        status: Status = Status.PENDING_UPGRADE,
        since: datetime | None = None,
    ) -> ReleaseRecord:
        """Leave a release as a server killed mid-operation would: a new latest revision in
        `status` (a `pending-*` one) since `since`, with no operation actually running."""
        if not status.is_pending:
            raise ValueError(f"{status} is not a pending status")
        history = self._history_of(ref)
        last = history[-1]
        record = _with(
            last,
            revision=last.revision + 1,
            status=status,
            description=f"{status.value.removeprefix('pending-')} in progress",
            last_deployed=since or _now(),
        )
        history.append(record)
        self._notify()
        return record
