"""The `capstan-server` command: parse flags, set up logging, run the server until SIGTERM/SIGINT.

    capstan-server --dev                  # what `make run` does
    capstan-server --grpc-listen 0.0.0.0:50051 --http-listen 0.0.0.0:8080 --data-dir /srv/capstan
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from capstan_server.app import DEFAULT_GRACE, ServerOptions, StartupError, serve
from capstan_server.auth.flags import add_security_flags, security_options
from capstan_server.charts.limits import RepoLimits
from capstan_server.drivers.helm.leases import DEFAULT_LEASE_DURATION
from capstan_server.drivers.helm.process_limits import HelmLimits
from capstan_server.gateway.kubeserver import CAPSTAN, DIALECTS
from capstan_server.helm_binary import CHECKOUT_HELM, HelmNotFound, resolve_helm_bin
from capstan_server.limits import DEFAULT_MAX_MESSAGE_BYTES
from capstan_server.logs import LogFormat, configure_logging
from capstan_server.registry_store import REGISTRY_BACKENDS, RegistryOptions
from capstan_server.replicas import STUCK_POLICIES, ReplicaOptions

log = logging.getLogger("capstan.server")

def _version() -> str:
    try:
        return metadata.version("capstan")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capstan-server",
        description="Capstan: the Helm release lifecycle on many Kubernetes clusters, over gRPC "
        "and REST.",
    )
    parser.add_argument("--version", action="version", version=f"capstan-server {_version()}")
    parser.add_argument("--grpc-listen", default="127.0.0.1:50051", metavar="HOST:PORT",
                        help="gRPC address (default %(default)s; port 0 picks a free one)")
    parser.add_argument("--http-listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="REST gateway address (default %(default)s)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CAPSTAN_DATA_DIR", ".data")),
                        help="registry, kubeconfigs and caches (default $CAPSTAN_DATA_DIR or "
                        "./.data)")
    parser.add_argument("--driver", choices=("helm", "memory"), default="helm",
                        help="release driver (default %(default)s; memory keeps releases in "
                        "memory, for tests)")
    parser.add_argument("--helm-bin", type=Path, default=None,
                        help="helm binary, resolved to an absolute path at start-up (default: "
                        f"the checkout's pinned {CHECKOUT_HELM}, which `make setup` installs, "
                        "else `helm` on PATH)")
    parser.add_argument("--dev", action="store_true",
                        help="also run an embedded kubesim cluster 'default' and a repository "
                        "'samples' of the sample charts")
    parser.add_argument("--cluster-read-timeout", type=_positive_float, default=None,
                        metavar="SECONDS",
                        help="the longest a list or name lookup waits for a cluster before "
                        "answering from its last known state (default 2)")
    parser.add_argument("--max-helm-processes", type=_positive_int, default=None, metavar="N",
                        help="helm processes run at once; further writes queue (default: "
                        "2 x CPU cores)")
    parser.add_argument("--max-queued-writes", type=_positive_int, default=None, metavar="N",
                        help="writes that may wait for a helm process; more are refused with "
                        "RESOURCE_EXHAUSTED (default 100)")
    parser.add_argument("--shutdown-grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                        help="time calls in flight get to finish on SIGTERM (default %(default)s)")
    parser.add_argument("--registry", choices=REGISTRY_BACKENDS, default="sqlite",
                        help="where clusters and repositories are registered: sqlite (under "
                        "--data-dir, per replica) or kubernetes (Secrets shared by every "
                        "replica; default %(default)s)")
    parser.add_argument("--registry-namespace", default="capstan", metavar="NS",
                        help="--registry kubernetes: the namespace of the Secrets (default "
                        "%(default)s)")
    parser.add_argument("--registry-kubeconfig", type=Path, default=None, metavar="FILE",
                        help="--registry kubernetes: kubeconfig of the cluster Capstan runs in "
                        "(default: the in-cluster config)")
    parser.add_argument("--replica-id", default="", metavar="NAME",
                        help="this replica's name in release Leases (default hostname-pid)")
    parser.add_argument("--lease-duration", type=_positive, default=DEFAULT_LEASE_DURATION,
                        metavar="SECONDS", help="lifetime of an unrenewed release Lease; a dead "
                        "replica's pending release is recovered within twice this (default "
                        "%(default)s)")
    parser.add_argument("--on-stuck", choices=STUCK_POLICIES, default="mark-failed",
                        help="what a replica does with a release another, dead replica left "
                        "pending (default %(default)s)")
    parser.add_argument("--rest-dialect", choices=DIALECTS, default=CAPSTAN,
                        help="REST wire dialect at /api (default %(default)s, the documented "
                        "API; kubeserver: what Cloudpods' climc speaks, see README)")
    repos = parser.add_argument_group(
        "chart repositories", "limits on what a repository (a stranger's server) may cost; see "
        "the README's security section")
    defaults = RepoLimits()
    repos.add_argument("--allow-repo-host", action="append", default=[], metavar="HOST",
                       help="fetch from HOST (as written in URLs) even if it resolves to a "
                       "loopback, link-local or unspecified address (repeatable; --dev allows "
                       "loopback)")
    repos.add_argument("--repo-fetch-timeout", type=float, default=defaults.fetch_timeout_s,
                       metavar="SECONDS", help="limit of one index or archive fetch "
                       "(default %(default)s)")
    repos.add_argument("--repo-min-rate", type=int, default=defaults.min_rate_bytes_s,
                       metavar="BYTES", help="slowest average transfer rate accepted, in "
                       "bytes/s (default %(default)s)")
    repos.add_argument("--repo-connections", type=int, default=defaults.connections_per_repo,
                       metavar="N", help="fetches in flight per repository "
                       "(default %(default)s)")
    repos.add_argument("--repo-index-max-bytes", type=int, default=defaults.max_index_bytes,
                       metavar="BYTES", help="largest index.yaml, inflated "
                       "(default %(default)s)")
    repos.add_argument("--index-cache-bytes", type=int, default=defaults.index_cache_bytes,
                       metavar="BYTES", help="memory for parsed indexes (default %(default)s)")
    repos.add_argument("--chart-cache-bytes", type=int, default=defaults.chart_cache_bytes,
                       metavar="BYTES", help="memory for files read from chart archives "
                       "(default %(default)s)")
    helm_defaults = HelmLimits()
    parser.add_argument("--helm-memory-limit", type=int, default=helm_defaults.memory_mib,
                        metavar="MIB", help="address space of each helm process, in MiB "
                        "(default %(default)s; helm needs 768 to start; 0: no limit)")
    parser.add_argument("--helm-cpu-limit", type=int, default=helm_defaults.cpu_s,
                        metavar="SECONDS", help="CPU time of each helm process "
                        "(default %(default)s; 0: no limit)")
    parser.add_argument("--max-message-bytes", type=_message_bytes,
                        default=DEFAULT_MAX_MESSAGE_BYTES, metavar="BYTES",
                        help="largest gRPC message received or sent (default %(default)s, the "
                        "client library's default too)")
    parser.add_argument("--cors-allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="an origin (https://ui.example.com, or *) whose browser pages may "
                        "write through the REST gateway; repeatable; none by default")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                        help="a Host name the REST gateway answers to (against DNS rebinding); "
                        "repeatable; any by default")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper)
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    add_security_flags(parser)
    return parser


def repo_limits(args: argparse.Namespace) -> RepoLimits:
    """The chart repository budgets the flags ask for."""
    return RepoLimits(
        allowed_hosts=frozenset(args.allow_repo_host),
        fetch_timeout_s=args.repo_fetch_timeout,
        min_rate_bytes_s=args.repo_min_rate,
        connections_per_repo=max(1, args.repo_connections),
        max_index_bytes=args.repo_index_max_bytes,
        index_cache_bytes=args.index_cache_bytes,
        chart_cache_bytes=args.chart_cache_bytes,
    )


def _bounded(convert: Callable[[str], float], *, minimum: float | None = None,
             above: float | None = None, maximum: float | None = None,
             unit: str = "") -> Callable[[str], Any]:
    """An argparse `type` for a number within the given bounds; one for every numeric flag,
    so their refusals read alike."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}{unit}, got {text}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}{unit}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}{unit}, got {text}")
        return value

    return parse


_positive_float = _bounded(float, above=0)
_positive_int = _bounded(int, minimum=1)
_positive = _bounded(float, minimum=1, unit=" second")  # Lease lifetimes
_message_bytes = _bounded(int, minimum=1024, maximum=2**31 - 1)


def helm_for(given: Path | None, *, driver: str, dev: bool) -> tuple[Path | None, str | None]:
    """(the absolute helm binary, None), or (None, why the server cannot start, one line): the
    helm driver runs helm for every write, and --dev packages the sample charts with it."""
    if driver != "helm" and not dev:
        return None, None
    try:
        return resolve_helm_bin(given), None
    except HelmNotFound as exc:
        need = "--dev needs helm" if dev else "the helm driver needs helm"
        return None, f"{need}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, cast(LogFormat, args.log_format))
    data_dir: Path = args.data_dir.expanduser().resolve()
    helm_bin, problem = helm_for(args.helm_bin, driver=args.driver, dev=args.dev)
    if problem:
        log.error("cannot start: %s", problem)
        return 1
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        log.error("cannot use the data dir %s: %s", data_dir, exc)
        return 1
    try:
        options = ServerOptions(
            data_dir=data_dir,
            grpc_listen=args.grpc_listen,
            http_listen=args.http_listen,
            driver=args.driver,
            helm_bin=helm_bin,
            dev=args.dev,
            grace=args.shutdown_grace,
            registry=RegistryOptions(backend=args.registry,
                                     namespace=args.registry_namespace,
                                     kubeconfig=args.registry_kubeconfig),
            replicas=ReplicaOptions(replica_id=args.replica_id,
                                    lease_duration=args.lease_duration,
                                    on_stuck=args.on_stuck),
            rest_dialect=args.rest_dialect,
            repo_limits=repo_limits(args),
            helm_limits=HelmLimits(memory_mib=args.helm_memory_limit, cpu_s=args.helm_cpu_limit),
            cluster_read_timeout=args.cluster_read_timeout,
            max_helm_processes=args.max_helm_processes,
            max_queued_writes=args.max_queued_writes,
            max_message_bytes=args.max_message_bytes,
            cors_allow_origins=tuple(args.cors_allow_origin),
            allowed_hosts=tuple(args.allowed_host),
            security=security_options(args),
        )
        asyncio.run(serve(options))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
