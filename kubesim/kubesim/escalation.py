"""RBAC's escalation prevention: nobody grants permissions they do not hold.

As the API server's RBAC storage does (``pkg/registry/rbac``): writing a Role or ClusterRole
needs the ``escalate`` verb on it or every rule it holds covered by the writer's own rules (in
the Role's namespace; cluster-wide for a ClusterRole, and an ``aggregationRule`` needs
``escalate``); writing a RoleBinding or ClusterRoleBinding needs the ``bind`` verb on the role
it references or that role's rules covered (in the binding's namespace). ``system:masters`` is
exempt. Coverage follows ``validation.Covers``: each requested rule is broken down to one verb,
group, resource (and name, or URL) and must be matched by one owner rule (``*``, ``*/<sub>``,
an URL ``prefix*``; an owner rule with resourceNames covers only those names).

The check runs as a store mutator, so every write path (create, update, patch, apply) is
covered; it knows the writer from `ACTING_USER`, which `kubesim.authz.Access.admit` sets for
the request being served. Writes without a user (controllers, the server's own bootstrap) are
not checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from .errors import ApiError
from .identity import UserInfo
from .objects import Obj
from .rbac import RBAC_GROUP, PolicyRule, RBACAuthorizer, forbidden_details, rule_strings
from .request_info import Attributes
from .resources import ResourceType

#: The user whose API request is being served (None outside a request).
ACTING_USER: ContextVar[UserInfo | None] = ContextVar("kubesim_acting_user", default=None)

_ROLE_KINDS = {"Role": "roles", "ClusterRole": "clusterroles"}
_BINDING_KINDS = {"RoleBinding", "ClusterRoleBinding"}


def breakdown(rule: PolicyRule) -> list[dict[str, list[str]]]:
    """A rule as rules of one verb, group, resource and name (or one URL and verb)."""
    out: list[dict[str, list[str]]] = []
    names = rule_strings(rule, "resourceNames")
    for group in rule_strings(rule, "apiGroups"):
        for resource in rule_strings(rule, "resources"):
            for verb in rule_strings(rule, "verbs"):
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                out.extend([{**base, "resourceNames": [n]} for n in names] if names else [base])
    for url in rule_strings(rule, "nonResourceURLs"):
        out.extend({"nonResourceURLs": [url], "verbs": [verb]}
                   for verb in rule_strings(rule, "verbs"))
    return out


def _resources_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if "*" in owned:
        return True
    for path in wanted:
        if path in owned:
            continue
        _, sep, sub = path.partition("/")
        if not sep or f"*/{sub}" not in owned:
            return False
    return True


def _urls_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(
        any(o == path or (o.endswith("*") and path.startswith(o.rstrip("*"))) for o in owned)
        for path in wanted
    )


def rule_covers(owner: PolicyRule, wanted: PolicyRule) -> bool:
    """Whether ``owner`` grants all of the (broken-down) rule ``wanted``."""
    get = rule_strings
    verbs, groups = get(owner, "verbs"), get(owner, "apiGroups")
    owner_names, wanted_names = get(owner, "resourceNames"), get(wanted, "resourceNames")
    names_ok = not owner_names or (bool(wanted_names)
                                   and all(n in owner_names for n in wanted_names))
    return (
        ("*" in verbs or all(v in verbs for v in get(wanted, "verbs")))
        and ("*" in groups or all(g in groups for g in get(wanted, "apiGroups")))
        and _resources_cover(get(owner, "resources"), get(wanted, "resources"))
        and _urls_cover(get(owner, "nonResourceURLs"), get(wanted, "nonResourceURLs"))
        and names_ok
    )


def uncovered(owner_rules: Sequence[PolicyRule],
              rules: Sequence[PolicyRule]) -> list[dict[str, list[str]]]:
    """The broken-down ``rules`` no owner rule covers (empty: all covered)."""
    return [sub for rule in rules for sub in breakdown(rule)
            if not any(rule_covers(o, sub) for o in owner_rules)]


def _compact(rule: Mapping[str, list[str]]) -> str:
    fields = [("APIGroups", "apiGroups"), ("Resources", "resources"),
              ("ResourceNames", "resourceNames"), ("NonResourceURLs", "nonResourceURLs"),
              ("Verbs", "verbs")]
    parts = [f"{label}:[{', '.join(json.dumps(v) for v in rule[key])}]"
             for label, key in fields if rule.get(key)]
    return "{" + ", ".join(parts) + "}"


class EscalationCheck:
    """The store mutator refusing RBAC writes that would grant what the writer lacks."""

    def __init__(self, authorizer: RBACAuthorizer) -> None:
        self.authorizer = authorizer

    def __call__(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt.group != RBAC_GROUP:
            return
        user = ACTING_USER.get()
        if user is None or user.privileged:
            return
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        namespace = str(meta.get("namespace", "")) if rt.namespaced else ""
        if rt.kind in _ROLE_KINDS:
            self._check_role(rt, obj, user, name, namespace)
        elif rt.kind in _BINDING_KINDS:
            self._check_binding(rt, obj, user, name, namespace)

    def _allowed(self, user: UserInfo, verb: str, resource: str, namespace: str,
                 name: str) -> bool:
        attrs = Attributes(user, verb, True, api_group=RBAC_GROUP, namespace=namespace,
                           resource=resource, name=name)
        return self.authorizer.authorize(attrs).allowed

    def _refuse(self, rt: ResourceType, user: UserInfo, name: str, why: str) -> ApiError:
        attrs = Attributes(user, "create", True, api_group=RBAC_GROUP, resource=rt.plural,
                           name=name)
        qualified = f'{rt.plural}.{RBAC_GROUP} "{name}"'
        return ApiError(403, "Forbidden", f"{qualified} is forbidden: {why}",
                        forbidden_details(attrs))

    def _confirm(self, rt: ResourceType, user: UserInfo, name: str, namespace: str,
                 rules: Sequence[PolicyRule]) -> None:
        owner_rules, errors = self.authorizer.rules(user, namespace)
        missing = uncovered(owner_rules, rules)
        if not missing:
            return
        groups = " ".join(json.dumps(g) for g in user.groups)
        why = (f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC '
               f"permissions not currently held:\n" + "\n".join(_compact(m) for m in missing))
        if errors:
            why += f"; resolution errors: [{', '.join(errors)}]"
        raise self._refuse(rt, user, name, why)

    def _check_role(self, rt: ResourceType, obj: Obj, user: UserInfo, name: str,
                    namespace: str) -> None:
        if self._allowed(user, "escalate", rt.plural, namespace, name):
            return
        if rt.kind == "ClusterRole" and obj.get("aggregationRule"):
            raise self._refuse(rt, user, name,
                               "must have cluster-admin privileges to use the aggregationRule")
        rules = [r for r in obj.get("rules") or [] if isinstance(r, Mapping)]
        self._confirm(rt, user, name, namespace, rules)

    def _check_binding(self, rt: ResourceType, obj: Obj, user: UserInfo, name: str,
                       namespace: str) -> None:
        ref: Mapping[str, Any] = obj.get("roleRef") or {}
        kind, role = str(ref.get("kind", "")), str(ref.get("name", ""))
        plural = _ROLE_KINDS.get(kind)
        if plural is None:
            return  # validation's business
        role_ns = namespace if kind == "Role" else ""
        if self._allowed(user, "bind", plural, namespace, role):
            return
        found = self.authorizer.store.try_get(self.authorizer.store.resolve(
            f"{plural}.{RBAC_GROUP}"), role, role_ns or None)
        if found is None:
            raise self._refuse(rt, user, name, f'{kind.lower()}.{RBAC_GROUP} "{role}" not found')
        rules = [r for r in found.get("rules") or [] if isinstance(r, Mapping)]
        self._confirm(rt, user, name, namespace, rules)
