"""Test kit of the auth tests: a policy file with one subject per role, a JWKS and JWTs made
with a key generated here, and certificates from a CA generated here (all with `cryptography`
and PyJWT: the real libraries, no mocks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://issuer.test"
AUDIENCE = "capstan"

#: Static tokens of the policy, by the subject they name.
TOKENS = {
    "viewer-a": "viewer-a-token-0123456789",
    "editor-a": "editor-a-token-0123456789",
    "editor-b": "editor-b-token-0123456789",
    "admin": "admin-token-0123456789abc",
}


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def policy_yaml(jwks_file: Path) -> str:
    """Two projects on cluster test122; a subject of each role; OIDC with a group of admins,
    and certificate subjects for mutual TLS."""
    return f"""\
projects:
  team-a:
    - cluster: test122
      namespaces: ["team-a", "team-a-*"]
  team-b:
    - cluster: "test*"
      namespaces: ["team-b"]
subjects:
  - name: viewer-a
    token_sha256: "{sha256(TOKENS['viewer-a'])}"
    role: viewer
    projects: [team-a]
  - name: editor-a
    token_sha256: "{sha256(TOKENS['editor-a'])}"
    role: editor
    projects: [team-a]
  - name: editor-b
    token_sha256: "{sha256(TOKENS['editor-b'])}"
    role: editor
    projects: [team-b]
  - name: admin
    token_sha256: "{sha256(TOKENS['admin'])}"
    role: admin
  - name: deployer
    cert_subject: "CN=deployer"
    role: editor
    projects: [team-a]
  - name: mesh-viewer
    cert_subject: "spiffe://capstan.test/viewer"
    role: viewer
    projects: [team-b]
  - oidc_subject: alice
    role: editor
    projects: [team-a]
  - group: platform-admins
    role: admin
oidc:
  issuer: {ISSUER}
  audience: {AUDIENCE}
  jwks_file: {jwks_file}
  subject_claim: sub
  groups_claim: groups
  leeway_seconds: 5
"""


@dataclass
class Signer:
    """An RSA key whose public half is in a JWKS; `token(...)` makes JWTs."""

    kid: str = "test-key"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [public]}

    def token(self, sub: str = "alice", *, groups: list[str] | None = None,
              aud: str = AUDIENCE, iss: str = ISSUER, exp_in: float = 300,
              nbf_in: float | None = None) -> str:
        now = time.time()
        claims: dict[str, Any] = {"sub": sub, "aud": aud, "iss": iss, "iat": int(now),
                                  "exp": int(now + exp_in)}
        if groups is not None:
            claims["groups"] = groups
        if nbf_in is not None:
            claims["nbf"] = int(now + nbf_in)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


def write_policy(directory: Path, signer: Signer) -> Path:
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps(signer.jwks()))
    policy = directory / "policy.yaml"
    policy.write_text(policy_yaml(jwks))
    return policy


# -- certificates --------------------------------------------------------------------------


@dataclass
class Pem:
    cert: bytes
    key: bytes

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        cert.write_bytes(self.cert)
        key.write_bytes(self.key)
        return cert, key


class Ca:
    """A certificate authority made in the test."""

    def __init__(self, name: str = "capstan test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            _builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, dns: list[str] = (), ips: list[str] = (),  # type: ignore[assignment]
              uris: list[str] = (), client: bool = False) -> Pem:  # type: ignore[assignment]
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = _builder(subject, self.cert.subject, key.public_key())
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else \
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Pem(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
