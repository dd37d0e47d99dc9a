"""Access and identity reviews: what ``kubectl auth can-i`` and ``kubectl auth whoami`` create.

``authorization.k8s.io/v1``: SelfSubjectAccessReview (may *I* ...?), SubjectAccessReview (may
*this user* ...?), LocalSubjectAccessReview (the same, in one namespace) and
SelfSubjectRulesReview (what may I do in a namespace?). ``authentication.k8s.io/v1``:
SelfSubjectReview (who am I?) and TokenReview (whose is this bearer token?). Like the API
server, these are create-only and never stored; creating one needs RBAC's ``create`` on it like
any other request (``system:basic-user`` grants the self reviews to every authenticated user).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .api import json_response, read_body
from .errors import ApiError, BadRequest, MethodNotAllowed
from .identity import Authenticator, UserInfo
from .rbac import RBACAuthorizer
from .request_info import Attributes

AUTHORIZATION = "authorization.k8s.io/v1"
AUTHENTICATION = "authentication.k8s.io/v1"
_PATH = re.compile(
    r"^/apis/(?P<gv>authorization\.k8s\.io/v1|authentication\.k8s\.io/v1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[a-z]+)/?$"
)
_KINDS = {
    (AUTHORIZATION, "selfsubjectaccessreviews", False): "SelfSubjectAccessReview",
    (AUTHORIZATION, "subjectaccessreviews", False): "SubjectAccessReview",
    (AUTHORIZATION, "localsubjectaccessreviews", True): "LocalSubjectAccessReview",
    (AUTHORIZATION, "selfsubjectrulesreviews", False): "SelfSubjectRulesReview",
    (AUTHENTICATION, "selfsubjectreviews", False): "SelfSubjectReview",
    (AUTHENTICATION, "tokenreviews", False): "TokenReview",
}


def review_kind(path: str) -> tuple[str, str] | None:
    """``(kind, namespace)`` if ``path`` is a review endpoint."""
    m = _PATH.match(path)
    if not m:
        return None
    kind = _KINDS.get((m.group("gv"), m.group("resource"), m.group("ns") is not None))
    return (kind, m.group("ns") or "") if kind else None


def _invalid(kind: str, field: str, message: str) -> ApiError:
    group = AUTHENTICATION if kind in ("SelfSubjectReview", "TokenReview") else AUTHORIZATION
    return ApiError(
        422, "Invalid", f'{kind}.{group.split("/")[0]} "" is invalid: {field}: {message}',
        {"group": group.split("/")[0], "kind": kind,
         "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]},
    )


def _question(kind: str, user: UserInfo, spec: Mapping[str, Any]) -> Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise _invalid(kind, "spec.resourceAttributes",
                       "exactly one of nonResourceAttributes or resourceAttributes must be "
                       "specified")
    if isinstance(non_resource, Mapping):
        return Attributes(user, str(non_resource.get("verb", "")), False,
                          path=str(non_resource.get("path", "")))
    if not isinstance(resource, Mapping):
        raise BadRequest("spec.resourceAttributes must be an object")
    return Attributes(
        user,
        str(resource.get("verb", "")),
        True,
        api_group=str(resource.get("group", "")),
        api_version=str(resource.get("version", "")),
        namespace=str(resource.get("namespace", "")),
        resource=str(resource.get("resource", "")),
        subresource=str(resource.get("subresource", "")),
        name=str(resource.get("name", "")),
    )


def _subject(kind: str, spec: Mapping[str, Any]) -> UserInfo:
    name = str(spec.get("user", ""))
    groups = tuple(str(g) for g in spec.get("groups") or [])
    if not name and not groups:
        raise _invalid(kind, "spec.user", "at least one of user or group must be specified")
    extra = {str(k): tuple(str(x) for x in v or []) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(name, uid=str(spec.get("uid", "")), groups=groups, extra=extra)


async def serve_review(
    request: web.Request, user: UserInfo, authorizer: RBACAuthorizer,
    authenticator: Authenticator,
) -> web.StreamResponse | None:
    """Answer ``request`` if it creates a review (else None: not a review path)."""
    found = review_kind(request.path)
    if found is None:
        return None
    kind, namespace = found
    if request.method != "POST":
        raise MethodNotAllowed()
    body = await read_body(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be an object")
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise BadRequest("spec must be an object")
    api_version = AUTHENTICATION if kind in ("SelfSubjectReview", "TokenReview") else (
        AUTHORIZATION)
    out: dict[str, Any] = {"kind": kind, "apiVersion": api_version,
                           "metadata": {"creationTimestamp": None}}
    if kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.to_dict()}
        return json_response(out, 201)
    out["spec"] = dict(spec)
    if kind == "TokenReview":
        if not spec.get("token"):
            raise _invalid(kind, "spec.token", "Required value")
        reviewed = authenticator.user_for_token(str(spec.get("token", "")))
        out["status"] = ({"authenticated": True, "user": reviewed.to_dict()} if reviewed
                         else {"authenticated": False, "error": "invalid bearer token"})
        return json_response(out, 201)
    if kind == "SelfSubjectRulesReview":
        resource, non_resource, errors = authorizer.rules_for(user, str(spec.get("namespace", "")))
        status: dict[str, Any] = {"resourceRules": resource, "nonResourceRules": non_resource,
                                  "incomplete": bool(errors)}
        if errors:
            status["evaluationError"] = ", ".join(errors)
        out["status"] = status
        return json_response(out, 201)
    subject = user if kind == "SelfSubjectAccessReview" else _subject(kind, spec)
    attrs = _question(kind, subject, spec)
    if kind == "LocalSubjectAccessReview":
        if not attrs.resource_request:
            raise _invalid(kind, "spec.nonResourceAttributes",
                           "disallowed on this kind of request")
        if attrs.namespace != namespace:
            raise _invalid(kind, "spec.resourceAttributes.namespace",
                           "must match metadata.namespace")
    decision = authorizer.authorize(attrs)
    out["status"] = {"allowed": decision.allowed}
    if decision.reason:
        out["status"]["reason"] = decision.reason
    return json_response(out, 201)
