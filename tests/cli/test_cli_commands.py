"""Every climc command of DESIGN.md's table: its positional arguments and flags reach the request
fields, help texts are climc's, and global options behave as climc's do."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from client.fake_capstan import Failure, FakeCapstan

from capstan.cli.main import build_parser
from capstan.client import to_dict
from capstan.v1 import release_pb2

from .runner import capstan

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"

#: command line -> (RPC, the request fields it sets). Fields not listed keep their defaults.
COMMANDS: list[tuple[list[str], str, dict[str, Any]]] = [
    (
        ["k8s-release-create", "--cluster", "test122", "--namespace", "default",
         "--name", "etcd-release", "bitnami-new/etcd"],
        "CreateRelease",
        {"chart_name": "bitnami-new/etcd", "cluster": "test122", "namespace": "default",
         "release_name": "etcd-release"},
    ),
    (
        ["k8s-release-create", "--version", "8.11.1", "--dry-run", "--details",
         "--timeout", "5m", "--atomic", "--create-namespace", "--description", "first",
         "bitnami-new/etcd"],
        "CreateRelease",
        {"chart_name": "bitnami-new/etcd", "version": "8.11.1", "dry_run": True,
         "details": True, "timeout": 300, "atomic": True, "create_namespace": True,
         "description": "first"},
    ),
    (
        ["k8s-release-list", "--type", "external", "--name", "etcd-release",
         "--cluster", "test122", "--namespace", "default", "--search", "etc",
         "--limit", "5", "--offset", "10", "--details", "--deployed", "--deleting",
         "--failed", "--superseded", "--pending"],
        "ListReleases",
        {"type": "external", "name": "etcd-release", "cluster": "test122",
         "namespace": "default", "search": "etc", "limit": 5, "offset": 10, "details": True,
         "deployed": True, "deleting": True, "failed": True, "superseded": True,
         "pending": True},
    ),
    (
        ["k8s-release-show", "etcd-release", "--cluster", "test122", "--namespace", "default"],
        "GetRelease",
        {"id": "etcd-release", "cluster": "test122", "namespace": "default"},
    ),
    (
        ["k8s-release-upgrade", "--version", "8.11.2", "--dry-run", "--details",
         "--timeout", "120", "--reuse-values", "--reset-values", "--cluster", "test122",
         "--namespace", "default", "--wait", "--atomic", "etcd-release", "bitnami-new/etcd"],
        "UpgradeRelease",
        {"id": "etcd-release", "chart_name": "bitnami-new/etcd", "version": "8.11.2",
         "dry_run": True, "details": True, "timeout": 120, "reuse_values": True,
         "reset_values": True, "cluster": "test122", "namespace": "default", "wait": True,
         "atomic": True},
    ),
    (
        ["k8s-release-history", "etcd-release", "--max", "2", "--cluster", "test122",
         "--namespace", "default"],
        "GetReleaseHistory",
        {"id": "etcd-release", "max": 2, "cluster": "test122", "namespace": "default"},
    ),
    (
        ["k8s-release-rollback", "etcd-release", "2", "--description", "back",
         "--cluster", "test122", "--namespace", "default"],
        "RollbackRelease",
        {"id": "etcd-release", "revision": 2, "description": "back", "cluster": "test122",
         "namespace": "default"},
    ),
    (
        ["k8s-release-delete", "etcd-release", "--cluster", "test122", "--namespace", "default"],
        "DeleteRelease",
        {"id": "etcd-release", "cluster": "test122", "namespace": "default"},
    ),
    (
        ["k8s-release-recover", "etcd-release", "--action", "mark-failed", "--stuck-after",
         "60", "--cluster", "test122"],
        "RecoverRelease",
        {"id": "etcd-release", "action": "RECOVERY_ACTION_MARK_FAILED",
         "stuck_after_seconds": 60, "cluster": "test122"},
    ),
    (
        ["k8s-chart-show", "bitnami-new", "etcd", "--version", "8.11.1"],
        "GetChart",
        {"repo": "bitnami-new", "name": "etcd", "version": "8.11.1"},
    ),
    (
        ["k8s-chart-list", "--repo", "bitnami-new", "--keyword", "etcd", "--version",
         ">=8.0", "--all-version", "--limit", "50", "--offset", "1"],
        "ListCharts",
        {"repo": "bitnami-new", "keyword": "etcd", "version": ">=8.0", "all_version": True,
         "limit": 50, "offset": 1},
    ),
    (
        ["k8s-repo-create", "bitnami-new", "http://charts.example", "--type", "external",
         "--username", "u", "--password", "p"],
        "CreateRepository",
        {"name": "bitnami-new", "url": "http://charts.example", "type": "external",
         "username": "u", "password": "p"},
    ),
    (
        ["k8s-repo-create", "bitnamicharts", "oci://registry.example/charts", "--plain-http",
         "--chart", "etcd", "--chart", "redis"],
        "CreateRepository",
        {"name": "bitnamicharts", "url": "oci://registry.example/charts", "plain_http": True,
         "charts": ["etcd", "redis"]},
    ),
    (["k8s-repo-list"], "ListRepositories", {}),
    (["k8s-repo-delete", "bitnami-new"], "DeleteRepository", {"id": "bitnami-new"}),
    (
        ["k8s-repo-delete", "bitnami-new", "--force"],
        "DeleteRepository",
        {"id": "bitnami-new", "force": True},
    ),
    (["k8s-repo-sync", "bitnami-new"], "SyncRepository", {"id": "bitnami-new"}),
    (
        ["k8s-cluster-create", "test122", "--kubeconfig", "{kubeconfig}"],
        "CreateCluster",
        {"name": "test122", "kubeconfig": KUBECONFIG},
    ),
    (["k8s-cluster-list"], "ListClusters", {}),
    (["k8s-cluster-delete", "test122"], "DeleteCluster", {"id": "test122"}),
    (
        ["k8s-cluster-delete", "test122", "--force"],
        "DeleteCluster",
        {"id": "test122", "force": True},
    ),
    (["k8s-namespace-list", "--cluster", "test122"], "ListNamespaces", {"cluster": "test122"}),
]


@pytest.mark.parametrize(
    ("argv", "method", "fields"), COMMANDS, ids=[" ".join(c[0][:1] + c[0][-1:]) for c in COMMANDS]
)
def test_each_command_sends_its_request(
    fake: FakeCapstan, tmp_path: Path, argv: list[str], method: str, fields: dict[str, Any]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    argv = [str(kubeconfig) if arg == "{kubeconfig}" else arg for arg in argv]

    result = capstan(fake.target, *argv)

    assert result.code == 0, result.stderr
    (request,) = fake.received(method)
    sent = {key: value for key, value in to_dict(request).items()
            if value not in ("", 0, False, [], {}, None)}
    assert sent == fields


def test_every_command_of_the_design_table_exists() -> None:
    parser = build_parser({})
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(subparsers.choices) == {
        "k8s-release-create", "k8s-release-list", "k8s-release-show", "k8s-release-upgrade",
        "k8s-release-history", "k8s-release-rollback", "k8s-release-delete",
        "k8s-release-recover", "k8s-chart-show", "k8s-chart-list", "k8s-repo-create",
        "k8s-repo-list", "k8s-repo-delete", "k8s-repo-sync", "k8s-cluster-create",
        "k8s-cluster-list", "k8s-cluster-delete", "k8s-namespace-list",
    }


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        ("k8s-release-create", [
            "Create release", "CHARTNAME", "Helm chart name, e.g stable/etcd",
            "Kubernetes cluster name", "Specify values in a YAML file (can specify multiple)",
            "Specify the exact chart version to install. If not specified, latest version",
            "Simulate an install",
            "Show release deploy details, include kubernetes created resources",
            "Time in seconds to wait for any individual kubernetes operation",
            "Release name, If unspecified, it will autogenerate one for you",
            "Namespace of this resource",
        ]),
        ("k8s-release-list", [
            "List releases", "Page limit", "Page offset", "Show more details",
            "Filter results by a simple keyword search", "List by name",
            "Show deployed status releases", "Show pending status releases",
            "{internal,external}", "Release type",
        ]),
        ("k8s-release-show", ["Get helm release details", "Name ident of the resource"]),
        ("k8s-release-upgrade", [
            "Upgrade release", "Release instance name", "reuse the last release's values",
            "reset the values to the ones built into the chart",
        ]),
        ("k8s-release-history", ["Get release history", "History limit size"]),
        ("k8s-release-rollback", [
            "Rollback release by history revision number", "REVISION",
            "Release history revision number", "Release rollback description string",
        ]),
        ("k8s-release-delete", ["Delete release", "Release instance name"]),
    ],
)
def test_help_texts_are_climc_s(
    command: str, texts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert capstan("127.0.0.1:1", command, "--help").code == 0

    # argparse wraps help at the terminal width; compare with the line breaks taken out.
    help_text = " ".join(capsys.readouterr().out.split())
    for text in texts:
        assert text in help_text


def test_the_endpoint_comes_from_the_environment(fake: FakeCapstan) -> None:
    import io

    from capstan.cli.main import run

    out = io.StringIO()
    code = run(["k8s-repo-list"], stdout=out, stderr=io.StringIO(),
               env={"CAPSTAN_ENDPOINT": fake.target})

    assert code == 0
    assert len(fake.received("ListRepositories")) == 1


def test_global_options_are_also_accepted_after_the_command(fake: FakeCapstan) -> None:
    result = capstan("127.0.0.1:1", "k8s-release-list", "--endpoint", fake.target, "-o", "json")

    assert result.code == 0, result.stderr
    assert result.json() == {
        "releases": [], "total": 0, "limit": 0, "offset": 0, "unreachable_clusters": []
    }


def test_a_missing_positional_is_a_usage_error(fake: FakeCapstan) -> None:
    result = capstan(fake.target, "k8s-release-rollback", "etcd-release")

    assert result.code == 2
    assert fake.requests == []


def test_a_bad_timeout_is_a_usage_error(fake: FakeCapstan) -> None:
    assert capstan(fake.target, "k8s-release-create", "--timeout", "soon", "r/c").code == 2
    assert fake.requests == []


def test_a_missing_kubeconfig_is_a_usage_error(fake: FakeCapstan, tmp_path: Path) -> None:
    result = capstan(
        fake.target, "k8s-cluster-create", "test122", "--kubeconfig", str(tmp_path / "none")
    )

    assert result.code == 2
    assert result.stderr.startswith("Error: kubeconfig ")
    assert fake.requests == []


def test_debug_prints_each_request_and_masks_secrets(fake: FakeCapstan) -> None:
    result = capstan(
        fake.target, "--debug", "k8s-repo-create", "bitnami-new", "http://c", "--password", "pw"
    )

    assert result.code == 0
    assert f"DEBUG: grpc {fake.target} /capstan.v1.ChartService/CreateRepository" in result.stderr
    assert '"name": "bitnami-new"' in result.stderr
    assert '"password": "***"' in result.stderr
    assert "pw" not in result.stderr.replace("***", "")


def test_the_deadline_option_reaches_the_call(fake: FakeCapstan) -> None:
    result = capstan(fake.target, "--debug", "--timeout", "7", "k8s-release-show", "x")

    assert result.code == 0
    assert "(deadline 7s)" in result.stderr


def test_a_release_answer_is_shown_as_fields(fake: FakeCapstan) -> None:
    release = release_pb2.Release(
        name="etcd-release", namespace="default", cluster="test122", chart="etcd",
        chart_version="8.11.1", version=2, status="deployed",
    )
    release.config.update({"image": {"tag": "3.5.8-debian-11-r9"}, "replicaCount": 3})
    release.resources["statefulset"].items.add(name="etcd-release")
    release.resources["k8s_service"].items.add(name="etcd-gone", missing=True)
    release.resources["customresourcedefinition"].items.add(name="w", error="bad YAML")
    fake.reply("GetRelease", release)

    result = capstan(fake.target, "k8s-release-show", "etcd-release")

    assert result.code == 0
    lines = result.stdout.splitlines()
    assert "NAME:         etcd-release" in lines
    assert "CHART:        etcd-8.11.1" in lines
    assert "REVISION:     2" in lines
    assert "CONFIG:\n  image:\n    tag: 3.5.8-debian-11-r9\n  replicaCount: 3\n" in result.stdout
    assert "  k8s_service:\n  - etcd-gone (missing)\n" in result.stdout
    assert "  statefulset:\n  - etcd-release\n" in result.stdout
    assert "  customresourcedefinition:\n  - 'w (cannot parse: bad YAML)'\n" in result.stdout


def test_the_console_script_runs_and_exits_with_the_command_s_code(fake: FakeCapstan) -> None:
    script = Path(sys.executable).with_name("capstan")
    env = {**os.environ, "CAPSTAN_ENDPOINT": fake.target}
    fake.reply("GetRelease", Failure(grpc.StatusCode.NOT_FOUND, "release x not found"))

    listed = subprocess.run(
        [str(script), "-o", "json", "k8s-repo-list"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    missing = subprocess.run(
        [str(script), "k8s-release-show", "x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )

    assert (listed.returncode, json.loads(listed.stdout)["repos"]) == (0, [])
    assert (missing.returncode, missing.stderr) == (4, "Error: NOT_FOUND: release x not found\n")
