"""Builds and runs the Capstan server: the gRPC services, health, reflection and the REST gateway,
all in one process and one event loop.

`CapstanServer` runs on the caller's event loop (the `capstan-server` script uses it through
`serve`); `threaded.start_server` runs one on a thread of its own and returns a `ServerHandle`,
which is what tests use: it works the same from synchronous tests, async tests and CLI tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from capstan.v1 import chart_pb2_grpc, cluster_pb2_grpc, release_pb2_grpc
from capstan_server import metrics, tls
from capstan_server.auth.options import SecurityOptions
from capstan_server.auth.setup import AuthSetupError, ServerAuth
from capstan_server.charts.limits import RepoLimits
from capstan_server.errors import CapstanError
from capstan_server.gateway import InProcessCalls, Operations, build_gateway, capstan_services
from capstan_server.gateway.guard import GuardOptions
from capstan_server.interceptors import RpcInterceptor
from capstan_server.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_HEADER_BYTES,
    MAX_REQUEST_LINE_BYTES,
    LimitsInterceptor,
)
from capstan_server.registry_store import RegistryOptions
from capstan_server.replicas import ReplicaOptions, start_recovery
from capstan_server.secret_box import SecretKeyError

if TYPE_CHECKING:
    from capstan_server.dev.environment import DevEnvironment
    from capstan_server.drivers.base import ClusterTarget, Driver
    from capstan_server.drivers.helm.process_limits import HelmLimits
    from capstan_server.services import Services

log = logging.getLogger("capstan.server")

DEFAULT_GRACE = 30.0
#: How long /readyz waits for the registry to answer.
_READY_TIMEOUT = 2.0


def _grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


# gRPC sets SO_REUSEPORT by default, which lets a second server bind a taken port silently.
_SERVER_ONLY_OPTIONS = [("grpc.so_reuseport", 0)]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class StartupError(RuntimeError):
    """The server could not start (a port is taken, the data dir is unusable, ...)."""


@dataclass(frozen=True)
class ServerOptions:
    """Everything the server is started with; `capstan-server`'s flags map onto it."""

    data_dir: Path
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    #: A driver name for `drivers.create_driver`, or a driver instance (the server then owns it
    #: and closes it when it stops).
    driver: str | Driver = "helm"
    helm_bin: Path | None = None
    #: Start the embedded kubesim cluster and sample chart repository (capstan_server.dev).
    dev: bool = False
    #: Seconds in-flight calls get to finish on shutdown.
    grace: float = DEFAULT_GRACE
    #: helm driver: the longest a list or name lookup waits for a cluster (None: default).
    cluster_read_timeout: float | None = None
    #: helm driver: helm processes at once, and writes waiting for one (None: defaults).
    max_helm_processes: int | None = None
    max_queued_writes: int | None = None
    #: Extra gRPC server interceptors, run after Capstan's own (tests use this to spy on calls).
    interceptors: Sequence[grpc.aio.ServerInterceptor] = field(default=())
    #: Replica identity, Lease duration and stuck-release policy (`replicas.py`).
    replicas: ReplicaOptions = field(default_factory=ReplicaOptions)
    #: Where clusters and repositories are registered (`registry_store.py`).
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    #: Authentication, TLS and the registry's encryption key (capstan_server.auth).
    security: SecurityOptions = field(default_factory=SecurityOptions)
    #: `--rest-dialect`: "capstan" (the documented REST API) or "kubeserver" (climc's wire).
    rest_dialect: str = "capstan"
    #: Budgets and address policy of chart repository fetches (`dev` also allows loopback).
    repo_limits: RepoLimits = field(default_factory=RepoLimits)
    #: Memory and CPU time of each helm process (helm driver); None: the defaults.
    helm_limits: HelmLimits | None = None
    #: Largest gRPC message received or sent (the client library's default is the same).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: Gateway: the `Origin`s allowed to write (none by default) and the `Host`s accepted
    #: (any when empty); see gateway/guard.py.
    cors_allow_origins: Sequence[str] = field(default=())
    allowed_hosts: Sequence[str] = field(default=())


def split_host_port(listen: str) -> tuple[str, int]:
    """`H:P`, `[v6]:P` or `:P` (all interfaces) into host and port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise StartupError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class CapstanServer:
    """The server, running on the current event loop: `await start()`, later `await stop()`."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.grpc_port = 0
        self.http_port = 0
        self._interceptor = RpcInterceptor()
        self._auth: ServerAuth | None = None
        #: The plaintext loopback port the gateway uses when the public one speaks TLS.
        self._loopback_port = 0
        self._policy_watch: asyncio.Task[None] | None = None
        self._driver: Driver | None = None
        self._services: Services | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._channel: grpc.aio.Channel | None = None
        self._local: InProcessCalls | None = None
        self._http: web.AppRunner | None = None
        self._dev: DevEnvironment | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._ready = False
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def grpc_target(self) -> str:
        """`host:port` for a gRPC client on this machine."""
        host, _ = split_host_port(self.options.grpc_listen)
        return f"{_client_host(host)}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        host, _ = split_host_port(self.options.http_listen)
        scheme = "https" if self.options.security.tls else "http"
        return f"{scheme}://{_client_host(host)}:{self.http_port}"

    @property
    def auth(self) -> ServerAuth:
        if self._auth is None:
            raise RuntimeError("the server is not started")
        return self._auth

    def reload_policy(self) -> bool:
        """Re-read the policy file (SIGHUP); a broken file keeps the old policy (logged)."""
        return self._auth.source.reload() if self._auth is not None else False

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the server is not started")
        return self._services

    def is_ready(self) -> bool:
        return self._ready

    async def readiness(self) -> dict[str, Any]:
        """`/readyz`: started, the registry answers, and every release cache has synced (or
        found its cluster unreachable, which the lists report; it must not keep the server
        out of service)."""
        checks: dict[str, Any] = {"started": self._ready}
        try:
            async with asyncio.timeout(_READY_TIMEOUT):
                await self.services.registry.list_clusters(limit=1)
            checks["registry"] = "ok"
            await self._sync_caches()  # clusters registered (or gone) since start
        except Exception as exc:  # any failure means not ready; say which
            checks["registry"] = f"error: {type(exc).__name__}: {exc}"
        caches = getattr(self._driver, "caches", None)
        synced = True
        if caches is not None:
            states = {}
            for informer in caches().values():
                state = "synced" if informer.synced else (
                    "unreachable" if informer.settled else "syncing")
                states[informer.client.cluster_name] = state
                synced = synced and informer.settled
            checks["release_caches"] = states
        ready = bool(self._ready and checks["registry"] == "ok" and synced)
        return {"ready": ready, "checks": checks}

    async def _sync_caches(self) -> None:
        """Start every registered cluster's release cache, so readiness means synced caches,
        and stop those of clusters no longer registered (another replica may have deleted
        them: this replica learns it from the shared registry)."""
        warm, caches, forget = (getattr(self._driver, name, None)
                                for name in ("warm", "caches", "forget"))
        if warm is None or caches is None or forget is None:
            return
        from capstan_server.services.addressing import target

        rows, _ = await self.services.registry.list_clusters()
        for row in rows:
            warm(target(row))
        registered = {row.id for row in rows}
        for cluster_id in set(caches()) - registered:
            forget(cluster_id)

    async def start(self) -> None:
        """Open the services, serve gRPC, set up the dev environment if asked, serve HTTP; the
        health service says SERVING only once all of that is done."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        options = self.options
        options.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._auth = _server_auth(options)
        self._driver = _open_driver(options)
        from capstan_server.services import open_services

        limits = options.repo_limits
        if options.dev:  # the sample repository is served on 127.0.0.1
            limits = dataclasses.replace(limits, allow_loopback=True)
        try:
            self._services = await open_services(
                data_dir=options.data_dir,
                driver=self._driver,
                repo_limits=limits,
                secret_key_file=options.security.secret_key_file,
                registry_options=options.registry,
            )
        except SecretKeyError as exc:
            raise StartupError(str(exc)) from None
        except CapstanError as exc:  # e.g. --registry kubernetes without a usable cluster
            raise StartupError(f"registry: {exc.message}") from None
        await self._start_grpc()
        await self._sync_caches()
        loopback = f"127.0.0.1:{self._loopback_port}" if self._loopback_port else self.grpc_target
        self._channel = grpc.aio.insecure_channel(
            loopback, options=_grpc_options(options.max_message_bytes)
        )
        if self.auth.source.path is not None:
            self._policy_watch = asyncio.get_running_loop().create_task(self.auth.source.watch())
        if options.dev:
            await self._start_dev()
        await self._start_http()
        self._recovery = start_recovery(self._driver, self._cluster_targets,
                                        options.replicas)
        await self._set_health(_SERVING)
        self._ready = True
        log.info(
            "serving",
            extra={
                "fields": {
                    "grpc": self.grpc_target,
                    "http": self.http_url,
                    "driver": getattr(self._driver, "name", "?"),
                    "data_dir": str(options.data_dir),
                    "dev": options.dev,
                }
            },
        )

    async def _cluster_targets(self) -> list[ClusterTarget]:
        from capstan_server.services.addressing import target

        rows, _ = await self.services.registry.list_clusters()
        return [target(row) for row in rows]

    async def _start_grpc(self) -> None:
        services = self.services
        # LimitsInterceptor runs inside RpcInterceptor, which maps the errors it raises.
        # Authentication first: a caller without a credential learns nothing else.
        interceptors = [self._interceptor, self.auth.interceptor, LimitsInterceptor(),
                        *self.options.interceptors]
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[*_grpc_options(self.options.max_message_bytes), *_SERVER_ONLY_OPTIONS],
        )
        self._grpc = server
        # The gateway's unary calls: the same handlers behind the same interceptors.
        self._local = InProcessCalls(interceptors,
                                     max_message_bytes=self.options.max_message_bytes)
        targets: tuple[Any, ...] = (server, self._local)
        for target in targets:
            release_pb2_grpc.add_ReleaseServiceServicer_to_server(services.release, target)
            chart_pb2_grpc.add_ChartServiceServicer_to_server(services.chart, target)
            cluster_pb2_grpc.add_ClusterServiceServicer_to_server(services.cluster, target)
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        # The health servicer starts out saying SERVING for "": not true until start() is done.
        await self._set_health(_NOT_SERVING)
        names = [service.full_name for service in capstan_services()]
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection([*names, health_name, reflection.SERVICE_NAME], server)
        listen = self.options.grpc_listen
        host, port = split_host_port(listen)
        security = self.options.security
        try:
            if security.tls:
                credentials = tls.grpc_server_credentials(security)
                self.grpc_port = server.add_secure_port(f"{_bind_host(host)}:{port}", credentials)
                # The gateway's hop stays on this machine; the auth interceptor still checks
                # every call on it (the gateway proves itself with its per-process secret).
                self._loopback_port = server.add_insecure_port("127.0.0.1:0")
            else:
                self.grpc_port = server.add_insecure_port(f"{_bind_host(host)}:{port}")
        except tls.TlsError as exc:
            raise StartupError(str(exc)) from None
        except RuntimeError as exc:
            raise StartupError(f"cannot listen for gRPC on {listen}: {exc}") from None
        if not self.grpc_port:
            raise StartupError(f"cannot listen for gRPC on {listen}")
        await server.start()

    async def _start_dev(self) -> None:
        from capstan_server.dev.chart_repo import ChartRepoError
        from capstan_server.dev.environment import DevEnvironment

        assert self._channel is not None
        try:
            self._dev = await DevEnvironment.start(
                self.services,
                data_dir=self.options.data_dir,
                helm_bin=self.options.helm_bin,
                channel=self._channel,
                metadata=self.auth.internal_metadata("dev"),
            )
        except (CapstanError, ChartRepoError, OSError, grpc.aio.AioRpcError) as exc:
            message = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            raise StartupError(f"--dev: {message}") from exc

    async def _start_http(self) -> None:
        assert self._channel is not None
        state = metrics.server_registry(self._driver)
        operations = Operations(metrics=lambda: metrics.exposition(state), readiness=self.readiness)
        app = build_gateway(
            self._channel,
            is_ready=self.is_ready,
            operations=operations,
            guard=GuardOptions(
                allow_origins=tuple(self.options.cors_allow_origins),
                allowed_hosts=tuple(self.options.allowed_hosts),
            ),
            forward=self.auth.forward,
            dialect=self.options.rest_dialect,
            local=self._local,
        )
        # One log line per call comes from the gRPC interceptor; an HTTP access log would double it.
        # aiohttp answers request lines and headers over its own limits in plain text, before
        # any middleware; with these larger ones, the gateway refuses long paths itself (JSON).
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.options.grace,
            max_line_size=MAX_REQUEST_LINE_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )
        await runner.setup()
        self._http = runner
        host, port = split_host_port(self.options.http_listen)
        try:
            sock = socket.create_server(
                (host or "0.0.0.0", port),
                family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            )
        except OSError as exc:
            listen = self.options.http_listen
            raise StartupError(f"cannot listen for HTTP on {listen}: {exc}") from None
        self.http_port = sock.getsockname()[1]
        security = self.options.security
        try:
            context = tls.http_ssl_context(security) if security.tls else None
        except tls.TlsError as exc:
            sock.close()
            raise StartupError(str(exc)) from None
        await web.SockSite(runner, sock, ssl_context=context).start()

    async def _set_health(self, status: Any) -> None:
        if self._health is None:
            return
        for name in ("", *(service.full_name for service in capstan_services())):
            await self._health.set(name, status)

    async def stop(self) -> None:
        """Stop serving: health says NOT_SERVING, no new calls are accepted, calls in flight
        get `options.grace` seconds to finish, streams (watches) end with UNAVAILABLE."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._ready = False
        if self._recovery is not None:  # a stopping replica starts no more writes
            self._recovery.cancel()
        try:
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
                # Let health watchers receive NOT_SERVING before their streams are drained.
                await asyncio.sleep(0.05)
            self._interceptor.drain_streams()
            await asyncio.gather(self._stop_http(), self._stop_grpc(), return_exceptions=False)
        finally:
            await self._close_resources()
            self._stopped.set()
            log.info("stopped")

    async def hurry(self) -> None:
        """During `stop()`: cancel the calls still in flight instead of waiting for them."""
        if self._grpc is not None:
            # A later stop() with a shorter grace takes effect; the first stop() then returns.
            await self._grpc.stop(0)

    async def _stop_http(self) -> None:
        if self._http is not None:
            await self._http.cleanup()

    async def _stop_grpc(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(self.options.grace)

    async def _close_resources(self) -> None:
        # Each step runs even if an earlier one failed; the first failure is logged.
        steps: list[tuple[str, Any]] = []
        if self._policy_watch is not None:
            self._policy_watch.cancel()
        if self._channel is not None:
            steps.append(("loopback channel", self._channel.close()))
        if self._dev is not None:
            steps.append(("dev environment", self._dev.stop()))
        if self._services is not None:
            steps.append(("services", self._services.close()))
        if self._driver is not None:
            steps.append(("driver", self._driver.close()))
        for what, step in steps:
            try:
                await step
            except Exception:
                log.exception("error while closing the %s", what)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def _bind_host(host: str) -> str:
    if host == "":
        return "[::]"
    return f"[{host}]" if ":" in host else host


def _server_auth(options: ServerOptions) -> ServerAuth:
    security = options.security
    hosts = [split_host_port(options.grpc_listen)[0], split_host_port(options.http_listen)[0]]
    try:
        return ServerAuth.create(
            policy=security.auth_policy,
            insecure_no_auth=security.insecure_no_auth,
            listen_hosts=hosts,
            data_dir=options.data_dir,
            dev=options.dev,
        )
    except AuthSetupError as exc:
        raise StartupError(str(exc)) from None


def _open_driver(options: ServerOptions) -> Driver:
    if not isinstance(options.driver, str):
        return options.driver
    from capstan_server.drivers import create_driver

    driver: Driver = create_driver(
        options.driver,
        data_dir=options.data_dir,
        helm_bin=options.helm_bin,
        helm_limits=options.helm_limits,
        read_timeout=options.cluster_read_timeout,
        max_helm_processes=options.max_helm_processes,
        max_queued_writes=options.max_queued_writes,
        replica_id=options.replicas.replica_id,
        lease_duration=options.replicas.lease_duration,
    )
    return driver


#: A signal this soon after the first is the same request delivered twice (to the process group
#: and again by a wrapper such as `timeout` or `make`), not an impatient operator.
_DUPLICATE_SIGNAL_WINDOW = 1.0


async def serve(options: ServerOptions) -> None:
    """Run a server until SIGTERM or SIGINT, then shut it down gracefully (for the script).

    A second signal during the grace period stops waiting for calls in flight (they are
    cancelled); the rest of the shutdown (closing, saving the dev cluster) still happens.
    """
    server = CapstanServer(options)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    first_signal: float | None = None
    hurrying: set[asyncio.Task[None]] = set()

    def on_signal(signum: int) -> None:
        nonlocal first_signal
        name = signal.Signals(signum).name
        if first_signal is None:
            first_signal = loop.time()
            log.info("shutting down", extra={"fields": {"signal": name}})
            stop_requested.set()
        elif loop.time() - first_signal > _DUPLICATE_SIGNAL_WINDOW and not hurrying:
            log.warning("second %s: cancelling the calls still in flight", name)
            task = loop.create_task(server.hurry())
            hurrying.add(task)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, server.reload_policy)
    try:
        await server.start()
        await stop_requested.wait()
    finally:
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
