"""Issue 4's helm-driver points that the seed scenario does not cover, end to end on the real
helm 3.17.2 and 4.1.4 against kubesim (over TLS), through a Capstan server on the `helm` driver:

1. a release installed by plain `helm install` is listed and shown, with a stable id and no
   repo, and can be upgraded through Capstan;
2. every ListReleases filter (cluster, namespace, name, search, status flags, type, paging,
   details) and the default order, newest first;
3. WatchRelease streams not-ready events then a settled one, over gRPC and over REST (NDJSON);
4. dry runs of CreateRelease and UpgradeRelease render and compute, and change nothing;
5. `capstan k8s-release-create --wait` shows progress lines then the outcome on stderr.

One kubesim serves the module; each helm major gets one Capstan server (cluster `test122`,
repository `samples` holding every sample chart), and each test works in a namespace of its own
named after the test and the helm major, so tests never see each other's releases.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from capstan.cli.main import run as capstan_cli
from capstan.client import CapstanClient, DeadlineExceeded, InvalidArgument, NotFound, to_dict
from capstan.v1 import chart_pb2, cluster_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.drivers.helm import records
from capstan_server.threaded import ServerHandle, start_server
from kubesim.testing import KubeSimThread, running_kubesim

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
ETCD_8_11_1 = ROOT / "samples" / "charts" / "etcd-8.11.1"
R9 = "3.5.8-debian-11-r9"
#: Values that make kubesim hold the etcd StatefulSet's pods not ready for 2 seconds.
READY_AFTER_2S = 'podAnnotations:\n  kubesim.io/ready-after: "2s"\n'


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubesim() -> Iterator[KubeSimThread]:
    with running_kubesim(tls=True) as sim:
        yield sim


@pytest.fixture(scope="module", params=["helm3", "helm4"])
def helm_bin(request: pytest.FixtureRequest) -> Path:
    path = TOOLS_BIN / str(request.param)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed; run `make setup`")
    return path


class Capstan:
    """The module's Capstan server for one helm major, with the kubesim registered as cluster
    `test122` and the sample charts as repository `samples`."""

    cluster: cluster_pb2.Cluster
    repo: chart_pb2.Repository

    def __init__(self, helm_bin: Path, data_dir: Path) -> None:
        self.helm_bin = helm_bin
        self.data_dir = data_dir
        self.server = self._start()

    def _start(self) -> ServerHandle:
        return start_server(driver="helm", helm_bin=self.helm_bin, data_dir=self.data_dir,
                            grace=5.0, allow_repo_hosts=("127.0.0.1",))

    def client(self) -> CapstanClient:
        return CapstanClient(self.server.grpc_target, timeout=60)

    def restart(self) -> None:
        """Stop the server and start a new one on the same data dir (new ports)."""
        self.server.stop()
        self.server = self._start()


@pytest.fixture(scope="module")
def capstan(kubesim: KubeSimThread, helm_bin: Path, chart_repo: ChartRepoServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capstan]:
    env = Capstan(helm_bin, tmp_path_factory.mktemp(f"capstan-{helm_bin.name}"))
    try:
        with env.client() as client:
            env.cluster = client.create_cluster("test122", kubesim.kubeconfig)
            env.repo = client.create_repository("samples", chart_repo.url)
        yield env
    finally:
        env.server.stop()


def new_namespace(kubesim: KubeSimThread, name: str) -> str:
    kubesim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": name}})
    return name


def plain_helm(helm_bin: Path, home: Path, kubesim: KubeSimThread,
               *args: str) -> subprocess.CompletedProcess[str]:
    """`helm ARGS --kubeconfig <kubesim>` as a user would run it, outside Capstan, with helm
    homes of its own under `home`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    proc = subprocess.run([str(helm_bin), *args, f"--kubeconfig={kubesim.kubeconfig_path}"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_stuck(kubesim: KubeSimThread, namespace: str, name: str) -> None:
    """What a helm SIGKILLed mid-upgrade leaves (as `make_stuck` in
    tests/drivers/helm/contract_harness.py): a new revision, `pending-upgrade` since now, next
    to the deployed one."""
    found = kubesim.store.list("secrets", namespace, f"owner=helm,name={name}")
    latest = max(found, key=lambda o: int(o["metadata"]["labels"]["version"]))
    doc = records.decode_payload(records.payload_of(latest, "secret"))
    doc["version"] = int(doc["version"]) + 1
    doc["info"].update(status="pending-upgrade", description="Preparing upgrade",
                       last_deployed=records.format_time(datetime.now(UTC)))
    kubesim.store.create("secrets", records.record_object(
        doc, labels=latest["metadata"]["labels"]), namespace)


def names(page: Any) -> list[str]:
    return [r.name for r in page.releases]


# -- 1. releases installed outside Capstan ----------------------------------------------------


def test_release_installed_by_plain_helm(capstan: Capstan, kubesim: KubeSimThread,
                                         tmp_path: Path) -> None:
    ns = new_namespace(kubesim, f"plain-{capstan.helm_bin.name}")
    plain_helm(capstan.helm_bin, tmp_path, kubesim, "install", "outsider", str(ETCD_8_11_1),
               f"--namespace={ns}")

    with capstan.client() as client:
        listed = client.list_releases(namespace=ns)
        assert names(listed) == ["outsider"]
        outsider = listed.releases[0]
        assert (outsider.chart, outsider.chart_version, outsider.version) == ("etcd", "8.11.1", 1)
        assert (outsider.status, outsider.type, outsider.repo_id) == ("deployed", "external", "")
        assert outsider.id and outsider.cluster_id == capstan.cluster.id
        assert outsider.external_id == f"{capstan.cluster.id}/{ns}/outsider"
        assert outsider.namespace_id == kubesim.store.get("namespaces", ns)["metadata"]["uid"]

        shown = client.get_release("outsider", namespace=ns)
        assert (shown.id, shown.repo_id) == (outsider.id, "")
        assert {"k8s_service", "secret", "statefulset"} <= to_dict(shown)["resources"].keys()
        assert client.get_release(outsider.id).id == outsider.id  # shown by its id too
        assert client.get_release("outsider", namespace=ns).id == outsider.id  # a second call

    capstan.restart()
    with capstan.client() as client:
        assert client.get_release("outsider", namespace=ns).id == outsider.id
        assert [r.id for r in client.list_releases(namespace=ns).releases] == [outsider.id]

        # Capstan cannot know which repository the chart came from: the caller names one.
        with pytest.raises(InvalidArgument, match="not installed from a registered repository"):
            client.upgrade_release("outsider", namespace=ns, version="8.11.2")
        upgraded = client.upgrade_release("outsider", "samples/etcd", namespace=ns,
                                          version="8.11.2")
        assert (upgraded.id, upgraded.version, upgraded.chart_version) == (
            outsider.id, 2, "8.11.2")
        assert upgraded.repo_id == capstan.repo.id
        again = client.get_release(outsider.id)
        assert (again.version, again.repo_id) == (2, capstan.repo.id)

    # helm itself still sees its release, now at revision 2.
    listed_by_helm = json.loads(plain_helm(capstan.helm_bin, tmp_path, kubesim, "list",
                                           f"--namespace={ns}", "--output=json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in listed_by_helm] == [
        ("outsider", "2", "deployed")]


# -- 2. ListReleases filters ------------------------------------------------------------------


@pytest.fixture
def other_cluster(capstan: Capstan) -> Iterator[KubeSimThread]:
    """A second kubesim registered as cluster `other` for one test; its releases and the
    cluster are removed afterwards (a registered cluster that is down would be reported
    unreachable by every list, and make addressing a release by name alone fail)."""
    with running_kubesim() as sim, capstan.client() as client:
        client.create_cluster("other", sim.kubeconfig)
        try:
            yield sim
        finally:
            for release in client.list_releases(cluster="other").releases:
                client.delete_release(release.id)
            client.delete_cluster("other")


def test_list_filters_on_helm(capstan: Capstan, kubesim: KubeSimThread,
                              other_cluster: KubeSimThread) -> None:
    ns = new_namespace(kubesim, f"filters-{capstan.helm_bin.name}")
    with capstan.client() as client:
        # The releases, oldest first: `alpha` is upgraded last, so it is the newest.
        where: dict[str, Any] = {"cluster": "test122", "namespace": ns}
        client.create_release("samples/etcd", **where, release_name="alpha", version="8.11.1")
        client.create_release("samples/etcd", **where, release_name="bravo", version="8.11.1",
                              type="internal")
        with pytest.raises(DeadlineExceeded):  # never ready: the wait times out; not atomic
            client.create_release("samples/never-ready", **where, release_name="sleepy",
                                  wait=True, timeout=2)
        client.create_release("samples/etcd", **where, release_name="stuck", version="8.11.1")
        make_stuck(kubesim, ns, "stuck")
        client.upgrade_release("alpha", **where, values=f"image:\n  tag: {R9}\n")
        # Cluster `other` holds a release of the same name in a namespace of the same name.
        new_namespace(other_cluster, ns)
        client.create_release("samples/etcd", cluster="other", namespace=ns,
                              release_name="alpha", version="8.11.1")

        # cluster / namespace / name
        assert names(client.list_releases(cluster="test122", namespace=ns)) == [
            "alpha", "stuck", "sleepy", "bravo"]
        assert [(r.cluster, r.name) for r in client.list_releases(cluster="other").releases] == [
            ("other", "alpha")]
        both = client.list_releases(namespace=ns, name="alpha")
        assert sorted(r.cluster for r in both.releases) == ["other", "test122"]
        assert client.list_releases(cluster="test122", namespace="default", name="alpha").total == 0

        def listed(**filters: Any) -> list[str]:
            return names(client.list_releases(cluster="test122", namespace=ns, **filters))

        # search: a substring of the name or of the chart, in any case
        assert listed(search="LPH") == ["alpha"]
        assert listed(search="never") == ["sleepy"]
        assert listed(search="etcd") == ["alpha", "stuck", "bravo"]
        # status flags, OR-ed
        assert listed(deployed=True) == ["alpha", "bravo"]
        assert listed(failed=True) == ["sleepy"]
        assert listed(superseded=True) == []  # alpha's revision 1 is, but no latest revision is
        assert listed(pending=True) == ["stuck"]
        assert listed(failed=True, pending=True) == ["stuck", "sleepy"]
        # type
        assert listed(type="internal") == ["bravo"]
        assert listed(type="external") == ["alpha", "stuck", "sleepy"]
        # limit / offset, with the total over all pages
        page = client.list_releases(cluster="test122", namespace=ns, limit=2, offset=1)
        assert (names(page), page.total, page.limit, page.offset) == (
            ["stuck", "sleepy"], 4, 2, 1)
        past_the_end = client.list_releases(cluster="test122", namespace=ns, offset=10)
        assert (names(past_the_end), past_the_end.total) == ([], 4)
        # details: live resources, manifest and notes
        plain = client.list_releases(cluster="test122", namespace=ns, name="alpha").releases[0]
        assert (dict(plain.resources), plain.manifest) == ({}, "")
        detailed = client.list_releases(cluster="test122", namespace=ns, name="alpha",
                                        details=True).releases[0]
        resources = to_dict(detailed)["resources"]
        assert {"k8s_service", "secret", "statefulset"} <= resources.keys()
        sts = resources["statefulset"][0]
        assert (sts["name"], sts["missing"], sts["object"]) == ("alpha-etcd", False, None)
        sts = to_dict(client.get_release("alpha", **where, objects=True)
                      )["resources"]["statefulset"][0]["object"]
        assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith(R9)
        assert "kind: StatefulSet" in detailed.manifest and detailed.notes


# -- 3. WatchRelease ------------------------------------------------------------------------


def rest_watch(http_url: str, release_id: str) -> tuple[str, list[dict[str, Any]]]:
    """`GET /api/releases/{id}/watch`: the content type and the NDJSON lines, parsed."""
    with urllib.request.urlopen(f"{http_url}/api/releases/{release_id}/watch?timeout=30",
                                timeout=40) as answer:
        return (answer.headers.get("Content-Type", ""),
                [json.loads(line) for line in answer.read().decode().splitlines()])


def test_watch_release_on_helm(capstan: Capstan, kubesim: KubeSimThread) -> None:
    ns = new_namespace(kubesim, f"watch-{capstan.helm_bin.name}")
    with capstan.client() as client, ThreadPoolExecutor(2) as pool:
        install = pool.submit(client.create_release, "samples/etcd", namespace=ns,
                              release_name="slow", version="8.11.1", values=READY_AFTER_2S,
                              wait=True, timeout=30)
        # The release exists (pending-install) as soon as helm has written its first record.
        deadline = time.monotonic() + 20
        while client.list_releases(namespace=ns, name="slow").total == 0:
            assert time.monotonic() < deadline and not install.done(), install.result()
            time.sleep(0.05)
        release_id = client.list_releases(namespace=ns, name="slow").releases[0].id

        over_rest = pool.submit(rest_watch, capstan.server.http_url, release_id)
        events = list(client.watch_release(release_id, timeout=30))
        created = install.result(timeout=40)
        content_type, lines = over_rest.result(timeout=40)

    assert created.status == "deployed"
    first, last = events[0], events[-1]
    assert (first.settled, first.release.status) == (False, "pending-install")
    assert [(r.kind, r.name, r.ready) for r in first.resources] == [
        ("statefulset", "slow-etcd", False)]
    assert (last.settled, last.release.status, last.release.version) == (True, "deployed", 1)
    assert [(r.kind, r.name, r.ready) for r in last.resources] == [
        ("statefulset", "slow-etcd", True)]
    assert not any(e.settled for e in events[:-1])

    assert content_type.startswith("application/x-ndjson")
    assert (lines[0]["settled"], lines[0]["release"]["status"]) == (False, "pending-install")
    assert [r["ready"] for r in lines[0]["resources"]] == [False]
    assert lines[-1]["settled"] is True
    assert (lines[-1]["release"]["id"], lines[-1]["release"]["status"]) == (
        release_id, "deployed")
    assert all(r["ready"] for r in lines[-1]["resources"])

    # Watching a settled release answers one settled event and ends.
    with capstan.client() as client:
        again = list(client.watch_release(release_id, timeout=10))
    assert [(e.settled, e.release.status) for e in again] == [(True, "deployed")]


# -- 4. dry runs -------------------------------------------------------------------------------


def objects_in(kubesim: KubeSimThread, ns: str) -> dict[str, list[tuple[str, str]]]:
    """(name, resourceVersion) of the objects a release of the etcd chart makes, by resource."""
    return {plural: sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                           for o in kubesim.store.list(plural, ns))
            for plural in ("secrets", "configmaps", "services", "statefulsets", "pods",
                           "serviceaccounts", "poddisruptionbudgets", "persistentvolumeclaims")}


def test_dry_runs_change_nothing_on_helm(capstan: Capstan, kubesim: KubeSimThread) -> None:
    ns = new_namespace(kubesim, f"dry-{capstan.helm_bin.name}")
    empty = objects_in(kubesim, ns)
    with capstan.client() as client:
        dry = client.create_release("samples/etcd", namespace=ns, release_name="dry",
                                    version="8.11.1", values_json={"replicaCount": 3},
                                    dry_run=True)
        assert (dry.dry_run, dry.name, dry.version, dry.chart_version) == (
            True, "dry", 1, "8.11.1")
        assert to_dict(dry)["config"] == {"replicaCount": 3}
        assert "kind: StatefulSet" in dry.manifest and "replicas: 3" in dry.manifest
        assert dry.notes and dict(dry.resources) == {}
        assert objects_in(kubesim, ns) == empty  # no record Secret, no object
        with pytest.raises(NotFound):
            client.get_release("dry", namespace=ns)
        # Not even the namespace it would create.
        client.create_release("samples/etcd", namespace=f"{ns}-new", release_name="dry",
                              create_namespace=True, dry_run=True)
        assert kubesim.store.try_get("namespaces", f"{ns}-new") is None

        client.create_release("samples/etcd", namespace=ns, release_name="dry",
                              version="8.11.1", values_json={"replicaCount": 3})
        before = objects_in(kubesim, ns)
        dry = client.upgrade_release("dry", "samples/etcd", namespace=ns, version="8.11.2",
                                     values=f"image:\n  tag: {R9}\n", reuse_values=True,
                                     dry_run=True)
        assert (dry.dry_run, dry.version, dry.chart_version) == (True, 2, "8.11.2")
        assert to_dict(dry)["config"] == {"replicaCount": 3, "image": {"tag": R9}}
        assert f"docker.io/bitnami/etcd:{R9}" in dry.manifest
        assert objects_in(kubesim, ns) == before  # nothing written, nothing even touched
        history = client.get_release_history("dry", namespace=ns).revisions
        assert [(h.revision, h.status, h.chart) for h in history] == [
            (1, "deployed", "etcd-8.11.1")]
        shown = client.get_release("dry", namespace=ns)
        assert (shown.version, shown.dry_run) == (1, False)
        assert to_dict(shown)["config"] == {"replicaCount": 3}


# -- 5. the CLI's --wait ----------------------------------------------------------------------


def test_cli_create_wait_shows_progress_on_helm(capstan: Capstan, kubesim: KubeSimThread,
                                                tmp_path: Path) -> None:
    ns = new_namespace(kubesim, f"cli-{capstan.helm_bin.name}")
    values = tmp_path / "values.yaml"
    values.write_text(READY_AFTER_2S)
    stdout, stderr = io.StringIO(), io.StringIO()  # not terminals: plain progress lines

    code = capstan_cli(["--endpoint", capstan.server.grpc_target, "k8s-release-create",
                        "--wait", "--timeout", "30", "--cluster", "test122", "--namespace", ns,
                        "--name", "cli-etcd", "--version", "8.11.1", "-f", str(values),
                        "samples/etcd"], stdout=stdout, stderr=stderr, env={})

    assert code == 0, stderr.getvalue()
    lines = stderr.getvalue().splitlines()
    # The first snapshot may come before kubesim has made the StatefulSet (then "missing").
    assert re.fullmatch(r"cli-etcd: pending-install, waiting for statefulset/cli-etcd "
                        r"\((0/1 ready|missing)\) \[0%\]", lines[0]), lines
    assert lines[-1] == "cli-etcd: deployed (revision 1) [100%]", lines
    assert re.search(r"^STATUS: +deployed$", stdout.getvalue(), re.MULTILINE), stdout.getvalue()
    with capstan.client() as client:
        assert client.get_release("cli-etcd", namespace=ns).status == "deployed"
