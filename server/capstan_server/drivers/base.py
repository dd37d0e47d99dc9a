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

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

#: Helm release labels Capstan adds to every release it installs, so that identity survives
#: restarts and is shared by replicas (Helm stores them on its release record).
LABEL_RELEASE_ID = "capstan.io/release-id"
LABEL_REPO_ID = "capstan.io/repo-id"
LABEL_TYPE = "capstan.io/type"


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
class ClusterTarget:
    """A registered cluster, as a driver needs it."""

    id: str
    name: str
    #: kubeconfig YAML text; its current context is used.
    kubeconfig: str


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


@dataclass(frozen=True)
class LiveObject:
    """An object of a release manifest, read live from the cluster (or missing from it)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    #: The object as the API server returns it; None when it is missing from the cluster.
    object: Mapping[str, Any] | None


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


class Driver(Protocol):
    """A Helm implementation. All methods are safe to call concurrently."""

    name: str

    async def install(self, opts: InstallOptions) -> ReleaseRecord:
        """Install a new release; AlreadyExists when the name is taken in the namespace."""
        ...

    async def upgrade(self, opts: UpgradeOptions) -> ReleaseRecord:
        """Upgrade an existing release; Aborted when it has an operation in flight."""
        ...

    async def rollback(self, opts: RollbackOptions) -> ReleaseRecord:
        """Roll back to an earlier revision, creating a new one described `Rollback to N`."""
        ...

    async def uninstall(self, ref: ReleaseRef, *, timeout: float = 300.0) -> ReleaseRecord:
        """Uninstall a release and remove its history; returns its last record."""
        ...

    async def get(self, ref: ReleaseRef, revision: int = 0) -> ReleaseRecord:
        """One revision of a release (0: the latest)."""
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

    async def resources(self, record: ReleaseRecord, cluster: ClusterTarget) -> list[LiveObject]:
        """The objects of a release's manifest, read live from the cluster."""
        ...

    async def namespaces(self, cluster: ClusterTarget) -> list[NamespaceInfo]:
        """The namespaces of a cluster; Unavailable when it cannot be reached."""
        ...

    async def check_cluster(self, cluster: ClusterTarget) -> None:
        """Reach the cluster's API once; Unavailable (or InvalidArgument for a kubeconfig
        that cannot be used) when that fails."""
        ...

    def watch(self, ref: ReleaseRef, *, timeout: float) -> AsyncIterator[ReadinessSnapshot]:
        """Snapshots of a release as it settles, ending when it has settled or at timeout."""
        ...

    async def mark_failed(self, ref: ReleaseRef, description: str) -> ReleaseRecord:
        """Mark the latest revision of a release stuck in `pending-*` as failed."""
        ...

    async def close(self) -> None:
        """Release processes, connections and caches."""
        ...
