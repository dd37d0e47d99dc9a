"""Keystone tokens as a credential of the policy file, with the test Keystone
(`tests/keystone_server.py`): climc logs in, finds the k8s endpoint in the catalog and calls
Capstan with `X-Auth-Token`; invalid or expired tokens are 401 in both REST dialects, an
unreachable Keystone 503; validations are cached."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from keystone_server import KeystoneUser, LoopbackKeystone, run_keystone

from capstan_server.auth.options import SecurityOptions
from capstan_server.auth.policy import PolicyError, parse_policy
from capstan_server.threaded import ServerHandle
from kubeserver.climc import Climc, ClimcError, keystone_login, register_cluster

POLICY = """\
keystone: {{url: "{url}"{credentials}}}
projects:
  team-a: [{{cluster: test122, namespaces: ["*"]}}]
subjects:
  - {{keystone_project: system, keystone_roles: [admin], role: admin}}
  - {{keystone_project: team, keystone_roles: [member], role: viewer, projects: [team-a]}}
"""
SERVICE = ', username: capstan, password: "capstan-pw", project: service'


@pytest.fixture
def keystone() -> Iterator[LoopbackKeystone]:
    users = {
        "admin": KeystoneUser("admin-pw", {"system": ["admin", "member"]}),
        "dev": KeystoneUser("dev-pw", {"team": ["member"], "other": ["member"]}),
        "capstan": KeystoneUser("capstan-pw", {"service": ["service"]}),
    }
    with run_keystone(LoopbackKeystone(users=users)) as running:
        yield running


def start(factory: Callable[..., ServerHandle], tmp_path: Path, url: str, *,
          dialect: str = "kubeserver", credentials: str = SERVICE) -> ServerHandle:
    policy = tmp_path / f"policy-{dialect}.yaml"
    policy.write_text(POLICY.format(url=url, credentials=credentials))
    return factory(rest_dialect=dialect, security=SecurityOptions(auth_policy=policy))


def get(server: ServerHandle, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(server.http_url + path,
                                     headers={"X-Auth-Token": token, "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("credentials", [SERVICE, ""], ids=["service-token", "self-validating"])
def test_climc_logs_in_with_keystone(capstan_server_factory: Callable[..., ServerHandle],
                                     keystone: LoopbackKeystone, tmp_path: Path,
                                     fake_kubeconfig: str, credentials: str) -> None:
    server = start(capstan_server_factory, tmp_path, keystone.url, credentials=credentials)
    keystone.k8s_url = server.http_url + "/api"
    token, endpoint = keystone_login(keystone.url, "admin", "admin-pw", "system")
    assert endpoint == server.http_url + "/api"
    register_cluster(server, "test122", fake_kubeconfig, token=token)
    climc = Climc(endpoint, token)
    assert [row["name"] for row in climc.cluster_list()] == ["test122"]
    assert climc.release_list() == []

    # A viewer of team-a: reads work, cluster changes are refused (403).
    viewer, _ = keystone_login(keystone.url, "dev", "dev-pw", "team")
    assert Climc(endpoint, viewer).release_list() == []
    with pytest.raises(ClimcError) as error:
        Climc(endpoint, viewer).repo_create("r", "https://charts.example/")
    assert error.value.status == 403
    # The same user scoped to a project the policy does not name: 401.
    stranger, _ = keystone_login(keystone.url, "dev", "dev-pw", "other")
    with pytest.raises(ClimcError) as error:
        Climc(endpoint, stranger).release_list()
    assert error.value.status == 401


def test_validations_are_cached_until_shortly_before_expiry(
        capstan_server_factory: Callable[..., ServerHandle], keystone: LoopbackKeystone,
        tmp_path: Path) -> None:
    server = start(capstan_server_factory, tmp_path, keystone.url)
    token = keystone.issue("admin", "system")
    assert get(server, "/api/releases", token)[0] == 200
    seen = keystone.validations
    assert get(server, "/api/releases", token)[0] == 200
    assert keystone.validations == seen  # cached
    # A token within the cache margin (30 s) of its expiry is checked every time.
    keystone.token_lifetime = 10
    short = keystone.issue("admin", "system")
    assert get(server, "/api/releases", short)[0] == 200
    seen = keystone.validations
    keystone.revoke(short)
    assert get(server, "/api/releases", short)[0] == 401
    assert keystone.validations > seen


@pytest.mark.parametrize("dialect", ["kubeserver", "capstan"])
def test_invalid_and_expired_tokens_are_401(capstan_server_factory: Callable[..., ServerHandle],
                                           keystone: LoopbackKeystone, tmp_path: Path,
                                           dialect: str) -> None:
    server = start(capstan_server_factory, tmp_path, keystone.url, dialect=dialect)
    keystone.token_lifetime = -5
    expired = keystone.issue("admin", "system")
    for token in ("gAAAAnot-a-keystone-token", expired):
        status, body = get(server, "/api/releases", token)
        assert status == 401, body
        if dialect == "kubeserver":
            assert body["error"]["class"] == "UnauthorizedError"
            assert body["error"]["code"] == 401
        else:
            assert body["status"] == "UNAUTHENTICATED"
        assert token not in json.dumps(body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("dialect", ["kubeserver", "capstan"])
def test_keystone_unreachable_is_503(capstan_server_factory: Callable[..., ServerHandle],
                                     tmp_path: Path, dialect: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/v3"
    server = start(capstan_server_factory, tmp_path, url, dialect=dialect, credentials="")
    status, body = get(server, "/api/releases", "gAAAAsome-token")
    assert status == 503, body
    text = json.dumps(body)
    assert "Keystone" in text and "gAAAAsome-token" not in text


def test_policy_file_checks_keystone_entries() -> None:
    with pytest.raises(PolicyError, match="no keystone"):
        parse_policy("subjects:\n  - {keystone_project: system, role: admin}\n")
    with pytest.raises(PolicyError, match=r"keystone\.url"):
        parse_policy("keystone: {url: ftp://x}\n")
    with pytest.raises(PolicyError, match="username and password"):
        parse_policy('keystone: {url: "https://k/v3", username: u}\n')
    with pytest.raises(PolicyError, match="only with keystone_project"):
        parse_policy('subjects:\n  - {name: t, token_sha256: "' + "a" * 64
                     + '", keystone_roles: [x], role: admin}\n')
    policy = parse_policy('keystone: {url: "https://k/v3"}\nsubjects:\n'
                          "  - {keystone_project: system, keystone_roles: [admin], role: admin}\n")
    assert policy.keystone is not None and policy.subjects[0].keystone_roles == ("admin",)
    assert policy.subjects[0].name == "keystone:system"
