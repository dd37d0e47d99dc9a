"""TLS for the server's two ports: gRPC credentials and the gateway's HTTPS context, from
`--tls-cert`, `--tls-key` and (for mutual TLS) `--client-ca`; and `trusting`, the one way a
CA someone registered (a kubeconfig's, an OCI registry's `ca_pem`) becomes a client context.

gRPC can only require client certificates or not ask for them, so with `--client-ca` every
gRPC client presents one; HTTPS asks for one and checks it when sent (browsers and scripts may
use a token instead). Either way the certificate is verified against `--client-ca` before its
subject names anyone.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from capstan_server.auth.options import SecurityOptions

__all__ = ["TlsError", "grpc_server_credentials", "http_ssl_context", "trusting"]


class TlsError(RuntimeError):
    """A TLS file is missing or unreadable, or the options do not fit together."""


def _read(path: Path | None, what: str) -> bytes:
    assert path is not None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def check(options: SecurityOptions) -> None:
    if (options.tls_cert is None) != (options.tls_key is None):
        raise TlsError("--tls-cert and --tls-key go together")
    if options.client_ca is not None and options.tls_cert is None:
        raise TlsError("--client-ca needs --tls-cert and --tls-key")


def grpc_server_credentials(options: SecurityOptions) -> grpc.ServerCredentials:
    check(options)
    key = _read(options.tls_key, "--tls-key")
    cert = _read(options.tls_cert, "--tls-cert")
    ca = _read(options.client_ca, "--client-ca") if options.client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def http_ssl_context(options: SecurityOptions) -> ssl.SSLContext:
    check(options)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(options.tls_cert), str(options.tls_key))
        if options.client_ca is not None:
            context.load_verify_locations(cafile=str(options.client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    return context


def trusting(ca_pem: str | bytes) -> ssl.SSLContext:
    """A client context that trusts the PEM certificates in `ca_pem` (a registration's CA, from
    a request or a kubeconfig); ValueError, with ssl's reason, when it holds none."""
    try:
        return ssl.create_default_context(
            cadata=ca_pem.decode("ascii") if isinstance(ca_pem, bytes) else ca_pem)
    except (UnicodeDecodeError, TypeError):  # TypeError: ssl's answer to non-ASCII in a str
        raise ValueError("it holds characters outside ASCII, which PEM never does") from None
    except ssl.SSLError as err:
        raise ValueError(str(err)) from None
