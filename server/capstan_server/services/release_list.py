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

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from capstan.v1 import release_pb2
from capstan_server.drivers.base import ReleaseRecord, Status
from capstan_server.lru import ByteLRU
from capstan_server.services import messages as msg
from capstan_server.services.addressing import LocatedRelease
from capstan_server.wire import length_delimited

#: Rows kept as wire bytes (about one per release, for 20,000 releases).
MAX_ROWS = 20_000
#: Filtered, ordered lists kept (one per filter combination in use).
_MAX_VIEWS = 64
#: Row views numbered (one per cluster, namespace and caller's fields in use).
_MAX_ROW_VIEWS = 4096
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
        # A row is kept by (record, view): the view is what else its message shows (cluster,
        # namespace UID, the caller's fields), numbered once a page, so that the key of each
        # row is two integers. (Counted, not weighed: each row costs 1.)
        self._rows: ByteLRU[tuple[int, int], tuple[ReleaseRecord, bytes]] = ByteLRU(max_rows)
        self._row_views: dict[tuple[Any, ...], int] = {}
        self._view_numbers = itertools.count()
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
        views: dict[tuple[str, str], int] = {}
        wires = []
        for row in shown:
            record, cluster = row.record, row.cluster
            where = (cluster.id, record.namespace)
            view = views.get(where)
            if view is None:  # per cluster and namespace, once a page
                view = views[where] = self._view_number(row, uids.get(cluster.id, {}))
            key = (id(record), view)
            held = self._rows.get(key)
            if held is None or held[0] is not record:
                held = (record, self._wire(row, uids.get(cluster.id, {})))
                self._rows.put(key, held, 1)
            wires.append(held[1])
        return release_pb2.ListReleasesResponse.FromString(b"".join(wires))

    def _view_number(self, row: LocatedRelease, uids: dict[str, str]) -> int:
        namespace = row.record.namespace
        caller = tuple(msg.caller_fields(row.cluster.name, namespace).items())
        view = (row.cluster.id, row.cluster.name, uids.get(namespace, ""), caller)
        number = self._row_views.get(view)
        if number is None:
            if len(self._row_views) > _MAX_ROW_VIEWS:
                self._row_views.clear()  # numbers are never reused: old rows just go unused
            number = self._row_views[view] = next(self._view_numbers)
        return number

    @staticmethod
    def _wire(row: LocatedRelease, uids: dict[str, str]) -> bytes:
        message = msg.release_message(row.record, row.cluster,
                                      namespace_uid=uids.get(row.record.namespace, ""))
        # A page of many releases must not carry all their values (possibly megabytes each);
        # GetRelease, or `details`, shows them.
        message.ClearField("config")
        return length_delimited(RELEASES_FIELD, message.SerializeToString())


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
