"""ClusterRole aggregation (Kubernetes' clusterrole-aggregation controller).

Whenever a ClusterRole changes, the rules of every ClusterRole with an ``aggregationRule`` are
recomputed from the ClusterRoles its selectors pick (`kubesim.rbac_defaults.aggregate`), so a
ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-edit: "true"`` extends ``edit``
(and, through it, ``admin``) as soon as it is written.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..escalation import ACTING_USER
from ..rbac_defaults import RBAC_GROUP, aggregate
from ..store import Event
from .base import Controller, Key, Router

#: All aggregated ClusterRoles are recomputed together: one key stands for them.
_ALL: Key = ("", "*")


def _everything(_event: Event) -> Iterable[Key]:
    return [_ALL]


class ClusterRoleAggregationController(Controller):
    """Fills the rules of aggregated ClusterRoles."""

    name = "clusterrole-aggregation"

    def routes(self) -> dict[tuple[str, str], Router]:
        return {(RBAC_GROUP, "clusterroles"): _everything}

    def resync(self) -> Iterable[Key]:
        return [_ALL]

    def reconcile(self, key: Key) -> None:
        # The controller writes as itself, not as the user whose write woke it up.
        token = ACTING_USER.set(None)
        try:
            aggregate(self.store)
        finally:
            ACTING_USER.reset(token)
