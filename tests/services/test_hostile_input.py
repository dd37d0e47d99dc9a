"""Issue 8's table over gRPC: each hostile input gets its answer at once, and leaves nothing
created or changed. (The same rows over REST: tests/gateway/test_rest_hostile.py.)"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_api import Api

from capstan.client import CapstanClient
from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server import limits

INVALID = grpc.StatusCode.INVALID_ARGUMENT
#: Generous for a loaded 2-core machine; the inputs below took 10-30 s before.
QUICK = 5.0


@pytest.fixture
def seeded(api: Api) -> Api:
    api.create(release_name="etcd-release")
    return api


def _create(**fields: Any) -> release_pb2.CreateReleaseRequest:
    request = release_pb2.CreateReleaseRequest(
        chart_name="bitnami-new/etcd", cluster="test122", namespace="default",
        release_name="fresh-release",
    )
    json_format.ParseDict(fields, request)
    return request


def _alias_bomb() -> str:
    text = "a0: &a0 [" + ",".join(['"lol"'] * 9) + "]\n"
    for level in range(1, 6):
        text += f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]\n"
    return text


def _nested_struct(depth: int) -> struct_pb2.Struct:
    inner = struct_pb2.Struct()
    for _ in range(depth):
        outer = struct_pb2.Struct()
        outer.fields["a"].struct_value.CopyFrom(inner)
        inner = outer
    return inner


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("8 KB digit version", {"version": "1" * 8000}),
        ("16 KB digit version", {"version": "1" * 16000}),
        ("4301 digits", {"version": "9" * 4301}),
        ("long echoed version", {"version": "x" * 8000}),
        ("backtracking constraint", {"version": "1  " * 85 + "!"}),
        ("long release name", {"release_name": "e" * 10_000}),
        ("long chart reference", {"chart_name": "bitnami-new/" + "e" * 10_000}),
        ("long description", {"description": "d" * (limits.MAX_DESCRIPTION_CHARS + 1)}),
        ("alias bomb", {"values": _alias_bomb()}),
        ("deep values_json", {"values_json": {"a": json.loads("[" * 33 + "]" * 33)}}),
        ("timeout past a day", {"timeout": limits.MAX_TIMEOUT_SECONDS + 1}),
    ],
)
def test_hostile_creates_are_refused_at_once(
    seeded: Api, case: str, fields: dict[str, Any]
) -> None:
    before = seeded.state()
    started = time.perf_counter()

    failure = seeded.fails(seeded.releases.CreateRelease, _create(**fields))

    assert time.perf_counter() - started < QUICK, case
    assert failure.code is INVALID, (case, failure)
    # Echoes are cut short: the status (message and details) stays far below gRPC's limit.
    assert len(failure.message) <= limits.MAX_ERROR_MESSAGE_CHARS + 40
    assert len(str(failure.details)) < limits.MAX_ERROR_DETAILS_BYTES
    assert seeded.state() == before


def test_an_undecodable_request_is_invalid_argument(seeded: Api) -> None:
    """Protobuf refuses messages nested past 100 levels; that is the caller's error."""
    before = seeded.state()
    request = _create()
    request.values_json.CopyFrom(_nested_struct(60))

    failure = seeded.fails(seeded.releases.CreateRelease, request)

    assert failure.code is INVALID
    assert "cannot be decoded" in failure.message
    assert seeded.state() == before


def test_a_slow_constraint_never_stalls_other_calls(seeded: Api) -> None:
    """The 8-16 KB versions froze the whole server for 10-31 s; now the parallel list call
    is answered while they are refused."""
    with ThreadPoolExecutor(4) as pool:
        hostile = [
            pool.submit(seeded.fails, seeded.releases.CreateRelease, _create(version="1" * n))
            for n in (8000, 16000, 16000)
        ]
        started = time.perf_counter()
        seeded.clusters.ListClusters(cluster_pb2.ListClustersRequest(), timeout=60)
        assert time.perf_counter() - started < QUICK
        assert all(f.result().code is INVALID for f in hostile)


BOMB = _alias_bomb()
DIGITS, LONG_X, LONG_URL = "1" * 8000, "x" * 8000, "http://" + "h" * 3000


@pytest.mark.parametrize(
    ("call", "request_"),
    [
        ("ListReleases", release_pb2.ListReleasesRequest(limit=2**31 - 1)),
        ("ListReleases", release_pb2.ListReleasesRequest(limit=-(2**31))),
        ("ListReleases", release_pb2.ListReleasesRequest(offset=-1)),
        ("ListReleases", release_pb2.ListReleasesRequest(search="s" * 5000)),
        ("GetRelease", release_pb2.GetReleaseRequest(id="e" * 10_000)),
        ("GetReleaseHistory", release_pb2.GetReleaseHistoryRequest(id="etcd-release", max=-1)),
        (
            "UpgradeRelease",
            release_pb2.UpgradeReleaseRequest(id="etcd-release", history_max=-(2**31)),
        ),
        ("UpgradeRelease", release_pb2.UpgradeReleaseRequest(id="etcd-release", version=DIGITS)),
        ("UpgradeRelease", release_pb2.UpgradeReleaseRequest(id="etcd-release", values=BOMB)),
        (
            "RollbackRelease",
            release_pb2.RollbackReleaseRequest(id="etcd-release", timeout=2**31 - 1),
        ),
        ("WatchRelease", release_pb2.WatchReleaseRequest(id="etcd-release", timeout=-1)),
        ("ListCharts", chart_pb2.ListChartsRequest(version="1" * 8000)),
        ("ListCharts", chart_pb2.ListChartsRequest(keyword="k" * 5000)),
        ("GetChart", chart_pb2.GetChartRequest(name="etcd", repo="bitnami-new", version=LONG_X)),
        ("CreateRepository", chart_pb2.CreateRepositoryRequest(name="r", url=LONG_URL)),
        ("CreateCluster", cluster_pb2.CreateClusterRequest(name="c" * 300, kubeconfig="x")),
        ("ListNamespaces", cluster_pb2.ListNamespacesRequest(cluster="test122", limit=1001)),
    ],
)
def test_hostile_requests_to_every_service(seeded: Api, call: str, request_: Any) -> None:
    before = seeded.state()
    stub = next(s for s in (seeded.releases, seeded.charts, seeded.clusters) if hasattr(s, call))
    method = getattr(stub, call)
    if call == "WatchRelease":
        with pytest.raises(grpc.RpcError) as err:
            list(method(request_, timeout=60))
        assert err.value.code() is INVALID
    else:
        started = time.perf_counter()
        failure = seeded.fails(method, request_)
        assert failure.code is INVALID, failure
        assert time.perf_counter() - started < QUICK
        assert len(failure.message) <= limits.MAX_ERROR_MESSAGE_CHARS + 40
    assert seeded.state() == before


def test_large_values_reach_every_client_and_lists_stay_small(seeded: Api) -> None:
    """A 5 MiB values file: the create succeeds, the CLI's client (same message limit as the
    server) reads the answer, and release lists keep working: a page carries no values unless
    `details` is asked."""
    values = "blob: " + "x" * (5 * 1024 * 1024) + "\n"
    with CapstanClient(seeded.server.grpc_target, timeout=60) as client:
        created = client.create_release(
            "bitnami-new/etcd", cluster="test122", namespace="default",
            release_name="big-values", version="8.11.1", values=values,
        )
        assert len(created.config["blob"]) == 5 * 1024 * 1024
        page = client.list_releases(limit=1000)
        assert {r.name for r in page.releases} == {"etcd-release", "big-values"}
        assert all(not r.config.fields for r in page.releases)
        shown = client.get_release("big-values")
        assert len(shown.config["blob"]) == 5 * 1024 * 1024
        detailed = client.list_releases(details=True, name="big-values")
        assert len(detailed.releases[0].config["blob"]) == 5 * 1024 * 1024
    # A plain gRPC client with gRPC's 4 MiB default can still list.
    listed = seeded.releases.ListReleases(release_pb2.ListReleasesRequest(), timeout=60)
    assert len(listed.releases) == 2


def test_message_limits_are_configurable(capstan_server_factory: Any) -> None:
    server = capstan_server_factory(max_message_bytes=1024 * 1024)
    with CapstanClient(server.grpc_target, timeout=30, retries=0) as client:
        with pytest.raises(Exception) as err:
            client.create_release("r/c", values="a: " + "x" * (2 * 1024 * 1024))
        assert getattr(err.value, "code", None) is grpc.StatusCode.RESOURCE_EXHAUSTED
    with CapstanClient(server.grpc_target, timeout=30, max_message_bytes=1024) as client:
        assert client.list_clusters().total == 0


def test_an_unknown_upper_case_uuid_is_not_found(seeded: Api) -> None:
    """Found by `make fuzz`: a valid UUID in upper case was refused as a bad release name."""
    request = release_pb2.GetReleaseRequest(id="7E4FEDA2-3EBD-550F-B330-40BC4CABA110")
    assert seeded.fails(seeded.releases.GetRelease, request).code is grpc.StatusCode.NOT_FOUND
    created = seeded.create(release_name="upper")
    found = seeded.releases.GetRelease(release_pb2.GetReleaseRequest(id=created.id.upper()))
    assert found.name == "upper"
