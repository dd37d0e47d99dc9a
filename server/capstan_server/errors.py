"""Capstan's error types and the one mapping from them to gRPC codes and HTTP statuses.

Everything below the gRPC servicers raises a `CapstanError` subclass; the servicers' interceptor
turns it into a gRPC status, and the gateway turns a gRPC status into an HTTP status with the
table in `HTTP_STATUS`. Whether a failure may be retried is a property of its type (`retryable`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc

#: gRPC code -> HTTP status, as DESIGN.md fixes it. Codes not listed map to 500.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status the gateway answers for a gRPC status code."""
    return HTTP_STATUS.get(code, 500)


class CapstanError(Exception):
    """Base of every error Capstan reports to a caller.

    `details` are JSON-able objects that help the caller act on the error (for example the
    candidates of an ambiguous release name); they travel as `google.rpc.Status` details.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = details or []


class InvalidArgument(CapstanError):
    """The request is malformed: a bad name, bad values, bad YAML, an ambiguous reference."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(CapstanError):
    """An unknown release, revision, cluster, namespace, repository, chart or version."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CapstanError):
    """A name that is already taken."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CapstanError):
    """The system is not in a state that allows the operation (e.g. a repo still in use)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(CapstanError):
    """Another operation on the same release is in flight; retry once it has settled."""

    code = grpc.StatusCode.ABORTED
    retryable = True


class PermissionDenied(CapstanError):
    """Not allowed: the caller may not do this here (a write outside its projects, a viewer's
    write, a non-admin's cluster or repository change), or a third party (a chart registry)
    refused the credentials Capstan was given for it. Not UNAUTHENTICATED, which says the
    caller's own credentials for Capstan are bad."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(CapstanError):
    """A cluster or chart repository cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class ResourceExhausted(CapstanError):
    """The server is at capacity (e.g. its helm queue is full); the details say when to retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


class DeadlineExceeded(CapstanError):
    """The operation did not finish within its timeout."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class OperationFailed(CapstanError):
    """Helm ran and failed (a hook failed, a resource was refused, ...); the message says why."""

    code = grpc.StatusCode.INTERNAL


class Internal(CapstanError):
    """A bug or an unexpected state; the message is safe to show."""

    code = grpc.StatusCode.INTERNAL


class Unauthenticated(CapstanError):
    """The call carries no credential, a malformed one, an expired one or an unknown one; the
    message says which (never the credential itself)."""

    code = grpc.StatusCode.UNAUTHENTICATED
