"""Wrapping gRPC method handlers: what the server's interceptors (`interceptors.RpcInterceptor`,
`auth.interceptor.AuthInterceptor`, `limits.LimitsInterceptor`) share.

An interceptor of grpc.aio replaces a method's handler with one whose behaviour runs its own
code around the servicer's. `rewrap` is the one place that knows the four kinds of handler and
keeps each one's codec; `messages_of` reads a streaming behaviour's messages whichever style
it is written in.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    # Only the type stubs make RpcMethodHandler generic.
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]

#: A method's behaviour: (request or request iterator, context) -> answer, awaitable or stream.
Behavior = Callable[[Any, Any], Any]
#: What an interceptor does to a behaviour.
Wrap = Callable[[Behavior], Behavior]

__all__ = ["Behavior", "Wrap", "messages_of", "result_of", "rewrap"]


def rewrap(
    handler: Handler,
    *,
    unary: Wrap,
    stream: Wrap,
    client_streaming: bool = False,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """`handler` with its behaviour wrapped: by `unary` when the call is answered with one
    message, by `stream` when with a stream. Calls that stream requests in (only server
    reflection has them) are wrapped only with `client_streaming`; otherwise `handler` is
    returned as it is. `request_deserializer` replaces the handler's own."""
    codec = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), **codec)
    if not client_streaming:
        return handler
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **codec)
    return handler


async def result_of(behavior: Behavior, request: Any, context: Any) -> Any:
    """The answer of a unary behaviour, whether it is a coroutine function or a plain one."""
    result = behavior(request, context)
    return await result if inspect.isawaitable(result) else result


async def messages_of(result: Any) -> AsyncIterator[Any]:
    """The messages of a streaming behaviour's result, whichever of grpc.aio's styles it uses:
    an async generator, a coroutine writing with `context.write`, or a plain iterable."""
    if hasattr(result, "__aiter__"):
        async for message in result:
            yield message
    elif inspect.isawaitable(result):
        await result
    elif isinstance(result, Iterable):
        for message in result:
            yield message
