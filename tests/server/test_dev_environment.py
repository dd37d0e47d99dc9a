"""`capstan-server --dev`: an embedded kubesim registered as cluster `default` and the sample
charts as repositories `samples` and `bitnami-new`, kept across restarts of one data dir."""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capstan_server.auth.options import SecurityOptions
from capstan_server.auth.setup import DEV_TOKEN_FILE
from capstan_server.threaded import ServerHandle

HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm"

pytestmark = pytest.mark.helm


@pytest.fixture
def helm() -> Path:
    if not HELM.exists():
        pytest.skip(".tools/bin/helm is missing; run `make setup`")
    return HELM


def _auth(handle: ServerHandle) -> dict[str, str]:
    """--dev serves with authentication on: the generated admin token is in the data dir."""
    token = (handle.data_dir / DEV_TOKEN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def _get(handle: ServerHandle, path: str) -> Any:
    request = urllib.request.Request(handle.http_url + path, headers=_auth(handle))
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _post(handle: ServerHandle, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(handle.http_url + path, data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             **_auth(handle)})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _registrations(handle: ServerHandle) -> dict[str, Any]:
    clusters = _get(handle, "/api/clusters")["clusters"]
    repos = _get(handle, "/api/repos")["repos"]
    return {
        "clusters": {c["name"]: (c["id"], c["server"]) for c in clusters},
        "repos": {r["name"]: (r["id"], r["url"]) for r in repos},
    }


@pytest.fixture
def occupy() -> Iterator[Callable[[int], None]]:
    """Hold a port busy until the test ends (to force the dev environment onto another)."""
    held: list[socket.socket] = []

    def take(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        held.append(sock)

    yield take
    for sock in held:
        sock.close()


def test_dev_mode_registers_the_cluster_and_repos_once_and_updates_them_in_place(
    capstan_server_factory: Callable[..., ServerHandle],
    helm: Path,
    tmp_path: Path,
    occupy: Callable[[int], None],
) -> None:
    data_dir = tmp_path / "data"
    first = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir)
    before = _registrations(first)
    assert set(before["clusters"]) == {"default"}
    assert set(before["repos"]) == {"samples", "bitnami-new"}
    charts = _get(first, "/api/charts?repo=bitnami-new&all_version=true")["charts"]
    assert {(c["name"], c["version"]) for c in charts} >= {("etcd", "8.11.1"), ("etcd", "8.11.2")}
    first.stop()

    # Same data dir, same ports when they are free: nothing changes, nothing is duplicated.
    second = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir)
    assert _registrations(second) == before
    second.stop()

    # The old ports are taken: new ones, registered under the same UUIDs.
    settings = json.loads((data_dir / "dev" / "settings.json").read_text())
    occupy(settings["kubesim_port"])
    occupy(settings["chart_repo_port"])
    third = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir)
    after = _registrations(third)
    cluster_id, old_server = before["clusters"]["default"]
    assert after["clusters"]["default"][0] == cluster_id
    assert after["clusters"]["default"][1] != old_server
    for name, (repo_id, old_url) in before["repos"].items():
        assert after["repos"][name][0] == repo_id
        assert after["repos"][name][1] != old_url
    # The repository index was refreshed: its charts resolve at the new address.
    chart = _get(third, "/api/charts/etcd?repo=samples&version=8.11.2")
    assert chart["chart"]["version"] == "8.11.2"


def test_dev_mode_keeps_helm_releases_across_restarts(
    capstan_server_factory: Callable[..., ServerHandle], helm: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = capstan_server_factory(driver="helm", dev=True, helm_bin=helm, data_dir=data_dir)
    created = _post(first, "/api/releases", {"chart_name": "bitnami-new/etcd",
                                              "cluster": "default", "namespace": "default",
                                              "release_name": "etcd-release"})
    assert created["status"] == "deployed"
    first.stop()

    second = capstan_server_factory(driver="helm", dev=True, helm_bin=helm, data_dir=data_dir)
    shown = _get(second, "/api/releases/etcd-release")
    assert (shown["id"], shown["status"], shown["version"]) == (created["id"], "deployed", 1)
    assert {"k8s_service", "secret", "statefulset"} <= shown["resources"].keys()


def test_dev_mode_serves_with_authentication_on(
    capstan_server_factory: Callable[..., ServerHandle], helm: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    handle = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir)
    token_file = data_dir / DEV_TOKEN_FILE
    assert token_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(handle.http_url + "/api/clusters", timeout=60)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert _get(handle, "/api/clusters")["total"] == 1
    token = token_file.read_text()
    handle.stop()
    # The token survives a restart, so a shell that exported it keeps working.
    again = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir)
    assert token_file.read_text() == token
    assert _get(again, "/api/clusters")["total"] == 1


def test_dev_mode_with_a_policy_of_ones_own(
    capstan_server_factory: Callable[..., ServerHandle], helm: Path, tmp_path: Path
) -> None:
    token = "viewer-token-of-the-operator"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "projects:\n  dev:\n    - cluster: default\n      namespaces: [default]\n"
        "subjects:\n  - name: viewer\n"
        f'    token_sha256: "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        "    role: viewer\n    projects: [dev]\n")
    data_dir = tmp_path / "data"
    # The embedded cluster and repositories are still registered (the server's own calls).
    handle = capstan_server_factory(driver="memory", dev=True, helm_bin=helm, data_dir=data_dir,
                                    security=SecurityOptions(auth_policy=policy))
    assert not (data_dir / DEV_TOKEN_FILE).exists()
    request = urllib.request.Request(handle.http_url + "/api/clusters",
                                     headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert [c["name"] for c in json.loads(response.read())["clusters"]] == ["default"]
