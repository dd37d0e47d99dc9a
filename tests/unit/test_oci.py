"""OCI repository details that need no registry: urls, tags, challenges, stored options."""

from __future__ import annotations

from pathlib import Path

import pytest

from capstan_server.charts.oci import (
    OciLocation,
    OciOptions,
    _parse_challenge,
    _version_of,
    parse_oci_url,
    tag_of,
)
from capstan_server.errors import InvalidArgument
from capstan_server.registry import Registry


def test_urls() -> None:
    assert parse_oci_url("oci://Registry.Example:5000/bitnamicharts") == OciLocation(
        "registry.example:5000", "bitnamicharts")
    assert parse_oci_url("oci://ghcr.io/org/team/charts/").path == "org/team/charts"
    assert parse_oci_url("oci://[::1]:5000").repository("etcd") == "etcd"
    loc = parse_oci_url("oci://127.0.0.1:5000/charts")
    assert loc.reference("etcd", "1.0.0+b.1") == "oci://127.0.0.1:5000/charts/etcd:1.0.0_b.1"
    for bad in ("oci://", "oci:///charts", "oci://h/Upper", "oci://h/a//b", "oci://h/c?x=1",
                "oci://u:p@h/c", "oci://h o/c", "http://h/c", "oci://[\x91"):
        with pytest.raises(InvalidArgument):
            parse_oci_url(bad)


def test_tags_and_versions() -> None:
    assert tag_of("8.11.1+build.7") == "8.11.1_build.7"
    assert _version_of("8.11.1_build.7") == "8.11.1+build.7"
    assert _version_of("1.0.0-rc.1") == "1.0.0-rc.1"
    assert [_version_of(t) for t in ("latest", "v1", "1.0", "sha256-abc.sig")] == [None] * 4


def test_challenges() -> None:
    assert _parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:bitnamicharts/etcd:pull"') == ("bearer", {
            "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
            "scope": "repository:bitnamicharts/etcd:pull"})
    assert _parse_challenge('Basic realm="r"') == ("basic", {"realm": "r"})
    assert _parse_challenge("") == ("", {})


async def test_options_are_stored_and_go_with_the_repo(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    try:
        repo = await registry.add_repo("hub", "oci://registry-1.docker.io/bitnamicharts")
        assert await registry.oci_options(repo.id) == OciOptions()
        options = OciOptions(plain_http=False, ca_pem="PEM", charts=("etcd", "redis"))
        await registry.set_oci_options(repo.id, options)
        assert await registry.oci_options(repo.id) == options
        await registry.delete_repo(repo.id)
        again = await registry.add_repo("hub", "oci://registry-1.docker.io/bitnamicharts")
        assert await registry.oci_options(repo.id) == OciOptions()
        assert await registry.oci_options(again.id) == OciOptions()
    finally:
        await registry.close()
