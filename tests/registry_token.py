"""A registry token service for the tests, as Docker Hub's and GHCR's work: the registry answers
401 with a `Bearer realm=...` challenge, the client asks the realm for a token (with Basic
credentials, or anonymously), and the registry checks the JWT against the service's
certificate. Like Docker Hub, it never grants the catalog (`registry:catalog:*`), so a client
must be told the chart names. Also a CA and a server certificate for a registry over TLS.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE = "capstan-test-registry"
ISSUER = "capstan-test-token-service"


def _cert(common_name: str, *, issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None = None,
          ip: str = "") -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer[1].subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                              critical=True))
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False)
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def _pem(key: rsa.RSAPrivateKey | None = None, cert: x509.Certificate | None = None) -> bytes:
    if cert is not None:
        return cert.public_bytes(serialization.Encoding.PEM)
    assert key is not None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_tls_files(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `ip`: (ca.pem, server.pem, server-key.pem)."""
    ca = _cert("capstan test registry CA")
    key, cert = _cert(ip, issuer=ca, ip=ip)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(_pem(cert=ca[1]))
    paths[1].write_bytes(_pem(cert=cert))
    paths[2].write_bytes(_pem(key))
    return paths


class TokenService:
    """Grants pull/push on any repository to `username`/`password`, nothing to anyone else."""

    def __init__(self, directory: Path, username: str, password: str, *,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.username, self.password = username, password
        self.key, self.cert = _cert("capstan test token signer")
        self.bundle = directory / "token-signer.pem"
        self.bundle.write_bytes(_pem(cert=self.cert))
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._scheme = "http"
        if tls is not None:  # (certificate, key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}/token"

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        header = request.headers.get("Authorization", "")
        user = ""
        if header.startswith("Basic "):
            given = base64.b64decode(header[6:]).decode()
            if given != f"{self.username}:{self.password}":
                request.send_response(401)
                request.end_headers()
                return
            user = self.username
        query = parse_qs(urlsplit(request.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user and kind == "repository":  # never the catalog, as Docker Hub
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "iat": now, "nbf": now - 60,
                  "exp": now + 300, "jti": str(uuid.uuid4()), "access": access}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self._x5c]})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def registry_auth(self) -> dict[str, object]:
        """The registry's `auth:` configuration for this service."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.bundle)}}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


