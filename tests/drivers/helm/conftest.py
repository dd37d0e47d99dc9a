"""Fixtures of the helm driver tests: kubesim (one per module), the sample charts packaged
with the real helm, and a way to run helm 3 or 4 by hand against kubesim.

Every test uses its own namespace (`unique_namespace`), so tests sharing a kubesim do not see
each other's releases and can run in any order or in parallel processes.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from capstan_server.drivers.helm.driver import HelmDriver
from kubesim.testing import KubeSimThread, running_kubesim

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
SAMPLE_CHARTS = REPO_ROOT / "samples" / "charts"
HELMS = {"helm3": TOOLS_BIN / "helm3", "helm4": TOOLS_BIN / "helm4"}


def helm_path(name: str) -> Path:
    path = HELMS[name]
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed; run `make setup`")
    return path


@pytest.fixture(scope="module")
def kubesim() -> Iterator[KubeSimThread]:
    """A kubesim over HTTPS (its kubeconfig carries CA data and a bearer token, like a real
    cluster's), shared by the tests of one module."""
    with running_kubesim(tls=True) as sim:
        yield sim


@pytest.fixture(scope="session")
def charts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample charts as `.tgz` archives, keyed `<chart>-<version>` (e.g. `etcd-8.11.1`)."""
    out = tmp_path_factory.mktemp("charts")
    helm = helm_path("helm3")
    env = helm_env(tmp_path_factory.mktemp("helm-home"))
    for chart_dir in sorted(SAMPLE_CHARTS.iterdir()):
        if (chart_dir / "Chart.yaml").is_file():
            subprocess.run([str(helm), "package", str(chart_dir), "--destination", str(out)],
                           check=True, capture_output=True, env=env, timeout=60)
    return {p.name.removesuffix(".tgz"): p for p in sorted(out.glob("*.tgz"))}


def helm_env(home: Path, **extra: str) -> dict[str, str]:
    """A private environment for running helm by hand (never the user's helm config)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    env.update(extra)
    return env


class HelmCLI:
    """The real helm binary, run by hand against kubesim (to make records the driver reads)."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.home = home

    def __call__(self, *args: str, storage: str = "secret", check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args, f"--kubeconfig={self.kubeconfig}"],
            capture_output=True, text=True, timeout=timeout,
            env=helm_env(self.home, HELM_DRIVER=storage))
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture(params=["helm3", "helm4"])
def helm_cli(request: pytest.FixtureRequest, kubesim: KubeSimThread,
             tmp_path: Path) -> HelmCLI:
    """helm 3.17.2 and then helm 4.1.4, run by hand against the module's kubesim."""
    return HelmCLI(helm_path(request.param), kubesim.kubeconfig_path, tmp_path / "helm-home")


@pytest.fixture
def unique_namespace(kubesim: KubeSimThread) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubesim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": name}})
    return name


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[HelmDriver]:
    """A HelmDriver on helm 3.17.2 (modules that need another define a `driver` of their
    own)."""
    driver = HelmDriver(data_dir=tmp_path / "a", helm_bin=helm_path("helm3"), term_grace=10)
    yield driver
    await driver.close()


@pytest.fixture(params=["helm3", "helm4"])
async def helm_driver(request: pytest.FixtureRequest,
                      tmp_path: Path) -> AsyncIterator[HelmDriver]:
    """A HelmDriver on helm 3.17.2, then on helm 4.1.4 (short polls for fast tests)."""
    driver = HelmDriver(data_dir=tmp_path / "driver-data", helm_bin=helm_path(request.param),
                        term_grace=10, poll_interval=0.2)
    yield driver
    await driver.close()
