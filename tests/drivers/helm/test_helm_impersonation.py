"""The helm driver acting as a Kubernetes identity (`ClusterTarget.act_as`): helm's
``--kube-as-user/--kube-as-group`` and ``Impersonate-*`` headers on the driver's own reads,
against kubesim's RBAC with the real helm 3 and 4."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    InstallOptions,
    KubeIdentity,
    ReleaseRef,
    RollbackOptions,
    UpgradeOptions,
)
from capstan_server.drivers.helm.argv import (
    HelmVersion,
    install_argv,
    rollback_argv,
    uninstall_argv,
    upgrade_argv,
)
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.drivers.helm.kube import KubeClient, load_kubeconfig
from capstan_server.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from kubesim.testing import KubeSimThread

RBAC = "rbac.authorization.k8s.io"
PROJECT = KubeIdentity("capstan:project:a", ("capstan:projects", "team a"))
KC = Path("/data/helm/kubeconfigs/c1-abc.yaml")


def _bind(kubesim: KubeSimThread, namespace: str, role: str) -> None:
    kubesim.store.create(f"rolebindings.{RBAC}", {
        "metadata": {"name": f"project-{role}"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "capstan:projects"}],
    }, namespace)


def test_argv_carries_the_identity(tmp_path: Path) -> None:
    archive = tmp_path / "c-1.0.0.tgz"
    archive.write_bytes(b"")
    chart = ChartSource(repo_id="r", repo_name="r", repo_url="http://x", name="c",
                        version="1.0.0", app_version="", archive=archive)
    cluster = ClusterTarget("c1", "one", "apiVersion: v1\n", act_as=PROJECT)
    ref = ReleaseRef(cluster=cluster, namespace="team-a", name="r")
    flags = ["--kube-as-user=capstan:project:a", "--kube-as-group=capstan:projects",
             "--kube-as-group=team a"]
    v3, v4 = HelmVersion(3, 17, 2), HelmVersion(4, 1, 4)
    argvs = [
        install_argv(v3, InstallOptions(ref=ref, chart=chart, values={}, labels={}),
                     kubeconfig=KC, values_file=KC),
        upgrade_argv(v4, UpgradeOptions(ref=ref, chart=chart, values={}, labels={}),
                     kubeconfig=KC, values_file=KC),
        rollback_argv(v3, RollbackOptions(ref=ref, revision=1), kubeconfig=KC),
        uninstall_argv(v4, ref, kubeconfig=KC, timeout=10),
    ]
    for argv in argvs:
        before_names = argv[:argv.index("--")]
        assert all(f in before_names for f in flags), argv
    plain = ReleaseRef(cluster=ClusterTarget("c1", "one", "apiVersion: v1\n"),
                       namespace="team-a", name="r")
    assert not any(a.startswith("--kube-as") for a in uninstall_argv(v4, plain, kubeconfig=KC,
                                                                    timeout=10))


@pytest.mark.parametrize("bad", ["", " alice", "alice\n", "x" * 254, "a\x00b"])
def test_bad_identities_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        KubeIdentity(bad)
    with pytest.raises(InvalidArgument):
        KubeIdentity("alice", ("ok", bad))


async def test_reads_impersonate(kubesim: KubeSimThread, unique_namespace: str) -> None:
    cfg = load_kubeconfig(kubesim.kubeconfig)
    client = KubeClient(cfg, cluster_name="sim", act_as=PROJECT)
    admin = KubeClient(cfg, cluster_name="sim")
    path = f"/api/v1/namespaces/{unique_namespace}/secrets"
    try:
        review = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                      body={"apiVersion": "authentication.k8s.io/v1",
                                            "kind": "SelfSubjectReview"})
        assert review["status"]["userInfo"] == {
            "username": "capstan:project:a",
            "groups": ["capstan:projects", "team a", "system:authenticated"]}
        with pytest.raises(FailedPrecondition, match='User "capstan:project:a" cannot list'):
            await client.list_objects(path)
        assert (await admin.list_objects(path))[0] == []  # the stored identity is unchanged
        _bind(kubesim, unique_namespace, "view")
        assert (await client.list_objects(f"/api/v1/namespaces/{unique_namespace}/pods"))[0] == []
        with pytest.raises(FailedPrecondition):
            await client.list_objects(path)  # view reads no Secrets
    finally:
        await client.close()
        await admin.close()


async def test_helm_acts_as_the_project(helm_driver: HelmDriver, kubesim: KubeSimThread,
                                        charts: dict[str, Path], unique_namespace: str) -> None:
    cluster = ClusterTarget("c-rbac", "sim", kubesim.kubeconfig, act_as=PROJECT)
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="etcd")
    chart = ChartSource(repo_id="r", repo_name="r", repo_url="http://x", name="etcd",
                        version="8.11.1", app_version="", archive=charts["etcd-8.11.1"])
    opts = InstallOptions(ref=ref, chart=chart, values={}, labels={})
    with pytest.raises((FailedPrecondition, PermissionDenied), match="forbidden"):
        await helm_driver.install(opts)
    assert kubesim.store.list("secrets", unique_namespace, "owner=helm") == []
    _bind(kubesim, unique_namespace, "edit")
    created = await helm_driver.install(opts)
    assert created.revision == 1
    assert (await helm_driver.get(ref)).revision == 1  # read back as the project too
    assert kubesim.store.list("secrets", unique_namespace, "owner=helm")
    await helm_driver.uninstall(ref, timeout=30)


async def test_concurrent_namespace_reads_are_shared_per_identity_only(
        kubesim: KubeSimThread, tmp_path: Path) -> None:
    # Reads of one cluster in flight together are shared, but never across identities: the
    # project (refused the cluster-wide list) gets its own refusal, the stored identity its
    # own answer, whichever started first.
    driver = HelmDriver(data_dir=tmp_path / "data")
    admin = ClusterTarget("c-ns", "sim", kubesim.kubeconfig)
    project = ClusterTarget("c-ns", "sim", kubesim.kubeconfig, act_as=PROJECT)
    try:
        kubesim.faults.add(verb="list", path="/api/v1/namespaces", latency=0.3, count=2)
        theirs, ours = await asyncio.gather(driver.namespaces(project), driver.namespaces(admin),
                                            return_exceptions=True)
        assert isinstance(theirs, FailedPrecondition), theirs
        assert isinstance(ours, list) and any(n.name == "default" for n in ours)
    finally:
        await driver.close()
