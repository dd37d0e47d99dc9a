"""Kubernetes API errors: the exception the store raises and the `Status` body the server sends."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType


class ApiError(Exception):
    """An API failure with its HTTP code and Kubernetes reason (``NotFound``, ``Conflict`` ...)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``kind: Status`` body Kubernetes returns for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(rt: ResourceType | None, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rt is not None:
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
    return details


class NotFound(ApiError):
    def __init__(self, rt: ResourceType | None, name: str, what: str = "") -> None:
        what = what or (rt.group_resource if rt else "resource")
        super().__init__(404, "NotFound", f'{what} "{name}" not found', _details(rt, name))


class AlreadyExists(ApiError):
    def __init__(self, rt: ResourceType, name: str) -> None:
        super().__init__(
            409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name)
        )


class Conflict(ApiError):
    def __init__(self, rt: ResourceType, name: str, why: str = "") -> None:
        why = why or (
            "the object has been modified; please apply your changes to the latest version "
            "and try again"
        )
        super().__init__(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
            _details(rt, name),
        )


class Invalid(ApiError):
    def __init__(
        self, rt: ResourceType, name: str, causes: list[tuple[str, str]] | str
    ) -> None:
        if isinstance(causes, str):
            causes = [("", causes)]
        text = ", ".join(f"{f}: {m}" if f else m for f, m in causes)
        if len(causes) > 1:  # as apimachinery aggregates several field errors
            text = f"[{text}]"
        details = _details(rt, name)
        details["kind"] = rt.kind
        details["causes"] = [
            {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
        ]
        super().__init__(
            422, "Invalid", f'{rt.kind} "{name}" is invalid: {text}', details
        )


class BadRequest(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "BadRequest", message)


class Gone(ApiError):
    def __init__(self, message: str = "too old resource version") -> None:
        super().__init__(410, "Expired", message)


class MethodNotAllowed(ApiError):
    def __init__(self, message: str = "the server does not allow this method on the requested resource") -> None:  # noqa: E501
        super().__init__(405, "MethodNotAllowed", message)


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "Unauthorized", "Unauthorized")


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "Forbidden", message)


class UnsupportedMediaType(ApiError):
    def __init__(self, content_type: str) -> None:
        super().__init__(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})")  # noqa: E501


def status_success(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    }
    if details is not None:
        body["details"] = details
    return body
