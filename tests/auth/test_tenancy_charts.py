"""Issue 14: charts cannot reach past their project, on the real helm 3 and 4 against kubesim
with RBAC and the RoleBindings of docs/tenancy.md (projects team-a and team-b, and `ops`,
whose allow-list has ClusterRoleBindings). The same kubesim is registered twice: `test122`,
where helm impersonates the project (the cluster's RBAC refuses first), and `test122-open`,
opted out with `impersonate: false` (only Capstan's manifest policy stands in the way).

1. An object in another project's namespace: 403 naming it, nothing created anywhere.
2. A ClusterRoleBinding: refused unless the project's `cluster_resources` has it.
3. A `lookup` of another project's Secret: the cluster refuses the read, so neither the
   answer nor the cluster holds anything of it; a `lookup` in the project's own namespace works.
Also: the Release names the identity helm acted as, an upgrade and a dry run are checked too.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from auth_kit import TOKENS, sha256
from auth_server import bearer
from tenancy_kit import apply_tenancy_doc

from capstan.v1 import (
    chart_pb2,
    chart_pb2_grpc,
    cluster_pb2,
    cluster_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from capstan_server.auth.options import SecurityOptions
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import start_server
from kubesim.testing import KubeSimThread, running_kubesim

pytestmark = [pytest.mark.helm, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
CHARTS = Path(__file__).resolve().parent / "tenancy_charts"
RBAC = "rbac.authorization.k8s.io"
SECRET_B = "hunter2-of-team-b"
SECRET_A = "own-secret-of-team-a"

POLICY = f"""\
clusters:
  "*-open":
    impersonate: false
projects:
  team-a:
    - cluster: "test122*"
      namespaces: ["team-a", "team-a-unmade"]
  team-b:
    - cluster: "test122*"
      namespaces: ["team-b"]
  ops:
    - cluster: "test122*"
      namespaces: ["ops"]
      cluster_resources: ["ClusterRoleBinding.{RBAC}"]
subjects:
  - name: editor-a
    token_sha256: "{sha256(TOKENS['editor-a'])}"
    role: editor
    projects: [team-a]
  - name: editor-b
    token_sha256: "{sha256(TOKENS['editor-b'])}"
    role: editor
    projects: [team-b, ops]
  - name: admin
    token_sha256: "{sha256(TOKENS['admin'])}"
    role: admin
"""


@dataclass
class Env:
    sim: KubeSimThread
    releases: release_pb2_grpc.ReleaseServiceStub

    def install(self, who: str, chart: str, namespace: str, name: str, values: str = "",
                dry_run: bool = False, cluster: str = "test122",
                create_namespace: bool = False) -> release_pb2.Release:
        return self.releases.CreateRelease(release_pb2.CreateReleaseRequest(
            chart_name=f"tenancy/{chart}", cluster=cluster, namespace=namespace,
            release_name=name, values=values, dry_run=dry_run, details=True,
            create_namespace=create_namespace),
            metadata=bearer(TOKENS[who]), timeout=120)

    def refused(self, code: grpc.StatusCode, *args: str, **kwargs: bool | str) -> str:
        with pytest.raises(grpc.RpcError) as err:
            self.install(*args, **kwargs)
        assert err.value.code() is code, err.value.details()
        return str(err.value.details())

    def configmaps(self, namespace: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.sim.store.list("configmaps", namespace))

    def records(self, namespace: str, release: str) -> list[object]:
        """Helm's release records of `release` in `namespace`."""
        return list(self.sim.store.list("secrets", namespace, f"owner=helm,name={release}"))


@pytest.fixture(scope="module", params=["helm3", "helm4"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    helm = TOOLS_BIN / str(request.param)
    if not os.access(helm, os.X_OK):
        pytest.skip(f"{helm} is not installed; run `make setup`")
    tmp = tmp_path_factory.mktemp(f"tenancy-{request.param}")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with running_kubesim(tls=True) as sim, ChartRepoServer(
        CHARTS, helm, out_dir=tmp / "repo").serve_in_thread() as repo, start_server(
        driver="helm", helm_bin=helm, data_dir=tmp / "data", grace=5.0,
        security=SecurityOptions(auth_policy=policy), allow_repo_hosts=("127.0.0.1",),
    ) as server, grpc.insecure_channel(server.grpc_target) as channel:
        apply_tenancy_doc(sim)
        _ops_rbac(sim)
        for ns, name, value in (("team-b", "secret-b", SECRET_B), ("team-a", "secret-a", SECRET_A)):
            sim.store.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                                         "metadata": {"name": name},
                                         "data": {"password": base64.b64encode(
                                             value.encode()).decode()}}, ns)
        admin = bearer(TOKENS["admin"])
        for cluster in ("test122", "test122-open"):
            cluster_pb2_grpc.ClusterServiceStub(channel).CreateCluster(
                cluster_pb2.CreateClusterRequest(name=cluster, kubeconfig=sim.kubeconfig),
                metadata=admin, timeout=60)
        chart_pb2_grpc.ChartServiceStub(channel).CreateRepository(
            chart_pb2.CreateRepositoryRequest(name="tenancy", url=repo.url),
            metadata=admin, timeout=60)
        yield Env(sim, release_pb2_grpc.ReleaseServiceStub(channel))


def _ops_rbac(sim: KubeSimThread) -> None:
    """Project `ops`: admin in its namespace, and (as docs/tenancy.md says for allow-listed
    kinds) the cluster-scoped right to manage ClusterRoleBindings."""
    sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "ops"}})
    user = {"apiGroup": RBAC, "kind": "User", "name": "capstan:project:ops"}
    sim.store.create(f"rolebindings.{RBAC}", {
        "metadata": {"name": "capstan-project"}, "subjects": [user],
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"}}, "ops")
    sim.store.create(f"clusterroles.{RBAC}", {"metadata": {"name": "capstan-project-ops"},
        "rules": [{"apiGroups": [RBAC], "resources": ["clusterrolebindings"], "verbs": ["*"]},
                  {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"]}]})
    sim.store.create(f"clusterrolebindings.{RBAC}", {
        "metadata": {"name": "capstan-project-ops"}, "subjects": [user],
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "capstan-project-ops"}})


def test_object_in_another_projects_namespace(env: Env) -> None:
    before = (env.configmaps("team-a"), env.configmaps("team-b"))
    for dry_run in (True, False):
        # Impersonated: the cluster refuses helm's first look at the object.
        text = env.refused(grpc.StatusCode.PERMISSION_DENIED, "editor-a", "reach-across",
                           "team-a", "across", dry_run=dry_run)
        assert '"across-planted" in namespace "team-b"' in text
        assert 'User "capstan:project:team-a" cannot' in text
        # Opted out: Capstan's manifest policy refuses the rendered manifest.
        text = env.refused(grpc.StatusCode.PERMISSION_DENIED, "editor-a", "reach-across",
                           "team-a", "across", dry_run=dry_run, cluster="test122-open")
        assert "ConfigMap team-b/across-planted" in text and "manifest policy" in text
        assert "across-home" not in text  # only the offending objects are named
    assert (env.configmaps("team-a"), env.configmaps("team-b")) == before
    assert env.records("team-a", "across") == [] and env.records("team-b", "across") == []
    # Within its own namespace the same chart installs, as the project's identity ...
    ok = env.install("editor-a", "reach-across", "team-a", "within",
                     values="otherNamespace: team-a")
    assert ok.kube_user == "capstan:project:team-a"
    assert list(ok.kube_groups) == ["capstan:projects"]
    assert "within-planted" in env.configmaps("team-a")
    # ... and an upgrade that reaches across is refused the same way, changing nothing.
    with pytest.raises(grpc.RpcError) as err:
        env.releases.UpgradeRelease(release_pb2.UpgradeReleaseRequest(
            id="within", cluster="test122", namespace="team-a", chart_name="tenancy/reach-across",
            values="otherNamespace: team-b"), metadata=bearer(TOKENS["editor-a"]), timeout=120)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert '"within-planted" in namespace "team-b"' in str(err.value.details())
    assert env.configmaps("team-b") == before[1]
    history = env.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(
        id="within", cluster="test122"), metadata=bearer(TOKENS["editor-a"]))
    assert [r.revision for r in history.revisions] == [1]


def test_cluster_role_binding_needs_the_allow_list(env: Env) -> None:
    text = env.refused(grpc.StatusCode.PERMISSION_DENIED, "editor-a", "cluster-admin",
                       "team-a", "everyone")
    assert 'ClusterRoleBinding "everyone-everyone-admin"' in text
    assert 'cannot get resource "clusterrolebindings"' in text
    # The same with impersonation off: the stored identity could create it, the policy not.
    text = env.refused(grpc.StatusCode.PERMISSION_DENIED, "editor-a", "cluster-admin",
                       "team-a", "everyone", cluster="test122-open")
    assert "ClusterRoleBinding everyone-everyone-admin" in text
    assert "cluster_resources" in text
    assert env.records("team-a", "everyone") == []
    assert "everyone-home" not in env.configmaps("team-a")
    bindings = [o["metadata"]["name"] for o in env.sim.store.list(f"clusterrolebindings.{RBAC}")]
    assert "everyone-everyone-admin" not in bindings
    # Project ops has it in its allow-list (and the cluster grants it): it installs.
    ok = env.install("editor-b", "cluster-admin", "ops", "opsbind", values="group: ops-oncall")
    assert ok.kube_user == "capstan:project:ops" and ok.status == "deployed"
    bindings = [o["metadata"]["name"] for o in env.sim.store.list(f"clusterrolebindings.{RBAC}")]
    assert "opsbind-everyone-admin" in bindings


def test_lookup_of_another_projects_secret(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    encoded = base64.b64encode(SECRET_B.encode()).decode()
    for dry_run in (True, False):
        with pytest.raises(grpc.RpcError) as err:
            env.install("editor-a", "lookup-secret", "team-a", "thief", dry_run=dry_run)
        code, text = err.value.code(), str(err.value.details())
        assert code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
        assert "forbidden" in text and 'cannot get resource "secrets"' in text, text
        assert SECRET_B not in text and encoded not in text
        assert SECRET_B not in repr(err.value.trailing_metadata())
    assert env.records("team-a", "thief") == [] and "thief-found" not in env.configmaps("team-a")
    # A lookup in the project's own namespace still works.
    with caplog.at_level(logging.INFO, logger="capstan.audit"):
        own = env.install("editor-a", "lookup-secret", "team-a", "own",
                          values="secretNamespace: team-a\nsecretName: secret-a")
    assert own.status == "deployed"
    audited = [getattr(r, "fields", {}) for r in caplog.records if r.name == "capstan.audit"]
    assert any(f.get("release") == "own" and f.get("kube_user") == "capstan:project:team-a"
               for f in audited), audited
    assert "Password: " + SECRET_A in own.notes
    found = env.sim.store.get("configmaps", "own-found", "team-a")
    assert found["data"]["password"] == SECRET_A


def test_rollback_checks_the_manifest_it_reapplies(env: Env) -> None:
    """An admin (stored identity, no manifest policy) left a revision that reaches into
    team-b; a project's rollback to it is refused, naming the object, and changes nothing."""
    admin, editor = bearer(TOKENS["admin"]), bearer(TOKENS["editor-a"])
    env.install("admin", "reach-across", "team-a", "legacy", cluster="test122-open")
    env.releases.UpgradeRelease(release_pb2.UpgradeReleaseRequest(
        id="legacy", cluster="test122-open", namespace="team-a", values="otherNamespace: team-a",
        chart_name="tenancy/reach-across"), metadata=admin, timeout=120)
    with pytest.raises(grpc.RpcError) as err:
        env.releases.RollbackRelease(release_pb2.RollbackReleaseRequest(
            id="legacy", cluster="test122-open", namespace="team-a", revision=1),
            metadata=editor, timeout=120)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "rollback refused" in str(err.value.details())
    assert "ConfigMap team-b/legacy-planted" in str(err.value.details())
    history = env.releases.GetReleaseHistory(release_pb2.GetReleaseHistoryRequest(
        id="legacy", cluster="test122-open"), metadata=editor)
    assert [r.revision for r in history.revisions] == [1, 2]


def test_projects_do_not_create_namespaces(env: Env) -> None:
    # A project's identity may not create Namespaces: one that exists needs no creating ...
    done = env.install("editor-a", "reach-across", "team-a", "madeready",
                       values="otherNamespace: team-a", create_namespace=True)
    assert done.status == "deployed" and done.kube_user == "capstan:project:team-a"
    # ... and one that does not is refused up front, naming who can make it.
    text = env.refused(grpc.StatusCode.PERMISSION_DENIED, "editor-a", "reach-across",
                       "team-a-unmade", "unmade", values="otherNamespace: team-a-unmade",
                       create_namespace=True)
    assert "may not create namespaces" in text and "administrator" in text
    names = [o["metadata"]["name"] for o in env.sim.store.list("namespaces")]
    assert "team-a-unmade" not in names
    assert env.records("team-a-unmade", "unmade") == []


def test_admin_keeps_the_stored_identity(env: Env) -> None:
    done = env.install("admin", "reach-across", "team-a", "byadmin", dry_run=True)
    assert done.kube_user == "" and list(done.kube_groups) == []
    opted_out = env.install("editor-a", "reach-across", "team-a", "open",
                            values="otherNamespace: team-a", dry_run=True,
                            cluster="test122-open")
    assert opted_out.kube_user == ""  # impersonate: false
