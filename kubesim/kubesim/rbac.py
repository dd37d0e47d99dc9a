"""The RBAC authorizer, evaluating Roles, ClusterRoles and their bindings as Kubernetes does.

Evaluation follows ``plugin/pkg/auth/authorizer/rbac``: members of ``system:masters`` are always
allowed (the API server's privileged-group authorizer, ahead of RBAC); otherwise the rules of
every ClusterRoleBinding, and of every RoleBinding in the request's namespace, whose subjects
name the user (``User``), one of its groups (``Group``) or its service account
(``ServiceAccount``; the binding's namespace when the subject has none) are visited until one
allows the request. A rule allows when its verbs (``*``), apiGroups (``*``), resources (``*``,
``pods/log``, ``*/status``) and resourceNames (empty: any) all match -- or, for a non-resource
request, its verbs and nonResourceURLs (``*``, or a ``/prefix/*``). Nothing is ever denied
outright: no allowing rule means "no opinion", which the server answers with 403.

A ClusterRole with an ``aggregationRule`` is evaluated by the rules stored on it, which the
aggregation controller (`kubesim.rbac_defaults.aggregate`) fills in from the ClusterRoles its
selectors pick, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .identity import UserInfo, split_service_account
from .request_info import Attributes
from .resources import ResourceType
from .store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"

PolicyRule = Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer: allowed or not, and why (the text Kubernetes reports)."""

    allowed: bool
    reason: str = ""


def rule_strings(rule: PolicyRule, key: str) -> list[str]:
    """A list field of a rule (``verbs`` ...), as strings; [] when absent or malformed."""
    value = rule.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule_strings(rule, "verbs"))


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    return any(g in ("*", group) for g in rule_strings(rule, "apiGroups"))


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    """``*``, the exact ``resource[/subresource]``, or ``*/<subresource>`` for a subresource."""
    for res in rule_strings(rule, "resources"):
        if res in ("*", combined):
            return True
        if subresource and res == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    names = rule_strings(rule, "resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule_strings(rule, "nonResourceURLs"):
        if url in ("*", path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: PolicyRule) -> bool:
    """Whether one PolicyRule allows the request (``RuleAllows`` in Kubernetes)."""
    if not verb_matches(rule, attrs.verb):
        return False
    if not attrs.resource_request:
        return non_resource_url_matches(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return (
        api_group_matches(rule, attrs.api_group)
        and resource_matches(rule, combined, attrs.subresource)
        and resource_name_matches(rule, attrs.name)
    )


def applies_to(user: UserInfo, subject: Mapping[str, Any], binding_namespace: str) -> bool:
    """Whether a binding subject names ``user`` (``appliesToUser`` in Kubernetes)."""
    kind = subject.get("kind")
    name = str(subject.get("name", ""))
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or binding_namespace)
        if not namespace:
            return False
        return split_service_account(user.name) == (namespace, name)
    return False


def describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind = str(subject.get("kind", ""))
    name = str(subject.get("name", ""))
    if kind == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or binding_namespace}"
    return f'{kind} "{name}"'


@dataclass(frozen=True)
class VisitedRule:
    """A rule reached through a binding (``source`` says which), or an error on the way."""

    source: str
    rule: PolicyRule | None = None
    error: str = ""


class RBACAuthorizer:
    """Authorizes `Attributes` against the RBAC objects of a `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _rt(self, plural: str) -> ResourceType:
        return self.store.resolve(f"{plural}.{RBAC_GROUP}")

    def _objects(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        items, _ = self.store.list_stored(self._rt(plural), namespace)
        return [s.obj for s in items]

    def _role_rules(
        self, kind: str, name: str, namespace: str
    ) -> tuple[Sequence[PolicyRule], str]:
        if kind == "ClusterRole":
            obj = self.store.try_get(self._rt("clusterroles"), name)
            missing = f'clusterrole.{RBAC_GROUP} "{name}" not found'
        elif kind == "Role":
            obj = self.store.try_get(self._rt("roles"), name, namespace)
            missing = f'role.{RBAC_GROUP} "{name}" not found'
        else:
            return [], f"unsupported role reference kind: {kind!r}"
        if obj is None:
            return [], missing
        rules = obj.get("rules")
        return ([r for r in rules if isinstance(r, Mapping)] if isinstance(rules, list)
                else []), ""

    def visit_rules(self, user: UserInfo, namespace: str) -> Iterator[VisitedRule]:
        """Every rule that applies to ``user`` in ``namespace`` ("" = cluster scope only)."""
        scopes: list[tuple[str, str | None]] = [("clusterrolebindings", None)]
        if namespace:
            scopes.append(("rolebindings", namespace))
        for plural, ns in scopes:
            for binding in self._objects(plural, ns):
                meta = binding.get("metadata") or {}
                binding_ns = str(meta.get("namespace", "")) if ns else ""
                ref = binding.get("roleRef") or {}
                kind, role = str(ref.get("kind", "")), str(ref.get("name", ""))
                if ns is None and kind != "ClusterRole":
                    continue
                subject = next(
                    (s for s in binding.get("subjects") or []
                     if isinstance(s, Mapping) and applies_to(user, s, binding_ns)),
                    None,
                )
                if subject is None:
                    continue
                label = (f'RoleBinding "{meta.get("name")}/{binding_ns}"' if ns
                         else f'ClusterRoleBinding "{meta.get("name")}"')
                source = (f'{label} of {kind} "{role}" to '
                          f"{describe_subject(subject, binding_ns)}")
                rules, error = self._role_rules(kind, role, binding_ns)
                if error:
                    yield VisitedRule(source, error=error)
                for rule in rules:
                    yield VisitedRule(source, rule)

    def authorize(self, attrs: Attributes) -> Decision:
        if attrs.user.privileged:
            return Decision(True)
        errors: list[str] = []
        for visited in self.visit_rules(attrs.user, attrs.namespace):
            if visited.rule is not None and rule_allows(attrs, visited.rule):
                return Decision(True, f"RBAC: allowed by {visited.source}")
            if visited.error:
                errors.append(visited.error)
        if not errors:
            return Decision(False)
        text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {text}")

    def rules(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        """Every rule that applies to ``user`` in ``namespace``, and the resolution errors."""
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for visited in self.visit_rules(user, namespace):
            if visited.error:
                errors.append(visited.error)
            if visited.rule is not None:
                rules.append(visited.rule)
        return rules, errors

    def rules_for(
        self, user: UserInfo, namespace: str
    ) -> tuple[list[PolicyRule], list[PolicyRule], list[str]]:
        """The resource rules, non-resource rules and errors for ``user`` in ``namespace``
        (what SelfSubjectRulesReview reports)."""
        resource: list[PolicyRule] = []
        non_resource: list[PolicyRule] = []
        rules, errors = self.rules(user, namespace)
        for rule in rules:
            verbs = rule_strings(rule, "verbs")
            if rule_strings(rule, "nonResourceURLs"):
                non_resource.append({"verbs": verbs,
                                     "nonResourceURLs": rule_strings(rule, "nonResourceURLs")})
            if rule_strings(rule, "resources"):
                entry: dict[str, Any] = {"verbs": verbs,
                                         "apiGroups": rule_strings(rule, "apiGroups"),
                                         "resources": rule_strings(rule, "resources")}
                if rule_strings(rule, "resourceNames"):
                    entry["resourceNames"] = rule_strings(rule, "resourceNames")
                resource.append(entry)
        return resource, non_resource, errors


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The 403 message the API server writes (``responsewriters.Forbidden``)."""
    user = attrs.user.name
    if not attrs.resource_request:
        text = f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
                 else "at the cluster scope")
        text = (f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
                f'"{attrs.api_group}" {scope}')
    if reason:
        text = f"{text}: {reason}"
    # apierrors.NewForbidden(GroupResource, name, err)
    if not attrs.resource_request or not attrs.resource:
        return f"forbidden: {text}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        return f'{qualified} "{attrs.name}" is forbidden: {text}'
    return f"{qualified} is forbidden: {text}"


def forbidden_details(attrs: Attributes) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if attrs.resource_request:
        if attrs.name:
            details["name"] = attrs.name
        if attrs.api_group:
            details["group"] = attrs.api_group
        if attrs.resource:
            details["kind"] = attrs.resource
    return details
