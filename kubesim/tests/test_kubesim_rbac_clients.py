"""kubesim's RBAC as real clients meet it: kubectl (``--as``, ``auth can-i``, ``auth whoami``),
the Python client (impersonation headers, user tokens, access reviews) and helm 3 / 4
(``--kube-as-user`` / ``--kube-as-group``: writes, ``lookup`` and objects outside the project's
namespace)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.identity import UserInfo
from kubesim.testing import KubeSimThread, run_tool, running_kubesim

RBAC = "rbac.authorization.k8s.io"


def _kubectl(kubectl: Path, sim: KubeSimThread, *args: str) -> Any:
    return run_tool(kubectl, list(args), sim.kubeconfig_path, check=False)


def _http(sim: KubeSimThread, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _bind(sim: KubeSimThread, namespace: str, role: str, subject: dict[str, str],
          name: str = "rb") -> None:
    sim.store.create(f"rolebindings.{RBAC}", {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, **subject}],
    }, namespace)


@pytest.fixture
def teams(kubesim: KubeSimThread) -> KubeSimThread:
    for ns in ("team-a", "team-b"):
        kubesim.store.create("namespaces", {"metadata": {"name": ns}})
    kubesim.store.create("secrets", {"metadata": {"name": "db"},
                                     "stringData": {"password": "team-b-secret"}}, "team-b")
    return kubesim


# ---------------------------------------------------------------- kubectl


def test_kubectl_as_user(kubectl: Path, teams: KubeSimThread) -> None:
    proc = _kubectl(kubectl, teams, "auth", "can-i", "--as=alice", "get", "secrets",
                    "-n", "team-b")
    assert proc.returncode == 1 and proc.stdout.strip() == "no"
    proc = _kubectl(kubectl, teams, "get", "secrets", "--as=alice", "-n", "team-b")
    assert proc.returncode == 1
    assert ('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list '
            'resource "secrets" in API group "" in the namespace "team-b"') in proc.stderr
    proc = _kubectl(kubectl, teams, "get", "secret", "db", "--as=alice", "-n", "team-b")
    assert 'secrets "db" is forbidden: User "alice" cannot get resource' in proc.stderr

    _kubectl(kubectl, teams, "create", "rolebinding", "alice-edit", "--clusterrole=edit",
             "--user=alice", "-n", "team-b")
    proc = _kubectl(kubectl, teams, "auth", "can-i", "--as=alice", "get", "secrets",
                    "-n", "team-b")
    assert proc.returncode == 0 and proc.stdout.strip() == "yes"
    proc = _kubectl(kubectl, teams, "get", "secrets", "--as=alice", "-n", "team-b", "-o", "name")
    assert proc.returncode == 0 and proc.stdout.strip() == "secret/db"
    # still nothing in team-a, nor RBAC writes in team-b (edit has none)
    assert _kubectl(kubectl, teams, "auth", "can-i", "--as=alice", "list", "pods",
                    "-n", "team-a").stdout.strip() == "no"
    assert _kubectl(kubectl, teams, "auth", "can-i", "--as=alice", "create", "rolebindings",
                    "-n", "team-b").stdout.strip() == "no"
    # groups: a binding to the group applies to whoever is impersonated with it
    _bind(teams, "team-a", "view", {"kind": "Group", "name": "capstan:projects"})
    assert _kubectl(kubectl, teams, "auth", "can-i", "--as=bob", "--as-group=capstan:projects",
                    "list", "pods", "-n", "team-a").stdout.strip() == "yes"
    assert _kubectl(kubectl, teams, "auth", "can-i", "--as=bob", "list", "pods",
                    "-n", "team-a").stdout.strip() == "no"


def test_kubectl_whoami_and_list(kubectl: Path, teams: KubeSimThread) -> None:
    proc = _kubectl(kubectl, teams, "auth", "whoami", "--as=alice", "--as-group=devs", "-o",
                    "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"]["userInfo"] == {
        "username": "alice", "groups": ["devs", "system:authenticated"]}
    admin = json.loads(_kubectl(kubectl, teams, "auth", "whoami", "-o", "json").stdout)
    assert admin["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
    _bind(teams, "team-a", "view", {"kind": "User", "name": "alice"})
    proc = _kubectl(kubectl, teams, "auth", "can-i", "--list", "--as=alice", "-n", "team-a")
    assert proc.returncode == 0
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "[get list watch]" in lines["pods"] and "secrets" not in lines
    assert _kubectl(kubectl, teams, "auth", "can-i", "--as=alice", "get", "pods",
                    "-n", "team-a", "--subresource=log").stdout.strip() == "yes"


def test_kubectl_admin_is_unchanged(kubectl: Path, teams: KubeSimThread) -> None:
    assert _kubectl(kubectl, teams, "auth", "can-i", "*", "*").stdout.strip() == "yes"
    assert _kubectl(kubectl, teams, "get", "secrets", "-A", "-o", "name").returncode == 0
    proc = _kubectl(kubectl, teams, "get", "clusterroles", "-o", "name")
    assert {"clusterrole.rbac.authorization.k8s.io/edit",
            "clusterrole.rbac.authorization.k8s.io/cluster-admin"} <= set(proc.stdout.split())


def test_kubectl_user_token_over_tls(kubectl: Path) -> None:
    """A mapped token (what ``--user-token`` sets up) is RBAC-authorized, not the admin."""
    users = {"alice-token": UserInfo("alice", groups=("devs", "system:authenticated"))}
    with running_kubesim(tls=True, user_tokens=users) as sim:
        sim.store.create("namespaces", {"metadata": {"name": "team-a"}})
        _bind(sim, "team-a", "view", {"kind": "Group", "name": "devs"})
        path = sim.kubeconfig_path.with_name("alice.kubeconfig")
        path.write_text(sim.kubeconfig.replace(sim.token, "alice-token"))
        proc = run_tool(kubectl, ["auth", "whoami", "-o", "json"], path, check=False)
        assert json.loads(proc.stdout)["status"]["userInfo"]["username"] == "alice"
        assert run_tool(kubectl, ["get", "pods", "-n", "team-a"], path, check=False).returncode == 0
        proc = run_tool(kubectl, ["get", "pods", "-n", "default"], path, check=False)
        assert 'User "alice" cannot list resource "pods"' in proc.stderr
        # impersonation needs the impersonate verb: alice has none
        proc = run_tool(kubectl, ["get", "pods", "-n", "team-a", "--as=bob"], path, check=False)
        assert ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" in '
                'API group "" at the cluster scope') in proc.stderr


# ---------------------------------------------------------------- impersonation over HTTP


def test_impersonation_needs_the_impersonate_verb(teams: KubeSimThread) -> None:
    users = {"imp-token": UserInfo("capstan", groups=("system:authenticated",))}
    teams.server.access.authenticator.user_tokens.update(users)
    sa = {"Authorization": "Bearer imp-token"}
    _bind(teams, "team-a", "edit", {"kind": "Group", "name": "capstan:projects"})
    ask = {"Impersonate-User": "capstan:project:a", "Impersonate-Group": "capstan:projects"}
    status, body = _http(teams, "GET", "/api/v1/namespaces/team-a/configmaps",
                         headers={**sa, **ask})
    assert status == 403 and body["message"] == (
        'users "capstan:project:a" is forbidden: User "capstan" cannot impersonate resource '
        '"users" in API group "" at the cluster scope')
    assert body["details"] == {"name": "capstan:project:a", "kind": "users"}
    teams.store.create(f"clusterroles.{RBAC}", {"metadata": {"name": "impersonator"}, "rules": [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
         "resourceNames": ["capstan:project:a"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"],
         "resourceNames": ["capstan:projects"]},
    ]})
    teams.store.create(f"clusterrolebindings.{RBAC}", {
        "metadata": {"name": "capstan-impersonates"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "impersonator"},
        "subjects": [{"kind": "User", "name": "capstan", "apiGroup": RBAC}]})
    status, _ = _http(teams, "GET", "/api/v1/namespaces/team-a/configmaps", headers={**sa, **ask})
    assert status == 200
    status, body = _http(teams, "GET", "/api/v1/namespaces/team-b/configmaps",
                         headers={**sa, **ask})
    assert status == 403 and 'User "capstan:project:a" cannot list' in body["message"]
    # resourceNames: another user, or another group, may not be impersonated
    status, body = _http(teams, "GET", "/api/v1/namespaces/team-a/configmaps",
                         headers={**sa, "Impersonate-User": "capstan:project:b"})
    assert status == 403 and body["message"].startswith('users "capstan:project:b" is forbidden')
    status, body = _http(teams, "GET", "/api/v1/namespaces/team-a/configmaps", headers={
        **sa, "Impersonate-User": "capstan:project:a", "Impersonate-Group": "system:masters"})
    assert status == 403 and body["message"].startswith('groups "system:masters" is forbidden')
    # extras and uids are authorized too
    status, body = _http(teams, "GET", "/api/v1/namespaces/team-a/configmaps", headers={
        **sa, **ask, "Impersonate-Extra-Scopes": "view"})
    assert status == 403 and body["message"] == (
        'userextras.authentication.k8s.io "view" is forbidden: User "capstan" cannot '
        'impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the '
        'cluster scope')


def test_impersonating_groups_without_a_user_fails(teams: KubeSimThread) -> None:
    status, body = _http(teams, "GET", "/api/v1/namespaces", headers={
        "Impersonate-Group": "devs"})
    assert status == 500 and "without impersonating a user" in body["message"]


def test_admin_impersonates_service_accounts(teams: KubeSimThread) -> None:
    who = {"Impersonate-User": "system:serviceaccount:team-a:deployer"}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    status, review = _http(teams, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                           body, headers=who)
    assert status == 201
    assert review["status"]["userInfo"] == {
        "username": "system:serviceaccount:team-a:deployer",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a",
                   "system:authenticated"]}
    _bind(teams, "team-a", "view", {"kind": "ServiceAccount", "name": "deployer",
                                    "namespace": "team-a"})
    assert _http(teams, "GET", "/api/v1/namespaces/team-a/pods", headers=who)[0] == 200
    assert _http(teams, "GET", "/api/v1/namespaces/team-b/pods", headers=who)[0] == 403


def test_admin_endpoints_need_the_admin(teams: KubeSimThread) -> None:
    status, body = _http(teams, "GET", "/_kubesim/faults", headers={"Impersonate-User": "eve"})
    assert status == 403 and body["message"] == (
        'forbidden: User "eve" cannot get path "/_kubesim/faults"')
    assert _http(teams, "GET", "/_kubesim/faults")[0] == 200


def test_aggregation_follows_clusterrole_writes(teams: KubeSimThread) -> None:
    """The aggregation controller extends ``edit`` as soon as a labelled ClusterRole exists."""
    teams.store.create("customresourcedefinitions.apiextensions.k8s.io", {
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "kind": "CronTab"},
                 "versions": [{"name": "v1", "served": True, "storage": True}]}})
    who = {"Impersonate-User": "alice"}
    _bind(teams, "team-a", "edit", {"kind": "User", "name": "alice"})
    path = "/apis/stable.example.com/v1/namespaces/team-a/crontabs"
    assert _http(teams, "GET", path, headers=who)[0] == 403
    status, _ = _http(teams, "POST", f"/apis/{RBAC}/v1/clusterroles", {
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
        "metadata": {"name": "crontab-edit",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
        "rules": [{"apiGroups": ["stable.example.com"], "resources": ["crontabs"],
                   "verbs": ["*"]}]})
    assert status == 201
    assert _http(teams, "GET", path, headers=who)[0] == 200


# ---------------------------------------------------------------- the Python client


kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture
def as_alice(teams: KubeSimThread) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=str(teams.kubeconfig_path))
    api.set_default_header("Impersonate-User", "alice")
    api.set_default_header("Impersonate-Group", "capstan:projects")
    try:
        yield api
    finally:
        api.close()


def test_python_client_impersonating(as_alice: Any, teams: KubeSimThread) -> None:
    core = client.CoreV1Api(as_alice)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_secret("db", "team-b")
    assert exc.value.status == 403
    status = json.loads(exc.value.body)
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'secrets "db" is forbidden: User "alice" cannot get resource "secrets" in '
                   'API group "" in the namespace "team-b"',
        "reason": "Forbidden", "details": {"name": "db", "kind": "secrets"}, "code": 403}
    _bind(teams, "team-a", "admin", {"kind": "Group", "name": "capstan:projects"})
    core.create_namespaced_config_map("team-a", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="c"), data={"k": "v"}))
    assert [c.metadata.name for c in core.list_namespaced_config_map("team-a").items] == ["c"]
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("team-b", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="c")))
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        client.RbacAuthorizationV1Api(as_alice).create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name="pwn"),
                role_ref=client.V1RoleRef(api_group=RBAC, kind="ClusterRole",
                                          name="cluster-admin"),
                subjects=[client.RbacV1Subject(kind="Group", name="system:authenticated",
                                               api_group=RBAC)]))
    assert exc.value.status == 403
    assert teams.store.try_get(f"clusterrolebindings.{RBAC}", "pwn") is None
    review = client.AuthorizationV1Api(as_alice).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace="team-a", verb="delete", resource="secrets", name="x"))))
    assert review.status.allowed is True
    assert review.status.reason == ('RBAC: allowed by RoleBinding "rb/team-a" of ClusterRole '
                                    '"admin" to Group "capstan:projects"')


def test_python_client_subject_access_review(teams: KubeSimThread) -> None:
    api = config.new_client_from_config(config_file=str(teams.kubeconfig_path))
    try:
        authz = client.AuthorizationV1Api(api)

        def may(**attrs: str) -> bool:
            review = authz.create_subject_access_review(client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user="alice", groups=["system:authenticated"],
                    resource_attributes=client.V1ResourceAttributes(**attrs))))
            return bool(review.status.allowed)

        assert not may(namespace="team-a", verb="list", resource="pods")
        _bind(teams, "team-a", "view", {"kind": "User", "name": "alice"})
        assert may(namespace="team-a", verb="list", resource="pods")
        assert not may(namespace="team-a", verb="get", resource="secrets")
        local = authz.create_namespaced_local_subject_access_review("team-a",
            client.V1LocalSubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user="alice", resource_attributes=client.V1ResourceAttributes(
                    namespace="team-a", verb="watch", resource="pods"))))
        assert local.status.allowed
        with pytest.raises(ApiException) as exc:
            authz.create_subject_access_review(client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(verb="get"))))
        assert exc.value.status == 422 and "at least one of user or group" in exc.value.body
        # creating a SubjectAccessReview is itself authorized: alice may not
        api.set_default_header("Impersonate-User", "alice")
        with pytest.raises(ApiException) as exc:
            may(namespace="team-a", verb="list", resource="pods")
        assert exc.value.status == 403
    finally:
        api.close()


# ---------------------------------------------------------------- helm


HELMS = ["helm3", "helm4"]

_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tenant\nversion: 0.1.0\n",
    "templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-own\n"
        "{{- if .Values.otherNamespace }}\n  namespace: {{ .Values.otherNamespace }}\n{{- end }}\n"
        "data:\n  own: {{ (lookup \"v1\" \"Secret\" .Release.Namespace \"own\").data | toJson"
        " | quote }}\n"
        "{{- if .Values.peek }}\n  peeked: {{ (lookup \"v1\" \"Secret\" .Values.peek \"\")"
        " | toJson | quote }}\n{{- end }}\n"
    ),
    "templates/NOTES.txt": "installed into {{ .Release.Namespace }}\n",
    "values.yaml": "otherNamespace: \"\"\npeek: \"\"\n",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "tenant"
    for name, text in _CHART.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("helm_name", HELMS)
def test_helm_as_project(helm_name: str, request: pytest.FixtureRequest, teams: KubeSimThread,
                         chart: Path) -> None:
    helm = request.getfixturevalue(helm_name)
    teams.store.create("secrets", {"metadata": {"name": "own"}, "stringData": {"k": "mine"}},
                       "team-a")
    _bind(teams, "team-a", "edit", {"kind": "Group", "name": "capstan:projects"})
    as_project = ["--kube-as-user", "capstan:project:a", "--kube-as-group", "capstan:projects"]

    def helm_run(*args: str) -> Any:
        return run_tool(helm, [*args, *as_project], teams.kubeconfig_path, check=False)

    proc = helm_run("install", "ok", str(chart), "-n", "team-a")
    assert proc.returncode == 0, proc.stderr
    cm = teams.store.get("configmaps", "ok-own", "team-a")
    assert "bWluZQ==" in cm["data"]["own"]  # lookup in its own namespace works
    assert helm_run("list", "-n", "team-a", "-q").stdout.split() == ["ok"]
    # helm's own records are written by the project identity too
    assert teams.store.list("secrets", "team-a", "owner=helm")

    # lookup of another namespace's Secrets: the cluster refuses the read, nothing leaks
    proc = helm_run("install", "peek", str(chart), "-n", "team-a", "--set", "peek=team-b")
    assert proc.returncode != 0
    assert ('secrets is forbidden: User "capstan:project:a" cannot list resource "secrets" in '
            'API group "" in the namespace "team-b"') in proc.stderr
    assert "team-b-secret" not in proc.stdout + proc.stderr
    assert teams.store.try_get("configmaps", "peek-own", "team-a") is None

    # an object in another namespace: 403, nothing created there
    proc = helm_run("install", "escape", str(chart), "-n", "team-a",
                    "--set", "otherNamespace=team-b")
    assert proc.returncode != 0
    assert 'User "capstan:project:a" cannot' in proc.stderr
    assert 'in the namespace "team-b"' in proc.stderr
    assert teams.store.try_get("configmaps", "escape-own", "team-b") is None

    # without a binding in team-b the project cannot even install there
    proc = helm_run("install", "there", str(chart), "-n", "team-b")
    assert proc.returncode != 0 and "forbidden" in proc.stderr
    assert helm_run("uninstall", "ok", "-n", "team-a").returncode == 0


def test_rbac_writes_cannot_escalate(teams: KubeSimThread) -> None:
    """A project with ``admin`` in its namespace may grant there only what it holds."""
    _bind(teams, "team-a", "admin", {"kind": "User", "name": "alice"})
    who = {"Impersonate-User": "alice"}
    roles = f"/apis/{RBAC}/v1/namespaces/team-a/roles"
    bindings = f"/apis/{RBAC}/v1/namespaces/team-a/rolebindings"

    def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name},
                "rules": rules}

    def binding(name: str, kind: str, role_name: str) -> dict[str, Any]:
        return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role_name},
                "subjects": [{"kind": "User", "name": "mallory", "apiGroup": RBAC}]}

    ok = role("reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    assert _http(teams, "POST", roles, ok, headers=who)[0] == 201
    status, body = _http(teams, "POST", roles, role("all", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]), headers=who)
    assert status == 403
    assert body["message"].startswith(
        f'roles.{RBAC} "all" is forbidden: user "alice" (groups=["system:authenticated"]) is '
        "attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}')
    assert teams.store.try_get(f"roles.{RBAC}", "all", "team-a") is None
    # updates and patches are checked too
    status, _ = _http(teams, "PATCH", f"{roles}/reader", {"rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]},
        headers={**who, "Content-Type": "application/merge-patch+json"})
    assert status == 403
    # bindings: to what alice holds, yes; to cluster-admin, no -- unless she may `bind` it
    assert _http(teams, "POST", bindings, binding("r", "Role", "reader"), headers=who)[0] == 201
    assert _http(teams, "POST", bindings, binding("v", "ClusterRole", "view"),
                 headers=who)[0] == 201
    status, body = _http(teams, "POST", bindings, binding("root", "ClusterRole",
                                                          "cluster-admin"), headers=who)
    assert status == 403 and "not currently held" in body["message"]
    teams.store.create(f"roles.{RBAC}", {"metadata": {"name": "binder"}, "rules": [
        {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"],
         "resourceNames": ["cluster-admin"]}]}, "team-a")
    teams.store.create(f"rolebindings.{RBAC}", {
        "metadata": {"name": "alice-binder"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "binder"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": RBAC}]}, "team-a")
    assert _http(teams, "POST", bindings, binding("root", "ClusterRole", "cluster-admin"),
                 headers=who)[0] == 201
    # the admin is never checked
    assert _http(teams, "POST", roles, role("all", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))[0] == 201


def test_token_review(teams: KubeSimThread) -> None:
    teams.server.access.authenticator.add_user("bob-token", "bob", ("devs",))
    path = "/apis/authentication.k8s.io/v1/tokenreviews"

    def review(token: str, **headers: str) -> tuple[int, Any]:
        return _http(teams, "POST", path, {"apiVersion": "authentication.k8s.io/v1",
                                           "kind": "TokenReview", "spec": {"token": token}},
                     headers=headers)

    status, body = review("bob-token")
    assert status == 201 and body["status"] == {
        "authenticated": True, "user": {"username": "bob",
                                        "groups": ["devs", "system:authenticated"]}}
    assert review("nope")[1]["status"]["authenticated"] is False
    assert review("")[0] == 422
    # creating one needs RBAC's create on tokenreviews (system:auth-delegator grants it)
    assert review("bob-token", **{"Impersonate-User": "alice"})[0] == 403
    teams.store.create(f"clusterrolebindings.{RBAC}", {
        "metadata": {"name": "alice-delegator"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": RBAC}]})
    assert review("bob-token", **{"Impersonate-User": "alice"})[0] == 201
