"""The gateway's in-process unary calls (gateway/in_process.py) run as the gRPC server runs a
call: the registered handler behind the interceptors in their order, the handler's own codec
under the message size limit, a task of its own, and failures as the AioRpcError a channel
would raise."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import status_pb2
from grpc_status import rpc_status

from capstan.v1 import cluster_pb2
from capstan_server.gateway.in_process import PEER, InProcessCalls
from capstan_server.handlers import rewrap

METHOD = "/test.Clusters/Get"
REQUEST, ANSWER = cluster_pb2.GetClusterRequest, cluster_pb2.Cluster
_binding: contextvars.ContextVar[str] = contextvars.ContextVar("binding", default="unset")


class Recording(grpc.aio.ServerInterceptor):
    """Records what it saw, and wraps the behaviour so that it records around it too."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails
                                ) -> Any:
        metadata = dict(details.invocation_metadata)
        self.seen.append(f"{self.name}:{details.method}:{metadata.get('who')!s}")
        handler = await continuation(details)

        def wrap(behavior: Any) -> Any:
            async def unary(request: Any, context: Any) -> Any:
                self.seen.append(f"{self.name} before")
                try:
                    return await behavior(request, context)
                finally:
                    self.seen.append(f"{self.name} after")
            return unary

        return rewrap(handler, unary=wrap, stream=wrap)


def calls(behavior: Callable[..., Any], *, seen: list[str] | None = None,
          max_message_bytes: int = 1 << 20) -> InProcessCalls:
    interceptors = [Recording("outer", seen), Recording("inner", seen)] if seen is not None else []
    local = InProcessCalls(interceptors, max_message_bytes=max_message_bytes)
    handler = grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=REQUEST.FromString,
        response_serializer=ANSWER.SerializeToString)
    local.add_registered_method_handlers("test.Clusters", {"Get": handler})
    return local


async def call(local: InProcessCalls, request: Any = None, **kwargs: Any) -> Any:
    return await local.unary_unary(METHOD, ANSWER.FromString)(request or REQUEST(id="c1"),
                                                              **kwargs)


async def test_the_interceptors_run_in_order_around_the_handler_with_the_metadata() -> None:
    seen: list[str] = []

    async def get(request: cluster_pb2.GetClusterRequest, context: Any) -> cluster_pb2.Cluster:
        seen.append(f"handler {request.id} {dict(context.invocation_metadata())['who']}")
        assert context.peer() == PEER and context.auth_context() == {}
        return cluster_pb2.Cluster(id=request.id, name="test122")

    answer = await call(calls(get, seen=seen), metadata=[("who", "alice")])
    assert answer == cluster_pb2.Cluster(id="c1", name="test122")
    assert seen == [f"outer:{METHOD}:alice", f"inner:{METHOD}:alice", "outer before",
                    "inner before", "handler c1 alice", "inner after", "outer after"]


async def test_an_abort_comes_back_with_its_code_message_and_details() -> None:
    status = rpc_status.to_status(status_pb2.Status(
        code=grpc.StatusCode.NOT_FOUND.value[0], message="cluster c1 not found"))

    async def get(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.send_initial_metadata((("x-request-id", "r1"),))
        await context.abort_with_status(status)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(calls(get))
    error = caught.value
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "cluster c1 not found"
    assert dict(error.trailing_metadata())["grpc-status-details-bin"]
    assert dict(error.initial_metadata()) == {"x-request-id": "r1"}


async def test_a_status_set_without_an_abort_is_an_error_too() -> None:
    def get(_request: Any, context: Any) -> Any:  # a plain function, as grpc allows
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("not yet")
        return ANSWER()

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(calls(get))
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "not yet")


async def test_an_exception_no_interceptor_mapped_is_unknown() -> None:
    async def get(_request: Any, _context: Any) -> Any:
        raise ValueError("boom")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(calls(get))
    assert caught.value.code() is grpc.StatusCode.UNKNOWN
    assert "ValueError" in (caught.value.details() or "")


async def test_messages_over_the_size_limit_are_refused_both_ways() -> None:
    ran: list[str] = []

    async def get(request: Any, _context: Any) -> Any:
        ran.append(request.id)
        return ANSWER(name="n" * 2000)

    local = calls(get, max_message_bytes=1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(local, REQUEST(id="x" * 2000))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and ran == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(local)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and ran == ["c1"]


async def test_the_answer_is_a_copy_and_context_variables_stay_with_the_call() -> None:
    kept = ANSWER(id="c1", name="kept")

    async def get(_request: Any, _context: Any) -> Any:
        _binding.set("the call's")
        return kept

    answer = await call(calls(get))
    answer.name = "changed by the gateway"
    assert kept.name == "kept" and _binding.get() == "unset"


async def test_unknown_and_streaming_methods_are_not_served_here() -> None:
    local = calls(lambda _r, _c: ANSWER())
    local.add_registered_method_handlers("test.Clusters", {
        "Watch": grpc.unary_stream_rpc_method_handler(lambda _r, _c: iter(()))})
    assert local.serves(METHOD)
    assert not local.serves("/test.Clusters/Watch") and not local.serves("/test.Clusters/Nope")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await local.unary_unary("/test.Clusters/Nope", ANSWER.FromString)(REQUEST())
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
