"""How the server is protected, decided once at start-up: the policy (or none), the secure
defaults around it, the dev policy of `--dev`, and the per-process secret of the gateway hop.

Secure defaults: without `--auth-policy` the server only listens on loopback addresses, unless
`--insecure-no-auth` says that is meant (and a warning says so). `--dev` without a policy
writes one of its own, for a generated admin token kept in `<data-dir>/dev/admin.token` (0600),
which the CLI and the client library find by themselves on this machine.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from capstan_server.auth.authenticate import (
    GATEWAY_SECRET,
    INTERNAL,
    PEER_IDENTITY,
    Authenticator,
    token_sha256,
)
from capstan_server.auth.certs import identities_from_der
from capstan_server.auth.interceptor import AuthInterceptor
from capstan_server.auth.policy import PolicyError
from capstan_server.auth.source import PolicySource

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEV_POLICY_FILE", "DEV_TOKEN_FILE", "AuthSetupError", "ServerAuth", "is_loopback"]

log = logging.getLogger("capstan.auth")

#: Relative to the data dir; the CLI and client library look here (capstan.client.credentials).
DEV_TOKEN_FILE = Path("dev") / "admin.token"
DEV_POLICY_FILE = Path("dev") / "auth-policy.yaml"


class AuthSetupError(RuntimeError):
    """The server must not start like this (the message says why and what to do)."""


def is_loopback(host: str) -> bool:
    """Whether `host` (of a listen address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "" (every interface), 0.0.0.0, ::, or a name


@dataclass
class ServerAuth:
    """The server's authentication set-up: give `interceptor` to the gRPC server, `forward`
    to the gateway, and `internal_metadata` to the server's calls to itself."""

    source: PolicySource
    secret: str
    interceptor: AuthInterceptor
    dev_token_file: Path | None = None

    @classmethod
    def create(
        cls,
        *,
        policy: Path | None,
        insecure_no_auth: bool,
        listen_hosts: Sequence[str],
        data_dir: Path,
        dev: bool,
    ) -> ServerAuth:
        dev_token = None
        if policy is None and dev:
            policy, dev_token = _dev_policy(data_dir)
        if policy is None:
            exposed = [h or "*" for h in listen_hosts if not is_loopback(h)]
            if exposed and not insecure_no_auth:
                raise AuthSetupError(
                    f"refusing to listen on {', '.join(exposed)} without authentication: give "
                    "--auth-policy FILE (see the README's security section), listen on "
                    "127.0.0.1, or pass --insecure-no-auth if anyone who can reach the ports "
                    "may really use every registered cluster"
                )
            if insecure_no_auth:
                log.warning(
                    "--insecure-no-auth: serving WITHOUT authentication; anyone who can reach "
                    "the ports can use every registered cluster's credentials"
                )
        try:
            source = PolicySource.open(policy)
        except PolicyError as exc:
            raise AuthSetupError(str(exc)) from None
        secret = secrets.token_urlsafe(32)
        interceptor = AuthInterceptor(Authenticator(source, secret))
        if dev_token is not None:
            log.info(
                "dev admin token written to %s (the CLI on this machine finds it; or export "
                "CAPSTAN_TOKEN=$(cat %s))", dev_token, dev_token,
            )
        return cls(source, secret, interceptor, dev_token)

    def internal_metadata(self, who: str) -> tuple[tuple[str, str], ...]:
        """Metadata for the server's own calls to itself (e.g. `--dev` registering its cluster)."""
        return ((GATEWAY_SECRET, self.secret), (INTERNAL, who))

    def forward(self, request: web.Request) -> list[tuple[str, str]]:
        """The gateway's metadata for one HTTP request: the per-process secret (so the gRPC
        side believes it) and the HTTPS client's verified certificate names, if any."""
        metadata = [(GATEWAY_SECRET, self.secret)]
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            metadata.append((PEER_IDENTITY, json.dumps(identities_from_der(der))))
        return metadata


def _dev_policy(data_dir: Path) -> tuple[Path, Path]:
    """Write (once) the dev admin token and (every start) a policy naming it admin."""
    directory = data_dir / "dev"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = data_dir / DEV_TOKEN_FILE
    try:
        token = token_file.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        _write_private(token_file, token + "\n")
    policy_file = data_dir / DEV_POLICY_FILE
    _write_private(
        policy_file,
        "# Written by `capstan-server --dev` at every start: the dev admin token may do\n"
        f"# everything. Its token is in {token_file}.\n"
        "subjects:\n"
        "  - name: dev-admin\n"
        f'    token_sha256: "{token_sha256(token)}"\n'
        "    role: admin\n",
    )
    return policy_file, token_file


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
