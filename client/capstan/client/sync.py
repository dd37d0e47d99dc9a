"""`CapstanClient`: the blocking client over a `grpc.Channel`, and its server-stream iterator."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import Message

from capstan.client import charts, clusters, releases
from capstan.client.calls import Call, RpcMethod
from capstan.client.credentials import PathOrPem, channel_credentials
from capstan.client.errors import error_from_rpc
from capstan.client.options import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT_S,
    ClientOptions,
    Metadata,
    message_size_options,
    with_token,
)
from capstan.client.retry import Attempts, RetryPolicy

__all__ = ["CapstanClient", "ServerStream"]

R = TypeVar("R", bound=Message)

#: Anything `grpc.intercept_channel` accepts.
Interceptor: TypeAlias = (
    grpc.UnaryUnaryClientInterceptor
    | grpc.UnaryStreamClientInterceptor
    | grpc.StreamUnaryClientInterceptor
    | grpc.StreamStreamClientInterceptor
)


class CapstanClient:
    """A blocking Capstan client; one channel, safe to share between threads.

    `timeout` is the default deadline of a call in seconds (None: no deadline); `retries` how
    often an idempotent call is retried on UNAVAILABLE (or a `RetryPolicy`); `metadata` is sent
    with every call; `token` is sent as `authorization: Bearer` (default: `$CAPSTAN_TOKEN`, or
    the `--dev` server's token file for a local endpoint; see `capstan.client.credentials`);
    `ca_cert`, `client_cert`, `client_key` (paths or PEM bytes) make the channel TLS (mutual
    with a client certificate), or pass ready `credentials`. Use it as a context manager or call
    `close()`. Every method raises a `CapstanError` subclass when the call fails.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        retries: int | RetryPolicy = 3,
        metadata: Metadata | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        ca_cert: PathOrPem | None = None,
        client_cert: PathOrPem | None = None,
        client_key: PathOrPem | None = None,
        interceptors: Sequence[Interceptor] = (),
        channel_options: Sequence[tuple[str, Any]] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.endpoint = endpoint
        metadata = with_token(endpoint, metadata, token)
        self._options = ClientOptions.create(timeout=timeout, retries=retries, metadata=metadata)
        credentials = credentials or channel_credentials(
            ca_cert=ca_cert, client_cert=client_cert, client_key=client_key
        )
        channel_options = message_size_options(max_message_bytes, channel_options)
        if credentials is None:
            channel = grpc.insecure_channel(endpoint, options=channel_options)
        else:
            channel = grpc.secure_channel(endpoint, credentials, options=channel_options)
        self._raw_channel = channel
        self._channel = grpc.intercept_channel(channel, *interceptors) if interceptors else channel
        self._stubs: dict[type[Any], Any] = {}

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._raw_channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _callable(self, call: Call[Any]) -> Any:
        stub = self._stubs.get(call.rpc.stub)
        if stub is None:
            stub = self._stubs[call.rpc.stub] = call.rpc.stub(self._channel)
        return getattr(stub, call.rpc.name)

    def _unary(self, call: Call[R]) -> R:
        attempts = self._options.attempts(call)
        method = self._callable(call)
        while True:
            try:
                response = method(
                    call.request, timeout=attempts.timeout(), metadata=self._options.grpc_metadata
                )
                return cast(R, response)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = attempts.next_delay(error)
                if delay is None:
                    raise error from exc
            time.sleep(delay)

    def _stream(self, call: Call[R]) -> ServerStream[R]:
        method = self._callable(call)
        metadata = self._options.grpc_metadata

        def open_stream(timeout: float | None) -> Any:
            return method(call.request, timeout=timeout, metadata=metadata)

        return ServerStream(open_stream, self._options.attempts(call))

    # -- ReleaseService -----------------------------------------------------------------------
    create_release = RpcMethod(releases.create_release, _unary)
    list_releases = RpcMethod(releases.list_releases, _unary)
    get_release = RpcMethod(releases.get_release, _unary)
    upgrade_release = RpcMethod(releases.upgrade_release, _unary)
    get_release_history = RpcMethod(releases.get_release_history, _unary)
    rollback_release = RpcMethod(releases.rollback_release, _unary)
    delete_release = RpcMethod(releases.delete_release, _unary)
    recover_release = RpcMethod(releases.recover_release, _unary)
    watch_release = RpcMethod(releases.watch_release, _stream)

    # -- ChartService -------------------------------------------------------------------------
    create_repository = RpcMethod(charts.create_repository, _unary)
    list_repositories = RpcMethod(charts.list_repositories, _unary)
    get_repository = RpcMethod(charts.get_repository, _unary)
    delete_repository = RpcMethod(charts.delete_repository, _unary)
    sync_repository = RpcMethod(charts.sync_repository, _unary)
    list_charts = RpcMethod(charts.list_charts, _unary)
    get_chart = RpcMethod(charts.get_chart, _unary)

    # -- ClusterService -----------------------------------------------------------------------
    create_cluster = RpcMethod(clusters.create_cluster, _unary)
    list_clusters = RpcMethod(clusters.list_clusters, _unary)
    get_cluster = RpcMethod(clusters.get_cluster, _unary)
    delete_cluster = RpcMethod(clusters.delete_cluster, _unary)
    list_namespaces = RpcMethod(clusters.list_namespaces, _unary)


class ServerStream(Generic[R]):
    """The messages of a server-streaming call, e.g. `client.watch_release(...)`.

    Iterate it (or use it as a context manager, which cancels it on exit). The stream is opened
    on the first `next()`; until the first message has arrived, an UNAVAILABLE failure reopens
    it with backoff (within the call's deadline). Later failures raise `CapstanError`s.
    `cancel()` may be called from any thread; the iteration then simply ends.
    """

    def __init__(self, open_stream: Any, attempts: Attempts) -> None:
        self._open = open_stream
        self._attempts = attempts
        self._call: Any = None
        self._received = False
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> R:
        while True:
            if self._cancelled.is_set():
                raise StopIteration
            with self._lock:
                if self._call is None:
                    self._call = self._open(self._attempts.timeout())
                call = self._call
            try:
                item = cast(R, next(call))
            except grpc.RpcError as exc:
                if self._cancelled.is_set():
                    raise StopIteration from None
                error = error_from_rpc(exc)
                delay = None if self._received else self._attempts.next_delay(error)
                if delay is None:
                    raise error from exc
                with self._lock:
                    self._call = None
                # Sleeps like time.sleep, but wakes at once when the stream is cancelled.
                self._cancelled.wait(delay)
                continue
            self._received = True
            return item

    def cancel(self) -> None:
        """End the stream: cancel the call in flight, and make iteration stop."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
