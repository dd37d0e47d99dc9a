"""Credentials of a Capstan client: a bearer token, and TLS (a CA bundle, a client certificate).

The token is, in this order: `token=` (the CLI's `--token`), `$CAPSTAN_TOKEN`, the file named by
`token_file=` or `$CAPSTAN_TOKEN_FILE`, and, for an endpoint on this machine only, the admin
token a `capstan-server --dev` wrote into its data dir (`${CAPSTAN_DATA_DIR:-.data}/dev/
admin.token`, relative to the current directory), so `make run` and the CLI work together
without a step in between.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc

__all__ = [
    "DEV_TOKEN_FILE",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "channel_credentials",
    "find_token",
    "is_local_endpoint",
    "token_metadata",
]

TOKEN_ENV = "CAPSTAN_TOKEN"
TOKEN_FILE_ENV = "CAPSTAN_TOKEN_FILE"
#: Where `capstan-server --dev` writes its admin token, relative to its data dir.
DEV_TOKEN_FILE = Path("dev") / "admin.token"

PathOrPem = str | os.PathLike[str] | bytes


def is_local_endpoint(endpoint: str) -> bool:
    """Whether `endpoint` (`host:port`) is on this machine (loopback)."""
    host = endpoint.rpartition(":")[0].strip("[]") if ":" in endpoint else endpoint
    host = host.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    return host in ("localhost", "::1") or host.startswith("127.")


def find_token(
    endpoint: str,
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The token to send to `endpoint`, or None (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if token:
        return token
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV].strip()
    named = token_file or env.get(TOKEN_FILE_ENV)
    if named:
        return Path(named).expanduser().read_text().strip()
    if is_local_endpoint(endpoint):
        dev = Path(env.get("CAPSTAN_DATA_DIR") or ".data") / DEV_TOKEN_FILE
        try:
            return dev.read_text().strip() or None
        except OSError:
            return None
    return None


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_credentials(
    *,
    ca_cert: PathOrPem | None = None,
    client_cert: PathOrPem | None = None,
    client_key: PathOrPem | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS channel credentials: the server is checked against `ca_cert` (default: the system's
    roots); `client_cert` and `client_key` make it mutual TLS. None when none is given."""
    if ca_cert is None and client_cert is None and client_key is None:
        return None
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca_cert),
        private_key=_pem(client_key),
        certificate_chain=_pem(client_cert),
    )


def _pem(value: PathOrPem | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).expanduser().read_bytes()
