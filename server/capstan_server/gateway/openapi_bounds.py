"""What the server enforces on request fields, as JSON Schema keywords for the OpenAPI document:
REQUIRED fields (`google.api.field_behavior`), string lengths and integer bounds from
`capstan_server.limits`, and the name patterns of `capstan_server.names`. `openapi.py` adds
them to the schemas of request messages only; answers are not bound by them."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from capstan_server import limits
from capstan_server.names import DNS_LABEL_RULE, RELEASE_NAME_RULE, REPO_NAME_RULE
from capstan_server.services.messages import RELEASE_TYPES

_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_RELEASE = RELEASE_NAME_RULE[0].removeprefix("^").removesuffix("$")
_REPO = REPO_NAME_RULE[0].removeprefix("^").removesuffix("$")
#: catalog._CHART_NAME: a chart's name in an index.
_CHART = "[A-Za-z0-9][A-Za-z0-9._-]*"
#: A release addressed by UUID or name (resolver: a name must be a valid release name).
_RELEASE_ID = (f"^(?:{_UUID}|{_RELEASE})$", 53)
#: `<repo>/<chart>` (catalog.parse_chart_reference).
_CHART_REF = (f"^{_REPO}/{_CHART}$", limits.MAX_CHART_REF_CHARS)
#: What chart_service accepts: http(s) or oci, a host, no credentials in the URL (and, as in
#: every string, no NUL: `\S` alone would let one through).
_URL = (r"^(?:https?|oci)://[^\s\u0000/?#@]+(?:[/?#][^\s\u0000]*)?$", limits.MAX_URL_CHARS)
#: A request string without a rule of its own: limits.check_string refuses a NUL in any.
_NO_NUL = r"^[^\u0000]*$"
_RELEASE_REQUESTS = (
    "GetReleaseRequest",
    "UpgradeReleaseRequest",
    "GetReleaseHistoryRequest",
    "RollbackReleaseRequest",
    "DeleteReleaseRequest",
    "WatchReleaseRequest",
    "RecoverReleaseRequest",
)
#: Fields the services validate with a pattern (400 when it does not match), by (request
#: message, field), `*` for every request: (pattern, maximum length, whether empty is allowed).
_NAME_RULES: dict[tuple[str, str], tuple[str, int, bool]] = {
    ("*", "namespace"): (*DNS_LABEL_RULE, True),
    ("CreateReleaseRequest", "release_name"): (*RELEASE_NAME_RULE, True),
    ("CreateReleaseRequest", "chart_name"): (*_CHART_REF, False),
    ("UpgradeReleaseRequest", "release_name"): (*RELEASE_NAME_RULE, True),
    ("UpgradeReleaseRequest", "chart_name"): (*_CHART_REF, True),
    ("GetChartRequest", "name"): (f"^(?:{_REPO}/)?{_CHART}$", limits.MAX_CHART_REF_CHARS, False),
    ("CreateRepositoryRequest", "name"): (*REPO_NAME_RULE, False),
    ("CreateRepositoryRequest", "url"): (*_URL, False),
    ("CreateClusterRequest", "name"): (*DNS_LABEL_RULE, False),
    **{(name, "id"): (*_RELEASE_ID, False) for name in _RELEASE_REQUESTS},
}
#: Fields that take one of a few words (empty meaning the default, or "any" in a filter).
_CHOICES: dict[str, tuple[str, ...]] = {"type": ("", *RELEASE_TYPES)}


def is_request(message: Descriptor) -> bool:
    return message.full_name.startswith("capstan.v1.") and message.name.endswith("Request")


def required(message: Descriptor) -> list[str]:
    """The REQUIRED fields of a request message."""
    return list(limits.required_fields(message))


def field_bounds(message: Descriptor, field: FieldDescriptor) -> dict[str, Any]:
    """JSON Schema keywords for one field of a request message (empty when it has none)."""
    bounds: dict[str, Any] = {}
    if field.type == FieldDescriptor.TYPE_STRING and field.is_repeated:
        bounds["maxItems"] = limits.MAX_REPEATED_ITEMS
        bounds["items"] = {
            "type": "string",
            "maxLength": limits.FIELD_MAX_CHARS[field.name],
            "pattern": _NO_NUL,
        }
    elif field.type == FieldDescriptor.TYPE_STRING:
        is_required = field.name in limits.required_fields(message)
        if is_required:
            bounds["minLength"] = 1
        rule = _NAME_RULES.get((message.name, field.name)) or _NAME_RULES.get(("*", field.name))
        if rule is None:
            bounds["pattern"] = _NO_NUL
            bounds["maxLength"] = limits.FIELD_MAX_CHARS[field.name]
        else:
            pattern, longest, empty_ok = rule
            body = pattern.removeprefix("^").removesuffix("$")
            bounds["pattern"] = f"^(?:{body})?$" if empty_ok else f"^{body}$"
            bounds["maxLength"] = longest
        if field.name in _CHOICES:
            bounds["enum"] = list(_CHOICES[field.name])
    elif field.name in limits.INT_BOUNDS and field.cpp_type in (
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
    ):
        bounds["minimum"], bounds["maximum"] = limits.INT_BOUNDS[field.name]
    return bounds
