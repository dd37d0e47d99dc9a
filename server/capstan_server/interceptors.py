"""The gRPC server interceptor: one structured log line per RPC, and errors turned into statuses.

`CapstanError`s become the gRPC status of their type, with their details packed as
`google.rpc.Status` details (each an `Any` holding a `google.protobuf.Struct`) in
`grpc-status-details-bin`, as docs/DEVELOPING.md describes. Any other exception is a bug: it is
logged with its traceback and the caller gets INTERNAL with a reference to that log line, never the
traceback itself. Works for unary and server-streaming handlers; streaming ones are also ended
with UNAVAILABLE when the server starts shutting down (see `RpcInterceptor.drain_streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, struct_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from capstan_server import limits, metrics, request_ids
from capstan_server.errors import CapstanError
from capstan_server.handlers import messages_of, result_of, rewrap

log = logging.getLogger("capstan.rpc")

#: Health checks come every few seconds from probes; logging each at INFO would drown the rest.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

#: Metadata key the REST gateway sets to the HTTP client's address, so logs show the real peer.
FORWARDED_FOR = "x-forwarded-for"

if TYPE_CHECKING:
    from capstan_server.handlers import Continuation


def status_for(error: CapstanError, request_id: str = "") -> grpc.Status:
    """The gRPC status (code, message, rich details in trailing metadata) for a CapstanError;
    the call's request id, if any, is the last detail (`{"request_id": ...}`)."""
    details = []
    size = 0
    for item in error.details:
        struct = struct_pb2.Struct()
        # A round trip through JSON turns values Struct cannot hold (datetimes, paths, ...) into
        # strings instead of failing the whole error report.
        struct.update(limits.clip_details(json.loads(json.dumps(item, default=str))))
        packed = any_pb2.Any()
        packed.Pack(struct)
        # Trailers have a hard size limit: the details past the budget are left out.
        size += packed.ByteSize()
        if size > limits.MAX_ERROR_DETAILS_BYTES:
            break
        details.append(packed)
    if request_id:  # always kept, whatever the budget left out
        packed = any_pb2.Any()
        packed.Pack(struct_pb2.Struct(fields={
            "request_id": struct_pb2.Value(string_value=request_id)}))
        details.append(packed)
    message = limits.clip(error.message, limits.MAX_ERROR_MESSAGE_CHARS)
    status = status_pb2.Status(code=error.code.value[0], message=message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Logs each RPC and maps its errors; one instance serves a whole server."""

    def __init__(self) -> None:
        self._draining = asyncio.Event()

    def drain_streams(self) -> None:
        """End every server-streaming call in flight (and any started later) with UNAVAILABLE.

        Watches (health Watch, WatchRelease) never finish by themselves, so without this a
        graceful shutdown would always wait out its whole grace period for them.
        """
        self._draining.set()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        # Client-streaming RPCs (only server reflection has them) map their own errors.
        return rewrap(handler, unary=lambda b: self._unary(method, b),
                      stream=lambda b: self._server_stream(method, b))

    def _unary(
        self, method: str, behavior: Callable[[Any, Any], Any]
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            outcome = _Outcome(method, context)
            try:
                await _send_request_id(context, outcome.request_id)
                return await result_of(behavior, request, context)
            except BaseException as exc:
                await outcome.fail(exc)
                raise
            finally:
                outcome.log()

        return unary

    def _server_stream(
        self, method: str, behavior: Callable[[Any, Any], Any]
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        draining = self._draining

        async def server_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            outcome = _Outcome(method, context)
            try:
                await _send_request_id(context, outcome.request_id)
                result = behavior(request, context)
                async for message in _until_drained(messages_of(result), draining):
                    outcome.messages += 1
                    yield message
                if draining.is_set():
                    outcome.code = grpc.StatusCode.UNAVAILABLE
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
            except BaseException as exc:
                await outcome.fail(exc)
                raise
            finally:
                outcome.log()

        return server_stream


async def _send_request_id(context: grpc.aio.ServicerContext[Any, Any], request_id: str) -> None:
    # In the initial metadata, so a gRPC caller sees it whether the call succeeds or fails.
    await context.send_initial_metadata(((request_ids.METADATA_KEY, request_id),))


async def _until_drained(
    messages: AsyncIterator[Any], draining: asyncio.Event
) -> AsyncIterator[Any]:
    """`messages`, stopping early (and closing the source) once `draining` is set."""
    drained = asyncio.ensure_future(draining.wait())
    try:
        while not draining.is_set():
            step = asyncio.ensure_future(anext(messages))
            done, _ = await asyncio.wait({step, drained}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                return
            try:
                message = step.result()
            except StopAsyncIteration:
                return
            yield message
    finally:
        drained.cancel()
        await _aclose(messages)


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        # Closing a generator that is still running (its step was just cancelled) is refused;
        # the cancellation finishes it off anyway.
        with contextlib.suppress(RuntimeError):
            await aclose()


class _Outcome:
    """What one RPC did, for its log line; also turns exceptions into statuses."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.method = method
        self.context = context
        self.started = time.perf_counter()
        self.code: grpc.StatusCode | None = None
        self.messages = 0
        self.error_ref = ""
        #: The caller's `x-request-id` (the gateway always sends one) or a new id.
        self.request_id = request_ids.accept(
            _metadata_value(context, request_ids.METADATA_KEY))
        # grpc.aio serves each call in a task of its own: the id stays with this call.
        request_ids.bind(self.request_id)

    async def fail(self, exc: BaseException) -> None:
        """Record the status `exc` ends the call with; abort the call unless it already is.

        Raises grpc.aio.AbortError (from `context.abort`) for the errors it maps, and returns
        for those it lets through unchanged (an abort already under way, a cancellation).
        """
        if isinstance(exc, grpc.aio.AbortError):
            self.code = _context_code(self.context) or grpc.StatusCode.UNKNOWN
            return
        if isinstance(exc, asyncio.CancelledError):
            self.code = grpc.StatusCode.CANCELLED
            return
        if isinstance(exc, CapstanError):
            self.code = exc.code
            await self.context.abort_with_status(status_for(exc, self.request_id))
        if isinstance(exc, NotImplementedError):
            # The generated servicer base classes raise it for RPCs nobody implemented yet.
            self.code = grpc.StatusCode.UNIMPLEMENTED
            await self.context.abort_with_status(status_for(
                _Plain(self.code, f"{self.method} is not implemented"), self.request_id))
        if not isinstance(exc, Exception):
            self.code = grpc.StatusCode.CANCELLED
            return
        self.code = grpc.StatusCode.INTERNAL
        self.error_ref = secrets.token_hex(4)
        log.error(
            "unexpected error in %s (ref %s)",
            self.method,
            self.error_ref,
            exc_info=exc,
            extra={"fields": {"method": self.method, "error_ref": self.error_ref}},
        )
        await self.context.abort_with_status(status_for(
            _Plain(self.code, f"internal error (ref {self.error_ref})"), self.request_id))

    def log(self) -> None:
        code = self.code or _context_code(self.context) or grpc.StatusCode.OK
        fields: dict[str, Any] = {
            "method": self.method,
            "code": code.name,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "peer": self.context.peer(),
            "request_id": self.request_id,
        }
        forwarded = _metadata_value(self.context, FORWARDED_FOR)
        if forwarded:
            fields["forwarded_for"] = forwarded
        if self.messages:
            fields["messages"] = self.messages
        quiet = self.method.startswith(_QUIET_PREFIXES) and code is grpc.StatusCode.OK
        log.log(logging.DEBUG if quiet else logging.INFO, "rpc", extra={"fields": fields})
        metrics.rpc_done(self.method, code.name, fields["duration_ms"] / 1000)


class _Plain(CapstanError):
    """An error of a given code without details (for the statuses built here)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]


def _context_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    code = context.code()
    # grpc.aio reports the code as set by set_code/abort; before either it may be None or an int.
    return code if isinstance(code, grpc.StatusCode) else None


def _metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item[0] == key and isinstance(item[1], str):
            return item[1]
    return ""
