"""Issue 2's acceptance list over gRPC: each bad request gets the stated status code and leaves
nothing behind (no new release, no new revision, registry unchanged). One release,
`etcd-release` (revision 1), exists before each case."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_api import Api

from capstan.v1 import release_pb2

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


@pytest.fixture
def seeded(api: Api) -> Api:
    api.create(release_name="etcd-release")
    return api


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"release_name": "Etcd-release"}, INVALID),  # uppercase
        ({"release_name": "etcd_release"}, INVALID),  # underscore
        ({"release_name": "e" * 54}, INVALID),  # over 53 characters
        ({"release_name": "-etcd"}, INVALID),  # starts with -
        ({"release_name": "--kubeconfig=/x"}, INVALID),  # would be a flag to helm
        ({"chart_name": "no-such-repo/etcd"}, NOT_FOUND),
        ({"chart_name": "bitnami-new/no-such-chart"}, NOT_FOUND),
        ({"version": "9.9.9"}, NOT_FOUND),
        ({"version": "^7"}, NOT_FOUND),
        ({"version": "not-a-version"}, INVALID),
        ({"cluster": "no-such-cluster"}, NOT_FOUND),
        ({"namespace": "no-such-namespace"}, NOT_FOUND),
        ({"namespace": "Bad_Namespace"}, INVALID),
        ({"release_name": "etcd-release"}, grpc.StatusCode.ALREADY_EXISTS),  # taken
        ({"values": "image: [unclosed"}, INVALID),
        ({"values": "a: 1\n---\nb: : 2\n"}, INVALID),
        ({"values": "- a\n- b\n"}, INVALID),  # not a mapping
        ({"values": "replicaCount: three\n"}, INVALID),  # fails values.schema.json
        ({"values_json": {"service": {"ports": {"client": 70000}}}}, INVALID),  # schema again
        ({"chart_name": "./etcd"}, INVALID),
        ({"chart_name": "/tmp/etcd-8.11.1.tgz"}, INVALID),
        ({"chart_name": "file:///tmp/etcd-8.11.1.tgz"}, INVALID),
        ({"chart_name": "https://example.com/etcd-8.11.1.tgz"}, INVALID),
        ({"chart_name": "oci://registry.example/etcd"}, INVALID),
        ({"chart_name": "etcd"}, INVALID),
        ({"chart_name": ""}, INVALID),
        ({"type": "sideways"}, INVALID),
        ({"timeout": -1}, INVALID),
    ],
)
def test_create_errors(seeded: Api, changes: dict[str, Any], code: grpc.StatusCode) -> None:
    before = seeded.state()
    request = release_pb2.CreateReleaseRequest(
        chart_name="bitnami-new/etcd",
        cluster="test122",
        namespace="default",
        release_name="fresh-release",
        version="8.11.1",
    )
    for field, value in changes.items():
        if field == "values_json":
            request.values_json.update(value)
        else:
            setattr(request, field, value)
    failure = seeded.fails(seeded.releases.CreateRelease, request)
    assert failure.code == code, failure.message
    assert failure.message
    assert seeded.state() == before


def test_schema_errors_name_the_failing_field(seeded: Api) -> None:
    request = release_pb2.CreateReleaseRequest(
        chart_name="bitnami-new/etcd",
        cluster="test122",
        release_name="r",
        values="replicaCount: x\n",
    )
    failure = seeded.fails(seeded.releases.CreateRelease, request)
    assert "$.replicaCount" in failure.message
    assert failure.details == [
        {"field": "$.replicaCount", "description": "'x' is not of type 'integer'"}
    ]


def test_yaml_errors_point_at_document_and_line(seeded: Api) -> None:
    request = release_pb2.CreateReleaseRequest(
        chart_name="bitnami-new/etcd",
        cluster="test122",
        release_name="r",
        values="image:\n  tag: r9\n---\nreplicaCount: 1\nimage: : x\n",
    )
    failure = seeded.fails(seeded.releases.CreateRelease, request)
    assert "document 2, line 2" in failure.message
    assert failure.details[0]["document"] == 2


Call = tuple[str, Any]
UNKNOWN_RELEASE: list[Call] = [
    ("GetRelease", release_pb2.GetReleaseRequest(id="no-such-release")),
    ("GetRelease", release_pb2.GetReleaseRequest(id="6f1c7a52-0000-4000-8000-000000000000")),
    (
        "UpgradeRelease",
        release_pb2.UpgradeReleaseRequest(id="no-such-release", chart_name="bitnami-new/etcd"),
    ),
    ("GetReleaseHistory", release_pb2.GetReleaseHistoryRequest(id="no-such-release")),
    ("RollbackRelease", release_pb2.RollbackReleaseRequest(id="no-such-release", revision=1)),
    ("DeleteRelease", release_pb2.DeleteReleaseRequest(id="no-such-release")),
    ("RecoverRelease", release_pb2.RecoverReleaseRequest(id="no-such-release", action=1)),
    ("GetRelease", release_pb2.GetReleaseRequest(id="etcd-release", namespace="kube-system")),
    ("GetRelease", release_pb2.GetReleaseRequest(id="etcd-release", cluster="no-such-cluster")),
]


@pytest.mark.parametrize(("method", "request_"), UNKNOWN_RELEASE)
def test_unknown_release_or_cluster_is_not_found(seeded: Api, method: str, request_: Any) -> None:
    before = seeded.state()
    failure = seeded.fails(getattr(seeded.releases, method), request_)
    assert failure.code == NOT_FOUND, failure.message
    assert seeded.state() == before


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("GetRelease", release_pb2.GetReleaseRequest(id="Etcd_Release")),
        ("GetRelease", release_pb2.GetReleaseRequest(id="")),
        ("GetReleaseHistory", release_pb2.GetReleaseHistoryRequest(id="etcd-release", max=-1)),
        ("RollbackRelease", release_pb2.RollbackReleaseRequest(id="etcd-release", revision=-1)),
        (
            "UpgradeRelease",
            release_pb2.UpgradeReleaseRequest(id="etcd-release", chart_name="./etcd"),
        ),
        ("UpgradeRelease", release_pb2.UpgradeReleaseRequest(id="etcd-release", values="x: [")),
        (
            "UpgradeRelease",
            release_pb2.UpgradeReleaseRequest(id="etcd-release", release_name="another-release"),
        ),
        ("ListReleases", release_pb2.ListReleasesRequest(limit=1001)),
        ("ListReleases", release_pb2.ListReleasesRequest(type="sideways")),
        ("RecoverRelease", release_pb2.RecoverReleaseRequest(id="etcd-release")),  # no action
    ],
)
def test_bad_arguments_are_invalid(seeded: Api, method: str, request_: Any) -> None:
    before = seeded.state()
    failure = seeded.fails(getattr(seeded.releases, method), request_)
    assert failure.code == INVALID, failure.message
    assert seeded.state() == before


def test_unknown_revision_is_not_found(seeded: Api) -> None:
    before = seeded.state()
    failure = seeded.fails(
        seeded.releases.RollbackRelease,
        release_pb2.RollbackReleaseRequest(id="etcd-release", revision=7),
    )
    assert failure.code == NOT_FOUND
    # Revision 0 means the previous one, and a release with one revision has none.
    failure = seeded.fails(
        seeded.releases.RollbackRelease, release_pb2.RollbackReleaseRequest(id="etcd-release")
    )
    assert failure.code == NOT_FOUND
    assert seeded.state() == before


def test_upgrade_to_unknown_chart_or_version_changes_nothing(seeded: Api) -> None:
    before = seeded.state()
    for request in (
        release_pb2.UpgradeReleaseRequest(id="etcd-release", chart_name="bitnami-new/nope"),
        release_pb2.UpgradeReleaseRequest(id="etcd-release", version="9.9.9"),
        release_pb2.UpgradeReleaseRequest(id="etcd-release", chart_name="nope/etcd"),
    ):
        assert seeded.fails(seeded.releases.UpgradeRelease, request).code == NOT_FOUND
    failure = seeded.fails(
        seeded.releases.UpgradeRelease,
        release_pb2.UpgradeReleaseRequest(id="etcd-release", values="replicaCount: -1\n"),
    )
    assert failure.code == INVALID and "$.replicaCount" in failure.message
    assert seeded.state() == before
