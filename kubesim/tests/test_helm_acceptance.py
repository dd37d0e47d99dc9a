"""The real helm 3.17.2 and 4.1.4 binaries against kubesim: the release lifecycle and waiting.

Each scenario runs for both helm versions and checks what helm reports *and* what the live
objects in kubesim became (read through the store of the in-process server). Skipped when the
pinned binaries are not installed (``make setup`` / ``scripts/install_tools.py`` installs them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.controllers import NEVER_READY_ANNOTATION
from kubesim.objects import Obj
from kubesim.testing import KubeSimThread, find_tools_bin, running_kubesim

pytestmark = pytest.mark.helm

CHARTS = Path(__file__).resolve().parents[2] / "samples" / "charts"
ETCD_1 = CHARTS / "etcd-8.11.1"
ETCD_2 = CHARTS / "etcd-8.11.2"
HOOKED = CHARTS / "hooked"
NEVER_READY = CHARTS / "never-ready"
HELMS = ["helm3", "helm4"]


class Helm:
    """Runs one pinned helm binary against one kubesim, every call with fresh helm dirs."""

    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.major = 4 if binary.name.endswith("4") else 3
        self._calls = 0

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        self._calls += 1
        home = self.workdir / f"call-{self._calls}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        cmd = [str(self.binary), *args, "--kubeconfig", str(self.kubeconfig)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def tools() -> Path:
    found = find_tools_bin(Path(__file__).parent)
    if found is None or not all(os.access(found / h, os.X_OK) for h in HELMS):
        pytest.skip("pinned helm binaries not installed in .tools/bin "
                    "(run `make setup` or `python3 scripts/install_tools.py --dest .tools`)")
    return found


@pytest.fixture
def sim() -> Iterator[KubeSimThread]:
    with running_kubesim() as server:
        yield server


@pytest.fixture(params=HELMS)
def helm(request: pytest.FixtureRequest, tools: Path, sim: KubeSimThread, tmp_path: Path) -> Helm:
    return Helm(tools / request.param, sim.kubeconfig_path, tmp_path)


def _get(sim: KubeSimThread, resource: str, name: str, namespace: str | None = None) -> Obj:
    """The live object (an empty dict if it does not exist)."""
    return sim.store.try_get(resource, name, namespace) or {}


def _names(sim: KubeSimThread, resource: str, namespace: str | None = None) -> list[str]:
    return sorted(str(o["metadata"]["name"]) for o in sim.store.list(resource, namespace))


def _release_secrets(sim: KubeSimThread, release: str, namespace: str) -> list[str]:
    return sorted(
        str(s["metadata"]["name"])
        for s in sim.store.list("secrets", namespace, label_selector=f"owner=helm,name={release}")
    )


# ---------------------------------------------------------------------- the lifecycle


def test_release_lifecycle(helm: Helm, sim: KubeSimThread) -> None:
    ns = "lifecycle"
    helm.run("install", "db", str(ETCD_1), "-n", ns, "--create-namespace")
    assert _get(sim, "namespaces", ns) != {}
    sts = _get(sim, "statefulsets.apps", "db-etcd", ns)
    assert sts and sts["spec"]["replicas"] == 1
    assert _names(sim, "pods", ns) == ["db-etcd-0"]
    assert _get(sim, "persistentvolumeclaims", "data-db-etcd-0", ns)["status"]["phase"] == "Bound"
    svc = _get(sim, "services", "db-etcd", ns)
    assert svc and svc["spec"]["clusterIP"].startswith("10.")
    assert _get(sim, "services", "db-etcd-headless", ns)["spec"]["clusterIP"] == "None"
    assert _release_secrets(sim, "db", ns) == ["sh.helm.release.v1.db.v1"]

    helm.run("upgrade", "db", str(ETCD_2), "-n", ns, "--set", "replicaCount=3")
    sts = _get(sim, "statefulsets.apps", "db-etcd", ns)
    assert sts and sts["spec"]["replicas"] == 3
    assert sts["metadata"]["labels"]["helm.sh/chart"] == "etcd-8.11.2"
    assert _names(sim, "pods", ns) == ["db-etcd-0", "db-etcd-1", "db-etcd-2"]
    assert sts["status"]["readyReplicas"] == 3
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]

    history = helm.json("history", "db", "-n", ns)
    assert [(h["revision"], h["status"], h["chart"]) for h in history] == [
        (1, "superseded", "etcd-8.11.1"),
        (2, "deployed", "etcd-8.11.2"),
    ]

    helm.run("rollback", "db", "1", "-n", ns)
    sts = _get(sim, "statefulsets.apps", "db-etcd", ns)
    assert sts and sts["spec"]["replicas"] == 1
    assert sts["metadata"]["labels"]["helm.sh/chart"] == "etcd-8.11.1"
    assert _names(sim, "pods", ns) == ["db-etcd-0"]
    history = helm.json("history", "db", "-n", ns)
    assert [(h["revision"], h["status"]) for h in history][-1] == (3, "deployed")
    assert "Rollback to 1" in history[-1]["description"]

    listed = helm.json("list", "-n", ns)
    assert [(r["name"], r["revision"], r["status"], r["chart"]) for r in listed] == [
        ("db", "3", "deployed", "etcd-8.11.1")
    ]
    status = helm.run("status", "db", "-n", ns).stdout
    assert "STATUS: deployed" in status and "REVISION: 3" in status
    manifest = helm.run("get", "manifest", "db", "-n", ns).stdout
    assert "kind: StatefulSet" in manifest and "name: db-etcd-headless" in manifest

    helm.run("uninstall", "db", "-n", ns)
    assert _get(sim, "statefulsets.apps", "db-etcd", ns) == {}
    assert _names(sim, "pods", ns) == []  # garbage-collected with their StatefulSet
    assert _names(sim, "services", ns) == []
    assert _release_secrets(sim, "db", ns) == []
    # As on a real cluster, claims made from volumeClaimTemplates outlive the StatefulSet.
    assert "data-db-etcd-0" in _names(sim, "persistentvolumeclaims", ns)
    assert helm.json("list", "-n", ns) == []


# ---------------------------------------------------------------------- waiting


def test_install_wait_etcd(helm: Helm, sim: KubeSimThread) -> None:
    started = time.monotonic()
    helm.run("install", "store", str(ETCD_1), "--wait", "--timeout", "60s", "--set",
             "replicaCount=3")
    assert time.monotonic() - started < 30
    sts = _get(sim, "statefulsets.apps", "store-etcd", "default")
    assert sts and sts["status"]["readyReplicas"] == 3
    release = helm.json("status", "store")
    assert release["info"]["status"] == "deployed"


def test_install_wait_runs_hook_job(helm: Helm, sim: KubeSimThread) -> None:
    helm.run("install", "hk", str(HOOKED), "--wait", "--timeout", "60s")
    job = _get(sim, "jobs.batch", "hk-hooked-post", "default")
    assert job != {}
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]}["Complete"] == "True"
    assert job["status"]["succeeded"] == 1
    pods = sim.store.list("pods", "default", label_selector="job-name=hk-hooked-post")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    dep = _get(sim, "deployments.apps", "hk-hooked", "default")
    assert dep and dep["status"]["readyReplicas"] == 1

    # before-hook-creation: the upgrade's hook replaces the Job (and its Pod goes with it).
    first_uid = job["metadata"]["uid"]
    helm.run("upgrade", "hk", str(HOOKED), "--wait", "--timeout", "60s", "--set", "message=hi")
    job = _get(sim, "jobs.batch", "hk-hooked-post", "default")
    assert job and job["metadata"]["uid"] != first_uid
    assert job["status"]["succeeded"] == 1
    pods = sim.store.list("pods", "default", label_selector="job-name=hk-hooked-post")
    assert [p["metadata"]["ownerReferences"][0]["uid"] for p in pods] == [job["metadata"]["uid"]]
    assert helm.json("status", "hk")["info"]["status"] == "deployed"


def test_install_wait_times_out_on_never_ready(helm: Helm, sim: KubeSimThread) -> None:
    started = time.monotonic()
    proc = helm.run("install", "nr", str(NEVER_READY), "--wait", "--timeout", "5s", check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, proc.stdout
    assert "INSTALLATION FAILED" in proc.stderr
    assert 4 < elapsed < 60
    dep = _get(sim, "deployments.apps", "nr-never-ready", "default")
    assert dep != {}
    assert dep["metadata"]["annotations"][NEVER_READY_ANNOTATION] == "true"
    assert dep["status"].get("readyReplicas", 0) == 0
    assert helm.json("status", "nr")["info"]["status"] == "failed"


def test_failed_upgrade_rolls_back(helm: Helm, sim: KubeSimThread) -> None:
    helm.run("install", "app", str(NEVER_READY), "--set", "neverReady=false", "--wait",
             "--timeout", "30s")
    dep = _get(sim, "deployments.apps", "app-never-ready", "default")
    assert dep and dep["status"]["readyReplicas"] == 1

    flag = "--rollback-on-failure" if helm.major == 4 else "--atomic"
    proc = helm.run("upgrade", "app", str(NEVER_READY), "--set", "neverReady=true", flag,
                    "--timeout", "5s", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "UPGRADE FAILED" in proc.stderr and "rolled back" in proc.stderr

    history = helm.json("history", "app")
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"), (2, "failed"), (3, "deployed"),
    ]
    dep = _get(sim, "deployments.apps", "app-never-ready", "default")
    assert dep != {}
    assert NEVER_READY_ANNOTATION not in (dep["metadata"].get("annotations") or {})
    assert dep["status"]["readyReplicas"] == 1
