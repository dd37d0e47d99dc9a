"""The test registry itself: `helm push` works against it with both helm majors, with and
without basic auth (what every OCI test builds on)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from oci_registry import pinned_helm


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_helm_pushes_to_the_registry(oci_registry: Any, packaged_charts: dict[str, Path],
                                     helm: str) -> None:
    oci_registry.push(pinned_helm(helm), packaged_charts["etcd-8.11.1"])
    with urllib.request.urlopen(f"http://{oci_registry.host}/v2/charts/etcd/tags/list") as r:
        assert json.load(r)["tags"] == ["8.11.1"]


def test_registry_with_auth_refuses_anonymous(oci_registry_auth: Any,
                                              packaged_charts: dict[str, Path]) -> None:
    oci_registry_auth.push(pinned_helm(), packaged_charts["etcd-8.11.1"])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{oci_registry_auth.host}/v2/_catalog")
    assert refused.value.code == 401
