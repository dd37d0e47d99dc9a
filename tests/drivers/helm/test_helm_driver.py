"""The helm driver against kubesim with the real helm 3.17.2 and 4.1.4: the seed's lifecycle at
the driver level, and issue 4's fault tests (helm stopped mid-upgrade, cluster unreachable,
concurrent upgrades, a never-ready workload with wait + atomic)."""

from __future__ import annotations

import asyncio
import tarfile
from pathlib import Path
from typing import Any

import pytest

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    InstallOptions,
    ReleaseRef,
    RollbackOptions,
    Status,
    UpgradeOptions,
)
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    Unavailable,
)
from kubesim.testing import KubeSimThread, running_kubesim

R8, R9 = "3.5.8-debian-11-r8", "3.5.8-debian-11-r9"
LABELS = {"capstan.io/release-id": "8a3c1f8e-4e5b-4d6c-9f0a-1b2c3d4e5f60",
          "capstan.io/repo-id": "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
          "capstan.io/type": "external"}


@pytest.fixture
def driver(helm_driver: HelmDriver) -> HelmDriver:
    """The driver on each helm major (see conftest)."""
    return helm_driver


@pytest.fixture
def cluster(kubesim: KubeSimThread) -> ClusterTarget:
    return ClusterTarget(id="c-test122", name="test122", kubeconfig=kubesim.kubeconfig)


def source(charts: dict[str, Path], name: str, version: str) -> ChartSource:
    return ChartSource(repo_id=LABELS["capstan.io/repo-id"], repo_name="bitnami-new",
                       repo_url="http://127.0.0.1/charts", name=name, version=version,
                       app_version="", archive=charts[f"{name}-{version}"])


def statefulset_image(kubesim: KubeSimThread, namespace: str, name: str) -> str:
    sts = kubesim.store.get("statefulsets", name, namespace)
    return str(sts["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_lifecycle(driver: HelmDriver, cluster: ClusterTarget, charts: dict[str, Path],
                         kubesim: KubeSimThread, unique_namespace: str) -> None:
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="etcd-release")
    etcd1, etcd2 = source(charts, "etcd", "8.11.1"), source(charts, "etcd", "8.11.2")

    created = await driver.install(InstallOptions(ref=ref, chart=etcd1, values={},
                                                  labels=LABELS, description="seed"))
    assert (created.revision, created.status, created.chart_version) == (1, Status.DEPLOYED,
                                                                         "8.11.1")
    assert created.labels == LABELS and created.description == "seed"
    with pytest.raises(AlreadyExists):
        await driver.install(InstallOptions(ref=ref, chart=etcd1, values={}, labels=LABELS))

    listed = await driver.list(cluster, name="etcd-release", labels={"capstan.io/type":
                                                                     "external"})
    assert [(r.namespace, r.revision) for r in listed] == [(unique_namespace, 1)]

    objects = await driver.resources(await driver.get(ref), cluster)
    kinds = {o.kind for o in objects}
    assert {"Service", "Secret", "StatefulSet", "ConfigMap", "PodDisruptionBudget"} <= kinds
    assert all(o.object is not None and o.namespace == unique_namespace for o in objects)
    assert statefulset_image(kubesim, unique_namespace, "etcd-release").endswith(R8)

    upgraded = await driver.upgrade(UpgradeOptions(
        ref=ref, chart=etcd1, values={"image": {"tag": R9}}, labels=LABELS))
    assert (upgraded.revision, upgraded.config) == (2, {"image": {"tag": R9}})
    assert statefulset_image(kubesim, unique_namespace, "etcd-release").endswith(R9)

    upgraded = await driver.upgrade(UpgradeOptions(ref=ref, chart=etcd2, values={},
                                                   labels=LABELS, reuse_values=True))
    assert (upgraded.revision, upgraded.chart_version) == (3, "8.11.2")

    history = await driver.history(ref)
    assert [(h.revision, h.status.value) for h in history] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]

    rolled = await driver.rollback(RollbackOptions(ref=ref, revision=2))
    assert (rolled.revision, rolled.chart_version, rolled.description) == (
        4, "8.11.1", "Rollback to 2")
    assert statefulset_image(kubesim, unique_namespace, "etcd-release").endswith(R9)
    custom = await driver.rollback(RollbackOptions(ref=ref, revision=1, description="back"))
    assert (custom.revision, custom.description) == (5, "back")
    assert (await driver.get(ref)).description == "back"  # stored, not just answered

    # A dry run answers the rendered manifest and values and changes nothing.
    dry = await driver.upgrade(UpgradeOptions(ref=ref, chart=etcd2, values={"replicaCount": 3},
                                              labels=LABELS, dry_run=True))
    assert "replicas: 3" in dry.manifest and dry.config == {"replicaCount": 3}
    assert (await driver.get(ref)).revision == 5

    removed = await driver.uninstall(ref, timeout=30)
    assert removed.revision == 5
    assert kubesim.store.try_get("statefulsets", "etcd-release", unique_namespace) is None
    assert kubesim.store.list("secrets", unique_namespace, "owner=helm") == []
    with pytest.raises(NotFound):
        await driver.get(ref)
    with pytest.raises(NotFound):
        await driver.history(ref)


async def test_missing_objects_are_reported(driver: HelmDriver, cluster: ClusterTarget,
                                            charts: dict[str, Path], kubesim: KubeSimThread,
                                            unique_namespace: str) -> None:
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="gone")
    rec = await driver.install(InstallOptions(ref=ref, chart=source(charts, "etcd", "8.11.1"),
                                              values={}, labels={}))
    kubesim.store.delete("configmaps", "gone-etcd-configuration", unique_namespace)
    objects = {(o.kind, o.name): o for o in await driver.resources(rec, cluster)}
    assert objects[("ConfigMap", "gone-etcd-configuration")].object is None
    assert objects[("StatefulSet", "gone-etcd")].object is not None


async def test_install_dry_run_changes_nothing(driver: HelmDriver, cluster: ClusterTarget,
                                               charts: dict[str, Path],
                                               kubesim: KubeSimThread,
                                               unique_namespace: str) -> None:
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="dry")
    rec = await driver.install(InstallOptions(
        ref=ref, chart=source(charts, "etcd", "8.11.1"), values={"image": {"tag": R9}},
        labels=LABELS, dry_run=True))
    assert R9 in rec.manifest and rec.config == {"image": {"tag": R9}}
    assert kubesim.store.list("secrets", unique_namespace) == []
    assert kubesim.store.try_get("statefulsets", "dry", unique_namespace) is None


# -- faults ---------------------------------------------------------------------------------------


async def _wait_for_status(driver: HelmDriver, ref: ReleaseRef, status: Status) -> None:
    async with asyncio.timeout(20):
        while True:
            with_record = await driver.list(ref.cluster, ref.namespace, name=ref.name)
            if with_record and with_record[0].status is status:
                return
            await asyncio.sleep(0.1)


async def _never_ready(driver: HelmDriver, cluster: ClusterTarget, charts: dict[str, Path],
                       namespace: str, name: str) -> tuple[ReleaseRef, ChartSource]:
    """A release of the never-ready chart, installed without waiting (revision 1 deployed)."""
    ref = ReleaseRef(cluster=cluster, namespace=namespace, name=name)
    chart = source(charts, "never-ready", "0.1.0")
    await driver.install(InstallOptions(ref=ref, chart=chart, values={}, labels=LABELS))
    return ref, chart


@pytest.mark.parametrize("term_grace", [10.0, 0.0], ids=["sigterm", "sigkill"])
async def test_helm_stopped_mid_upgrade(driver: HelmDriver, cluster: ClusterTarget,
                                        charts: dict[str, Path], unique_namespace: str,
                                        term_grace: float) -> None:
    """Cancelling an upgrade stops helm with SIGTERM: helm marks the release failed. With no
    grace (helm killed at once), the driver marks the revision it left pending failed."""
    ref, chart = await _never_ready(driver, cluster, charts, unique_namespace, "stopped")
    driver.command.term_grace = term_grace
    task = asyncio.create_task(driver.upgrade(UpgradeOptions(
        ref=ref, chart=chart, values={"replicaCount": 2}, labels=LABELS, wait=True,
        timeout=120)))
    await _wait_for_status(driver, ref, Status.PENDING_UPGRADE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    latest = await driver.get(ref)
    assert (latest.revision, latest.status) == (2, Status.FAILED)
    # Nothing is stuck: the next upgrade runs.
    again = await driver.upgrade(UpgradeOptions(ref=ref, chart=chart,
                                                values={"neverReady": False}, labels=LABELS))
    assert (again.revision, again.status) == (3, Status.DEPLOYED)


async def test_cluster_unreachable(driver: HelmDriver, charts: dict[str, Path],
                                   tmp_path: Path) -> None:
    """An unreachable cluster is UNAVAILABLE before helm runs, and nothing is half-done."""
    with running_kubesim(tls=True) as sim:
        cluster = ClusterTarget(id="c-down", name="down", kubeconfig=sim.kubeconfig)
        ref = ReleaseRef(cluster=cluster, namespace="default", name="offline")
        chart = source(charts, "etcd", "8.11.1")
        sim.stop()
        with pytest.raises(Unavailable):
            await driver.install(InstallOptions(ref=ref, chart=chart, values={}, labels={}))
        for read in (driver.get(ref), driver.list(cluster), driver.namespaces(cluster),
                     driver.check_cluster(cluster)):
            with pytest.raises(Unavailable):
                await read
        # helm itself also reports an unreachable cluster as UNAVAILABLE.
        with pytest.raises(Unavailable):
            await driver.command.install(InstallOptions(ref=ref, chart=chart, values={},
                                                        labels={}, timeout=5))
        sim.start()
        assert sim.store.list("secrets", "default") == []
        assert sim.store.try_get("statefulsets", "offline", "default") is None
        with pytest.raises(NotFound):
            await driver.get(ref)


async def test_concurrent_upgrades_in_one_server(driver: HelmDriver, cluster: ClusterTarget,
                                                 charts: dict[str, Path],
                                                 unique_namespace: str) -> None:
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="race")
    chart = source(charts, "etcd", "8.11.1")
    await driver.install(InstallOptions(ref=ref, chart=chart, values={}, labels=LABELS))
    results = await asyncio.gather(*(driver.upgrade(UpgradeOptions(
        ref=ref, chart=chart, values={"image": {"tag": tag}}, labels=LABELS))
        for tag in (R8, R9)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    aborted = [r for r in results if isinstance(r, Aborted)]
    assert len(ok) == 1 and len(aborted) == 1, results
    assert "upgrade" in aborted[0].message and "since" in aborted[0].message
    history = await driver.history(ref)
    assert [(h.revision, h.status.value) for h in history] == [(1, "superseded"),
                                                               (2, "deployed")]


async def test_concurrent_upgrades_across_replicas(driver: HelmDriver, cluster: ClusterTarget,
                                                   charts: dict[str, Path], tmp_path: Path,
                                                   kubesim: KubeSimThread,
                                                   unique_namespace: str) -> None:
    """A second server (another replica) finds the release pending and is ABORTED; the first
    upgrade finishes and no revision is lost."""
    other = HelmDriver(data_dir=tmp_path / "replica-2", helm_bin=driver.command.helm_bin)
    try:
        ref, chart = await _never_ready(driver, cluster, charts, unique_namespace, "shared")
        # The first upgrade's change of the Deployment is slow, so it stays pending a while.
        kubesim.faults.add(verb="patch", latency=2.0, count=1,
                           path=f"/apis/apps/v1/namespaces/{unique_namespace}/deployments/*")
        first = asyncio.create_task(driver.upgrade(UpgradeOptions(
            ref=ref, chart=chart, values={"neverReady": False}, labels=LABELS, timeout=60)))
        await _wait_for_status(driver, ref, Status.PENDING_UPGRADE)
        with pytest.raises(Aborted) as second:
            await other.upgrade(UpgradeOptions(ref=ref, chart=chart, values={}, labels=LABELS))
        assert "pending-upgrade" in second.value.message and "since" in second.value.message
        done = await first
        assert (done.revision, done.status) == (2, Status.DEPLOYED)
        assert [h.revision for h in await other.history(ref)] == [1, 2]
    finally:
        await other.close()


async def test_never_ready_with_wait_and_atomic(driver: HelmDriver, cluster: ClusterTarget,
                                                charts: dict[str, Path],
                                                unique_namespace: str) -> None:
    """Upgrade: rolled back to the previous revision, reported failed. Install: removed."""
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="stubborn")
    chart = source(charts, "never-ready", "0.1.0")
    await driver.install(InstallOptions(ref=ref, chart=chart, values={"neverReady": False},
                                        labels=LABELS, wait=True, timeout=30))
    with pytest.raises(OperationFailed) as failed:
        # No values: the chart's default `neverReady: true` replaces revision 1's values.
        await driver.upgrade(UpgradeOptions(ref=ref, chart=chart, values={}, reset_values=True,
                                            labels=LABELS, wait=True, atomic=True,
                                            timeout=3))
    assert "rolled back" in failed.value.message
    history = await driver.history(ref)
    assert [h.status.value for h in history] == ["superseded", "failed", "deployed"]
    assert history[-1].description == "Rollback to 1"

    fresh = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="never")
    with pytest.raises(OperationFailed):
        await driver.install(InstallOptions(ref=fresh, chart=chart, values={}, labels=LABELS,
                                            wait=True, atomic=True, timeout=3))
    with pytest.raises(NotFound):
        await driver.get(fresh)


async def test_stuck_release_recovery(driver: HelmDriver, cluster: ClusterTarget,
                                      charts: dict[str, Path], kubesim: KubeSimThread,
                                      unique_namespace: str) -> None:
    """A release left `pending-upgrade` (helm SIGKILLed by something else): writes are
    ABORTED with the operation and since when; `mark_failed` then rollback recovers it."""
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="stuck")
    chart = source(charts, "etcd", "8.11.1")
    await driver.install(InstallOptions(ref=ref, chart=chart, values={}, labels=LABELS))
    await driver.upgrade(UpgradeOptions(ref=ref, chart=chart, values={"replicaCount": 2},
                                        labels=LABELS))
    await _make_pending(kubesim, unique_namespace, "stuck", 2)
    with pytest.raises(Aborted) as aborted:
        await driver.upgrade(UpgradeOptions(ref=ref, chart=chart, values={}, labels=LABELS))
    assert "upgrade of revision 2 (pending-upgrade) since" in aborted.value.message
    with pytest.raises(Aborted):
        await driver.rollback(RollbackOptions(ref=ref, revision=1))
    marked = await driver.mark_failed(ref, "marked failed by the operator")
    assert (marked.revision, marked.status, marked.description) == (
        2, Status.FAILED, "marked failed by the operator")
    assert marked.labels == LABELS and marked.config == {"replicaCount": 2}
    with pytest.raises(FailedPrecondition):
        await driver.mark_failed(ref, "again")
    rolled = await driver.rollback(RollbackOptions(ref=ref, revision=1))
    assert (rolled.revision, rolled.status) == (3, Status.DEPLOYED)


async def _make_pending(kubesim: KubeSimThread, namespace: str, name: str,
                        revision: int) -> None:
    """Rewrite a record to `pending-upgrade` the way a SIGKILLed helm leaves it."""
    from capstan_server.drivers.helm import records

    obj = kubesim.store.get("secrets", records.record_object_name(name, revision), namespace)
    doc = records.decode_payload(records.payload_of(obj, "secret"))
    doc["info"]["status"] = "pending-upgrade"
    new = records.record_object(doc, labels=obj["metadata"]["labels"])
    obj["metadata"]["labels"] = new["metadata"]["labels"]
    obj["data"] = new["data"]
    kubesim.store.update("secrets", obj, namespace)


async def test_watch_until_settled(driver: HelmDriver, cluster: ClusterTarget,
                                   charts: dict[str, Path], unique_namespace: str) -> None:
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="watched")
    await driver.install(InstallOptions(ref=ref, chart=source(charts, "etcd", "8.11.1"),
                                        values={}, labels=LABELS))
    snapshots: list[Any] = [s async for s in driver.watch(ref, timeout=20)]
    assert snapshots[-1].settled
    assert snapshots[-1].workloads == [("statefulset", "watched-etcd", True, "1/1 ready")]
    never, _ = await _never_ready(driver, cluster, charts, unique_namespace, "unsettled")
    cut = [s async for s in driver.watch(never, timeout=1)]
    assert not cut[-1].settled and cut[-1].workloads[0][2] is False


async def test_watch_reports_a_status_change_at_once(driver: HelmDriver, cluster: ClusterTarget,
                                                     charts: dict[str, Path],
                                                     unique_namespace: str) -> None:
    """With a long poll interval, the API watch on the release's records still wakes the
    stream when helm changes the status (here: a wait that times out, pending -> failed)."""
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="woken")
    driver.poll_interval = 60
    install = asyncio.create_task(driver.install(InstallOptions(
        ref=ref, chart=source(charts, "never-ready", "0.1.0"), values={}, labels=LABELS,
        wait=True, timeout=2)))
    await _wait_for_status(driver, ref, Status.PENDING_INSTALL)
    loop = asyncio.get_running_loop()
    started = loop.time()
    statuses = [s.record.status async for s in driver.watch(ref, timeout=30)]
    assert statuses[0] is Status.PENDING_INSTALL and statuses[-1] is Status.FAILED
    assert loop.time() - started < 15  # not the 60 s poll
    with pytest.raises(DeadlineExceeded):
        await install


async def test_mark_failed_never_overwrites_a_newer_record(
        driver: HelmDriver, cluster: ClusterTarget, charts: dict[str, Path],
        kubesim: KubeSimThread, unique_namespace: str) -> None:
    """The record is rewritten at the resourceVersion it was judged at: if helm finished in
    between (pending -> deployed), marking it failed is ABORTED, not applied."""
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="racy")
    await driver.install(InstallOptions(ref=ref, chart=source(charts, "etcd", "8.11.1"),
                                        values={}, labels=LABELS))
    await _make_pending(kubesim, unique_namespace, "racy", 1)
    judged = await driver._latest(ref)
    assert judged is not None and judged.record.status is Status.PENDING_UPGRADE
    secret = kubesim.store.get("secrets", "sh.helm.release.v1.racy.v1", unique_namespace)
    secret["metadata"]["labels"]["touched"] = "yes"  # helm updating the record meanwhile
    kubesim.store.update("secrets", secret, unique_namespace)
    with pytest.raises(Aborted):
        await driver._rewrite(ref, judged, status=Status.FAILED, description="too late")


async def test_hooks_and_custom_resources(driver: HelmDriver, cluster: ClusterTarget,
                                          charts: dict[str, Path],
                                          unique_namespace: str) -> None:
    """A chart with a hook Job (helm waits for it) and one with a CRD whose custom resource
    is found live through discovery refreshed after the CRD appeared."""
    hooked = await driver.install(InstallOptions(
        ref=ReleaseRef(cluster=cluster, namespace=unique_namespace, name="hooked"),
        chart=source(charts, "hooked", "0.1.0"), values={}, labels=LABELS, timeout=60))
    assert hooked.status is Status.DEPLOYED
    crd = await driver.install(InstallOptions(
        ref=ReleaseRef(cluster=cluster, namespace=unique_namespace, name="crd"),
        chart=source(charts, "crd-demo", "0.1.0"), values={}, labels=LABELS))
    objects = {o.kind: o for o in await driver.resources(crd, cluster)}
    assert objects["Widget"].object is not None
    assert objects["Widget"].namespace == unique_namespace


async def test_refused_upgrade_carries_helms_whole_message(
        driver: HelmDriver, cluster: ClusterTarget, charts: dict[str, Path],
        unique_namespace: str) -> None:
    # The guard of the `guarded` sample (Bitnami's password guard): an upgrade without the
    # password fails rendering with a multi-line message; every line of it reaches the caller
    # as INVALID_ARGUMENT, and the release stays as it was.
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="guarded")
    guarded = source(charts, "guarded", "1.0.0")
    await driver.install(InstallOptions(ref=ref, chart=guarded, values={}, labels=LABELS))
    with pytest.raises(InvalidArgument) as refused:
        await driver.upgrade(UpgradeOptions(ref=ref, chart=guarded, values={"replicaCount": 2},
                                            labels=LABELS))
    message = refused.value.message
    assert "execution error at (guarded/templates/NOTES.txt" in message
    assert "PASSWORDS ERROR: You must provide your current passwords" in message
    assert "'auth.password' must not be empty" in message
    assert "export PASSWORD=$(kubectl get secret" in message
    history = await driver.history(ref)
    assert [(r.revision, r.status) for r in history] == [(1, Status.DEPLOYED)]


async def test_a_kind_the_cluster_does_not_serve_is_a_failed_precondition(
        driver: HelmDriver, cluster: ClusterTarget, tmp_path: Path,
        unique_namespace: str) -> None:
    chart = tmp_path / "needs-crd"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: needs-crd\nversion: 0.1.0\n")
    (chart / "templates" / "w.yaml").write_text(
        "apiVersion: nowhere.capstan.io/v1\nkind: Gadget\nmetadata:\n  name: g\n")
    with tarfile.open(tmp_path / "needs-crd-0.1.0.tgz", "w:gz") as archive:
        archive.add(chart, arcname="needs-crd")
    src = ChartSource(repo_id="r", repo_name="r", repo_url="http://127.0.0.1/", name="needs-crd",
                      version="0.1.0", app_version="", archive=tmp_path / "needs-crd-0.1.0.tgz")
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="needs-crd")
    with pytest.raises(FailedPrecondition) as refused:
        await driver.install(InstallOptions(ref=ref, chart=src, values={}, labels=LABELS))
    assert 'no matches for kind "Gadget"' in refused.value.message
    assert "ensure CRDs are installed first" in refused.value.message
    with pytest.raises(NotFound):
        await driver.get(ref)


async def test_a_yaml_1_1_value_token_hides_no_object_from_resources_or_watch(
        driver: HelmDriver, cluster: ClusterTarget, tmp_path: Path,
        unique_namespace: str) -> None:
    # An unquoted `=` (YAML 1.1's "value" token, which PyYAML cannot construct and helm reads as
    # the string "=") must not drop its object from `resources` nor from the watch's workloads.
    chart = tmp_path / "equals"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: equals\nversion: 0.1.0\n")
    (chart / "templates" / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: eq\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: eq}}\n  template:\n    metadata: {labels: {app: eq}}\n"
        "    spec:\n      containers:\n        - name: c\n          image: x\n"
        "          args:\n            - =\n            - --op\n")
    with tarfile.open(tmp_path / "equals-0.1.0.tgz", "w:gz") as archive:
        archive.add(chart, arcname="equals")
    src = ChartSource(repo_id="r", repo_name="r", repo_url="http://127.0.0.1/", name="equals",
                      version="0.1.0", app_version="", archive=tmp_path / "equals-0.1.0.tgz")
    ref = ReleaseRef(cluster=cluster, namespace=unique_namespace, name="equals")
    record = await driver.install(InstallOptions(ref=ref, chart=src, values={}, labels=LABELS))
    (live,) = await driver.resources(record, cluster)
    assert (live.kind, live.name, live.error) == ("Deployment", "eq", "")
    assert live.object is not None
    assert live.object["spec"]["template"]["spec"]["containers"][0]["args"] == ["=", "--op"]
    snapshots = [s async for s in driver.watch(ref, timeout=30)]
    assert [(k, n) for k, n, _, _ in snapshots[-1].workloads] == [("deployment", "eq")]
