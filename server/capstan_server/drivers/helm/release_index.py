"""Lookups into one list of the release cache by namespace, name and label, so that a list of
one namespace, or a release looked up by name or id (GetRelease and every write address one),
costs the matching releases rather than a pass over every release of the cluster.

An index is made for one list the cache handed out and is dropped with it (the cache makes a
new list when anything changes); each kind of index is built on first use, in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from capstan_server.drivers.base import ReleaseRecord


def matches(record: ReleaseRecord, namespace: str, name: str,
            labels: Mapping[str, str] | None) -> bool:
    return ((not namespace or record.namespace == namespace)
            and (not name or record.name == name)
            and all(record.labels.get(k) == v for k, v in (labels or {}).items()))


class ReleaseIndex:
    """Subsets of `records` (newest first, as the list is), by what selects them."""

    def __init__(self, records: list[ReleaseRecord]) -> None:
        self.records = records
        self._by_namespace: dict[str, list[ReleaseRecord]] | None = None
        self._by_name: dict[str, list[ReleaseRecord]] | None = None
        self._by_label: dict[str, dict[str, list[ReleaseRecord]]] = {}

    def matching(self, namespace: str = "", name: str = "",
                 labels: Mapping[str, str] | None = None) -> list[ReleaseRecord]:
        """The records `matches` selects. For a namespace alone, the same list each time;
        callers must not change it."""
        if name:
            if self._by_name is None:
                self._by_name = _group(self.records, lambda r: r.name)
            candidates = self._by_name.get(name, [])
        elif labels:
            key, value = min(labels.items())
            if key not in self._by_label:
                self._by_label[key] = _group(
                    (r for r in self.records if key in r.labels), lambda r: r.labels[key])
            candidates = self._by_label[key].get(value, [])
        elif namespace:
            if self._by_namespace is None:
                self._by_namespace = _group(self.records, lambda r: r.namespace)
            return self._by_namespace.get(namespace, [])
        else:
            return self.records
        return [r for r in candidates if matches(r, namespace, name, labels)]


def _group(records: Iterable[ReleaseRecord], key: Callable[[ReleaseRecord], str]
           ) -> dict[str, list[ReleaseRecord]]:
    out: dict[str, list[ReleaseRecord]] = {}
    for record in records:
        out.setdefault(key(record), []).append(record)
    return out
