"""A Capstan server on a thread and event loop of its own, for tests, tools and embedding:
`start_server` returns once it is SERVING, and the `ServerHandle` runs coroutines on its loop
and stops it (gracefully, as SIGTERM would)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc.aio

from capstan_server.app import DEFAULT_GRACE, CapstanServer, ServerOptions
from capstan_server.auth.options import SecurityOptions
from capstan_server.charts.limits import RepoLimits
from capstan_server.drivers.base import Driver
from capstan_server.drivers.helm.process_limits import HelmLimits
from capstan_server.limits import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["ServerHandle", "start_server"]


class ServerHandle:
    """A server running on a thread of its own, for tests and embedding."""

    def __init__(
        self,
        server: CapstanServer,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        temp_dir: Path | None,
    ) -> None:
        self._server = server
        self._loop = loop
        self._thread = thread
        self._temp_dir = temp_dir

    @property
    def grpc_target(self) -> str:
        """`127.0.0.1:PORT` of the gRPC server."""
        return self._server.grpc_target

    @property
    def http_url(self) -> str:
        """`http://127.0.0.1:PORT` of the REST gateway."""
        return self._server.http_url

    @property
    def data_dir(self) -> Path:
        return self._server.options.data_dir

    @property
    def server(self) -> CapstanServer:
        """The server itself; use it only through `call_soon` (it lives on another loop)."""
        return self._server

    def run(self, coro: Any, timeout: float | None = 60.0) -> Any:
        """Run a coroutine on the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Stop the server (gracefully, as on SIGTERM) and its thread; idempotent."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.run(self._server.stop(), timeout=self._server.options.grace + 30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    *,
    data_dir: Path | None = None,
    driver: str | Driver = "memory",
    grpc_listen: str = "127.0.0.1:0",
    http_listen: str = "127.0.0.1:0",
    helm_bin: Path | None = None,
    dev: bool = False,
    grace: float = DEFAULT_GRACE,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    repo_limits: RepoLimits | None = None,
    allow_repo_hosts: Sequence[str] = (),
    helm_limits: HelmLimits | None = None,
    cluster_read_timeout: float | None = None,
    max_helm_processes: int | None = None,
    max_queued_writes: int | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    cors_allow_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    security: SecurityOptions | None = None,
    rest_dialect: str = "capstan",
) -> ServerHandle:
    """Start a server on its own thread and event loop; returns once it is SERVING.

    Defaults suit tests: the memory driver, free ports on 127.0.0.1, and a temporary data dir
    (removed by `stop()`) when `data_dir` is None. `allow_repo_hosts` adds to
    `repo_limits.allowed_hosts` (a test's chart repository on 127.0.0.1 must be allowed).
    """
    limits = repo_limits or RepoLimits()
    limits = dataclasses.replace(
        limits, allowed_hosts=limits.allowed_hosts | frozenset(allow_repo_hosts)
    )
    temp_dir = Path(tempfile.mkdtemp(prefix="capstan-")) if data_dir is None else None
    options = ServerOptions(
        data_dir=data_dir or temp_dir or Path("."),
        grpc_listen=grpc_listen,
        http_listen=http_listen,
        driver=driver,
        helm_bin=helm_bin,
        dev=dev,
        grace=grace,
        interceptors=interceptors,
        repo_limits=limits,
        helm_limits=helm_limits,
        cluster_read_timeout=cluster_read_timeout,
        max_helm_processes=max_helm_processes,
        max_queued_writes=max_queued_writes,
        max_message_bytes=max_message_bytes,
        cors_allow_origins=cors_allow_origins,
        allowed_hosts=allowed_hosts,
        security=security or SecurityOptions(),
        rest_dialect=rest_dialect,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="capstan-server", daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(_construct(options), loop).result()
    handle = ServerHandle(server, loop, thread, temp_dir)
    try:
        handle.run(server.start(), timeout=120)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return handle


async def _construct(options: ServerOptions) -> CapstanServer:
    # Built on the server's own loop: its asyncio primitives must belong to that loop.
    return CapstanServer(options)
