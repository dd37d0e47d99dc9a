"""Helm's release records, decoded (and re-encoded) without running helm.

Helm stores each revision of a release as a Secret (its default `secret` storage driver) or a
ConfigMap (`HELM_DRIVER=configmap`) named `sh.helm.release.v1.<name>.v<revision>`, labelled
`owner=helm, name, status, version` (plus `createdAt`/`modifiedAt` and any user `--labels`).
Its `release` data key holds base64(gzip(release JSON)); helm reads records that are not
gzipped too. Secret data is base64-encoded once more by Kubernetes on the wire. Helm 4 omits
zero timestamps (`omitzero`) and empty fields; both are accepted here.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from capstan_server.drivers.base import ReleaseRecord, Status
from capstan_server.errors import Internal
from capstan_server.lru import ByteLRU

#: Where helm keeps its records: the `secret` driver (helm's default) or `configmap`.
Storage = Literal["secret", "configmap"]

RECORD_PREFIX = "sh.helm.release.v1."
SECRET_TYPE = "helm.sh/release.v1"
#: Labels helm manages on its records; the rest are the release's own labels.
SYSTEM_LABELS = frozenset({"name", "owner", "status", "version", "createdAt", "modifiedAt"})
#: Statuses a release's latest revision can have; a `superseded` revision always has a newer
#: one, so listing only these finds every release's latest revision without decoding history.
LATEST_STATUSES: tuple[str, ...] = (
    "deployed", "failed", "pending-install", "pending-upgrade", "pending-rollback",
    "uninstalling", "unknown")
#: Label selector of those records (helm's `owner=helm` plus the status set).
LATEST_SELECTOR = f"owner=helm,status in ({','.join(LATEST_STATUSES)})"

_GZIP_MAGIC = b"\x1f\x8b\x08"
_TIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)?$")


def record_object_name(name: str, revision: int) -> str:
    """The Secret/ConfigMap name helm uses for one revision of a release."""
    return f"{RECORD_PREFIX}{name}.v{revision}"


@dataclass(frozen=True)
class StoredRecord:
    """A decoded record together with where it is stored (needed to rewrite it)."""

    record: ReleaseRecord
    storage: Storage
    object_name: str
    uid: str
    resource_version: str
    #: All labels of the object, helm's system labels included.
    object_labels: Mapping[str, str]


class RecordError(Internal):
    """A release record that cannot be decoded."""


# -- payload ------------------------------------------------------------------------------------


def decode_payload(payload: str | bytes) -> dict[str, Any]:
    """helm's `decodeRelease`: base64, then gunzip when gzip-compressed, then JSON."""
    try:
        raw = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as e:
        raise RecordError(f"release record is not base64: {e}") from e
    if raw[:3] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise RecordError(f"release record is not valid gzip: {e}") from e
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise RecordError(f"release record is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise RecordError("release record is not a JSON object")
    return doc


def encode_payload(doc: Mapping[str, Any], *, compress: bool = True) -> str:
    """helm's `encodeRelease`: JSON, gzip (best compression), base64."""
    raw = json.dumps(doc, separators=(",", ":")).encode()
    if compress:
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    return base64.b64encode(raw).decode()


# -- release JSON -> ReleaseRecord --------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A Go `time.Time` from JSON (RFC 3339, nanoseconds); None for absent or zero times."""
    if not isinstance(value, str) or not value:
        return None
    m = _TIME.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    if year <= 1:
        return None  # Go's zero time, which helm 3 writes for "never"
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    zone = m[8] or "Z"
    if zone in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def format_time(value: datetime) -> str:
    """A datetime as Go marshals `time.Time` (RFC 3339 with the zone)."""
    return value.isoformat().replace("+00:00", "Z")


def parse_status(value: Any) -> Status:
    try:
        return Status(str(value))
    except ValueError:
        return Status.UNKNOWN


def user_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The release's own labels: the object's labels without helm's system labels."""
    return {k: v for k, v in (labels or {}).items() if k not in SYSTEM_LABELS}


def record_from_release(doc: Mapping[str, Any], labels: Mapping[str, str] | None = None
                        ) -> ReleaseRecord:
    """A ReleaseRecord from helm's release JSON (a record, or `helm install -o json` output).

    Labels are not part of the JSON (helm keeps them only on the storage object).
    """
    info = doc.get("info") or {}
    chart = doc.get("chart") or {}
    meta = chart.get("metadata") or {}
    config = doc.get("config") or {}
    return ReleaseRecord(
        name=str(doc.get("name", "")),
        namespace=str(doc.get("namespace", "")),
        revision=int(doc.get("version") or 0),
        status=parse_status(info.get("status", "unknown")),
        chart_name=str(meta.get("name", "")),
        chart_version=str(meta.get("version", "")),
        app_version=str(meta.get("appVersion", "")),
        description=str(info.get("description", "")),
        config=config if isinstance(config, dict) else {},
        manifest=str(doc.get("manifest", "")),
        notes=str(info.get("notes", "")),
        first_deployed=parse_time(info.get("first_deployed")),
        last_deployed=parse_time(info.get("last_deployed")),
        labels=user_labels(labels),
        hook_manifests=tuple(str(h.get("manifest", "")) for h in doc.get("hooks") or []
                             if isinstance(h, dict)),
    )


# -- storage objects ----------------------------------------------------------------------------


def is_record_object(obj: Mapping[str, Any]) -> bool:
    """Whether a Secret/ConfigMap is a helm release record."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (str(meta.get("name", "")).startswith(RECORD_PREFIX) and labels.get("owner") == "helm"
            and "release" in (obj.get("data") or {}))


def payload_of(obj: Mapping[str, Any], storage: Storage) -> str | bytes:
    """The helm payload (base64 of gzip of JSON) of a record object as read over the API."""
    data = (obj.get("data") or {}).get("release")
    if not data:
        raise RecordError(f"{storage} {obj.get('metadata', {}).get('name')} has no release data")
    if storage == "secret":
        # Kubernetes' own base64 layer of Secret data.
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError) as e:
            raise RecordError(f"secret data is not base64: {e}") from e
    return str(data)


def stored_from_object(obj: Mapping[str, Any], storage: Storage) -> StoredRecord:
    """Decode one record Secret (`storage="secret"`) or ConfigMap as read over the API."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    doc = decode_payload(payload_of(obj, storage))
    return StoredRecord(
        record=record_from_release(doc, labels),
        storage=storage,
        object_name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        object_labels=dict(labels),
    )


def record_object(doc: Mapping[str, Any], *, storage: Storage = "secret",
                  labels: Mapping[str, str] | None = None, compress: bool = True,
                  created_at: int | None = None) -> dict[str, Any]:
    """The Secret or ConfigMap helm would write for release JSON `doc` (for rewriting a
    record, and for seeding benchmarks with records in helm's exact format)."""
    name, revision = str(doc["name"]), int(doc["version"])
    status = str((doc.get("info") or {}).get("status", "unknown"))
    obj_labels = {**user_labels(labels), "name": name, "owner": "helm", "status": status,
                  "version": str(revision),
                  "createdAt": str(created_at if created_at is not None else int(time.time()))}
    payload = encode_payload(doc, compress=compress)
    meta = {"name": record_object_name(name, revision), "namespace": str(doc["namespace"]),
            "labels": obj_labels}
    if storage == "secret":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": SECRET_TYPE,
                "data": {"release": base64.b64encode(payload.encode()).decode()}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {"release": payload}}


def latest_per_release(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Of record objects, the one with the highest `version` label per (namespace, name)."""
    best: dict[tuple[str, str], tuple[int, Mapping[str, Any]]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        try:
            version = int(labels.get("version", "0"))
        except ValueError:
            continue
        key = (str(meta.get("namespace", "")), str(labels.get("name", "")))
        if key not in best or version > best[key][0]:
            best[key] = (version, obj)
    return [obj for _, obj in best.values()]


def footprint(record: ReleaseRecord) -> int:
    """Roughly the bytes a decoded record holds: its texts, and its values at a few bytes of
    Python objects per byte of JSON."""
    config = len(json.dumps(record.config, separators=(",", ":"), default=str))
    return (512 + len(record.manifest) + len(record.notes) + 4 * config
            + sum(len(h) for h in record.hook_manifests))


class RecordCache:
    """Decoded records keyed by (uid, resourceVersion): a record object never changes without
    a new resourceVersion, so a hit is always exact and saves the gunzip and JSON parse.
    Bounded by entries and by `footprint` bytes (whole records, manifests included, can be
    large: a release of a big chart easily holds a megabyte), least recently used first out;
    a record over a quarter of the bytes is not kept."""

    def __init__(self, max_entries: int = 8192, max_bytes: int = 32 << 20) -> None:
        self._items: ByteLRU[tuple[str, str, str], StoredRecord] = ByteLRU(
            max_bytes, max_items=max_entries)

    @property
    def bytes(self) -> int:
        return self._items.used

    def __len__(self) -> int:
        return len(self._items)

    def decode(self, obj: Mapping[str, Any], storage: Storage) -> StoredRecord:
        meta = obj.get("metadata") or {}
        key = (storage, str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
        exact = bool(key[1] and key[2])
        hit = self._items.get(key) if exact else None
        if hit is not None:
            return hit
        stored = stored_from_object(obj, storage)
        size = footprint(stored.record)
        if exact and size <= self._items.budget // 4:
            self._items.put(key, stored, size)
        return stored
