"""Release, namespace, cluster and repository names follow Helm's and Kubernetes' rules."""

from __future__ import annotations

import pytest

from capstan_server.errors import InvalidArgument
from capstan_server.names import (
    generate_release_name,
    validate_cluster_name,
    validate_namespace,
    validate_release_name,
    validate_repo_name,
)


@pytest.mark.parametrize(
    "name", ["etcd-release", "a", "a1", "1a", "my.release", "x" * 53, "a-b.c-d"]
)
def test_valid_release_names(name: str) -> None:
    assert validate_release_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Etcd",  # uppercase
        "etcd_release",  # underscore
        "x" * 54,  # over 53
        "-etcd",  # leading dash
        "--kubeconfig=/x",  # a flag to helm
        "etcd-",  # trailing dash
        "a..b",
        ".a",
        "a b",
        "a/b",
    ],
)
def test_invalid_release_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_release_name(name)
    assert "release name" in err.value.message


def test_namespace_and_cluster_names_are_dns_labels() -> None:
    assert validate_namespace("kube-system") == "kube-system"
    assert validate_cluster_name("test122") == "test122"
    for bad in ("", "a.b", "A", "a_b", "x" * 64, "-a"):
        with pytest.raises(InvalidArgument):
            validate_namespace(bad)
        with pytest.raises(InvalidArgument):
            validate_cluster_name(bad)
    assert validate_namespace("x" * 63)


def test_repo_names_allow_dots() -> None:
    assert validate_repo_name("bitnami-new") == "bitnami-new"
    assert validate_repo_name("charts.example") == "charts.example"
    for bad in ("", "Bitnami", "a/b", "..", "x" * 64):
        with pytest.raises(InvalidArgument):
            validate_repo_name(bad)


def test_generated_names_are_helm_style_and_valid() -> None:
    assert generate_release_name("etcd", now=1683742419) == "etcd-1683742419"
    assert generate_release_name("etcd", now=1683742419, attempt=2) == "etcd-1683742419-2"
    long = generate_release_name("x" * 80, now=1683742419)
    assert len(long) <= 53 and long.endswith("-1683742419")
    assert validate_release_name(generate_release_name("Weird_Chart.Name", now=1))
