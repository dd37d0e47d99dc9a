"""The CLI's credential options: a token, and TLS files, each with its environment variable."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from capstan.client.credentials import TOKEN_ENV, TOKEN_FILE_ENV, find_token

__all__ = ["TLS_OPTIONS", "add_credential_options", "credentials_from"]

#: Option -> (client keyword, environment variable).
TLS_OPTIONS = {
    "ca_cert": ("--ca-cert", "CAPSTAN_CA_CERT", "CA bundle that signed the server's certificate"),
    "client_cert": ("--client-cert", "CAPSTAN_CLIENT_CERT", "client certificate (mutual TLS)"),
    "client_key": ("--client-key", "CAPSTAN_CLIENT_KEY", "key of --client-cert"),
}


def add_credential_options(
    group: argparse._ActionsContainer, default: Callable[[object], object],
    env: Mapping[str, str],
) -> None:
    group.add_argument(
        "--token", default=default(None),
        help=f"bearer token (env {TOKEN_ENV}; or a file in env {TOKEN_FILE_ENV}; on this "
        "machine the `capstan-server --dev` token in .data/dev/admin.token is found by itself)",
    )
    group.add_argument("--token-file", default=default(None), metavar="FILE",
                       help=f"read the token from FILE (env {TOKEN_FILE_ENV})")
    for dest, (flag, variable, text) in TLS_OPTIONS.items():
        group.add_argument(flag, dest=dest, default=default(env.get(variable)), metavar="PEM",
                           help=f"{text} (env {variable}); any of these makes the call TLS")


def credentials_from(
    args: argparse.Namespace, endpoint: str, env: Mapping[str, str]
) -> tuple[str | None, dict[str, str]]:
    """The token and the TLS keyword arguments for the client."""
    token = find_token(endpoint, token=args.token, token_file=args.token_file, env=env)
    tls = {dest: getattr(args, dest) for dest in TLS_OPTIONS if getattr(args, dest, None)}
    return token, tls
