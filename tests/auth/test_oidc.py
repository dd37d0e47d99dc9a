"""Acceptance 4: OIDC/JWT bearer tokens, with a JWKS and tokens generated here (PyJWT and
cryptography). Signature, issuer, audience, expiry, not-before, and the mapping of the
subject and group claims are each checked; keys also come from a `jwks_url`, fetched and
cached."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from auth_kit import Signer, policy_yaml
from auth_server import Secured, bearer

from capstan.v1 import cluster_pb2, cluster_pb2_grpc
from capstan_server.auth.options import SecurityOptions
from capstan_server.threaded import ServerHandle


def _code(secured: Secured, token: str, call: str = "ListClusters") -> tuple[str, str]:
    stub = secured.clusters()
    try:
        if call == "ListClusters":
            stub.ListClusters(cluster_pb2.ListClustersRequest(), metadata=bearer(token))
        else:
            stub.DeleteCluster(cluster_pb2.DeleteClusterRequest(id="nope"),
                               metadata=bearer(token))
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""  # type: ignore[attr-defined]
    return "OK", ""


def test_each_claim_is_checked(secured: Secured) -> None:
    sign = secured.signer
    assert _code(secured, sign.token("alice")) == ("OK", "")
    # Someone else's key, same kid.
    forged = Signer(kid=sign.kid).token("alice")
    assert _code(secured, forged) == ("UNAUTHENTICATED",
                                      "unknown credential: the JWT signature does not verify")
    code, message = _code(secured, sign.token("alice", iss="https://evil.test"))
    assert code == "UNAUTHENTICATED" and "not from issuer" in message
    code, message = _code(secured, sign.token("alice", aud="someone-else"))
    assert code == "UNAUTHENTICATED" and "audience 'capstan'" in message
    code, message = _code(secured, sign.token("alice", exp_in=-60))
    assert (code, message) == ("UNAUTHENTICATED", "expired credential: the JWT has expired")
    # Within the policy's 5 s leeway an expired token still passes; a future nbf does not.
    assert _code(secured, sign.token("alice", exp_in=-2))[0] == "OK"
    code, message = _code(secured, sign.token("alice", nbf_in=120))
    assert code == "UNAUTHENTICATED" and "not valid yet" in message
    code, message = _code(secured, sign.token("mallory"))
    assert code == "UNAUTHENTICATED" and "name no subject" in message


def test_subject_and_group_claims_map_to_roles(secured: Secured) -> None:
    sign = secured.signer
    # alice (oidc_subject) is an editor: no cluster changes.
    assert _code(secured, sign.token("alice"), "DeleteCluster")[0] == "PERMISSION_DENIED"
    # Anyone in group platform-admins is an admin (the cluster is then simply not found).
    admin = sign.token("bob", groups=["staff", "platform-admins"])
    assert _code(secured, admin, "DeleteCluster")[0] == "NOT_FOUND"
    assert _code(secured, sign.token("bob", groups=["staff"]))[0] == "UNAUTHENTICATED"


class _JwksServer(http.server.ThreadingHTTPServer):
    jwks: bytes = b""
    hits = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _JwksServer

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.server.jwks)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_keys_from_a_jwks_url_are_fetched_once_and_cached(
    capstan_server_factory: Callable[..., ServerHandle], jwks_server: _JwksServer,
    tmp_path: Path,
) -> None:
    signer = Signer()
    jwks_server.jwks = json.dumps(signer.jwks()).encode()
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/jwks.json"
    text = policy_yaml(tmp_path / "unused.json").replace(
        f"jwks_file: {tmp_path / 'unused.json'}", f"jwks_url: {url}")
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    server = capstan_server_factory(security=SecurityOptions(auth_policy=policy))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        for _ in range(3):
            stub.ListClusters(cluster_pb2.ListClustersRequest(),
                              metadata=bearer(signer.token("alice")))
        with pytest.raises(grpc.RpcError) as forged:
            stub.ListClusters(cluster_pb2.ListClustersRequest(),
                              metadata=bearer(Signer(kid="other").token("alice")))
        assert forged.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert 1 <= jwks_server.hits <= 2  # the unknown kid may trigger one refresh
