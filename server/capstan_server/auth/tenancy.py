"""What a project is inside a cluster: the Kubernetes identity Capstan acts as for it, and the
rules its charts' rendered manifests must keep (docs/tenancy.md, README "Projects inside the
clusters").

`tenancy_of(access, cluster, namespace)` is the one place that decides it for a call: None for
callers that act with the stored identity (no policy loaded, or an admin), else the project of
`namespace` among the caller's own projects -- the first of them in the order of the subject's
`projects:` list that grants the namespace on that cluster (deterministic: a namespace granted
to two of a caller's projects acts as the one listed first). Its user and groups come from the
project's grants for that cluster (default `capstan:project:<project>`, `capstan:projects`);
a cluster with `impersonate: false` in `clusters:` keeps the stored identity, but the manifest
rules still apply.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from capstan_server.auth.access import Access, Action
from capstan_server.auth.policy import Grant, Policy, Role
from capstan_server.drivers.base import KubeIdentity

__all__ = ["DEFAULT_GROUP", "Tenancy", "acted_as", "default_user", "tenancy_of",
           "warn_unimpersonated"]

log = logging.getLogger(__name__)

#: The group every project's identity carries unless its grants name others.
DEFAULT_GROUP = "capstan:projects"


def default_user(project: str) -> str:
    return f"capstan:project:{project}"


@dataclass(frozen=True)
class Tenancy:
    """A project on one cluster, as a call acts in it."""

    project: str
    #: Who helm and Capstan's reads act as; None: the stored identity (`impersonate: false`).
    identity: KubeIdentity | None
    #: The project's namespace globs on this cluster.
    namespaces: tuple[str, ...]
    #: Cluster-scoped kinds its manifests may hold (`Kind` or `Kind.group`).
    cluster_resources: tuple[str, ...]
    #: Namespaced kinds its manifests may not hold (`Kind` or `Kind.group`).
    denied_kinds: tuple[str, ...]

    def owns_namespace(self, namespace: str) -> bool:
        return any(fnmatchcase(namespace, pattern) for pattern in self.namespaces)


def _is_admin(access: Access) -> bool:
    return access.subject is not None and any(
        b.role is Role.ADMIN and b.grants is None for b in access.subject.bindings
    )


def tenancy_of(access: Access, cluster: str, namespace: str) -> Tenancy | None:
    """The project a call acts as in `namespace` of `cluster` (see the module doc); None when
    it acts with the stored identity. A restricted caller none of whose projects grants the
    namespace is refused (PermissionDenied) rather than ever falling back to the stored one."""
    if access.subject is None or access.policy is None or _is_admin(access):
        return None
    found = _find(access, cluster, namespace)
    if found is None:
        access.refuse(Action.READ, cluster, namespace)
    if found is not None and found.identity is not None:
        access.kube_user = found.identity.user  # for the audit line
    return found


def acted_as(access: Access, cluster: str, namespace: str) -> KubeIdentity | None:
    """The identity `tenancy_of` acts as there, without refusing (for answers)."""
    if access.subject is None or access.policy is None or _is_admin(access):
        return None
    found = _find(access, cluster, namespace)
    return found.identity if found is not None else None


def _find(access: Access, cluster: str, namespace: str) -> Tenancy | None:
    assert access.subject is not None and access.policy is not None
    for project in access.subject.projects:
        grants = [g for g in access.policy.projects.get(project, ())
                  if g.covers_cluster(cluster)]
        if any(g.covers(cluster, namespace) for g in grants):
            return _tenancy(access.policy, project, cluster, grants)
    return None


def _tenancy(policy: Policy, project: str, cluster: str, grants: Sequence[Grant]) -> Tenancy:
    user = next((g.user for g in grants if g.user), "") or default_user(project)
    groups = next((g.groups for g in grants if g.groups), ()) or (DEFAULT_GROUP,)
    identity = (KubeIdentity(user, tuple(groups))
                if policy.cluster_settings(cluster).impersonate else None)
    return Tenancy(
        project=project,
        identity=identity,
        namespaces=tuple(dict.fromkeys(p for g in grants for p in g.namespaces)),
        cluster_resources=tuple(dict.fromkeys(k for g in grants for k in g.cluster_resources)),
        denied_kinds=tuple(dict.fromkeys(k for g in grants for k in g.denied_kinds)),
    )


def warn_unimpersonated(policy: Policy) -> None:
    """Say loudly, at start-up and on each reload, which clusters run charts unimpersonated."""
    for pattern, settings in policy.clusters.items():
        if not settings.impersonate:
            log.warning(
                "policy %s: clusters matching %r have impersonate: false -- helm runs every "
                "project's charts there with the stored kubeconfig's identity, so the cluster "
                "enforces NOTHING between projects (only Capstan's manifest policy applies)",
                policy.source, pattern)
