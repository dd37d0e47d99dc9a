"""The driver interface: what the release services need from a Helm implementation.

A driver performs release operations on one cluster at a time; the services above it resolve
names, clusters, repositories, chart versions and values before calling it, so a driver never
sees a user's raw input. Drivers raise `capstan_server.errors.CapstanError` subclasses:
`NotFound` for an unknown release or revision, `AlreadyExists` for a taken name, `Aborted` when
the release has an operation in flight, `Unavailable` when the cluster cannot be reached,
`DeadlineExceeded` on timeout, `OperationFailed` when Helm itself failed.

Two drivers exist: `memory` (a test double with Helm's revision and status semantics) and `helm`
(the official helm binary for writes, Helm's release records read directly for reads). Both must
pass the contract suite in tests/drivers/.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from capstan_server.errors import Aborted, InvalidArgument, Unavailable

#: Helm release labels Capstan adds to every release it installs, so that identity survives
#: restarts and is shared by replicas (Helm stores them on its release record).
LABEL_RELEASE_ID = "capstan.io/release-id"
LABEL_REPO_ID = "capstan.io/repo-id"
LABEL_TYPE = "capstan.io/type"
#: The sha256 of the chart archive installed (the OCI chart layer's digest; the index digest
#: of an HTTP repository's chart), in hex. A label value holds at most 63 characters, so the
#: last of the 64 hex digits is left out: still unique, compare by prefix.
LABEL_CHART_DIGEST = "capstan.io/chart-digest"


def chart_digest_label(archive: Path) -> str:
    """The LABEL_CHART_DIGEST value of a cached archive (`<sha256>.tgz`)."""
    return archive.stem[:63]


def kind_key(kind: str) -> str:
    """The key a kind is grouped under in `Release.resources` (and workload snapshots), as the
    seed document shows it: `k8s_service` for Services, else the lower-case kind."""
    return "k8s_service" if kind == "Service" else kind.lower()


class Status(enum.StrEnum):
    """Helm's release statuses, spelled as Helm spells them."""

    UNKNOWN = "unknown"
    DEPLOYED = "deployed"
    UNINSTALLED = "uninstalled"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    UNINSTALLING = "uninstalling"
    PENDING_INSTALL = "pending-install"
    PENDING_UPGRADE = "pending-upgrade"
    PENDING_ROLLBACK = "pending-rollback"

    @property
    def is_pending(self) -> bool:
        return self in (Status.PENDING_INSTALL, Status.PENDING_UPGRADE, Status.PENDING_ROLLBACK)


@dataclass(frozen=True)
class KubeIdentity:
    """A Kubernetes identity to impersonate on a cluster (``Impersonate-User`` / ``-Group``).

    The stored kubeconfig's user must be allowed the ``impersonate`` verb on these users and
    groups; the cluster's RBAC then decides what the impersonated identity may do.
    """

    user: str
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # They travel as helm flags (`--kube-as-user=...`) and HTTP header values.
        for value in (self.user, *self.groups):
            if not value or len(value) > 253 or not value.isprintable() or value != value.strip():
                raise InvalidArgument(f"invalid Kubernetes user or group {value!r} to act as")


@dataclass(frozen=True)
class ClusterTarget:
    """A registered cluster, as a driver needs it."""

    id: str
    name: str
    #: kubeconfig YAML text; its current context is used.
    kubeconfig: str
    #: Act as this identity (helm ``--kube-as-user/--kube-as-group``, ``Impersonate-*`` on
    #: the driver's own reads); None: as the kubeconfig's own user.
    act_as: KubeIdentity | None = None


@dataclass(frozen=True)
class ChartSource:
    """A resolved chart version from a registered repository.

    `archive` is the downloaded, digest-checked `.tgz` in the server's cache; drivers install
    from it and never from anywhere a user names.
    """

    repo_id: str
    repo_name: str
    repo_url: str
    name: str
    version: str
    app_version: str
    archive: Path
    #: Default values of the chart (values.yaml), for drivers that compute values themselves.
    default_values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseRef:
    """Where a release lives."""

    cluster: ClusterTarget
    namespace: str
    name: str


@dataclass(frozen=True)
class InstallOptions:
    """`helm install` of `chart` as release `ref`."""

    ref: ReleaseRef
    chart: ChartSource
    #: User-supplied values, already merged (files in order, then values_json).
    values: Mapping[str, Any]
    #: Labels stored with the release record (LABEL_* above).
    labels: Mapping[str, str]
    dry_run: bool = False
    wait: bool = False
    #: Roll back (uninstall) on failure: helm 3 `--atomic`, helm 4 `--rollback-on-failure`.
    atomic: bool = False
    timeout: float = 300.0
    description: str = ""
    create_namespace: bool = False


@dataclass(frozen=True)
class UpgradeOptions:
    """`helm upgrade` of release `ref` to `chart` with Helm's values semantics.

    With `reset_values`, the chart's defaults plus `values`; else with `reuse_values`, the
    previous config with `values` merged over it; else `values` if any were given, else the
    previous config (see capstan_server.values.upgrade_config).
    """

    ref: ReleaseRef
    chart: ChartSource
    values: Mapping[str, Any]
    labels: Mapping[str, str]
    reuse_values: bool = False
    reset_values: bool = False
    dry_run: bool = False
    wait: bool = False
    atomic: bool = False
    timeout: float = 300.0
    description: str = ""
    history_max: int = 10


@dataclass(frozen=True)
class RollbackOptions:
    """`helm rollback` of release `ref` to `revision` (0: the previous revision)."""

    ref: ReleaseRef
    revision: int
    description: str = ""
    wait: bool = False
    timeout: float = 300.0
    history_max: int = 10


@dataclass(frozen=True)
class ReleaseRecord:
    """One revision of a release, as Helm records it."""

    name: str
    namespace: str
    revision: int
    status: Status
    chart_name: str
    chart_version: str
    app_version: str
    description: str
    #: The values the user supplied for this revision (Helm's `config`).
    config: Mapping[str, Any]
    manifest: str
    notes: str
    first_deployed: datetime | None
    last_deployed: datetime | None
    #: Labels stored with the release record (Capstan's LABEL_* among them).
    labels: Mapping[str, str]
    #: The rendered manifests of the chart's hooks (Helm keeps them apart from `manifest`);
    #: a project's manifest policy checks them too.
    hook_manifests: tuple[str, ...] = ()
    #: False for a summary kept by a driver's list cache: `config`, `manifest`, `notes` and
    #: `hook_manifests` are left out (empty); `Driver.get(ref, revision)` gives the whole record.
    complete: bool = True


class StaleCluster(Unavailable):
    """`Driver.list` could not ask the cluster now, but knows its last state: `records` (the
    list as it was at `synced_at`, filtered as asked), `stale_seconds` old."""

    def __init__(self, message: str, *, records: Sequence[ReleaseRecord],
                 synced_at: datetime, stale_seconds: float,
                 details: builtins.list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.records = builtins.list(records)
        self.synced_at = synced_at
        self.stale_seconds = stale_seconds


def upgrade_base(history: Sequence[ReleaseRecord]) -> ReleaseRecord | None:
    """The revision an upgrade starts from, as Helm's prepareUpgrade picks it from a history
    (oldest first): the latest if deployed, else the last deployed one, else the latest if it
    failed or was superseded; None when there is none (e.g. the latest is pending)."""
    if not history:
        return None
    last = history[-1]
    if last.status is Status.DEPLOYED:
        return last
    deployed = [r for r in history if r.status is Status.DEPLOYED]
    if deployed:
        return deployed[-1]
    return last if last.status in (Status.FAILED, Status.SUPERSEDED) else None


def newest_first(records: Sequence[ReleaseRecord]) -> builtins.list[ReleaseRecord]:
    """Records as drivers list them: most recently deployed first, then by name (descending)."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(
        records, key=lambda r: (r.last_deployed or r.first_deployed or epoch, r.name), reverse=True
    )


def describe_release(ref: ReleaseRef) -> str:
    """How drivers name a release in their error messages."""
    return f"release {ref.name!r} in namespace {ref.namespace!r} of cluster {ref.cluster.name!r}"


def format_since(when: datetime | None) -> str:
    """A moment as drivers show it in "... since <when>" (UTC, seconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else "an unknown time"


def refuse_pending(ref: ReleaseRef, latest: ReleaseRecord) -> None:
    """Aborted when a release's latest revision says an operation is in flight (`pending-*`
    or `uninstalling`), naming it and since when; every driver's writes check this first."""
    if latest.status.is_pending or latest.status is Status.UNINSTALLING:
        operation = latest.status.value.removeprefix("pending-")
        since = format_since(latest.last_deployed or latest.first_deployed)
        raise Aborted(
            f"{describe_release(ref)} has an operation in flight: {operation} of revision "
            f"{latest.revision} ({latest.status.value}) since {since}",
            details=[
                {
                    "operation": operation,
                    "status": latest.status.value,
                    "revision": latest.revision,
                    "since": since,
                }
            ],
        )


class InflightWrites:
    """A driver's writes in flight in this server, per release: a second write to a release
    is refused at once with Aborted, naming the first and since when (queueing it would run
    it against a release its caller has not seen)."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str, str], tuple[str, datetime]] = {}

    @contextlib.contextmanager
    def hold(self, ref: ReleaseRef, operation: str) -> Iterator[None]:
        key = (ref.cluster.id, ref.namespace, ref.name)
        running = self._running.get(key)
        if running is not None:
            op, started = running
            since = format_since(started)
            raise Aborted(
                f"{describe_release(ref)} has an operation in flight: {op} since {since}",
                details=[{"operation": op, "since": since}],
            )
        self._running[key] = (operation, datetime.now(UTC))
        try:
            yield
        finally:
            self._running.pop(key, None)


@dataclass(frozen=True)
class LiveObject:
    """An object of a release manifest, read live from the cluster (or missing from it)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    #: The object as the API server returns it; None when it is missing from the cluster
    #: (or could not be looked up, see `error`).
    object: Mapping[str, Any] | None
    #: Why the manifest document of this object could not be parsed (its identity is then
    #: what could be read from the text); empty when it parsed.
    error: str = ""


@dataclass(frozen=True)
class NamespaceInfo:
    """A namespace of a cluster."""

    name: str
    uid: str
    phase: str
    created: datetime | None


@dataclass(frozen=True)
class ReadinessSnapshot:
    """The state of a release while an operation settles, for WatchRelease."""

    record: ReleaseRecord
    #: (kind key, name, ready, message) of each workload of the release.
    workloads: list[tuple[str, str, bool, str]]
    #: True on the last snapshot when the release has settled (not pending, and failed or
    #: every workload ready); False on a last snapshot cut short by the timeout.
    settled: bool = False


class Driver(Protocol):
    """A Helm implementation. All methods are safe to call concurrently."""

    name: str

    async def install(self, opts: InstallOptions) -> ReleaseRecord:
        """Install a new release (revision 1: `pending-install`, then `deployed` described
        `Install complete`, or `failed` described `Release "<name>" failed: ...`).

        AlreadyExists when the name is taken in the namespace (whatever its status); NotFound
        when the namespace does not exist and `create_namespace` is not set; DeadlineExceeded
        when `wait` ran out of time (the release is left `failed`); with `atomic`, a failure
        uninstalls the release and raises OperationFailed. A dry run changes nothing and
        returns the would-be record (`pending-install`, `Dry run complete`)."""
        ...

    async def upgrade(self, opts: UpgradeOptions) -> ReleaseRecord:
        """Upgrade an existing release to a new revision (`pending-upgrade`, then `deployed`
        described `Upgrade complete` with the revision it started from `superseded`; or
        `failed` described `Upgrade "<name>" failed: ...`, the previous one left as it was).

        NotFound for an unknown release; Aborted when it has an operation in flight (in this
        server, or a latest revision `pending-*`/`uninstalling`); DeadlineExceeded when `wait`
        ran out of time; with `atomic`, a failure rolls back to the last successful revision
        (a new revision `Rollback to N`) and raises OperationFailed. History beyond
        `history_max` is pruned (never the last deployed revision). A dry run changes
        nothing (`pending-upgrade`, `Dry run complete`)."""
        ...

    async def rollback(self, opts: RollbackOptions) -> ReleaseRecord:
        """Roll back to an earlier revision, creating a new one (config, chart and labels of
        revision N) described `Rollback to N` (or `description`); every deployed revision
        becomes `superseded`. NotFound for an unknown release or revision (revision 0 means
        the previous one, so a release with one revision has nothing to roll back to);
        Aborted when an operation is in flight."""
        ...

    async def uninstall(
        self, ref: ReleaseRef, *, timeout: float = 300.0  # noqa: ASYNC109 (helm's --timeout)
    ) -> ReleaseRecord:
        """Uninstall a release and remove its whole history; returns its latest record as it
        was before. NotFound for an unknown release; Aborted when an operation is in flight."""
        ...

    async def get(self, ref: ReleaseRef, revision: int = 0) -> ReleaseRecord:
        """One revision of a release (0: the latest); NotFound for an unknown release or
        revision."""
        ...

    async def history(self, ref: ReleaseRef) -> list[ReleaseRecord]:
        """All revisions of a release, oldest first; NotFound when it does not exist."""
        ...

    async def list(
        self,
        cluster: ClusterTarget,
        namespace: str = "",
        *,
        name: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[ReleaseRecord]:
        """The latest revision of every release in a cluster (or one namespace of it),
        optionally only those with an exact name or carrying the given labels."""
        ...

    async def resources(
        self, record: ReleaseRecord, cluster: ClusterTarget
    ) -> builtins.list[LiveObject]:
        """The objects of a release's manifest, read live from the cluster."""
        ...

    async def namespaces(
        self, cluster: ClusterTarget, *, expect: Collection[str] = ()
    ) -> builtins.list[NamespaceInfo]:
        """The namespaces of a cluster, by name; Unavailable when it cannot be reached. The
        list may be the driver's own (callers must not change it). A driver may answer from
        a cache, as exact as `list`'s: with the namespaces this driver's writes created, and
        others' changes within about a second; `expect` names namespaces the caller has
        reason to believe exist (the namespaces of releases it shows, one it installs into):
        when one of them is not in the cache, the driver reads the cluster."""
        ...

    async def namespaced(self, cluster: ClusterTarget, api_version: str, kind: str
                         ) -> bool | None:
        """Whether the cluster serves `kind` of `api_version` per namespace (its discovery);
        None when it does not serve that kind at all."""
        ...

    async def check_cluster(self, cluster: ClusterTarget) -> None:
        """Reach the cluster's API once; Unavailable (or InvalidArgument for a kubeconfig
        that cannot be used) when that fails."""
        ...

    def watch(self, ref: ReleaseRef, *, timeout: float) -> AsyncIterator[ReadinessSnapshot]:
        """Snapshots of a release as it settles, ending when it has settled (the last one has
        `settled=True`) or at timeout; NotFound (on iteration) for an unknown release."""
        ...

    async def mark_failed(self, ref: ReleaseRef, description: str) -> ReleaseRecord:
        """Mark the latest revision of a release stuck in `pending-*` as `failed` with
        `description`, so that new operations may run. NotFound for an unknown release;
        FailedPrecondition when it is not pending; Aborted when this server has an operation
        on it in flight (then it is not stuck)."""
        ...

    async def close(self) -> None:
        """Release processes, connections and caches."""
        ...
