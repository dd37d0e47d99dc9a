"""How an RPC is described once and bound as a method of both the sync and the asyncio client.

Each client method is a plain *builder* function (in `releases.py`, `charts.py`, `clusters.py`)
that turns keyword arguments into a `Call`: the RPC, its request message and per-call options.
`RpcMethod` binds a builder to a client class together with that client's way of running a
call, so the signature, docstring and request building of every method exist exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from google.protobuf import struct_pb2
from google.protobuf.message import Message

__all__ = ["Call", "Rpc", "RpcMethod", "call_timeout", "struct"]

P = ParamSpec("P")
R = TypeVar("R", bound=Message)
T = TypeVar("T")
C = TypeVar("C")
Out = TypeVar("Out")

#: What the server assumes when a request's operation `timeout` is 0.
DEFAULT_OPERATION_TIMEOUT_S = 300
#: A call that starts a server-side operation waits this much longer than the operation's own
#: timeout, so the client never abandons an operation the server is still allowed to finish
#: (with the helm driver, abandoning one can leave the release failed).
OPERATION_MARGIN_S = 30.0


@dataclass(frozen=True)
class Rpc(Generic[R]):
    """One RPC of the Capstan API: which stub serves it and whether it is safe to retry."""

    #: The generated stub class, e.g. `release_pb2_grpc.ReleaseServiceStub`.
    stub: type[Any]
    #: The method name on that stub, e.g. `"CreateRelease"`.
    name: str
    #: The response message type (the item type for a server stream).
    response: type[R]
    #: Reads, watch set-up and repository sync may be retried on UNAVAILABLE; writes never.
    idempotent: bool


@dataclass(frozen=True)
class Call(Generic[R]):
    """An RPC ready to be sent: the request and the options of this one call."""

    rpc: Rpc[R]
    request: Message
    #: Deadline for this call in seconds (all retries included); None for the client default.
    deadline: float | None = None
    #: The request's own operation timeout in seconds (0: the server default), for RPCs that
    #: start a server-side operation; None for the others.
    operation_timeout: int | None = None


def call_timeout(call: Call[Any], default: float | None) -> float | None:
    """The deadline, in seconds from now, for `call` on a client whose default is `default`."""
    if call.deadline is not None:
        return call.deadline
    if default is None or call.operation_timeout is None:
        return default
    operation = call.operation_timeout or DEFAULT_OPERATION_TIMEOUT_S
    return max(default, operation + OPERATION_MARGIN_S)


def struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """A `google.protobuf.Struct` holding the JSON object `value` (None stays unset)."""
    if value is None:
        return None
    result = struct_pb2.Struct()
    result.update(value)
    return result


class RpcMethod(Generic[C, P, T, Out]):
    """A client method made of a builder (`P -> T`) and the client's runner (`(client, T) -> Out`).

    On the sync client the runner returns the response; on the asyncio client it returns a
    coroutine; either way the method's parameters are exactly the builder's.
    """

    def __init__(self, build: Callable[P, T], run: Callable[[C, T], Out]) -> None:
        self._build = build
        self._run = run
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        # `inspect.signature` and IDEs follow __wrapped__ to the builder's parameters.
        self.__wrapped__ = build

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, client: C, owner: type[Any]) -> Callable[P, Out]: ...

    def __get__(self, client: C | None, owner: type[Any]) -> Self | Callable[P, Out]:
        if client is None:
            return self
        build, run = self._build, self._run

        def method(*args: P.args, **kwargs: P.kwargs) -> Out:
            return run(client, build(*args, **kwargs))

        method.__doc__ = build.__doc__
        method.__name__ = build.__name__
        method.__wrapped__ = build  # type: ignore[attr-defined]
        return method
