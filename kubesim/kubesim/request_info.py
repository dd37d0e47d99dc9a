"""What a request asks to do, in the terms authorizers use (the API server's ``RequestInfo``).

`request_attributes` parses the URL the way ``k8s.io/apiserver/pkg/endpoints/request`` does --
from the path alone, without knowing which resources exist: ``/api/v1/...`` and
``/apis/<group>/<version>/...`` are resource requests, everything else is a non-resource request
whose verb is the lower-case HTTP method. For resource requests GET is ``get`` with a name,
else ``list`` (``watch`` with ``?watch=true``; a ``metadata.name=`` field selector names the
object), DELETE without a name is ``deletecollection``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .identity import UserInfo

_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# what path.IsValidPathSegmentName refuses
_BAD_SEGMENT = re.compile(r"^\.\.?$|[/%]")
_NAME_TERM = re.compile(r"^metadata\.name\s*==?(?!=)(.*)$")


@dataclass(frozen=True)
class Attributes:
    """One authorization question: may ``user`` do ``verb`` on this resource or path?"""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(
    user: UserInfo, method: str, path: str, query: Mapping[str, str]
) -> Attributes:
    """The `Attributes` of an HTTP request, as the API server's RequestInfo resolver finds them."""
    non_resource = Attributes(user, method.lower(), False, path=path)
    parts = path.strip("/").split("/") if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = _METHOD_VERBS.get(method.upper(), "")
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            return non_resource
        verb, rest = rest[0], rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        watch = query.get("watch")
        verb = "watch" if watch is not None and watch.lower() not in ("false", "0") else "list"
        wanted = _exact_name(query.get("fieldSelector") or "")
        if wanted and not _BAD_SEGMENT.search(wanted):
            name = wanted
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, path=path, api_group=group, api_version=version,
                      namespace=namespace, resource=resource, subresource=subresource, name=name)


def _exact_name(field_selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` / ``==``), else ""."""
    for term in field_selector.split(","):
        m = _NAME_TERM.match(term.strip())
        if m:
            return m.group(1).strip()
    return ""
