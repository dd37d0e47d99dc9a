"""The exceptions the Capstan client raises: one per gRPC status class the server uses.

Every failed call raises a `CapstanError` carrying the status `code`, the server's `message` and
the rich `details` the server attached (the `google.rpc.Status` in `grpc-status-details-bin`,
each detail an `Any` packing a `google.protobuf.Struct`, decoded into plain dicts).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from grpc_status import rpc_status

from capstan.client.messages import whole_numbers

__all__ = [
    "Aborted",
    "AlreadyExists",
    "CapstanError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "error_from_rpc",
]


class CapstanError(Exception):
    """A Capstan call failed with a gRPC status other than OK.

    `code` is the `grpc.StatusCode`, `message` the server's message and `details` the structured
    details it sent (e.g. the candidates of an ambiguous release name), as a list of dicts.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details: list[dict[str, Any]] = details or []

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(CapstanError):
    """INVALID_ARGUMENT: a bad name, bad values or YAML, an ambiguous reference."""


class NotFound(CapstanError):
    """NOT_FOUND: an unknown release, revision, cluster, namespace, repository, chart or version."""


class AlreadyExists(CapstanError):
    """ALREADY_EXISTS: the name is taken."""


class FailedPrecondition(CapstanError):
    """FAILED_PRECONDITION: not allowed in the current state (e.g. a repository still in use)."""


class Aborted(CapstanError):
    """ABORTED: another operation on the release is in flight; retry once it has settled."""


class Unavailable(CapstanError):
    """UNAVAILABLE: the server, a cluster or a chart repository cannot be reached."""


class DeadlineExceeded(CapstanError):
    """DEADLINE_EXCEEDED: the call or the operation did not finish in time."""


class Unauthenticated(CapstanError):
    """UNAUTHENTICATED: no credential, or a malformed, expired or unknown one (the message
    says which); give a token (`token=`, `$CAPSTAN_TOKEN`) or a client certificate."""


class PermissionDenied(CapstanError):
    """PERMISSION_DENIED: the caller may not do this there (its role or projects)."""


class ResourceExhausted(CapstanError):
    """RESOURCE_EXHAUSTED: the server is at capacity (its helm queue is full); a detail's
    `retry_after_seconds` says when to try again."""


_BY_CODE: dict[grpc.StatusCode, type[CapstanError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def error_from_rpc(error: grpc.RpcError) -> CapstanError:
    """The `CapstanError` (of the subclass for its code) for a failed sync or asyncio call.

    Both `grpc.RpcError`s raised by sync calls and `grpc.aio.AioRpcError`s are `grpc.Call`-like:
    they have `code()`, `details()` and `trailing_metadata()`, which is all this needs.
    """
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message_fn = getattr(error, "details", None)
    message = message_fn() if callable(message_fn) else None
    cls = _BY_CODE.get(code, CapstanError)
    return cls(code, message or "", _rich_details(error))


def _rich_details(error: grpc.RpcError) -> list[dict[str, Any]]:
    try:
        status = rpc_status.from_call(error)
    except (AttributeError, TypeError, ValueError):
        # Not a call object, or a status proto that disagrees with the call's own status: the
        # code and message are still right, only the extras are lost.
        return []
    if status is None:
        return []
    details: list[dict[str, Any]] = []
    for packed in status.details:
        struct = struct_pb2.Struct()
        if packed.Unpack(struct):
            details.append(whole_numbers(json_format.MessageToDict(struct)))
        else:
            details.append({"@type": packed.type_url})
    return details
