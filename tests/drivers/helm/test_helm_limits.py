"""Issue 15, row 9: every helm process runs under an address-space and a CPU-time limit, and a
chart that hits one gets a clear FAILED_PRECONDITION (HTTP 409), on helm 3 and helm 4."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from capstan_server.drivers.helm.command import HelmCommand
from capstan_server.drivers.helm.process_limits import HelmLimits, limit_or_stop
from capstan_server.errors import FailedPrecondition, OperationFailed

TOOLS = Path(__file__).resolve().parents[3] / ".tools" / "bin"


def _chart(root: Path, template: str) -> Path:
    chart = root / "greedy"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: greedy\nversion: 1.0.0\n")
    (chart / "templates" / "a.yaml").write_text(template)
    return chart


@pytest.fixture(params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> Path:
    path = TOOLS / request.param
    if not path.exists():
        pytest.skip(f"{path} is missing; run `make setup`")
    return path


async def test_a_chart_that_allocates_without_end_hits_the_memory_limit(
    helm: Path, tmp_path: Path
) -> None:
    chart = _chart(tmp_path, "{{ range until 2000000000 }}{{ end }}\n")
    cmd = HelmCommand(helm, tmp_path / "data", limits=HelmLimits(memory_mib=1024, cpu_s=60))
    started = time.monotonic()
    with pytest.raises(FailedPrecondition, match=r"out of memory.*--helm-memory-limit"):
        await cmd.run(["template", "x", str(chart)], deadline=60, operation="install")
    assert time.monotonic() - started < 30


async def test_a_chart_that_loops_hits_the_cpu_limit(helm: Path, tmp_path: Path) -> None:
    chart = _chart(tmp_path, "{{ range until 50000 }}{{ range until 50000 }}{{ end }}{{ end }}\n")
    cmd = HelmCommand(helm, tmp_path / "data", limits=HelmLimits(memory_mib=2048, cpu_s=1))
    started = time.monotonic()
    with pytest.raises(FailedPrecondition, match=r"CPU time.*--helm-cpu-limit"):
        await cmd.run(["template", "x", str(chart)], deadline=60, operation="install")
    assert time.monotonic() - started < 40


async def test_the_default_limits_leave_ordinary_charts_alone(helm: Path, tmp_path: Path) -> None:
    chart = _chart(tmp_path, "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n")
    result = await HelmCommand(helm, tmp_path / "data").run(
        ["template", "x", str(chart)], deadline=60, operation="install")
    assert "ConfigMap" in result.stdout


async def test_a_helm_gone_before_its_limits_are_set_is_no_error() -> None:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()  # exited and reaped: prlimit(2) finds no such process
    await limit_or_stop(proc, HelmLimits())
    fresh = await asyncio.create_subprocess_exec("true")
    await asyncio.sleep(0.3)  # exited, possibly reaped before we look
    await limit_or_stop(fresh, HelmLimits())
    await fresh.wait()


async def test_a_limit_that_cannot_be_set_stops_helm() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30")
    with pytest.raises(OperationFailed, match="cannot limit helm's memory"):
        await limit_or_stop(proc, HelmLimits(memory_mib=1 << 60))
    assert proc.returncode is not None  # stopped, not left running unbounded
