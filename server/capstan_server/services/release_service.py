"""ReleaseService: the Helm release lifecycle over gRPC.

Each call validates its input, resolves what it names (cluster, namespace, chart, values,
release address) and only then calls the driver, so that a bad request changes nothing.
Writes to one release are guarded in this server (`ReleaseLocks`): a second concurrent write
is ABORTED at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc.aio

from capstan.v1 import release_pb2, release_pb2_grpc
from capstan_server import values as helm_values
from capstan_server.auth.access import Action, current_access
from capstan_server.auth.tenancy import Tenancy, tenancy_of
from capstan_server.charts.catalog import Catalog, ResolvedChart, parse_chart_reference
from capstan_server.drivers.base import (
    LABEL_CHART_DIGEST,
    LABEL_RELEASE_ID,
    LABEL_REPO_ID,
    LABEL_TYPE,
    Driver,
    InstallOptions,
    ReleaseRecord,
    ReleaseRef,
    RollbackOptions,
    Status,
    UpgradeOptions,
    chart_digest_label,
    upgrade_base,
)
from capstan_server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from capstan_server.names import generate_release_name, validate_namespace, validate_release_name
from capstan_server.registry import ClusterRow
from capstan_server.registry_store import RegistryStore
from capstan_server.services import admission
from capstan_server.services import messages as msg
from capstan_server.services.addressing import (
    LocatedRelease,
    ReleaseLocks,
    Resolver,
    is_uuid,
    target,
    unreachable_error,
)
from capstan_server.services.admission import rendered_and_admitted
from capstan_server.services.release_list import ReleaseRows, filters_of
from capstan_server.values_schema import check_references, validate_schema_async

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_STUCK_AFTER = 300
_GENERATE_ATTEMPTS = 5
#: How often WatchRelease looks at a queued write's position.
_QUEUE_POLL = 0.2
#: Values larger than this are parsed on a worker thread, so that the event loop keeps
#: answering other calls meanwhile (the limits module bounds how long it can take).
_THREAD_VALUES_BYTES = 64 * 1024


async def _user_values(text: str, request: Any) -> dict[str, Any]:
    def parse() -> dict[str, Any]:
        json_values = (
            msg.struct_to_dict(request.values_json) if request.HasField("values_json") else None
        )
        return helm_values.user_values(text, json_values)

    if len(text) + request.values_json.ByteSize() > _THREAD_VALUES_BYTES:
        return await asyncio.to_thread(parse)
    return parse()


async def _check_schema(resolved: ResolvedChart, config: dict[str, Any]) -> None:
    """Validate the values helm would render with against the chart's values.schema.json."""
    coalesced = helm_values.coalesce(resolved.files.values, config)
    label = f"{resolved.entry.name}-{resolved.entry.version}"
    # helm checks subcharts' schemas too, following their refs: refuse those that leave them.
    for path, schema in resolved.files.subchart_schemas:
        check_references(schema, f"{label} ({path})")
    await validate_schema_async(coalesced, resolved.files.schema, chart=label)


class ReleaseServicer(release_pb2_grpc.ReleaseServiceServicer):
    """See release.proto for the contract of each call."""

    def __init__(
        self, registry: RegistryStore, catalog: Catalog, driver: Driver, resolver: Resolver
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.driver = driver
        self.resolver = resolver
        self.locks = ReleaseLocks()
        #: ListReleases' filtered lists and rows (release_list.py).
        self._list = ReleaseRows()

    # -- helpers --------------------------------------------------------------------------------

    async def _message(
        self,
        cluster: ClusterRow,
        record: ReleaseRecord,
        *,
        details: bool = False,
        resources: bool = False,
        dry_run: bool = False,
        namespace_uids: dict[str, str] | None = None,
        objects: bool = False,
    ) -> release_pb2.Release:
        """The Release message of a record; live resources with `resources` or `details`
        (never for a dry run: nothing was created). Pass `namespace_uids` when building many
        messages for one cluster, to read its namespaces once."""
        live = None
        if (resources or details) and not record.complete:
            # A summary from the driver's list cache: show and details need the whole record.
            record = await self.driver.get(
                ReleaseRef(target(cluster, record.namespace), record.namespace, record.name),
                record.revision,
            )
        if (resources or details) and not dry_run:
            live = await self.driver.resources(record, target(cluster, record.namespace))
        if namespace_uids is None:
            namespace_uids = await self.resolver.namespace_uids(cluster, (record.namespace,))
        return msg.release_message(
            record,
            cluster,
            namespace_uid=namespace_uids.get(record.namespace, ""),
            resources=live,
            details=details,
            dry_run=dry_run,
            objects=objects,
        )

    async def _admit_rollback(self, found: LocatedRelease, revision: int) -> None:
        """A rollback re-applies an old revision's manifest: for a project, that manifest must
        pass its manifest policy as it stands now (a revision 0 is the previous one; one that
        does not exist is left to the driver's NotFound)."""
        tenancy = tenancy_of(current_access(), found.cluster.name, found.record.namespace)
        wanted = revision or found.record.revision - 1
        if tenancy is None or wanted < 1:
            return
        try:
            old = await self.driver.get(found.ref, wanted)
        except NotFound:
            return
        await admission.admit(self.driver, found.ref.cluster, old, tenancy, what="rollback")

    async def _list_namespace_uids(
        self, cluster: ClusterRow, namespaces: set[str]
    ) -> dict[str, str]:
        """Namespace UIDs for a list page (whose rows of `cluster` are in `namespaces`),
        bounded by the driver's read timeout: a cluster that hangs right after its cache
        answered must not hold the list (its rows then have no `namespace_id`; the next list
        reports the cluster stale)."""
        bound = getattr(self.driver, "read_timeout", None)
        try:
            async with asyncio.timeout(bound):
                return await self.resolver.namespace_uids(cluster, namespaces)
        except (TimeoutError, Unavailable):
            return {}

    def _queue_position(self, ref: ReleaseRef) -> int:
        """Where a write to `ref` waits for a helm process (drivers that queue writes expose
        `queue_position`; the others never queue)."""
        position = getattr(self.driver, "queue_position", None)
        return int(position(ref)) if position is not None else 0

    async def _while_queued(
        self, ref: ReleaseRef, release: release_pb2.Release, deadline: float
    ) -> AsyncIterator[release_pb2.ReleaseEvent]:
        """`queued` events while a write to `ref` waits, one per change of its position."""
        loop = asyncio.get_running_loop()
        last = 0
        while (position := self._queue_position(ref)) and loop.time() < deadline:
            if position != last:
                yield release_pb2.ReleaseEvent(
                    release=release, queued=True, queue_position=position
                )
                last = position
            await asyncio.sleep(_QUEUE_POLL)

    async def _generated_name(self, cluster: ClusterRow, namespace: str, chart: str) -> str:
        for attempt in range(_GENERATE_ATTEMPTS):
            name = generate_release_name(chart, attempt=attempt)
            if not await self.driver.list(target(cluster), namespace, name=name):
                return name
        raise AlreadyExists(f"could not generate a free release name for chart {chart!r}")

    # -- calls ----------------------------------------------------------------------------------

    async def CreateRelease(
        self, request: release_pb2.CreateReleaseRequest, context: Context
    ) -> release_pb2.Release:
        parse_chart_reference(request.chart_name)
        namespace = validate_namespace(request.namespace or "default")
        if request.release_name:
            validate_release_name(request.release_name)
        kind = msg.release_type(request.type)
        timeout = msg.timeout_seconds(request.timeout)
        user = await _user_values(request.values, request)
        cluster = await self.resolver.cluster(request.cluster)
        # Before anything else is looked up or run: a write outside the caller's projects.
        current_access().require(Action.WRITE, cluster.name, namespace)
        resolved = await self.catalog.resolve(request.chart_name, request.version)
        tenancy = tenancy_of(current_access(), cluster.name, namespace)
        create_namespace = await self._may_create_namespace(request, cluster, namespace, tenancy)
        # Without create_namespace the namespace must exist, and the UIDs read to check it
        # serve the answer; otherwise helm may create it, so they are read afterwards.
        uids = (
            None
            if create_namespace
            else await self.resolver.require_namespace(cluster, namespace)
        )
        name = request.release_name or await self._generated_name(
            cluster, namespace, resolved.entry.name
        )
        await _check_schema(resolved, user)
        labels = {
            LABEL_RELEASE_ID: str(uuid.uuid4()),
            LABEL_REPO_ID: resolved.repo.id,
            LABEL_TYPE: kind,
            LABEL_CHART_DIGEST: chart_digest_label(resolved.source.archive),
        }
        with self.locks.hold(cluster.id, namespace, name, "install"):
            record = await rendered_and_admitted(
                self.driver, self.driver.install,
                InstallOptions(
                    ref=ReleaseRef(target(cluster, namespace), namespace, name),
                    chart=resolved.source,
                    values=user,
                    labels=labels,
                    dry_run=request.dry_run,
                    wait=request.wait or request.atomic,
                    atomic=request.atomic,
                    timeout=timeout,
                    description=request.description,
                    create_namespace=create_namespace,
                ),
                tenancy, what="install",
            )
        return await self._message(
            cluster, record, details=request.details, dry_run=request.dry_run, namespace_uids=uids
        )

    async def _may_create_namespace(
        self, request: release_pb2.CreateReleaseRequest, cluster: ClusterRow, namespace: str,
        tenancy: Tenancy | None,
    ) -> bool:
        """Whether helm is to create the namespace. A project's own Kubernetes identity may not
        create Namespaces (they are cluster-scoped; an admin makes a project's namespaces and
        RoleBindings, docs/tenancy.md): for it, a namespace that exists needs no creating, and
        one that does not is refused here rather than by a 403 from the cluster mid-install."""
        if not request.create_namespace or tenancy is None or tenancy.identity is None:
            return request.create_namespace
        if namespace in await self.resolver.namespace_uids(cluster):
            return False
        raise PermissionDenied(
            f"namespace {namespace!r} does not exist in cluster {cluster.name!r}, and project "
            f"{tenancy.project!r} may not create namespaces: ask an administrator to create it "
            "(and its RoleBinding for the project)",
            details=[{"resource": "namespace", "name": namespace, "cluster": cluster.name,
                      "project": tenancy.project}],
        )

    async def ListReleases(
        self, request: release_pb2.ListReleasesRequest, context: Context
    ) -> release_pb2.ListReleasesResponse:
        limit, offset = msg.page(request.limit, request.offset)
        if request.namespace:
            validate_namespace(request.namespace)
        filters = filters_of(request)
        clusters = await self.resolver.clusters(request.cluster)
        # An unreachable cluster hides none of the others: its releases are left out and it is
        # named in the answer, unless no cluster in scope answered at all (with a `cluster`
        # filter, that one).
        found, down = await self.resolver.reachable_releases(
            clusters, request.namespace, name=request.name, include_stale=True
        )
        if down and len(down) == len(clusters) and not any(d.stale for d in down):
            raise unreachable_error(down)
        # Filtered and sorted once per state of the caches: a page then costs its own rows
        # only, however many releases there are.
        rows = self._list.rows(found, filters)
        shown = rows[offset : offset + limit]
        # Rows of a cluster answered from its last state get nothing live from it (namespace
        # ids, resources): asking would wait on the cluster that just failed to answer.
        stale = {d.cluster.id for d in down}
        in_use: dict[str, tuple[ClusterRow, set[str]]] = {}
        for r in shown:
            if r.cluster.id not in stale:
                in_use.setdefault(r.cluster.id, (r.cluster, set()))[1].add(r.record.namespace)
        uid_maps = await asyncio.gather(*(
            self._list_namespace_uids(c, namespaces) for c, namespaces in in_use.values()))
        uids = dict(zip(in_use, uid_maps, strict=True))
        if request.details:
            response = release_pb2.ListReleasesResponse(releases=await asyncio.gather(
                *(
                    self._message(
                        r.cluster,
                        r.record,
                        details=r.cluster.id not in stale,
                        namespace_uids=uids.get(r.cluster.id, {}),
                    )
                    for r in shown
                )
            ))
        else:
            response = self._list.page(shown, uids)
        response.total, response.limit, response.offset = len(rows), limit, offset
        response.unreachable_clusters.extend(msg.unreachable_message(d) for d in down)
        return response

    async def GetRelease(
        self, request: release_pb2.GetReleaseRequest, context: Context
    ) -> release_pb2.Release:
        found = await self.resolver.release(request.id, request.cluster, request.namespace)
        return await self._message(
            found.cluster, found.record, resources=True, objects=request.objects
        )

    async def _locate_for_upgrade(
        self, request: release_pb2.UpgradeReleaseRequest
    ) -> LocatedRelease:
        address = request.id or request.release_name
        if request.release_name:
            validate_release_name(request.release_name)
            if request.id and not is_uuid(request.id) and request.id != request.release_name:
                raise InvalidArgument(
                    f"release_name {request.release_name!r} does not match the release "
                    f"{request.id!r} being upgraded"
                )
        found = await self.resolver.release_for_write(address, request.cluster, request.namespace)
        if request.release_name and found.record.name != request.release_name:
            raise InvalidArgument(
                f"release_name {request.release_name!r} does not match release {request.id!r}, "
                f"which is named {found.record.name!r}"
            )
        return found

    async def _upgrade_chart(
        self, request: release_pb2.UpgradeReleaseRequest, current: ReleaseRecord
    ) -> ResolvedChart:
        if request.chart_name:
            return await self.catalog.resolve(request.chart_name, request.version)
        repo_id = current.labels.get(LABEL_REPO_ID)
        if not repo_id:
            raise InvalidArgument(
                f"release {current.name!r} was not installed from a registered repository: "
                "give chart_name (<repo>/<chart>)"
            )
        repo = await self.registry.find_repo(repo_id)
        if repo is None:
            raise FailedPrecondition(
                f"the repository release {current.name!r} was installed from is no longer "
                "registered: give chart_name (<repo>/<chart>)"
            )
        return await self.catalog.resolve_in(repo, current.chart_name, request.version)

    async def UpgradeRelease(
        self, request: release_pb2.UpgradeReleaseRequest, context: Context
    ) -> release_pb2.Release:
        if request.chart_name:
            parse_chart_reference(request.chart_name)
        timeout = msg.timeout_seconds(request.timeout)
        keep = msg.history_max(request.history_max)
        user = await _user_values(request.values, request)
        found = await self._locate_for_upgrade(request)
        ref = found.ref
        with self.locks.hold(found.cluster.id, ref.namespace, ref.name, "upgrade"):
            # The located record is the latest revision; when it is deployed it is also the
            # one the upgrade starts from, and the older revisions need not be read.
            if found.record.status is not Status.DEPLOYED:
                history = await self.driver.history(ref)
            elif found.record.complete:
                history = [found.record]
            else:  # a summary from the driver's list cache has no values: read the whole record
                history = [await self.driver.get(ref, found.record.revision)]
            current = history[-1]
            resolved = await self._upgrade_chart(request, current)
            base = upgrade_base(history)
            config = helm_values.upgrade_config(
                base.config if base else {},
                user,
                reuse=request.reuse_values,
                reset=request.reset_values,
            )
            await _check_schema(resolved, config)
            labels = {
                LABEL_RELEASE_ID: found.id,
                LABEL_REPO_ID: resolved.repo.id,
                LABEL_TYPE: msg.release_type_of(current),
                LABEL_CHART_DIGEST: chart_digest_label(resolved.source.archive),
            }
            record = await rendered_and_admitted(
                self.driver, self.driver.upgrade,
                UpgradeOptions(
                    ref=ref,
                    chart=resolved.source,
                    values=user,
                    labels=labels,
                    reuse_values=request.reuse_values,
                    reset_values=request.reset_values,
                    dry_run=request.dry_run,
                    wait=request.wait or request.atomic,
                    atomic=request.atomic,
                    timeout=timeout,
                    description=request.description,
                    history_max=keep,
                ),
                tenancy_of(current_access(), found.cluster.name, ref.namespace),
                what="upgrade",
            )
        return await self._message(
            found.cluster, record, details=request.details, dry_run=request.dry_run
        )

    async def GetReleaseHistory(
        self, request: release_pb2.GetReleaseHistoryRequest, context: Context
    ) -> release_pb2.GetReleaseHistoryResponse:
        if request.max < 0:
            raise InvalidArgument(f"max must not be negative, got {request.max}")
        found = await self.resolver.release(request.id, request.cluster, request.namespace)
        history = await self.driver.history(found.ref)
        if request.max:
            history = history[-request.max :]
        return release_pb2.GetReleaseHistoryResponse(
            revisions=[msg.revision_message(r) for r in history]
        )

    async def RollbackRelease(
        self, request: release_pb2.RollbackReleaseRequest, context: Context
    ) -> release_pb2.Release:
        if request.revision < 0:
            raise InvalidArgument(f"revision must not be negative, got {request.revision}")
        timeout = msg.timeout_seconds(request.timeout)
        keep = msg.history_max(request.history_max)
        found = await self.resolver.release_for_write(
            request.id, request.cluster, request.namespace
        )
        ref = found.ref
        with self.locks.hold(found.cluster.id, ref.namespace, ref.name, "rollback"):
            await self._admit_rollback(found, request.revision)
            record = await self.driver.rollback(
                RollbackOptions(
                    ref=ref,
                    revision=request.revision,
                    description=request.description,
                    wait=request.wait,
                    timeout=timeout,
                    history_max=keep,
                )
            )
        return await self._message(found.cluster, record)

    async def DeleteRelease(
        self, request: release_pb2.DeleteReleaseRequest, context: Context
    ) -> release_pb2.DeleteReleaseResponse:
        timeout = msg.timeout_seconds(request.timeout)
        found = await self.resolver.release_for_write(
            request.id, request.cluster, request.namespace
        )
        ref = found.ref
        uids = await self.resolver.namespace_uids(found.cluster, (ref.namespace,))
        with self.locks.hold(found.cluster.id, ref.namespace, ref.name, "uninstall"):
            record = await self.driver.uninstall(ref, timeout=timeout)
        release = msg.release_message(
            record, found.cluster, namespace_uid=uids.get(record.namespace, "")
        )
        return release_pb2.DeleteReleaseResponse(release=release)

    async def WatchRelease(
        self, request: release_pb2.WatchReleaseRequest, context: Context
    ) -> AsyncIterator[release_pb2.ReleaseEvent]:
        timeout = msg.timeout_seconds(request.timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            found = await self.resolver.release(request.id, request.cluster, request.namespace)
        except NotFound:
            # A create still waiting for a helm process has no release yet: report its place
            # in the queue, then watch the release it makes.
            cluster = await self.resolver.cluster(request.cluster)
            ref = ReleaseRef(target(cluster), request.namespace or "default", request.id)
            if not self._queue_position(ref):
                raise
            queued = release_pb2.Release(
                name=ref.name, cluster=cluster.name, cluster_id=cluster.id, namespace=ref.namespace
            )
            async for event in self._while_queued(ref, queued, deadline):
                yield event
            found = await self.resolver.release(request.id, request.cluster, request.namespace)
        else:
            # As a list row shows it (the located record may be a cache summary, without
            # values): the events after the wait carry whole records.
            before = msg.release_message(found.record, found.cluster)
            before.ClearField("config")
            async for event in self._while_queued(found.ref, before, deadline):
                yield event
        timeout = max(1.0, deadline - asyncio.get_running_loop().time())
        uids = await self.resolver.namespace_uids(found.cluster, (found.record.namespace,))
        async for snapshot in self.driver.watch(found.ref, timeout=timeout):
            workloads = snapshot.workloads
            ready = sum(1 for _, _, ok, _ in workloads if ok)
            pending = snapshot.record.status.is_pending
            progress = (
                100 if snapshot.settled else (ready * 100 // len(workloads) if workloads else 0)
            )
            release = msg.release_message(
                snapshot.record,
                found.cluster,
                namespace_uid=uids.get(snapshot.record.namespace, ""),
                progress=progress if pending else 0,
            )
            yield release_pb2.ReleaseEvent(
                release=release,
                resources=[
                    release_pb2.ResourceReadiness(kind=k, name=n, ready=ok, message=m)
                    for k, n, ok, m in workloads
                ],
                settled=snapshot.settled,
            )

    async def RecoverRelease(
        self, request: release_pb2.RecoverReleaseRequest, context: Context
    ) -> release_pb2.Release:
        action = request.action
        if action == release_pb2.RECOVERY_ACTION_UNSPECIFIED:
            raise InvalidArgument(
                "action is required: RECOVERY_ACTION_ROLLBACK or RECOVERY_ACTION_MARK_FAILED"
            )
        if request.stuck_after_seconds < 0:
            raise InvalidArgument("stuck_after_seconds must not be negative")
        stuck_after = request.stuck_after_seconds or DEFAULT_STUCK_AFTER
        found = await self.resolver.release_for_write(
            request.id, request.cluster, request.namespace
        )
        ref = found.ref
        with self.locks.hold(found.cluster.id, ref.namespace, ref.name, "recover"):
            history = await self.driver.history(ref)
            stuck = history[-1]
            if not stuck.status.is_pending:
                raise FailedPrecondition(
                    f"release {ref.name!r} is {stuck.status.value}, not pending: nothing to recover"
                )
            since = stuck.last_deployed or stuck.first_deployed
            age = (datetime.now(UTC) - since).total_seconds() if since else float("inf")
            stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else "an unknown time"
            if age < stuck_after:
                raise FailedPrecondition(
                    f"release {ref.name!r} has been {stuck.status.value} for {int(age)}s "
                    f"(since {stamp}); it counts as stuck after {stuck_after}s, as its "
                    "operation may still be running"
                )
            good = [r for r in history[:-1] if r.status in (Status.DEPLOYED, Status.SUPERSEDED)]
            rollback = action == release_pb2.RECOVERY_ACTION_ROLLBACK
            if rollback and not good:
                raise FailedPrecondition(
                    f"release {ref.name!r} has no deployed revision to roll back to; recover it "
                    "with RECOVERY_ACTION_MARK_FAILED (or delete it)"
                )
            if rollback:
                await self._admit_rollback(found, good[-1].revision)
            # Helm refuses to roll back a pending release, so a rollback starts by failing it.
            record = await self.driver.mark_failed(
                ref,
                f"Marked failed by Capstan: {stuck.status.value} since {stamp}, stuck for more "
                f"than {stuck_after}s",
            )
            if rollback:
                record = await self.driver.rollback(
                    RollbackOptions(ref=ref, revision=good[-1].revision)
                )
        return await self._message(found.cluster, record)
