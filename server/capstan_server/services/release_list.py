"""ListReleases' rows, at any number of releases: filtered and ordered once per state of the
driver's caches, and each row's message built once per record.

The driver's list cache hands out the very same list (and record objects) while nothing changed,
so both memos are keyed on object identity, checked against the object they were built from:

- `ReleaseRows.rows`: the filters that are not the driver's (`Filters`: type, status flags,
  search) and the order, newest first, per (list, filters);
- `ReleaseRows.page`: a page of rows without details. Each row is kept as its `releases` entry
  on the wire of ListReleasesResponse, and a page is one parse of their concatenation: no deep
  copy of a message per row, and less memory held. The fields that depend on the caller
  (project, Kubernetes identity: `messages.caller_fields`) are part of the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from capstan.v1 import release_pb2
from capstan_server.drivers.base import ReleaseRecord, Status
from capstan_server.lru import ByteLRU
from capstan_server.services import messages as msg
from capstan_server.services.addressing import LocatedRelease

#: Rows kept as wire bytes (about one per release, for 20,000 releases).
MAX_ROWS = 20_000
#: Filtered, ordered lists kept (one per filter combination in use).
_MAX_VIEWS = 64
#: The field number of ListReleasesResponse.releases.
RELEASES_FIELD = release_pb2.ListReleasesResponse.DESCRIPTOR.fields_by_name["releases"].number

#: ListReleases status flags (OR-ed): `deleting` is `uninstalling`, `pending` any `pending-*`.
STATUS_FLAGS: dict[str, Callable[[Status], bool]] = {
    "deployed": lambda s: s is Status.DEPLOYED,
    "deleting": lambda s: s is Status.UNINSTALLING,
    "failed": lambda s: s is Status.FAILED,
    "superseded": lambda s: s is Status.SUPERSEDED,
    "pending": lambda s: s.is_pending,
}

_EPOCH = datetime.min.replace(tzinfo=UTC)


def length_delimited(number: int, payload: bytes) -> bytes:
    """`payload` as field `number` of a message on the protobuf wire (tag, length, bytes)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True)
class Filters:
    """The filters of a ListReleasesRequest that are not the driver's (see `filters_of`)."""

    kind: str
    flags: tuple[str, ...]
    search: str


def filters_of(request: release_pb2.ListReleasesRequest) -> Filters:
    """A request's filters; InvalidArgument for an unknown `type`."""
    return Filters(kind=msg.release_type(request.type) if request.type else "",
                   flags=tuple(f for f in STATUS_FLAGS if getattr(request, f)),
                   search=request.search.lower())


class ReleaseRows:
    """The two memos of the module docstring; one per servicer (one event loop)."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        # (Counted, not weighed: each row costs 1.)
        self._rows: ByteLRU[tuple[Any, ...], tuple[ReleaseRecord, bytes]] = ByteLRU(max_rows)
        self._views: dict[tuple[Any, ...], tuple[list[LocatedRelease], list[LocatedRelease]]] = {}

    def rows(self, found: list[LocatedRelease], filters: Filters) -> list[LocatedRelease]:
        """`found` filtered by `filters`, newest first."""
        view = (id(found), filters)
        memo = self._views.get(view)
        if memo is not None and memo[0] is found:
            return memo[1]
        rows = _filtered(found, filters)
        if len(self._views) > _MAX_VIEWS:
            self._views.clear()
        self._views[view] = (found, rows)
        return rows

    def page(self, shown: list[LocatedRelease],
             uids: dict[str, dict[str, str]]) -> release_pb2.ListReleasesResponse:
        """The rows `shown` (no details), `uids` the namespace UIDs by cluster id."""
        callers: dict[tuple[str, str], tuple[tuple[str, Any], ...]] = {}
        return release_pb2.ListReleasesResponse.FromString(
            b"".join(self._row(r, uids.get(r.cluster.id, {}), callers) for r in shown))

    def _row(self, row: LocatedRelease, uids: dict[str, str],
             callers: dict[tuple[str, str], tuple[tuple[str, Any], ...]]) -> bytes:
        uid = uids.get(row.record.namespace, "")
        where = (row.cluster.name, row.record.namespace)
        caller = callers.get(where)
        if caller is None:  # per cluster and namespace, once a page
            caller = callers[where] = tuple(msg.caller_fields(*where).items())
        key = (id(row.record), row.cluster.id, row.cluster.name, uid, caller)
        held = self._rows.get(key)
        if held is not None and held[0] is row.record:
            return held[1]
        message = msg.release_message(row.record, row.cluster, namespace_uid=uid)
        # A page of many releases must not carry all their values (possibly megabytes each);
        # GetRelease, or `details`, shows them.
        message.ClearField("config")
        wire = length_delimited(RELEASES_FIELD, message.SerializeToString())
        self._rows.put(key, (row.record, wire), 1)
        return wire


def _filtered(found: list[LocatedRelease], filters: Filters) -> list[LocatedRelease]:
    kind, search = filters.kind, filters.search
    checks = [STATUS_FLAGS[f] for f in filters.flags]
    rows = [
        r for r in found
        if (not kind or msg.release_type_of(r.record) == kind)
        and (not checks or any(check(r.record.status) for check in checks))
        and (not search or search in r.record.name.lower()
             or search in r.record.chart_name.lower())
    ]
    rows.sort(key=lambda r: (r.record.last_deployed or r.record.first_deployed or _EPOCH,
                             r.record.name, r.cluster.name, r.record.namespace), reverse=True)
    return rows
