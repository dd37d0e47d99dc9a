"""User impersonation: ``Impersonate-User``, ``-Group``, ``-Uid`` and ``-Extra-<key>`` headers.

As the API server's impersonation filter does, each thing asked for is authorized separately
for the *authenticated* user with the verb ``impersonate``: ``users`` (or, for
``system:serviceaccount:<ns>:<name>``, ``serviceaccounts`` in that namespace) and ``groups`` in
the core group, ``uids`` and ``userextras/<key>`` in ``authentication.k8s.io``, the impersonated
value being the resource name (so ``resourceNames`` restrict who may be impersonated). The
request then runs as the impersonated user, who gets ``system:authenticated`` added (and a
service account its ``system:serviceaccounts`` groups when no group is given).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import ApiError
from .identity import UserInfo, split_service_account, with_authenticated
from .rbac import Decision, forbidden_details, forbidden_message
from .request_info import Attributes

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class _Ask:
    """One impersonation request: what must be authorized for it."""

    resource: str
    name: str
    api_group: str = ""
    namespace: str = ""
    subresource: str = ""


def impersonated_user(
    headers: Iterable[tuple[str, str]],
    requestor: UserInfo,
    authorize: Callable[[Attributes], Decision],
) -> UserInfo:
    """The user a request acts as: ``requestor``, or whom its headers ask to impersonate.

    ``headers``: every (name, value) of the request, repeated names included. Raises a 403
    `ApiError` naming the first thing the requestor may not impersonate, and a 500 (what the
    API server answers) for groups, a uid or extras without a user.
    """
    name = uid = ""
    group_list: list[str] = []
    extra: dict[str, tuple[str, ...]] = {}
    for header, value in headers:
        lower = header.lower()
        if lower == USER_HEADER.lower():
            name = name or value
        elif lower == GROUP_HEADER.lower():
            group_list.append(value)
        elif lower == UID_HEADER.lower():
            uid = uid or value
        elif lower.startswith(EXTRA_PREFIX.lower()):
            key = unquote(header[len(EXTRA_PREFIX):]).lower()
            extra[key] = (*extra.get(key, ()), value)
    groups = tuple(group_list)
    if not (name or groups or uid or extra):
        return requestor
    if not name:
        raise ApiError(500, "InternalError", "Internal error occurred: requested impersonation "
                       "of groups, a uid or extras without impersonating a user")
    asks: list[_Ask] = []
    service_account = split_service_account(name)
    if service_account is not None:
        asks.append(_Ask("serviceaccounts", service_account[1], namespace=service_account[0]))
    else:
        asks.append(_Ask("users", name))
    asks.extend(_Ask("groups", g) for g in groups)
    if uid:
        asks.append(_Ask("uids", uid, AUTHENTICATION_GROUP))
    for key, values in extra.items():
        asks.extend(_Ask("userextras", v, AUTHENTICATION_GROUP, subresource=key) for v in values)
    for ask in asks:
        attrs = Attributes(requestor, "impersonate", True, api_group=ask.api_group,
                           namespace=ask.namespace, resource=ask.resource,
                           subresource=ask.subresource, name=ask.name)
        decision = authorize(attrs)
        if not decision.allowed:
            raise ApiError(403, "Forbidden", forbidden_message(attrs, decision.reason),
                           forbidden_details(attrs))
    if service_account is not None and not groups:
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{service_account[0]}")
    return UserInfo(name, uid=uid, groups=with_authenticated(name, groups), extra=extra)
