"""The audit log: one structured line per write and per refused call, on logger `capstan.audit`.

Each line has the time, the subject (and how it authenticated), the method, what it addressed
(cluster, namespace, release or repository, as the request names them), the result code and the
request id (`x-request-id` metadata when the caller or the gateway sent one). `audit_fields` is
the hook other log lines can share; values and kubeconfigs are never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import grpc

from capstan_server.auth.access import Access

__all__ = ["REQUEST_ID", "audit", "audit_fields", "request_target"]

log = logging.getLogger("capstan.audit")

REQUEST_ID = "x-request-id"
_DENIALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def request_target(method: str, request: Any) -> dict[str, str]:
    """What a request addresses, by the fields its message has."""
    service = method.rsplit("/", 2)[-2] if method.count("/") >= 2 else ""

    def field(name: str) -> str:
        value = getattr(request, name, "")
        return value if isinstance(value, str) else ""

    if service.endswith("ClusterService"):
        return {"cluster": field("cluster") or field("name") or field("id")}
    if service.endswith("ChartService"):
        return {"repo": field("repo") or field("name") or field("id")}
    return {
        "cluster": field("cluster"),
        "namespace": field("namespace"),
        "release": field("id") or field("release_name"),
    }


def audit_fields(
    method: str, request: Any, access: Access | None, code: grpc.StatusCode, request_id: str
) -> dict[str, Any]:
    subject = access.subject if access is not None else None
    fields: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        # "anonymous": no policy is loaded, so nobody is asked who they are.
        "subject": subject.name if subject else ("anonymous" if access else "unauthenticated"),
        "subject_kind": subject.kind if subject else "",
        "method": method,
        **request_target(method, request),
        "code": code.name,
        "request_id": request_id,
    }
    if access is not None and access.denied:
        fields["denied"] = "; ".join(access.denied)
    return fields


def audit(
    method: str,
    request: Any,
    access: Access | None,
    code: grpc.StatusCode,
    request_id: str,
    *,
    write: bool,
) -> None:
    """Log the call if it is a write, or was refused (UNAUTHENTICATED, PERMISSION_DENIED, or a
    read answered NOT_FOUND because the caller may not see what it named)."""
    denied = code in _DENIALS or (access is not None and bool(access.denied))
    if not (write or denied):
        return
    fields = audit_fields(method, request, access, code, request_id)
    log.info("denied" if denied else "write", extra={"fields": fields})
