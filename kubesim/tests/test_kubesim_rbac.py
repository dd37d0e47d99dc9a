"""kubesim's RBAC authorizer against the rules of the real one: request attributes, verbs,
resourceNames, wildcards, subresources, nonResourceURLs, subjects, aggregation, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.identity import ADMIN, UserInfo, parse_user_token
from kubesim.rbac import RBACAuthorizer, forbidden_message
from kubesim.rbac_defaults import aggregate, ensure_defaults
from kubesim.request_info import Attributes, request_attributes
from kubesim.store import Store

RBAC = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


@pytest.fixture
def store() -> Store:
    s = Store()
    ensure_defaults(s)
    for ns in ("team-a", "team-b"):
        s.create("namespaces", {"metadata": {"name": ns}})
    return s


def _role(store: Store, name: str, rules: list[dict[str, Any]], namespace: str = "",
          labels: dict[str, str] | None = None) -> None:
    kind = "Role" if namespace else "ClusterRole"
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    store.create(f"{kind.lower()}s.{RBAC}", {"kind": kind, "metadata": meta, "rules": rules},
                 namespace or None)


def _bind(store: Store, name: str, role: str, subjects: list[dict[str, Any]],
          namespace: str = "", role_kind: str = "ClusterRole") -> None:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    store.create(f"{kind.lower()}s.{RBAC}", {
        "kind": kind, "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role}, "subjects": subjects,
    }, namespace or None)


def _can(store: Store, user: UserInfo, method: str, path: str, **query: str) -> bool:
    attrs = request_attributes(user, method, path, query)
    return RBACAuthorizer(store).authorize(attrs).allowed


def _alice_may(store: Store, rules: list[dict[str, Any]], namespace: str = "team-a") -> None:
    _role(store, "r", rules, namespace)
    _bind(store, "rb", "r", [{"kind": "User", "name": "alice"}], namespace, "Role")


# ---------------------------------------------------------------- request attributes


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"},
         ("watch", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "false"},
         ("list", "", "ns", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", {"fieldSelector": "metadata.name=p"},
         ("list", "", "ns", "pods", "", "p")),
        ("GET", "/api/v1/namespaces/ns/pods/p", {}, ("get", "", "ns", "pods", "", "p")),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "", "ns", "pods", "log", "p")),
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale", {},
         ("patch", "apps", "ns", "deployments", "scale", "d")),
        ("DELETE", "/api/v1/namespaces/ns/secrets", {},
         ("deletecollection", "", "ns", "secrets", "", "")),
        ("DELETE", "/api/v1/namespaces/ns/secrets/s", {}, ("delete", "", "ns", "secrets", "", "s")),
        ("POST", "/api/v1/namespaces/ns/configmaps", {},
         ("create", "", "ns", "configmaps", "", "")),
        ("PUT", "/api/v1/namespaces/ns/finalize", {},
         ("update", "", "ns", "namespaces", "finalize", "ns")),
        # a namespace is read "in" itself: namespaced RoleBindings can grant it
        ("GET", "/api/v1/namespaces/ns", {}, ("get", "", "ns", "namespaces", "", "ns")),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {},
         ("list", RBAC, "", "clusterroles", "", "")),
    ],
)
def test_request_attributes(method: str, path: str, query: dict[str, str],
                            expected: tuple[str, ...]) -> None:
    a = request_attributes(ALICE, method, path, query)
    assert a.resource_request
    assert (a.verb, a.api_group, a.namespace, a.resource, a.subresource, a.name) == expected


@pytest.mark.parametrize("path", ["/api", "/apis", "/apis/apps", "/api/v1", "/apis/apps/v1",
                                  "/version", "/openapi/v2", "/healthz", "/"])
def test_non_resource_paths(path: str) -> None:
    a = request_attributes(ALICE, "GET", path, {})
    assert not a.resource_request and a.verb == "get" and a.path == path


# ---------------------------------------------------------------- rules


def test_verbs_list_is_not_get(store: Store) -> None:
    _alice_may(store, [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/secrets/s")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/secrets")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/secrets", watch="1")
    assert not _can(store, ALICE, "DELETE", "/api/v1/namespaces/team-a/secrets/s")
    # the Role is namespaced: nothing in another namespace, nor cluster-wide
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-b/secrets/s")
    assert not _can(store, ALICE, "GET", "/api/v1/secrets")


def test_verb_and_resource_wildcards(store: Store) -> None:
    _alice_may(store, [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}])
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        assert _can(store, ALICE, method, "/apis/apps/v1/namespaces/team-a/deployments/d")
    assert _can(store, ALICE, "PUT", "/apis/apps/v1/namespaces/team-a/deployments/d/status")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/pods")
    assert not _can(store, ALICE, "GET", "/apis/batch/v1/namespaces/team-a/jobs")


def test_api_group_wildcard_and_core_group(store: Store) -> None:
    _alice_may(store, [{"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["list"]}])
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/configmaps")
    assert _can(store, ALICE, "GET", "/apis/example.com/v1/namespaces/team-a/configmaps")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/secrets")


def test_resource_names(store: Store) -> None:
    _alice_may(store, [{"apiGroups": [""], "resources": ["configmaps"],
                        "resourceNames": ["app-config"], "verbs": ["get", "update", "list"]}])
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/configmaps/app-config")
    assert _can(store, ALICE, "PUT", "/api/v1/namespaces/team-a/configmaps/app-config")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/configmaps/other")
    # a plain list has no name; one narrowed to the name by a field selector has
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/configmaps")
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/configmaps",
                fieldSelector="metadata.name=app-config")
    # creates carry no name, so resourceNames never allow them
    assert not _can(store, ALICE, "POST", "/api/v1/namespaces/team-a/configmaps")


def test_subresources(store: Store) -> None:
    _alice_may(store, [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                       {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["update"]}])
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/pods/p/log")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-a/pods/p")
    assert _can(store, ALICE, "PUT", "/api/v1/namespaces/team-a/pods/p/status")
    assert _can(store, ALICE, "PUT", "/apis/apps/v1/namespaces/team-a/deployments/d/status")
    assert not _can(store, ALICE, "PUT", "/apis/apps/v1/namespaces/team-a/deployments/d/scale")
    assert not _can(store, ALICE, "PUT", "/apis/apps/v1/namespaces/team-a/deployments/d")


def test_non_resource_urls(store: Store) -> None:
    _role(store, "urls", [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}])
    _bind(store, "urls", "urls", [{"kind": "User", "name": "alice"}])
    assert _can(store, ALICE, "GET", "/metrics")
    assert _can(store, ALICE, "GET", "/logs/kube-apiserver.log")
    assert not _can(store, ALICE, "POST", "/metrics")
    assert not _can(store, ALICE, "GET", "/metricsx")
    # system:discovery: every authenticated user may discover
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/openapi/v2"):
        assert _can(store, ALICE, "GET", path)
    assert not _can(store, UserInfo("nobody"), "GET", "/api")  # not even authenticated


def test_cluster_role_binding_reaches_every_namespace(store: Store) -> None:
    _bind(store, "devs-view", "view", [{"kind": "Group", "name": "devs"}])
    assert _can(store, ALICE, "GET", "/api/v1/pods")
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-b/configmaps/c")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-b/secrets/s")  # view: none


def test_rolebinding_of_clusterrole_is_namespaced(store: Store) -> None:
    _bind(store, "edit", "edit", [{"kind": "Group", "name": "devs"}], "team-a")
    assert _can(store, ALICE, "POST", "/api/v1/namespaces/team-a/secrets")
    assert _can(store, ALICE, "GET", "/api/v1/namespaces/team-a")  # its own namespace
    assert not _can(store, ALICE, "POST", "/api/v1/namespaces/team-b/secrets")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces/team-b")
    assert not _can(store, ALICE, "GET", "/api/v1/namespaces")
    # edit grants no RBAC writes; admin does (in its namespace only)
    assert not _can(store, ALICE, "POST",
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings")
    _bind(store, "admin", "admin", [{"kind": "User", "name": "alice"}], "team-a")
    assert _can(store, ALICE, "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings")
    assert not _can(store, ALICE, "POST",
                    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")


def test_service_account_subjects(store: Store) -> None:
    sa = UserInfo("system:serviceaccount:team-a:deployer",
                  groups=("system:serviceaccounts", "system:serviceaccounts:team-a",
                          "system:authenticated"))
    # no namespace on the subject: the binding's own
    _bind(store, "sa", "view", [{"kind": "ServiceAccount", "name": "deployer"}], "team-a")
    assert _can(store, sa, "GET", "/api/v1/namespaces/team-a/pods")
    _bind(store, "sa-b", "view", [{"kind": "ServiceAccount", "name": "deployer",
                                   "namespace": "team-b"}], "team-b")
    assert not _can(store, sa, "GET", "/api/v1/namespaces/team-b/pods")


def test_privileged_group_and_admin(store: Store) -> None:
    assert _can(store, ADMIN, "DELETE", "/api/v1/namespaces/kube-system")
    assert _can(store, ADMIN, "GET", "/anything")
    master = UserInfo("root", groups=("system:masters",))
    assert _can(store, master, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles")


def test_missing_role_is_the_reason(store: Store) -> None:
    _bind(store, "dangling", "gone", [{"kind": "User", "name": "alice"}], "team-a", "Role")
    attrs = request_attributes(ALICE, "GET", "/api/v1/namespaces/team-a/pods", {})
    decision = RBACAuthorizer(store).authorize(attrs)
    assert not decision.allowed
    assert decision.reason == f'RBAC: role.{RBAC} "gone" not found'
    assert forbidden_message(attrs, decision.reason) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
        f'namespace "team-a": RBAC: role.{RBAC} "gone" not found'
    )


def test_allowed_reason_names_the_binding(store: Store) -> None:
    _bind(store, "view-devs", "view", [{"kind": "Group", "name": "devs"}], "team-a")
    attrs = request_attributes(ALICE, "GET", "/api/v1/namespaces/team-a/pods", {})
    assert RBACAuthorizer(store).authorize(attrs).reason == (
        'RBAC: allowed by RoleBinding "view-devs/team-a" of ClusterRole "view" to Group "devs"'
    )


def test_forbidden_messages() -> None:
    def msg(**kw: Any) -> str:
        return forbidden_message(Attributes(ALICE, **kw))

    assert msg(verb="get", resource_request=True, namespace="team-b", resource="secrets",
               name="x") == ('secrets "x" is forbidden: User "alice" cannot get resource '
                             '"secrets" in API group "" in the namespace "team-b"')
    assert msg(verb="create", resource_request=True, api_group=RBAC,
               resource="clusterrolebindings") == (
        f'clusterrolebindings.{RBAC} is forbidden: User "alice" cannot create resource '
        f'"clusterrolebindings" in API group "{RBAC}" at the cluster scope')
    assert msg(verb="get", resource_request=True, namespace="n", resource="pods",
               subresource="log", name="p") == (
        'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" '
        'in the namespace "n"')
    assert msg(verb="get", resource_request=False, path="/metrics") == (
        'forbidden: User "alice" cannot get path "/metrics"')


# ---------------------------------------------------------------- aggregation and defaults


def test_default_roles_are_aggregated(store: Store) -> None:
    roles = {r["metadata"]["name"]: r for r in store.list(f"clusterroles.{RBAC}")}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery",
            "system:basic-user"} <= set(roles)
    view = roles["view"]["rules"]
    edit = roles["edit"]["rules"]
    admin = roles["admin"]["rules"]
    assert view and all(rule in edit for rule in view)
    assert all(rule in admin for rule in edit)
    assert any("roles" in r.get("resources", []) for r in admin)
    assert not any("roles" in r.get("resources", []) for r in edit)
    assert roles["edit"]["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"


def test_custom_role_aggregates_into_view_edit_admin(store: Store) -> None:
    rule = {"apiGroups": ["stable.example.com"], "resources": ["crontabs"],
            "verbs": ["get", "list"]}
    _role(store, "crontab-view", [rule],
          labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"})
    aggregate(store)
    for name in ("view", "edit", "admin"):
        assert rule in store.get(f"clusterroles.{RBAC}", name)["rules"], name
    _bind(store, "v", "view", [{"kind": "User", "name": "alice"}], "team-a")
    assert _can(store, ALICE, "GET", "/apis/stable.example.com/v1/namespaces/team-a/crontabs")
    # a custom aggregated role picks by its own selector (matchExpressions too)
    store.create(f"clusterroles.{RBAC}", {"metadata": {"name": "monitoring"}, "aggregationRule": {
        "clusterRoleSelectors": [{"matchExpressions": [
            {"key": "team", "operator": "In", "values": ["mon"]}]}]}})
    _role(store, "mon-1", [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
          labels={"team": "mon"})
    aggregate(store)
    assert store.get(f"clusterroles.{RBAC}", "monitoring")["rules"] == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def test_ensure_defaults_keeps_existing_objects(store: Store) -> None:
    store.modify(f"clusterroles.{RBAC}", "system:basic-user",
                 lambda o: o.update(rules=[]) or o)
    ensure_defaults(store)
    assert store.get(f"clusterroles.{RBAC}", "system:basic-user")["rules"] == []


def test_parse_user_token() -> None:
    token, user = parse_user_token("alice:s3cret:devs,capstan:projects")
    assert token == "s3cret"
    assert user == UserInfo("alice", groups=("devs", "capstan:projects",
                                             "system:authenticated"))
    assert parse_user_token("bob:t")[1].groups == ("system:authenticated",)
    with pytest.raises(ValueError):
        parse_user_token("no-token")


# ---------------------------------------------------------------- escalation


def test_rule_covers() -> None:
    from kubesim.escalation import uncovered

    owner = [{"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]},
             {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]},
             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
              "resourceNames": ["a"]},
             {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]
    assert uncovered(owner, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                             {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["list"]},
                             {"apiGroups": ["apps"], "resources": ["deployments/scale"],
                              "verbs": ["patch"]},
                             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                              "resourceNames": ["a"]},
                             {"nonResourceURLs": ["/logs/x"], "verbs": ["get"]}]) == []
    assert uncovered(owner, [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "delete"]}]) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]
    # a name-restricted owner rule does not cover all names
    assert uncovered(owner, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    assert uncovered(owner, [{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}])
    assert uncovered(owner, [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])


def test_cli_user_token_flag() -> None:
    from kubesim.cli import build_parser

    args = build_parser().parse_args(["--user-token", "alice:t1:devs",
                                      "--user-token", "bob:t2"])
    assert dict(args.user_token) == {
        "t1": UserInfo("alice", groups=("devs", "system:authenticated")),
        "t2": UserInfo("bob", groups=("system:authenticated",))}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--user-token", "nobody"])
