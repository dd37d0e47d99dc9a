"""The `capstan` command: climc's `k8s-*` commands over Capstan's gRPC API.

    capstan [--endpoint H:P] [--output json|table] [--timeout S] [--debug] COMMAND ...

Results go to stdout; errors go to stderr as one line `Error: <STATUS>: <message>` (then the
server's details, one per line) and the exit code tells the error class (see `EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TextIO

import grpc

from capstan.cli.commands import register_all
from capstan.cli.commands.common import bounded_int
from capstan.cli.context import Context, UsageError
from capstan.cli.credentials import add_credential_options, credentials_from
from capstan.cli.debug import DebugInterceptor
from capstan.client import DEFAULT_MAX_MESSAGE_BYTES, CapstanError

__all__ = ["EXIT_CODES", "EXIT_ERROR", "EXIT_USAGE", "build_parser", "main", "run"]

DEFAULT_ENDPOINT = "127.0.0.1:50051"
ENDPOINT_ENV = "CAPSTAN_ENDPOINT"

#: Any failure not listed in EXIT_CODES.
EXIT_ERROR = 1
#: A bad command line or a bad local file (e.g. a `-f` values file); nothing was sent.
EXIT_USAGE = 2
#: The exit code of each gRPC status class.
EXIT_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.NOT_FOUND: 4,
    grpc.StatusCode.ALREADY_EXISTS: 5,
    grpc.StatusCode.FAILED_PRECONDITION: 6,
    grpc.StatusCode.ABORTED: 7,
    grpc.StatusCode.UNAVAILABLE: 8,
    grpc.StatusCode.DEADLINE_EXCEEDED: 9,
    grpc.StatusCode.UNAUTHENTICATED: 10,
    grpc.StatusCode.PERMISSION_DENIED: 11,
}
_EXIT_INTERRUPTED = 130
_EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it

_EPILOG = (
    "exit codes: 0 ok, 1 other error, 2 usage or bad local file, "
    + ", ".join(f"{code} {status.name}" for status, code in EXIT_CODES.items())
)


def _version() -> str:
    try:
        return metadata.version("capstan")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of `capstan`, every subcommand included."""
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="capstan",
        description="Manage Helm releases on many Kubernetes clusters through Capstan.",
        epilog=_EPILOG,
    )
    _add_global_options(parser, defaults=True, env=env)
    parser.add_argument("--version", action="version", version=f"capstan {_version()}")
    parser.add_argument(
        "--timeout", dest="call_timeout", type=float, default=None, metavar="SECONDS",
        help="Deadline of each call in seconds (default 30; create, upgrade, rollback and "
        "delete always wait at least their operation timeout)",
    )
    parser.add_argument(
        "--max-message-bytes", type=bounded_int(1024), default=DEFAULT_MAX_MESSAGE_BYTES,
        metavar="BYTES",
        help="Largest gRPC message sent or received (default %(default)s, as the server's "
        "--max-message-bytes)",
    )
    # The global options are also accepted after the command (`capstan k8s-release-list
    # --output json`); there they default to "not given", so they never mask the ones before.
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, defaults=False, env=env)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    register_all(subparsers, [common])
    return parser


def _add_global_options(
    parser: argparse.ArgumentParser, *, defaults: bool, env: Mapping[str, str]
) -> None:
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    group = parser if defaults else parser.add_argument_group("global options")
    group.add_argument(
        "--endpoint", default=default(env.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT),
        metavar="HOST:PORT",
        help=f"Capstan gRPC endpoint (env {ENDPOINT_ENV}, default {DEFAULT_ENDPOINT})",
    )
    group.add_argument(
        "-o", "--output", choices=("json", "table"), default=default("table"),
        help="Output format: readable tables (default) or the REST API's JSON",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False),
        help="Print each request before it is sent",
    )
    add_credential_options(group, default, env)


def run(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run one `capstan` command line and return its exit code."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = build_parser(env)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already reported
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    token, tls = credentials_from(args, args.endpoint, env if env is not None else os.environ)
    ctx = Context(
        endpoint=args.endpoint,
        token=token,
        tls=tls,
        output=args.output,
        call_timeout=args.call_timeout,
        max_message_bytes=args.max_message_bytes,
        stdout=stdout,
        stderr=stderr,
        interceptors=(DebugInterceptor(stderr, args.endpoint),) if args.debug else (),
    )
    try:
        args.run(ctx, args)
    except UsageError as err:
        stderr.write(f"Error: {err}\n")
        return EXIT_USAGE
    except CapstanError as err:
        _report(stderr, err)
        return EXIT_CODES.get(err.code, EXIT_ERROR)
    except KeyboardInterrupt:
        stderr.write("Interrupted\n")
        return _EXIT_INTERRUPTED
    finally:
        ctx.close()
    return 0


def _report(stderr: TextIO, err: CapstanError) -> None:
    stderr.write(f"Error: {err.code.name}: {err.message}\n")
    for detail in err.details:
        stderr.write(f"  {json.dumps(detail, ensure_ascii=False, sort_keys=True)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (`capstan`)."""
    try:
        return run(argv)
    except BrokenPipeError:
        # The reader went away (`capstan ... | head`): stop quietly, as Unix tools do, and keep
        # the interpreter from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
