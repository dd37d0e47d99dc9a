"""`drivers/helm/release_index.py`: every lookup into a list of the release cache answers what
a pass over the whole list would, in the list's order; a namespace alone is the same list each
time (views downstream are kept on its identity)."""

from __future__ import annotations

import itertools

from capstan_server.drivers.base import ReleaseRecord, Status
from capstan_server.drivers.helm.release_index import ReleaseIndex, matches


def record(name: str, namespace: str, **labels: str) -> ReleaseRecord:
    return ReleaseRecord(name=name, namespace=namespace, revision=1, status=Status.DEPLOYED,
                         chart_name="etcd", chart_version="8.11.1", app_version="",
                         description="", config={}, manifest="", notes="",
                         first_deployed=None, last_deployed=None, labels=labels)


def test_lookups_answer_what_a_pass_over_the_list_would() -> None:
    records = [record(f"r-{i % 4}", f"ns-{i % 3}", id=f"id-{i % 5}", **({"t": "x"} if i % 2
               else {})) for i in range(30)]
    index = ReleaseIndex(records)
    for namespace, name, labels in itertools.product(
            ("", "ns-1", "ns-9"), ("", "r-2", "r-9"),
            (None, {"id": "id-3"}, {"id": "id-3", "t": "x"}, {"t": "x"}, {"nope": "1"})):
        assert index.matching(namespace, name, labels) == [
            r for r in records if matches(r, namespace, name, labels)], (namespace, name, labels)
    assert index.matching("ns-1") is index.matching("ns-1")
    assert index.matching() is records
