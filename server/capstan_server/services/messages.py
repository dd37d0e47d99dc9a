"""Building the API's messages from what the registry, catalog and drivers return, and the
small request conversions every servicer shares (paging, timeouts, Struct <-> dict)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from capstan.client.messages import whole_numbers
from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server import redaction
from capstan_server.auth.access import current_access
from capstan_server.auth.tenancy import acted_as
from capstan_server.charts.archive import ChartFiles
from capstan_server.charts.oci import OciOptions
from capstan_server.charts.repo_index import IndexEntry
from capstan_server.drivers.base import (
    LABEL_CHART_DIGEST,
    LABEL_RELEASE_ID,
    LABEL_REPO_ID,
    LABEL_TYPE,
    LiveObject,
    NamespaceInfo,
    ReleaseRecord,
    kind_key,
)
from capstan_server.drivers.helm.manifest import readiness
from capstan_server.errors import InvalidArgument
from capstan_server.registry import ClusterRow, RepoRow

if TYPE_CHECKING:
    from capstan_server.services.addressing import UnreachableCluster

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_TIMEOUT = 300
DEFAULT_HISTORY_MAX = 10
RELEASE_TYPES = ("external", "internal")
#: The largest manifest an answer carries (bytes); a larger one is cut (`manifest_truncated`),
#: so that a write that succeeded is never answered with a message too large to receive.
MANIFEST_MAX = 1024 * 1024
#: uuid5 namespace of the stable ids of releases installed outside Capstan.
_EXTERNAL_RELEASE_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "releases.capstan.io")


# -- requests -------------------------------------------------------------------------------


def page(limit: int, offset: int) -> tuple[int, int]:
    """A validated (limit, offset): limit 20 when 0, at most 1000."""
    if limit < 0 or limit > MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 0 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise InvalidArgument(f"offset must not be negative, got {offset}")
    return (limit or DEFAULT_LIMIT), offset


def timeout_seconds(value: int) -> float:
    """A request's `timeout` in seconds: 300 when 0."""
    if value < 0:
        raise InvalidArgument(f"timeout must not be negative, got {value}")
    return float(value or DEFAULT_TIMEOUT)


def history_max(value: int) -> int:
    """A request's `history_max`: 10 when 0."""
    if value < 0:
        raise InvalidArgument(f"history_max must not be negative, got {value}")
    return value or DEFAULT_HISTORY_MAX


def release_type(value: str) -> str:
    """A validated release or repository type; `external` when empty."""
    if value and value not in RELEASE_TYPES:
        raise InvalidArgument(f"type must be 'internal' or 'external', not {value!r}")
    return value or "external"


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON types; whole numbers come back as ints (Struct holds doubles)."""
    return whole_numbers(json_format.MessageToDict(struct))  # type: ignore[no-any-return]


def to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


def timestamp(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


# -- releases -------------------------------------------------------------------------------


def external_id(cluster_id: str, namespace: str, name: str) -> str:
    return f"{cluster_id}/{namespace}/{name}"


def release_id(record: ReleaseRecord, cluster_id: str) -> str:
    """The stable UUID of a release: Capstan's label, or for a release installed outside
    Capstan a UUID derived from where it lives (so it is the same on every replica)."""
    label = record.labels.get(LABEL_RELEASE_ID)
    if label:
        return label
    where = external_id(cluster_id, record.namespace, record.name)
    return str(uuid.uuid5(_EXTERNAL_RELEASE_NS, where))


def release_type_of(record: ReleaseRecord) -> str:
    return record.labels.get(LABEL_TYPE) or "external"


def _created_at(metadata: Mapping[str, Any]) -> timestamp_pb2.Timestamp | None:
    text = metadata.get("creationTimestamp")
    if not isinstance(text, str) or not text:
        return None
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromJsonString(text)
    except ValueError:
        return None
    return stamp


def resource_message(obj: LiveObject, *, full: bool = False) -> release_pb2.ReleaseResource:
    """The flat summary of one object of a release (its whole live object with `full`),
    Secret values redacted."""
    item = release_pb2.ReleaseResource(
        api_version=obj.api_version, kind=obj.kind, name=obj.name, namespace=obj.namespace,
        error=obj.error)
    live = obj.object
    if live is None:
        item.missing = not obj.error
        item.status = "missing" if item.missing else "unparsed"
        return item
    metadata = live.get("metadata") or {}
    item.uid = str(metadata.get("uid") or "")
    created = _created_at(metadata)
    if created is not None:
        item.created_at.CopyFrom(created)
    item.ready, item.status = readiness(live)
    if redaction.is_secret(live):
        item.secret_data.update(redaction.secret_sizes(live))
    if full:
        # Field-manager bookkeeping is large and says nothing about the release.
        trimmed = {k: v for k, v in metadata.items() if k != "managedFields"}
        shown = redaction.redact_object({**live, "metadata": trimmed})
        item.object_json = json.dumps(shown, separators=(",", ":"))
    return item


def shown_manifest(manifest: str) -> tuple[str, bool]:
    """(the manifest as answers show it, whether it was cut): Secret values redacted, and at
    most MANIFEST_MAX bytes, cut at the last document boundary before that."""
    shown = redaction.redact_manifest(manifest)
    if len(shown.encode()) <= MANIFEST_MAX:
        return shown, False
    head = shown.encode()[:MANIFEST_MAX].decode(errors="ignore")
    cut = head.rfind("\n---")
    return (head[:cut + 1] if cut > 0 else ""), True


def caller_fields(cluster: str, namespace: str) -> dict[str, Any]:
    """The fields of a Release that depend on who asks: its `project` among the caller's,
    and the Kubernetes identity Capstan acts as there for the caller (auth.tenancy)."""
    fields: dict[str, Any] = {"project": current_access().project_of(cluster, namespace)}
    identity = acted_as(current_access(), cluster, namespace)
    if identity is not None:
        fields.update(kube_user=identity.user, kube_groups=tuple(identity.groups))
    return fields


def release_message(
    record: ReleaseRecord,
    cluster: ClusterRow,
    *,
    namespace_uid: str = "",
    resources: Iterable[LiveObject] | None = None,
    details: bool = False,
    dry_run: bool = False,
    progress: int = 0,
    objects: bool = False,
) -> release_pb2.Release:
    """The API's Release for a driver's record (resources only when given, with their whole
    live objects with `objects`)."""
    message = release_pb2.Release(
        id=release_id(record, cluster.id),
        name=record.name,
        cluster=cluster.name,
        cluster_id=cluster.id,
        clusterID=cluster.id,
        namespace=record.namespace,
        namespace_id=namespace_uid,
        external_id=external_id(cluster.id, record.namespace, record.name),
        chart=record.chart_name,
        chart_version=record.chart_version,
        app_version=record.app_version,
        repo_id=record.labels.get(LABEL_REPO_ID, ""),
        chart_digest=record.labels.get(LABEL_CHART_DIGEST, ""),
        version=record.revision,
        status=record.status.value,
        type=release_type_of(record),
        config=to_struct(record.config),
        created_at=timestamp(record.first_deployed),
        updated_at=timestamp(record.last_deployed),
        description=record.description,
        progress=progress,
        is_emulated=False,
        project_domain="Default",
        **caller_fields(cluster.name, record.namespace),
        dry_run=dry_run,
    )
    if details or dry_run:
        message.notes = redaction.redact_text(record.notes, record.manifest)
        message.manifest, message.manifest_truncated = shown_manifest(record.manifest)
    for obj in resources or ():
        message.resources[kind_key(obj.kind or "unparsed")].items.append(
            resource_message(obj, full=objects))
    return message


def revision_message(record: ReleaseRecord) -> release_pb2.ReleaseRevision:
    return release_pb2.ReleaseRevision(
        revision=record.revision,
        status=record.status.value,
        chart=f"{record.chart_name}-{record.chart_version}",
        app_version=record.app_version,
        description=record.description,
        updated=timestamp(record.last_deployed),
    )


# -- clusters -------------------------------------------------------------------------------


def cluster_message(row: ClusterRow) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        id=row.id, name=row.name, server=row.server, created_at=timestamp(row.created_at)
    )


def namespace_message(info: NamespaceInfo, cluster: ClusterRow) -> cluster_pb2.Namespace:
    return cluster_pb2.Namespace(
        id=info.uid,
        name=info.name,
        cluster=cluster.name,
        cluster_id=cluster.id,
        status=info.phase,
        created_at=timestamp(info.created),
    )


# -- charts ---------------------------------------------------------------------------------


def repo_message(
    row: RepoRow, chart_count: int = 0, oci: OciOptions | None = None
) -> chart_pb2.Repository:
    oci = oci or OciOptions()
    return chart_pb2.Repository(
        plain_http=oci.plain_http,
        charts=oci.charts,
        has_ca=bool(oci.ca_pem),
        id=row.id,
        name=row.name,
        url=row.url,
        type=row.type,
        username=row.username,
        has_password=bool(row.password),
        created_at=timestamp(row.created_at),
        synced_at=timestamp(row.synced_at),
        chart_count=chart_count,
    )


def chart_version_message(entry: IndexEntry, repo: RepoRow) -> chart_pb2.ChartVersion:
    return chart_pb2.ChartVersion(
        name=entry.name,
        version=entry.version,
        app_version=entry.app_version,
        description=entry.description,
        icon=entry.icon,
        keywords=list(entry.keywords),
        deprecated=entry.deprecated,
        created=timestamp(entry.created),
        digest=entry.digest,
        repo=repo.name,
        repo_id=repo.id,
    )


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def chart_metadata(meta: Mapping[str, Any]) -> chart_pb2.ChartMetadata:
    """Chart.yaml as the API shows it."""
    annotations = meta.get("annotations")
    return chart_pb2.ChartMetadata(
        name=str(meta.get("name") or ""),
        version=str(meta.get("version") or ""),
        app_version=str(meta.get("appVersion") or ""),
        description=str(meta.get("description") or ""),
        type=str(meta.get("type") or "application"),
        api_version=str(meta.get("apiVersion") or ""),
        kube_version=str(meta.get("kubeVersion") or ""),
        home=str(meta.get("home") or ""),
        icon=str(meta.get("icon") or ""),
        keywords=_strings(meta.get("keywords")),
        sources=_strings(meta.get("sources")),
        deprecated=bool(meta.get("deprecated")),
        annotations={str(k): str(v) for k, v in annotations.items()}
        if isinstance(annotations, dict)
        else {},
    )


def chart_detail(
    files: ChartFiles, entry: IndexEntry, versions: Iterable[IndexEntry], repo: RepoRow
) -> chart_pb2.ChartDetail:
    content = chart_pb2.ChartContent(
        metadata=chart_metadata(files.metadata), values=to_struct(files.values)
    )
    if files.schema is not None:
        content.schema.CopyFrom(to_struct(files.schema))
    return chart_pb2.ChartDetail(
        name=entry.name,
        version=entry.version,
        repo=repo.name,
        repo_id=repo.id,
        chart=content,
        readme=files.readme,
        versions=[chart_version_message(v, repo) for v in versions],
    )


def unreachable_message(down: UnreachableCluster) -> release_pb2.UnreachableCluster:
    """A ListReleases `unreachable_clusters` entry (with its staleness when answered from the
    cluster's last known state)."""
    message = release_pb2.UnreachableCluster(
        name=down.cluster.name, id=down.cluster.id, message=down.error.message
    )
    stale = down.stale
    if stale is not None:
        message.stale_seconds = stale.stale_seconds
        message.last_synced.FromDatetime(stale.synced_at)
    return message
