"""`AsyncCapstanClient`: the asyncio twin of `CapstanClient`, over a `grpc.aio.Channel`.

Same methods and parameters (they are bound from the same builders); each returns a coroutine,
except `watch_release`, which returns an async iterator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc
import grpc.aio
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
from capstan.client.retry import RetryPolicy

__all__ = ["AsyncCapstanClient"]

R = TypeVar("R", bound=Message)


class AsyncCapstanClient:
    """An asyncio Capstan client; see `CapstanClient` for the parameters.

    Use it as an async context manager or `await client.close()`.
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
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
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
            self._channel = grpc.aio.insecure_channel(
                endpoint, options=channel_options, interceptors=interceptors
            )
        else:
            self._channel = grpc.aio.secure_channel(
                endpoint, credentials, options=channel_options, interceptors=interceptors
            )
        self._stubs: dict[type[Any], Any] = {}

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _callable(self, call: Call[Any]) -> Any:
        stub = self._stubs.get(call.rpc.stub)
        if stub is None:
            stub = self._stubs[call.rpc.stub] = call.rpc.stub(self._channel)
        return getattr(stub, call.rpc.name)

    async def _unary(self, call: Call[R]) -> R:
        attempts = self._options.attempts(call)
        method = self._callable(call)
        while True:
            try:
                response = await method(
                    call.request, timeout=attempts.timeout(), metadata=self._options.grpc_metadata
                )
                return cast(R, response)
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc(exc)
                delay = attempts.next_delay(error)
                if delay is None:
                    raise error from exc
            await asyncio.sleep(delay)

    async def _stream(self, call: Call[R]) -> AsyncIterator[R]:
        # Reopened on UNAVAILABLE until the first message, like the sync `ServerStream`.
        attempts = self._options.attempts(call)
        method = self._callable(call)
        received = False
        while True:
            stream = method(
                call.request, timeout=attempts.timeout(), metadata=self._options.grpc_metadata
            )
            try:
                async for item in stream:
                    received = True
                    yield cast(R, item)
                return
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc(exc)
                delay = None if received else attempts.next_delay(error)
                if delay is None:
                    raise error from exc
            finally:
                stream.cancel()
            await asyncio.sleep(delay)

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
