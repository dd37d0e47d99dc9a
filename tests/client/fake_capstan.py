"""A scriptable in-process Capstan gRPC server, for unit tests of the client and the CLI.

Every RPC of the three services answers an empty response unless a test scripts it with
`reply(method, *behaviours)`: a response message, a `Failure` (a status with rich details, sent
the way the real server's interceptor sends it), a stream's list of messages, or a callable
`(request, context) -> any of these`. Behaviours are used in order, the last one sticks.
Every request received is recorded in `requests`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2

_MODULES: tuple[ModuleType, ...] = (release_pb2, chart_pb2, cluster_pb2)


@dataclass
class Failure:
    """A scripted error status."""

    code: grpc.StatusCode
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def status(self) -> grpc.Status:
        packed = []
        for detail in self.details:
            struct = struct_pb2.Struct()
            struct.update(detail)
            item = any_pb2.Any()
            item.Pack(struct)
            packed.append(item)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        result: grpc.Status = rpc_status.to_status(proto)
        return result


Behaviour = Message | Failure | Sequence[Message] | Callable[[Message, grpc.ServicerContext], Any]


class FakeCapstan:
    """The fake server; `target` is its `127.0.0.1:PORT`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Message]] = []
        self._behaviours: dict[str, list[Behaviour]] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        for module in _MODULES:
            for service in module.DESCRIPTOR.services_by_name.values():
                handlers = {
                    method.name: self._handler(module, method) for method in service.methods
                }
                self._server.add_generic_rpc_handlers(
                    (grpc.method_handlers_generic_handler(service.full_name, handlers),)
                )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{port}"

    def start(self) -> FakeCapstan:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def reply(self, method: str, *behaviours: Behaviour) -> None:
        """Script the next answers of `method` (e.g. "GetRelease")."""
        with self._lock:
            self._behaviours[method] = list(behaviours)

    def received(self, method: str) -> list[Any]:
        """The requests `method` received, oldest first."""
        with self._lock:
            return [request for name, request in self.requests if name == method]

    def _next(self, method: str) -> Behaviour | None:
        with self._lock:
            queue = self._behaviours.get(method)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _answer(self, method: str, request: Message, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.requests.append((method, request))
        behaviour = self._next(method)
        if callable(behaviour) and not isinstance(behaviour, Message):
            behaviour = behaviour(request, context)
        if isinstance(behaviour, Failure):
            context.abort_with_status(behaviour.status())
        return behaviour

    def _handler(self, module: ModuleType, method: Any) -> grpc.RpcMethodHandler[Any, Any]:
        request_type = getattr(module, method.input_type.name)
        response_type = getattr(module, method.output_type.name)
        name = method.name

        if method.server_streaming:
            def stream(request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
                answer = self._answer(name, request, context)
                yield from answer or []

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        def unary(request: Message, context: grpc.ServicerContext) -> Message:
            answer = self._answer(name, request, context)
            result: Message = answer if answer is not None else response_type()
            return result

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
