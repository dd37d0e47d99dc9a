"""ListReleases pages are views of the release cache kept per state of the cache and per
caller's read scope (`services.addressing.Resolver._visible`, the view memo of
`ReleaseServicer.ListReleases`), with namespace ids from the namespace cache: on the real helm
driver against kubesim, callers of different scopes asking in turn each page through exactly
their own releases (`total` counts only those), and every change -- records written by someone
else, a create through the server into a namespace helm creates, a namespace deleted and
created again -- shows in the next pages of every caller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from auth_kit import TOKENS
from auth_server import bearer, on_helm

from capstan.v1 import release_pb2, release_pb2_grpc
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.helm import records
from kubesim.testing import KubeSimThread

pytestmark = [pytest.mark.helm, pytest.mark.timeout(240)]
HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm3"
#: Who may read where (auth_kit's policy): team-a is "team-a" and "team-a-*", team-b "team-b".
SCOPES = {"viewer-a": ("team-a",), "editor-a": ("team-a",), "editor-b": ("team-b",),
          "admin": ("team-a", "team-b", "default")}


@dataclass
class Listed:
    sim: KubeSimThread
    releases: release_pb2_grpc.ReleaseServiceStub

    def add_record(self, name: str, namespace: str) -> None:
        """A release record written behind the server's back (plain helm, another replica)."""
        doc = {"name": name, "namespace": namespace, "version": 1, "manifest": "",
               "config": {}, "chart": {"metadata": {"name": "etcd", "version": "8.11.1"}},
               "info": {"status": "deployed", "description": "Install complete"}}
        self.sim.store.create("secrets", records.record_object(doc), namespace)

    def namespace(self, name: str) -> str:
        made = self.sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}})
        return str(made["metadata"]["uid"])

    def walk(self, who: str, page: int = 3, *, settled: bool = True
             ) -> tuple[dict[str, tuple[str, str]], int]:
        """Every release `who` sees, paging by `page`: name -> (namespace, namespace_id).

        `settled`: nothing changes meanwhile, so no name is on two pages. While changes still
        arrive (`eventually`), an offset page may shift under a walk and show one twice."""
        seen: dict[str, tuple[str, str]] = {}
        offset, total = 0, 1
        while offset < total:
            answer = self.releases.ListReleases(
                release_pb2.ListReleasesRequest(limit=page, offset=offset),
                metadata=bearer(TOKENS[who]), timeout=30)
            total = answer.total
            for r in answer.releases:
                assert not settled or r.name not in seen, f"{r.name} on two pages of {who}"
                seen[r.name] = (r.namespace, r.namespace_id)
            offset += page
        return seen, total


@pytest.fixture
def listed(chart_repo: ChartRepoServer, tmp_path: Path) -> Iterator[Listed]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"{HELM} is not installed; run `make setup`")
    with on_helm(HELM, chart_repo.url, tmp_path) as (sim, channel):
        yield Listed(sim, release_pb2_grpc.ReleaseServiceStub(channel))


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_each_caller_pages_through_its_own_releases_and_every_change(listed: Listed) -> None:
    uids = {ns: listed.namespace(ns) for ns in ("team-a", "team-a-x", "team-b")}
    uids["default"] = str(listed.sim.store.get("namespaces", "default")["metadata"]["uid"])
    where = {**{f"a-{i}": "team-a" for i in range(5)}, "ax-1": "team-a-x", "ax-2": "team-a-x",
             **{f"b-{i}": "team-b" for i in range(3)}, **{f"d-{i}": "default" for i in range(4)}}
    for name, namespace in where.items():
        listed.add_record(name, namespace)
    eventually(lambda: listed.walk("admin", settled=False)[1] == len(where), "every record listed")

    def expected(who: str) -> dict[str, tuple[str, str]]:
        return {name: (ns, uids[ns]) for name, ns in where.items()
                if ns in SCOPES[who] or (ns.startswith("team-a-") and "team-a" in SCOPES[who])}

    def everyone_sees_their_own() -> None:
        # In turn, twice: a view kept for one caller must never answer another.
        for who in ("viewer-a", "editor-b", "admin", "editor-a") * 2:
            seen, total = listed.walk(who)
            assert seen == expected(who), who
            assert total == len(seen), who

    everyone_sees_their_own()

    # Someone else writes: a release in team-a, one in a namespace only the admin sees.
    where.update({"a-new": "team-a", "d-new": "default"})
    listed.add_record("a-new", "team-a")
    listed.add_record("d-new", "default")
    eventually(lambda: "a-new" in listed.walk("viewer-a", settled=False)[0],
               "the new team-a record")
    eventually(lambda: "d-new" in listed.walk("admin", settled=False)[0],
               "the new default record")
    everyone_sees_their_own()

    # A create through the server into a namespace helm creates: listed at once, with its id.
    listed.releases.CreateRelease(
        release_pb2.CreateReleaseRequest(
            chart_name="samples/etcd", version="8.11.1", cluster="test122",
            namespace="team-a-new", release_name="made", create_namespace=True),
        metadata=bearer(TOKENS["admin"]), timeout=120)
    made = listed.sim.store.get("namespaces", "team-a-new")["metadata"]["uid"]
    assert listed.walk("viewer-a")[0]["made"] == ("team-a-new", made)
    where["made"], uids["team-a-new"] = "team-a-new", made
    everyone_sees_their_own()

    # team-b deleted (its records with it) and created again: a new id for the new release.
    listed.sim.store.delete("namespaces", "team-b")
    for name in [n for n, ns in where.items() if ns == "team-b"]:
        del where[name]
    uids["team-b"] = listed.namespace("team-b")
    listed.add_record("b-again", "team-b")
    where["b-again"] = "team-b"
    eventually(lambda: listed.walk("editor-b", settled=False)[0] == expected("editor-b"),
               "the recreated namespace's release, with its new id")
    everyone_sees_their_own()
