"""What `capstan` prints: readable tables by default, the REST gateway's JSON with
`--output json`, and failures as one `Error: <STATUS>: <message>` line with a telling exit code."""

from __future__ import annotations

import socket

import grpc
import pytest
from client.fake_capstan import Failure, FakeCapstan

from capstan.cli.main import EXIT_CODES
from capstan.v1 import chart_pb2, release_pb2

from .runner import capstan


def etcd_release(version: int = 1) -> release_pb2.Release:
    release = release_pb2.Release(
        name="etcd-release", namespace="default", cluster="test122", chart="etcd",
        chart_version="8.11.1", app_version="3.5.8", version=version, status="deployed",
        type="external",
    )
    release.updated_at.FromSeconds(1683742419)
    return release


def history() -> release_pb2.GetReleaseHistoryResponse:
    response = release_pb2.GetReleaseHistoryResponse()
    for revision, (chart, status, description) in enumerate(
        [
            ("etcd-8.11.1", "superseded", "Install complete"),
            ("etcd-8.11.2", "deployed", "Upgrade complete"),
        ],
        start=1,
    ):
        item = response.revisions.add(
            revision=revision, chart=chart, status=status, description=description
        )
        item.updated.FromSeconds(1683742419 + revision)
    return response


def test_releases_are_listed_as_a_table(fake: FakeCapstan) -> None:
    fake.reply(
        "ListReleases",
        release_pb2.ListReleasesResponse(releases=[etcd_release()], total=1, limit=20),
    )

    result = capstan(fake.target, "k8s-release-list")

    assert result.code == 0
    assert result.stdout.splitlines() == [
        "NAME           NAMESPACE   CLUSTER   REVISION   STATUS     CHART         APP VERSION"
        "   UPDATED",
        "etcd-release   default     test122   1          deployed   etcd-8.11.1   3.5.8      "
        "   2023-05-10 18:13:39 UTC",
        "***  Total: 1  Limit: 20  Offset: 0  ***",
    ]


def unreachable_page() -> release_pb2.ListReleasesResponse:
    return release_pb2.ListReleasesResponse(
        releases=[etcd_release()], total=1, limit=20,
        unreachable_clusters=[
            release_pb2.UnreachableCluster(
                name="far", id="6a4c0d9e-1b7f-4a57-9a51-0d1c2e3f4a5b",
                message="cluster far is unreachable: connection refused",
            ),
            release_pb2.UnreachableCluster(
                name="farther", id="0b6e8f43-5c2d-4e1a-8f7b-9c0d1e2f3a4b",
                message="cluster farther: the server is currently unable to handle the request",
            ),
        ],
    )


def test_a_list_missing_unreachable_clusters_warns_on_stderr(fake: FakeCapstan) -> None:
    fake.reply("ListReleases", unreachable_page())

    result = capstan(fake.target, "k8s-release-list")

    assert result.code == 0
    # The table is what it would be; the warnings are on stderr, one line per cluster.
    assert result.stdout.splitlines()[1].startswith("etcd-release   default     test122")
    assert result.stdout.splitlines()[-1] == "***  Total: 1  Limit: 20  Offset: 0  ***"
    assert result.stderr.splitlines() == [
        "Warning: releases of cluster far are not listed "
        "(cluster far is unreachable: connection refused)",
        "Warning: releases of cluster farther are not listed "
        "(cluster farther: the server is currently unable to handle the request)",
    ]


def test_a_list_with_a_stale_cluster_says_how_stale_on_stderr(fake: FakeCapstan) -> None:
    page = unreachable_page()
    del page.unreachable_clusters[1:]
    page.unreachable_clusters[0].stale_seconds = 42.4
    fake.reply("ListReleases", page)

    result = capstan(fake.target, "k8s-release-list")

    assert result.code == 0
    assert result.stderr.splitlines() == [
        "Warning: releases of cluster far are listed as they were 42s ago "
        "(cluster far is unreachable: connection refused)",
    ]


def test_a_list_in_json_carries_the_unreachable_clusters(fake: FakeCapstan) -> None:
    fake.reply("ListReleases", unreachable_page())

    result = capstan(fake.target, "--output", "json", "k8s-release-list")

    assert (result.code, result.stderr) == (0, "")
    # The gateway's JSON: an unset timestamp is there, as null.
    assert result.json()["unreachable_clusters"] == [
        {
            "name": "far",
            "id": "6a4c0d9e-1b7f-4a57-9a51-0d1c2e3f4a5b",
            "message": "cluster far is unreachable: connection refused",
            "stale_seconds": 0.0,
            "last_synced": None,
        },
        {
            "name": "farther",
            "id": "0b6e8f43-5c2d-4e1a-8f7b-9c0d1e2f3a4b",
            "message": "cluster farther: the server is currently unable to handle the request",
            "stale_seconds": 0.0,
            "last_synced": None,
        },
    ]


def test_a_complete_list_prints_no_warning(fake: FakeCapstan) -> None:
    fake.reply(
        "ListReleases",
        release_pb2.ListReleasesResponse(releases=[etcd_release()], total=1, limit=20),
    )

    result = capstan(fake.target, "k8s-release-list")

    assert (result.code, result.stderr) == (0, "")


def test_a_list_in_json_is_the_gateway_s_page_shape(fake: FakeCapstan) -> None:
    fake.reply(
        "ListReleases",
        release_pb2.ListReleasesResponse(releases=[etcd_release()], total=1, limit=20),
    )

    page = capstan(fake.target, "--output", "json", "k8s-release-list").json()

    assert list(page) == ["releases", "total", "limit", "offset", "unreachable_clusters"]
    assert (page["total"], page["limit"], page["offset"]) == (1, 20, 0)
    (release,) = page["releases"]
    assert release["name"] == "etcd-release"
    assert release["chart_version"] == "8.11.1"
    assert release["updated_at"] == "2023-05-10T18:13:39Z"
    # Defaults are written out, as the gateway writes them.
    assert release["is_emulated"] is False
    assert release["repo_id"] == ""


def test_history_in_json_is_a_bare_array(fake: FakeCapstan) -> None:
    fake.reply("GetReleaseHistory", history())

    revisions = capstan(fake.target, "-o", "json", "k8s-release-history", "etcd-release").json()

    assert [(r["revision"], r["chart"], r["status"]) for r in revisions] == [
        (1, "etcd-8.11.1", "superseded"),
        (2, "etcd-8.11.2", "deployed"),
    ]
    assert set(revisions[0]) == {
        "revision", "status", "chart", "app_version", "description", "updated"
    }


def test_history_as_a_table(fake: FakeCapstan) -> None:
    fake.reply("GetReleaseHistory", history())

    lines = capstan(fake.target, "k8s-release-history", "etcd-release").stdout.splitlines()

    assert lines == [
        "REVISION   UPDATED                   STATUS       CHART         APP VERSION   DESCRIPTION",
        "1          2023-05-10 18:13:40 UTC   superseded   etcd-8.11.1                 "
        "Install complete",
        "2          2023-05-10 18:13:41 UTC   deployed     etcd-8.11.2                 "
        "Upgrade complete",
    ]


def test_delete_says_what_was_removed(fake: FakeCapstan) -> None:
    fake.reply("DeleteRelease", release_pb2.DeleteReleaseResponse(release=etcd_release()))

    assert capstan(fake.target, "k8s-release-delete", "etcd-release").stdout == (
        'release "etcd-release" uninstalled\n'
    )
    deleted = capstan(fake.target, "-o", "json", "k8s-release-delete", "etcd-release").json()
    assert deleted["release"]["name"] == "etcd-release"


def test_chart_show_has_the_default_values(fake: FakeCapstan) -> None:
    response = chart_pb2.GetChartResponse()
    response.chart.name, response.chart.version, response.chart.repo = "etcd", "8.11.2", "b"
    response.chart.chart.values.update({"image": {"tag": "3.5.8-debian-11-r8"}})
    response.chart.versions.add(version="8.11.2")
    response.chart.versions.add(version="8.11.1")
    fake.reply("GetChart", response)

    table = capstan(fake.target, "k8s-chart-show", "b", "etcd").stdout
    data = capstan(fake.target, "-o", "json", "k8s-chart-show", "b", "etcd").json()

    assert "VERSIONS:     8.11.2, 8.11.1" in table
    assert "VALUES:\n  image:\n    tag: 3.5.8-debian-11-r8\n" in table
    # `jq .chart.chart.values`, as in the seed document.
    assert data["chart"]["chart"]["values"] == {"image": {"tag": "3.5.8-debian-11-r8"}}


@pytest.mark.parametrize("code", list(EXIT_CODES))
def test_each_error_class_has_its_exit_code(fake: FakeCapstan, code: grpc.StatusCode) -> None:
    fake.reply("GetRelease", Failure(code, "it failed"))

    result = capstan(fake.target, "--timeout", "1", "k8s-release-show", "etcd-release")

    assert result.code == EXIT_CODES[code]
    assert result.stdout == ""
    assert result.stderr == f"Error: {code.name}: it failed\n"


def test_exit_codes_are_distinct() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert not {0, 1, 2} & set(EXIT_CODES.values())


def test_other_errors_exit_with_1(fake: FakeCapstan) -> None:
    fake.reply("GetRelease", Failure(grpc.StatusCode.INTERNAL, "helm failed"))

    assert capstan(fake.target, "k8s-release-show", "etcd-release").code == 1


def test_error_details_follow_the_error_line(fake: FakeCapstan) -> None:
    candidates = {"candidates": ["test122/default/etcd", "prod/default/etcd"]}
    fake.reply(
        "GetRelease",
        Failure(grpc.StatusCode.INVALID_ARGUMENT, "release name etcd is ambiguous", [candidates]),
    )

    result = capstan(fake.target, "k8s-release-show", "etcd")

    assert result.code == 3
    assert result.stderr.splitlines() == [
        "Error: INVALID_ARGUMENT: release name etcd is ambiguous",
        '  {"candidates": ["test122/default/etcd", "prod/default/etcd"]}',
    ]


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"

    result = capstan(endpoint, "k8s-cluster-list")

    assert result.code == 8
    assert result.stderr.startswith("Error: UNAVAILABLE: ")
    assert len(result.stderr.splitlines()) == 1
