"""`capstan-server`'s security flags, and the `SecurityOptions` they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from capstan_server.auth.options import SecurityOptions

__all__ = ["add_security_flags", "security_options"]


def add_security_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security (README: Security)")
    group.add_argument("--auth-policy", type=Path, metavar="FILE",
                       help="who may do what: static tokens, OIDC, client certificates, "
                       "projects (re-read on SIGHUP and when it changes)")
    group.add_argument("--insecure-no-auth", action="store_true",
                       help="allow listening on a non-loopback address without --auth-policy")
    group.add_argument("--tls-cert", type=Path, metavar="PEM",
                       help="serve gRPC over TLS and the gateway over HTTPS with this certificate")
    group.add_argument("--tls-key", type=Path, metavar="PEM", help="the key of --tls-cert")
    group.add_argument("--client-ca", type=Path, metavar="PEM",
                       help="CA bundle for client certificates (mutual TLS; needs --tls-cert)")
    group.add_argument("--secret-key-file", type=Path, metavar="FILE",
                       help="key encrypting registry credentials (default "
                       "<data-dir>/secret.key, generated on first start)")


def security_options(args: argparse.Namespace) -> SecurityOptions:
    def path(value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    return SecurityOptions(
        auth_policy=path(args.auth_policy),
        insecure_no_auth=args.insecure_no_auth,
        tls_cert=path(args.tls_cert),
        tls_key=path(args.tls_key),
        client_ca=path(args.client_ca),
        secret_key_file=path(args.secret_key_file),
    )
