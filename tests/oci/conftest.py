"""Fixtures of the OCI tests: a chart whose version has build metadata (`+`, an `_` in OCI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from oci_registry import BUILD_VERSION, pinned_helm


@pytest.fixture(scope="session")
def build_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample chart `hooked` packaged as version `0.1.0+build.7`."""
    helm = pinned_helm()
    work = tmp_path_factory.mktemp("build-chart")
    chart = work / "hooked"
    shutil.copytree(Path(__file__).resolve().parents[2] / "samples" / "charts" / "hooked", chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 0.1.0", f"version: {BUILD_VERSION}"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "HELM_CACHE_HOME": f"{work}/c",
           "HELM_CONFIG_HOME": f"{work}/cf", "HELM_DATA_HOME": f"{work}/d"}
    subprocess.run([str(helm), "package", str(chart), "--destination", str(work)], env=env,
                   check=True, capture_output=True, timeout=120)
    return work / f"hooked-{BUILD_VERSION}.tgz"
