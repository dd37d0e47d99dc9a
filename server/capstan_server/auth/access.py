"""Authorization: the one place that answers "may the caller do this on cluster C, namespace N".

The auth interceptor puts the caller's `Access` in a context variable for the duration of the
call; the services (through `services.addressing.Resolver` and a few direct checks) ask
`current_access()`. Without a policy every call has `UNRESTRICTED` access, which allows
everything, so the services need no special case for an open server.

The rules (README, "Security"): reads of releases and namespaces are limited to the namespaces
the caller's projects grant (anything else is not found, so its existence does not leak);
release writes there need `editor` (elsewhere PERMISSION_DENIED, and nothing runs); cluster and
repository changes need `admin`; charts and repositories may be read by every known subject.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from capstan_server.auth.policy import Binding, Policy, Role
from capstan_server.errors import PermissionDenied

__all__ = ["UNRESTRICTED", "Access", "Action", "Subject", "current_access", "use_access"]


class Action(enum.Enum):
    """What a call does to what it addresses; each needs a role."""

    READ = Role.VIEWER
    WRITE = Role.EDITOR
    ADMIN = Role.ADMIN


@dataclass(frozen=True)
class Subject:
    """Who is calling: a name for the audit log, how they proved it, and what they may do."""

    name: str
    #: "token", "jwt", "cert", "keystone", "internal", or "anonymous" (no policy loaded).
    kind: str
    bindings: tuple[Binding, ...]

    @property
    def role(self) -> Role | None:
        """The highest role any of its bindings gives."""
        return max((b.role for b in self.bindings), default=None)

    @property
    def projects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for b in self.bindings if b.grants is not None
                                   for p in b.projects))


@dataclass
class Access:
    """The caller's access for one call. `denied` records that a check refused something (the
    audit log reports such calls even when they are answered NOT_FOUND)."""

    subject: Subject | None
    policy: Policy | None = None
    denied: list[str] = field(default_factory=list)
    #: How many releases or namespaces this call left out as invisible to the caller.
    hidden_count: int = 0
    #: The Kubernetes user the call impersonated in a cluster (auth.tenancy), for the audit.
    kube_user: str = ""

    @property
    def restricted(self) -> bool:
        return self.subject is not None

    @property
    def reads_everywhere(self) -> bool:
        """Whether no release or namespace is hidden from the caller: no policy, or a binding
        without grants (an admin's)."""
        return self.subject is None or any(b.grants is None for b in self.subject.bindings)

    @property
    def read_scope(self) -> tuple[Binding, ...]:
        """What decides which namespaces the caller may read: two calls with equal scopes
        see the same releases (a key for views derived from `may(Action.READ, ...)`)."""
        return self.subject.bindings if self.subject is not None else ()

    def may(self, action: Action, cluster: str, namespace: str) -> bool:
        """Whether the caller may do `action` in `namespace` of `cluster` (by name)."""
        if self.subject is None:
            return True
        return any(
            b.role >= action.value
            and (b.grants is None or any(g.covers(cluster, namespace) for g in b.grants))
            for b in self.subject.bindings
        )

    def may_anywhere(self, action: Action) -> bool:
        """Whether some binding allows `action` somewhere (the method-level check)."""
        if self.subject is None:
            return True
        return any(b.role >= action.value for b in self.subject.bindings)

    def sees_cluster(self, cluster: str) -> bool:
        """Whether some project grants something in `cluster` (it shows in ListClusters)."""
        if self.subject is None:
            return True
        return any(
            b.grants is None or any(g.covers_cluster(cluster) for g in b.grants)
            for b in self.subject.bindings
        )

    def may_in_some_cluster(self, action: Action, clusters: Iterable[str], namespace: str) -> bool:
        return any(self.may(action, c, namespace) for c in clusters)

    def require(self, action: Action, cluster: str, namespace: str = "") -> None:
        """PermissionDenied unless `may(action, cluster, namespace)`; with an empty namespace,
        the action on the cluster itself (which needs admin unless it is a read)."""
        allowed = (
            self.may(action, cluster, namespace) if namespace else self._on_cluster(action, cluster)
        )
        if not allowed:
            self.refuse(action, cluster, namespace)

    def _on_cluster(self, action: Action, cluster: str) -> bool:
        if action is Action.READ:
            return self.sees_cluster(cluster)
        return self.may_anywhere(Action.ADMIN)

    def refuse(self, action: Action, cluster: str = "", namespace: str = "") -> None:
        """Raise PermissionDenied for `action` (it names the subject and role, never more of
        the policy than the caller already knows)."""
        assert self.subject is not None
        role = self.subject.role
        where = f" in namespace {namespace!r} of cluster {cluster!r}" if namespace else (
            f" on cluster {cluster!r}" if cluster else ""
        )
        need = Role(action.value).label
        self.denied.append(f"{action.name.lower()}{where}")
        raise PermissionDenied(
            f"subject {self.subject.name!r} (role {role.label if role else 'none'}) may not "
            f"{_VERBS[action]}{where}: that needs the {need} role there",
            details=[{"reason": "permission_denied", "subject": self.subject.name,
                      "needed_role": need}],
        )

    def hidden(self, cluster: str, namespace: str) -> bool:
        """Whether a release or namespace there is invisible to the caller (it is then left
        out, as if it did not exist; `hidden_count` counts them)."""
        if self.may(Action.READ, cluster, namespace):
            return False
        self.hidden_count += 1
        return True

    def project_of(self, cluster: str, namespace: str) -> str:
        """The project a release in `namespace` of `cluster` belongs to ("" without a policy)."""
        if self.policy is None:
            return ""
        preferred = self.subject.projects if self.subject is not None else ()
        return self.policy.project_of(cluster, namespace, preferred)


_VERBS = {
    Action.READ: "read",
    Action.WRITE: "change releases",
    Action.ADMIN: "change clusters or repositories",
}

#: Every call made without a policy (and calls of the server to itself).
UNRESTRICTED = Access(None)

_current: contextvars.ContextVar[Access] = contextvars.ContextVar(
    "capstan_access", default=UNRESTRICTED
)


def current_access() -> Access:
    """The access of the call being served (UNRESTRICTED outside a call or without a policy)."""
    return _current.get()


def use_access(access: Access) -> contextvars.Token[Access]:
    """Make `access` the current one (the auth interceptor does this for each call)."""
    return _current.set(access)
