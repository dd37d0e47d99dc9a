"""Who a request is: the user information authentication yields, and kubesim's authenticator.

kubesim knows three kinds of callers:

- the **admin token** (the one in the kubeconfig kubesim writes): user ``kubesim-admin`` in the
  group ``system:masters``, which the authorizer always allows -- what a kubeadm admin
  kubeconfig is on a real cluster;
- **user tokens** mapped to a user and groups (``KubeSim(user_tokens=...)``, ``kubesim
  --user-token USER:TOKEN[:GROUP,...]``), authorized by RBAC like any other user;
- requests **without** an ``Authorization`` header when anonymous access is on (plain HTTP by
  default, because client-go sends bearer tokens only over TLS): they are the admin too, so that
  helm and kubectl over plain HTTP keep working as before RBAC existed.

Every authenticated user also gets ``system:authenticated``, as Kubernetes adds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import Unauthorized

#: The group the authorizer always allows (``user.SystemPrivilegedGroup`` in Kubernetes).
PRIVILEGED_GROUP = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ADMIN_USER = "kubesim-admin"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or impersonated) user: what RBAC subjects are matched against."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def privileged(self) -> bool:
        return PRIVILEGED_GROUP in self.groups

    def to_dict(self) -> dict[str, object]:
        """The ``userInfo`` shape of SelfSubjectReview / SubjectAccessReview (empty fields out)."""
        out: dict[str, object] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo(ADMIN_USER, groups=(PRIVILEGED_GROUP, ALL_AUTHENTICATED))


def with_authenticated(name: str, groups: tuple[str, ...]) -> tuple[str, ...]:
    """``groups`` plus ``system:authenticated`` unless it (or unauthenticated) is there."""
    if name == ANONYMOUS_USER:
        return groups if ALL_UNAUTHENTICATED in groups else (*groups, ALL_UNAUTHENTICATED)
    if ALL_AUTHENTICATED in groups or ALL_UNAUTHENTICATED in groups:
        return groups
    return (*groups, ALL_AUTHENTICATED)


def split_service_account(name: str) -> tuple[str, str] | None:
    """``system:serviceaccount:<ns>:<name>`` as ``(ns, name)``, else None."""
    if not name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, sa = name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
    if not sep or not namespace or not sa or ":" in sa:
        return None
    return namespace, sa


def parse_user_token(text: str) -> tuple[str, UserInfo]:
    """``USER:TOKEN[:GROUP,GROUP...]`` (the ``--user-token`` flag) as ``(token, user)``."""
    user, sep, rest = text.partition(":")
    token, _, groups_text = rest.partition(":")
    if not user or not sep or not token:
        raise ValueError(f"expected USER:TOKEN[:GROUP,...], got {text!r}")
    groups = tuple(g for g in groups_text.split(",") if g)
    return token, UserInfo(user, groups=with_authenticated(user, groups))


class Authenticator:
    """Maps a request's ``Authorization`` header to a `UserInfo` (401 when it cannot)."""

    def __init__(
        self, admin_token: str, user_tokens: Mapping[str, UserInfo] | None = None
    ) -> None:
        self.admin_token = admin_token
        self.user_tokens: dict[str, UserInfo] = dict(user_tokens or {})

    def add_user(self, token: str, name: str, groups: tuple[str, ...] = ()) -> UserInfo:
        """Map ``token`` to user ``name`` in ``groups`` (plus ``system:authenticated``)."""
        user = UserInfo(name, groups=with_authenticated(name, groups))
        self.user_tokens[token] = user
        return user

    def authenticate(self, header: str | None, anonymous: bool) -> UserInfo:
        if header is None:
            if not anonymous:
                raise Unauthorized()
            return ADMIN
        scheme, _, value = header.partition(" ")
        user = self.user_for_token(value.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise Unauthorized()
        return user

    def user_for_token(self, token: str) -> UserInfo | None:
        """Whose bearer token this is (None: nobody's)."""
        presented = token.encode()
        if secrets.compare_digest(presented, self.admin_token.encode()):
            return ADMIN
        for known, user in self.user_tokens.items():
            if secrets.compare_digest(presented, known.encode()):
                return user
        return None
