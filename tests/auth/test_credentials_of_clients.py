"""The CLI and the client library find their token: `--token`/`token=`, `$CAPSTAN_TOKEN`, a
token file, or (for a local endpoint) the `--dev` server's token in its data dir."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from auth_kit import TOKENS
from auth_server import Secured

from capstan.cli.main import run
from capstan.client import CapstanClient, PermissionDenied, Unauthenticated
from capstan.client.credentials import find_token, is_local_endpoint


def _cli(endpoint: str, *argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(["--endpoint", endpoint, "-o", "json", *argv], stdout=out, stderr=err, env=env)
    return code, out.getvalue(), err.getvalue()


def test_cli_token_from_flag_env_and_file(secured: Secured, tmp_path: Path) -> None:
    target = secured.server.grpc_target
    code, _, err = _cli(target, "k8s-cluster-list", env={})
    assert code == 10 and "UNAUTHENTICATED: missing credential" in err
    code, out, _ = _cli(target, "k8s-release-list", "--token", TOKENS["editor-b"], env={})
    assert code == 0 and [r["name"] for r in json.loads(out)["releases"]] == ["rel-b"]
    code, out, _ = _cli(target, "k8s-release-list", env={"CAPSTAN_TOKEN": TOKENS["viewer-a"]})
    assert code == 0 and [r["name"] for r in json.loads(out)["releases"]] == ["rel-a"]
    assert json.loads(out)["releases"][0]["project"] == "team-a"
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["viewer-a"] + "\n")
    code, _, err = _cli(target, "k8s-release-delete", "rel-a", "--cluster", "test122",
                        "--namespace", "team-a", env={"CAPSTAN_TOKEN_FILE": str(token_file)})
    assert code == 11 and "PERMISSION_DENIED" in err and "viewer" in err


def test_cli_finds_the_dev_token_for_a_local_endpoint_only(
    secured: Secured, tmp_path: Path
) -> None:
    data = tmp_path / "dev-data"
    (data / "dev").mkdir(parents=True)
    (data / "dev" / "admin.token").write_text(TOKENS["admin"] + "\n")
    env = {"CAPSTAN_DATA_DIR": str(data)}
    code, out, _ = _cli(secured.server.grpc_target, "k8s-cluster-list", env=env)
    assert code == 0 and json.loads(out)["total"] == 1
    assert find_token("capstan.example:50051", env=env) is None
    assert find_token("localhost:50051", env=env) == TOKENS["admin"]


def test_client_library_token(secured: Secured) -> None:
    target = secured.server.grpc_target
    with CapstanClient(target, token=TOKENS["editor-a"], retries=0) as client:
        page = client.list_releases()
        assert [r.name for r in page.releases] == ["rel-a"] and page.total == 1
        with pytest.raises(PermissionDenied):
            client.create_cluster("nope", kubeconfig="x")
    with CapstanClient(target, token="wrong", retries=0) as client, \
            pytest.raises(Unauthenticated, match="unknown credential"):
        client.list_releases()


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [("127.0.0.1:50051", True), ("localhost:1", True), ("[::1]:5", True),
     ("capstan:50051", False), ("10.0.0.1:50051", False)],
)
def test_local_endpoints(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local
