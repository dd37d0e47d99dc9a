"""Acceptance 3 and TLS: gRPC over TLS and the gateway over HTTPS, with client certificates
from a CA made here. A known certificate subject (CN or URI SAN) gets its role; no certificate,
or one from an unknown CA, is refused; the gateway's hop keeps the HTTPS caller's identity and
cannot be fooled by a client sending the gateway's own metadata."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from auth_kit import TOKENS, Ca, Signer, write_policy
from auth_server import bearer

from capstan.cli.main import run as capstan_cli
from capstan.client import CapstanClient
from capstan.v1 import cluster_pb2, cluster_pb2_grpc, release_pb2, release_pb2_grpc
from capstan_server.auth.options import SecurityOptions
from capstan_server.threaded import ServerHandle


@dataclass
class Tls:
    server: ServerHandle
    ca: Path
    files: dict[str, tuple[Path, Path]]

    def channel(self, who: str | None) -> grpc.Channel:
        cert = key = None
        if who is not None:
            cert, key = (p.read_bytes() for p in self.files[who])
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(), private_key=key, certificate_chain=cert)
        return grpc.secure_channel(self.server.grpc_target, credentials)

    def https(self, path: str, who: str | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
        context = ssl.create_default_context(cafile=str(self.ca))
        if who is not None:
            cert, key = self.files[who]
            context.load_cert_chain(str(cert), str(key))
        request = urllib.request.Request(self.server.http_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def tls(
    capstan_server_factory: Callable[..., ServerHandle], fake_kubeconfig: str, tmp_path: Path
) -> Tls:
    ca, stranger = Ca(), Ca("some other CA")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.pem)
    files = {
        "server": ca.issue("capstan", ips=["127.0.0.1"], dns=["localhost"]).write(
            tmp_path, "server"),
        "deployer": ca.issue("deployer", client=True).write(tmp_path, "deployer"),
        "mesh": ca.issue("ignored", uris=["spiffe://capstan.test/viewer"], client=True).write(
            tmp_path, "mesh"),
        "nobody": ca.issue("nobody", client=True).write(tmp_path, "nobody"),
        "stranger": stranger.issue("deployer", client=True).write(tmp_path, "stranger"),
    }
    cert, key = files["server"]
    security = SecurityOptions(auth_policy=write_policy(tmp_path, Signer()), tls_cert=cert,
                               tls_key=key, client_ca=ca_file)
    server = capstan_server_factory(security=security)
    kit = Tls(server, ca_file, files)
    with kit.channel("nobody") as channel:
        admin = bearer(TOKENS["admin"])  # a token decides over the certificate
        cluster_pb2_grpc.ClusterServiceStub(channel).CreateCluster(
            cluster_pb2.CreateClusterRequest(name="test122", kubeconfig=fake_kubeconfig),
            metadata=admin, timeout=60)
    return kit


def _list(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    stub = release_pb2_grpc.ReleaseServiceStub(channel)
    try:
        stub.ListReleases(release_pb2.ListReleasesRequest(), metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined,no-any-return]
    return "OK"


def test_grpc_client_certificates(tls: Tls) -> None:
    with tls.channel("deployer") as channel:
        assert _list(channel) == "OK"
        # The deployer is an editor of team-a: no cluster changes.
        with pytest.raises(grpc.RpcError) as denied:
            cluster_pb2_grpc.ClusterServiceStub(channel).DeleteCluster(
                cluster_pb2.DeleteClusterRequest(id="test122"), timeout=30)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "'deployer'" in (denied.value.details() or "")  # type: ignore[attr-defined]
    with tls.channel("mesh") as channel:  # named by its URI SAN
        assert _list(channel) == "OK"
    with tls.channel("nobody") as channel:
        assert _list(channel) == "UNAUTHENTICATED"
        # Metadata only the gateway may send is not believed from anyone else.
        forged = (("x-capstan-peer-identity", '["CN=deployer"]'),)
        assert _list(channel, forged) == "UNAUTHENTICATED"
        assert _list(channel, (("x-capstan-gateway", "guess"), *forged)) == "UNAUTHENTICATED"
    # No certificate, or one of another CA: the TLS handshake itself fails.
    for who in (None, "stranger"):
        with tls.channel(who) as channel:
            assert _list(channel) == "UNAVAILABLE"


def test_https_gateway_keeps_the_callers_identity(tls: Tls) -> None:
    assert tls.server.http_url.startswith("https://")
    status, body = tls.https("/api/releases", "deployer")
    assert status == 200 and body["total"] == 0
    status, body = tls.https("/api/clusters", "mesh")  # viewer of team-b, on cluster "test*"
    assert status == 200 and [c["name"] for c in body["clusters"]] == ["test122"]
    status, body = tls.https("/api/releases")
    assert status == 401 and "missing credential" in body["message"]
    status, body = tls.https("/api/releases", headers={
        "X-Capstan-Peer-Identity": '["CN=deployer"]', "X-Capstan-Gateway": "guess"})
    assert status == 401
    status, _ = tls.https("/api/releases", headers={"X-Auth-Token": TOKENS["viewer-a"]})
    assert status == 200
    status, body = tls.https("/api/releases", "nobody")
    assert status == 401 and "unknown credential" in body["message"]
    # TLS 1.3 reports a refused client certificate after the handshake: a reset or an alert.
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        tls.https("/api/releases", "stranger")
    assert tls.https("/healthz")[0] == 200
    assert tls.https("/openapi.json")[0] == 200


def test_client_library_and_cli_take_tls_files(tls: Tls) -> None:
    cert, key = tls.files["deployer"]
    target = tls.server.grpc_target
    with CapstanClient(target, ca_cert=tls.ca, client_cert=cert, client_key=key,
                       retries=0) as client:
        assert client.list_clusters().total == 1
    import io

    out, err = io.StringIO(), io.StringIO()
    code = capstan_cli(["--endpoint", target, "-o", "json", "--ca-cert", str(tls.ca),
                        "--client-cert", str(cert), "--client-key", str(key),
                        "k8s-cluster-list"], stdout=out, stderr=err, env={})
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["total"] == 1
