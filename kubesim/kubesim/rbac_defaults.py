"""The default RBAC objects a cluster starts with, and ClusterRole aggregation.

`ensure_defaults` creates what the API server's bootstrap policy
(``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``) creates and charts and operators rely on:
``cluster-admin`` (bound to ``system:masters``), the user-facing ``admin``, ``edit`` and ``view``
(aggregated from ``system:aggregate-to-*`` through the ``rbac.authorization.k8s.io/aggregate-to-*``
labels, so a CRD's ClusterRole labelled that way extends them), ``system:discovery``,
``system:basic-user`` and ``system:public-info-viewer`` (bound to every authenticated user, so
discovery and ``kubectl auth can-i`` work for anyone), and ``system:auth-delegator`` (unbound;
what extension API servers' charts bind). Objects that exist are left alone.

`aggregate` is the clusterrole-aggregation controller's reconcile: the rules of a ClusterRole
with an ``aggregationRule`` become the union, in name order without duplicates, of the rules of
the ClusterRoles its selectors pick. `kubesim.controllers.clusterroles` runs it on every
ClusterRole change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ApiError
from .objects import Obj, clone
from .selectors import LabelSelector
from .store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE

_AGG = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(verbs: tuple[str, ...], groups: tuple[str, ...], *resources: str) -> dict[str, Any]:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def _urls(verbs: tuple[str, ...], *urls: str) -> dict[str, Any]:
    return {"nonResourceURLs": list(urls), "verbs": list(verbs)}


def _aggregating(to: str) -> dict[str, Any]:
    return {"clusterRoleSelectors": [{"matchLabels": {f"{_AGG}{to}": "true"}}]}


_CORE, _APPS, _BATCH, _EXT = ("",), ("apps",), ("batch",), ("extensions",)

#: name -> (extra labels, rules, aggregationRule)
_CLUSTER_ROLES: dict[str, tuple[dict[str, str], list[dict[str, Any]], dict[str, Any] | None]] = {
    "cluster-admin": ({}, [_rule(("*",), ("*",), "*"), _urls(("*",), "*")], None),
    "system:discovery": ({}, [_urls(("get",), "/livez", "/readyz", "/healthz", "/version",
                                    "/version/", "/openapi", "/openapi/*", "/api", "/api/*",
                                    "/apis", "/apis/*")], None),
    "system:basic-user": ({}, [
        _rule(("create",), ("authorization.k8s.io",), "selfsubjectaccessreviews",
              "selfsubjectrulesreviews"),
        _rule(("create",), ("authentication.k8s.io",), "selfsubjectreviews"),
    ], None),
    "system:auth-delegator": ({}, [
        _rule(("create",), ("authentication.k8s.io",), "tokenreviews"),
        _rule(("create",), ("authorization.k8s.io",), "subjectaccessreviews"),
    ], None),
    "system:public-info-viewer": ({}, [_urls(("get",), "/livez", "/readyz", "/healthz",
                                             "/version", "/version/")], None),
    "admin": ({}, [], _aggregating("admin")),
    "edit": ({f"{_AGG}admin": "true"}, [], _aggregating("edit")),
    "view": ({f"{_AGG}edit": "true"}, [], _aggregating("view")),
    "system:aggregate-to-admin": ({f"{_AGG}admin": "true"}, [
        _rule(("create",), ("authorization.k8s.io",), "localsubjectaccessreviews"),
        _rule(READ_WRITE, (RBAC_GROUP,), "roles", "rolebindings"),
    ], None),
    "system:aggregate-to-edit": ({f"{_AGG}edit": "true"}, [
        _rule(READ, _CORE, "pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
              "secrets", "services/proxy"),
        _rule(("impersonate",), _CORE, "serviceaccounts"),
        _rule(WRITE, _CORE, "pods", "pods/attach", "pods/proxy", "pods/exec",
              "pods/portforward"),
        _rule(("create",), _CORE, "pods/eviction"),
        _rule(WRITE, _CORE, "replicationcontrollers", "replicationcontrollers/scale",
              "serviceaccounts", "services", "services/proxy", "endpoints",
              "persistentvolumeclaims", "configmaps", "secrets"),
        _rule(WRITE, _APPS, "statefulsets", "statefulsets/scale", "daemonsets", "deployments",
              "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"),
        _rule(WRITE, ("autoscaling",), "horizontalpodautoscalers"),
        _rule(WRITE, _BATCH, "jobs", "cronjobs"),
        _rule(WRITE, _EXT, "daemonsets", "deployments", "deployments/scale",
              "deployments/rollback", "ingresses", "replicasets", "replicasets/scale",
              "replicationcontrollers/scale", "networkpolicies"),
        _rule(WRITE, ("policy",), "poddisruptionbudgets"),
        _rule(WRITE, ("networking.k8s.io",), "networkpolicies", "ingresses"),
    ], None),
    "system:aggregate-to-view": ({f"{_AGG}view": "true"}, [
        _rule(READ, _CORE, "pods", "replicationcontrollers", "replicationcontrollers/scale",
              "serviceaccounts", "services", "services/status", "endpoints",
              "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
        _rule(READ, _CORE, "limitranges", "resourcequotas", "bindings", "events", "pods/status",
              "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
              "pods/log"),
        # read access to namespaces at the namespace scope: *this* namespace
        _rule(READ, _CORE, "namespaces"),
        _rule(READ, ("discovery.k8s.io",), "endpointslices"),
        _rule(READ, _APPS, "controllerrevisions", "statefulsets", "statefulsets/status",
              "statefulsets/scale", "daemonsets", "daemonsets/status", "deployments",
              "deployments/status", "deployments/scale", "replicasets", "replicasets/status",
              "replicasets/scale"),
        _rule(READ, ("autoscaling",), "horizontalpodautoscalers",
              "horizontalpodautoscalers/status"),
        _rule(READ, _BATCH, "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
        _rule(READ, _EXT, "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
              "deployments/status", "ingresses", "ingresses/status", "replicasets",
              "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
              "networkpolicies"),
        _rule(READ, ("policy",), "poddisruptionbudgets", "poddisruptionbudgets/status"),
        _rule(READ, ("networking.k8s.io",), "ingresses", "ingresses/status", "networkpolicies"),
    ], None),
}

#: ClusterRoleBinding (named after its ClusterRole) -> subject groups
_CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, ...]] = {
    "cluster-admin": ("system:masters",),
    "system:discovery": ("system:authenticated",),
    "system:basic-user": ("system:authenticated",),
    "system:public-info-viewer": ("system:authenticated", "system:unauthenticated"),
}


def _meta(name: str, labels: Mapping[str, str] = {}) -> dict[str, Any]:
    return {"name": name, "labels": {**_LABELS, **labels}, "annotations": dict(_ANNOTATIONS)}


def default_cluster_roles() -> list[Obj]:
    out = []
    for name, (labels, rules, aggregation) in _CLUSTER_ROLES.items():
        obj: Obj = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole",
                    "metadata": _meta(name, labels), "rules": clone(rules)}
        if aggregation is not None:
            obj["aggregationRule"] = clone(aggregation)
        out.append(obj)
    return out


def default_cluster_role_bindings() -> list[Obj]:
    return [
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
        }
        for name, groups in _CLUSTER_ROLE_BINDINGS.items()
    ]


def ensure_defaults(store: Store) -> None:
    """Create the default ClusterRoles and bindings that are missing, then aggregate."""
    for plural, objects in (("clusterroles", default_cluster_roles()),
                            ("clusterrolebindings", default_cluster_role_bindings())):
        rt = store.resolve(f"{plural}.{RBAC_GROUP}")
        for obj in objects:
            if store.try_get(rt, obj["metadata"]["name"]) is None:
                store.create(rt, obj, copy=False)
    aggregate(store)


def _selectors(role: Mapping[str, Any]) -> list[LabelSelector]:
    rule = role.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return []
    out = []
    for raw in rule.get("clusterRoleSelectors") or []:
        try:
            out.append(LabelSelector.from_dict(raw))
        except (ApiError, ValueError, TypeError, AttributeError):
            continue
    return out


def aggregated_rules(role: Mapping[str, Any], roles: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The rules an aggregated ClusterRole gets from ``roles`` (selector matches, by name)."""
    selectors = _selectors(role)
    name = (role.get("metadata") or {}).get("name")
    rules: list[Any] = []
    for other in sorted(roles, key=lambda r: str((r.get("metadata") or {}).get("name", ""))):
        meta = other.get("metadata") or {}
        if meta.get("name") == name:
            continue
        if not any(s.matches(meta.get("labels")) for s in selectors):
            continue
        for rule in other.get("rules") or []:
            if rule not in rules:
                rules.append(clone(rule))
    return rules


def aggregate(store: Store) -> None:
    """Fill the rules of every aggregated ClusterRole (repeating until nothing changes, since
    ``view`` feeds ``edit`` which feeds ``admin``)."""
    rt = store.resolve(f"clusterroles.{RBAC_GROUP}")
    for _ in range(8):
        roles = store.list(rt)
        changed = False
        for role in roles:
            if "aggregationRule" not in role:
                continue
            wanted = aggregated_rules(role, roles)
            if (role.get("rules") or []) == wanted:
                continue
            role["rules"] = wanted
            store.update(rt, role)
            changed = True
        if not changed:
            return
