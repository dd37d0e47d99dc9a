"""The gateway's unary calls, served by this process's own servicers without the loopback hop.

A REST call used to cross a loopback gRPC connection to the same process. That hop cost about
2 ms of CPU per call (grpc.aio at both of its ends), more than a whole page of a release list.
Unary calls now run here exactly as the gRPC server would run them:

- the same method handlers: the ones the generated `add_*Servicer_to_server` register;
- the same interceptors, in the same order (request ids, logs and metrics, authentication,
  request limits), given the call's metadata. That metadata carries the gateway's secret and
  the HTTP client's credential, as it did on the hop: who may do what is decided in one place;
- the same codec: the request is serialized and read back with the handler's deserializer
  (where the request limits apply), and the answer serialized and read back, each bounded by
  the server's message size, so that no servicer's object is handed out to be consumed;
- in a task of its own, as grpc.aio serves each call, so what a call binds to context
  variables (its access, its request id) stays with that call.

Failures come back as `grpc.aio.AioRpcError`, with the code, message and trailing metadata
(rich details) the call ended with, so the gateway maps them as it maps a hop's. Server-streaming
calls (WatchRelease) still go over the channel: they are long, and one hop per stream is cheap.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import grpc.aio
from google.protobuf.message import Message

from capstan_server.handlers import result_of

if TYPE_CHECKING:
    from capstan_server.handlers import Continuation, Handler

__all__ = ["PEER", "InProcessCalls", "LocalContext", "UnaryCall"]

#: What a call served here reports as its peer (logged; the HTTP client's address is logged
#: beside it, from the metadata, as for the hop).
PEER = "in-process"

Metadata = Sequence[tuple[str, str]]
#: A unary call as the gateway makes it: `await call(request, metadata=...)`.
UnaryCall = Callable[..., Awaitable[Any]]


class InProcessCalls:
    """The handlers registered on it (it stands in for the server in `add_*_to_server`) and the
    server's interceptors; `unary_unary` makes a call the way `grpc.aio.Channel` does."""

    def __init__(
        self, interceptors: Sequence[grpc.aio.ServerInterceptor], *, max_message_bytes: int
    ) -> None:
        self._handlers: dict[str, Handler] = {}
        self._max_bytes = max_message_bytes
        chain: Continuation = self._registered
        for interceptor in reversed(interceptors):  # the first one listed runs outermost
            chain = functools.partial(interceptor.intercept_service, chain)
        self._chain = chain

    # -- what the generated `add_*Servicer_to_server` call ---------------------------------

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        """Ignored: the same handlers come to `add_registered_method_handlers` by name."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        for name, handler in handlers.items():
            self._handlers[f"/{service}/{name}"] = handler

    # -- calls ------------------------------------------------------------------------------

    def serves(self, method: str) -> bool:
        """Whether `method` (e.g. "/capstan.v1.ReleaseService/ListReleases") is a unary
        method registered here."""
        handler = self._handlers.get(method)
        return handler is not None and handler.unary_unary is not None

    def unary_unary(
        self, method: str, response_deserializer: Callable[[bytes], Any]
    ) -> UnaryCall:
        """A callable that serves `method` here: `await call(request, metadata=...)`."""

        async def call(request: Message, *, metadata: Metadata = ()) -> Any:
            return await self._call(method, request, tuple(metadata), response_deserializer)

        return call

    async def _registered(self, details: grpc.HandlerCallDetails) -> Handler | None:
        return self._handlers.get(details.method)

    async def _call(
        self,
        method: str,
        request: Message,
        metadata: tuple[tuple[str, str], ...],
        response_deserializer: Callable[[bytes], Any],
    ) -> Any:
        handler = await self._chain(_CallDetails(method, metadata))
        if handler is None or handler.unary_unary is None:
            raise _error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        wire = self._bounded(request.SerializeToString(), "Received")
        deserialize = handler.request_deserializer
        try:
            parsed = deserialize(wire) if deserialize is not None else wire
        except Exception:
            raise _error(grpc.StatusCode.INTERNAL, "Exception deserializing request!") from None
        context = LocalContext(metadata)
        behavior = handler.unary_unary
        # A task of its own, as grpc.aio serves each call; cancelling the HTTP request's task
        # cancels this one too.
        try:
            answer = await asyncio.ensure_future(result_of(behavior, parsed, context))
        except grpc.aio.AbortError:
            raise context.error() from None
        except Exception as exc:
            # What grpc.aio answers for an exception no interceptor turned into a status.
            raise _error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}",
                         context.initial) from None
        if context.code() is not grpc.StatusCode.OK:  # set_code without an abort
            raise context.error()
        serialize = handler.response_serializer
        sent = serialize(answer) if serialize is not None else answer
        return response_deserializer(self._bounded(sent, "Sent"))

    def _bounded(self, wire: bytes, what: str) -> bytes:
        if len(wire) > self._max_bytes:
            raise _error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"{what} message larger than max ({len(wire)} vs. {self._max_bytes})")
        return wire


@dataclass(frozen=True)
class _CallDetails(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class LocalContext(grpc.aio.ServicerContext[Any, Any]):
    """The ServicerContext of a call served in-process: its metadata, and the status it ends
    with. It has no transport: no peer certificate (as on the insecure loopback hop), no
    deadline (the gateway's calls set none), and no messages to stream."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.initial: tuple[tuple[str, str | bytes], ...] = ()

    def error(self) -> grpc.aio.AioRpcError:
        """The error the call ended with."""
        return _error(self._code or grpc.StatusCode.UNKNOWN, self._details or "", self.initial,
                      self._trailing)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> NoReturn:
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        self.initial = tuple(initial_metadata)

    def invocation_metadata(self) -> Any:
        return self._metadata

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> Any:
        return self._trailing

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code or grpc.StatusCode.OK

    def set_details(self, details: str) -> None:
        self._details = details

    def details(self) -> str:
        return self._details or ""

    def peer(self) -> str:
        return PEER

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, Any]:
        return {}

    def time_remaining(self) -> float | None:  # type: ignore[override]  # as grpc.aio's
        return None

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def set_compression(self, compression: grpc.Compression) -> None:
        """Nothing is compressed in-process."""

    def disable_next_message_compression(self) -> None:
        """Nothing is compressed in-process."""

    async def read(self) -> NoReturn:
        raise NotImplementedError("an in-process call streams no requests")

    async def write(self, message: Any) -> NoReturn:
        raise NotImplementedError("an in-process call streams no answers")


def _error(
    code: grpc.StatusCode,
    details: str,
    initial: Sequence[tuple[str, str | bytes]] = (),
    trailing: Sequence[tuple[str, str | bytes]] = (),
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(*initial), grpc.aio.Metadata(*trailing),
                                details)
