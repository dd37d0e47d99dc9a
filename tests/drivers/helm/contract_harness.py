"""The driver contract suite's harnesses for the helm driver: `helm3` (3.17.2) and `helm4`
(4.1.4) against kubesim (registered in tests/drivers/conftest.py).

One kubesim and one set of packaged sample charts serve the whole test session (started on
first use, stopped at the end); each contract test gets a fresh namespace, so tests never see
each other's releases.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from driver_harness import DriverUnderTest

from capstan_server.drivers.base import ChartSource, ClusterTarget, ReleaseRef, Status
from capstan_server.drivers.helm import records
from capstan_server.drivers.helm.driver import HelmDriver
from kubesim.testing import KubeSimThread

ROOT = Path(__file__).resolve().parents[3]
TOOLS_BIN = ROOT / ".tools" / "bin"
SAMPLE_CHARTS = ROOT / "samples" / "charts"

_shared: dict[str, Any] = {}


def _session(config: pytest.Config) -> tuple[KubeSimThread, Path]:
    """The session's kubesim and directory of packaged charts, made on first use."""
    if "sim" not in _shared:
        helm = TOOLS_BIN / "helm3"
        if not os.access(helm, os.X_OK):
            pytest.skip(f"{helm} is not installed; run `make setup`")
        work = Path(tempfile.mkdtemp(prefix="capstan-contract-helm-"))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work),
               "HELM_CACHE_HOME": str(work / "cache"), "HELM_CONFIG_HOME": str(work / "config"),
               "HELM_DATA_HOME": str(work / "data")}
        for chart in sorted(SAMPLE_CHARTS.iterdir()):
            if (chart / "Chart.yaml").is_file():
                subprocess.run([str(helm), "package", str(chart), "--destination",
                                str(work / "charts")], check=True, capture_output=True, env=env,
                               timeout=60)
        (work / "kubesim").mkdir()
        sim = KubeSimThread(work / "kubesim", tls=True).start()
        _shared.update(sim=sim, charts=work / "charts")

        def stop() -> None:
            sim.close()
            _shared.clear()

        config.add_cleanup(stop)
    return _shared["sim"], _shared["charts"]


def _chart_meta(name: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for directory in SAMPLE_CHARTS.iterdir():
        meta_file = directory / "Chart.yaml"
        if meta_file.is_file():
            meta = yaml.safe_load(meta_file.read_text())
            if (meta["name"], str(meta["version"])) == (name, version):
                values = yaml.safe_load((directory / "values.yaml").read_text()) or {}
                return meta, values
    raise KeyError((name, version))


def _make_stuck(sim: KubeSimThread) -> Callable[[ReleaseRef, Status, datetime], Any]:
    async def make_stuck(ref: ReleaseRef, status: Status, since: datetime) -> None:
        """What a helm SIGKILLed mid-operation leaves: a new revision, `pending-*` since
        `since`, next to the deployed one."""
        found = sim.store.list("secrets", ref.namespace, f"owner=helm,name={ref.name}")
        latest = max(found, key=lambda o: int(o["metadata"]["labels"]["version"]))
        doc = records.decode_payload(records.payload_of(latest, "secret"))
        doc["version"] = int(doc["version"]) + 1
        doc["info"].update(status=status.value, description="Preparing upgrade",
                           last_deployed=records.format_time(since))
        sim.store.create("secrets", records.record_object(
            doc, labels=latest["metadata"]["labels"]), ref.namespace)

    return make_stuck


def helm_harness(binary: str) -> Callable[[pytest.FixtureRequest, Path],
                                          contextlib.AbstractAsyncContextManager[
                                              DriverUnderTest]]:
    @contextlib.asynccontextmanager
    async def harness(request: pytest.FixtureRequest,
                      tmp_path: Path) -> AsyncIterator[DriverUnderTest]:
        helm = TOOLS_BIN / binary
        if not os.access(helm, os.X_OK):
            pytest.skip(f"{helm} is not installed; run `make setup`")
        sim, charts = _session(request.config)
        namespace = f"c-{uuid.uuid4().hex[:12]}"
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": namespace}})

        def chart(name: str, version: str) -> ChartSource:
            meta, values = _chart_meta(name, version)
            return ChartSource(repo_id="00000000-0000-4000-8000-000000000001",
                               repo_name="samples", repo_url="http://samples.invalid",
                               name=name, version=version,
                               app_version=str(meta.get("appVersion", "")),
                               archive=charts / f"{name}-{version}.tgz", default_values=values)

        driver = HelmDriver(data_dir=tmp_path / "helm-driver", helm_bin=helm, term_grace=10,
                            poll_interval=0.2)
        cluster = ClusterTarget(f"kubesim-{binary}", "c1", sim.kubeconfig)
        try:
            yield DriverUnderTest(driver, cluster, namespace, chart, _make_stuck(sim),
                                  short_timeout=2.0, renders=True, dials=True)
        finally:
            await driver.close()

    return harness


#: The contract's helm harnesses, by parameter id.
HELM_HARNESSES = {"helm3": helm_harness("helm3"), "helm4": helm_harness("helm4")}
