"""The OpenAPI document's security: the schemes the server accepts, and the 401/403 answers.

Every operation accepts any of the schemes (a bearer token, static or JWT; the documented API's
`X-Auth-Token` header; a client certificate over HTTPS); `/healthz` needs none. When no policy
is loaded the server accepts calls without any, which the document cannot know in advance.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPEN_PATHS", "add_security"]

#: Paths that never need a credential.
OPEN_PATHS = ("/healthz", "/openapi.json", "/livez", "/readyz", "/metrics")

_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A static token of the policy, or an OIDC JWT (Authorization: Bearer).",
    },
    "authToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": "The same tokens, in the documented kubeserver API's header.",
    },
    "mutualTLS": {
        "type": "mutualTLS",
        "description": "A client certificate (HTTPS with --client-ca); its CN or URI SAN names "
        "the subject.",
    },
}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ANSWERS = {
    "401": {
        "description": "Missing, malformed, expired or unknown credential (with "
        "`WWW-Authenticate: Bearer`).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": _ERROR,
    },
    "403": {
        "description": "The caller's role or projects do not allow this call there.",
        "content": _ERROR,
    },
}


def add_security(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the security schemes in `document` (in place) and return it."""
    document.setdefault("components", {})["securitySchemes"] = _SCHEMES
    document["security"] = [{name: []} for name in _SCHEMES]
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if path in OPEN_PATHS:
                operation["security"] = []
                continue
            operation.setdefault("responses", {}).update(_ANSWERS)
    return document
