"""`deploy/chart/` (Capstan's own chart): `helm lint --strict` on both majors, an install into
kubesim with helm 3 and helm 4, and once through Capstan itself; the objects are checked."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capstan.client import CapstanClient
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle
from kubesim.testing import KubeSimThread, run_tool, running_kubesim

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "chart"
TOOLS = ROOT / ".tools" / "bin"
HELMS = [pytest.param(TOOLS / "helm3", id="helm3"), pytest.param(TOOLS / "helm4", id="helm4")]


def _need(helm: Path) -> None:
    if not os.access(helm, os.X_OK):
        pytest.skip(f"{helm} is not installed; run `make setup`")


def _check_objects(sim: KubeSimThread, namespace: str, release: str) -> None:
    name = f"{release}-capstan"
    store = sim.store
    deployment: dict[str, Any] = store.get("deployments", name, namespace)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    assert {"livenessProbe", "readinessProbe"} <= container.keys()
    assert "--registry=kubernetes" in container["args"]
    assert f"--registry-namespace={namespace}" in container["args"]
    service = store.get("services", name, namespace)
    assert sorted(p["name"] for p in service["spec"]["ports"]) == ["grpc", "http"]
    role = store.get("roles", name, namespace)
    assert sorted(r for rule in role["rules"] for r in rule["resources"]) == ["leases", "secrets"]
    binding = store.get("rolebindings", name, namespace)
    assert binding["subjects"][0]["name"] == name
    assert store.get("serviceaccounts", name, namespace)
    assert store.get("poddisruptionbudgets", name, namespace)["spec"]["minAvailable"] == 1
    assert store.get("networkpolicies", name, namespace)


@pytest.mark.parametrize("helm", HELMS)
def test_lint_and_install(helm: Path) -> None:
    _need(helm)
    with running_kubesim(tls=True) as sim:
        lint = run_tool(helm, ["lint", "--strict", str(CHART)], sim.kubeconfig_path)
        assert "0 chart(s) failed" in lint.stdout
        run_tool(helm, ["install", "cap", str(CHART), "--namespace", "capstan",
                        "--create-namespace"], sim.kubeconfig_path)
        _check_objects(sim, "capstan", "cap")
        refused = run_tool(helm, ["template", "x", str(CHART), "--set", "registry.backend=sqlite"],
                           sim.kubeconfig_path, check=False)
        assert refused.returncode != 0 and "must be kubernetes" in refused.stderr


def test_install_through_capstan(capstan_server_factory: Callable[..., ServerHandle],
                                 tmp_path: Path) -> None:
    helm = TOOLS / "helm3"
    _need(helm)
    server = capstan_server_factory(driver="helm", helm_bin=helm)
    with (running_kubesim(tls=True) as sim,
          ChartRepoServer(CHART.parent, helm, out_dir=tmp_path / "repo",
                          charts=["chart"]).serve_in_thread() as repo,
          CapstanClient(server.grpc_target, timeout=120, retries=0) as client):
        client.create_cluster("sim", sim.kubeconfig)
        client.create_repository("deploy", repo.url)
        created = client.create_release("deploy/capstan", cluster="sim", namespace="capstan",
                                        release_name="cap", create_namespace=True)
        assert (created.status, created.chart) == ("deployed", "capstan")
        _check_objects(sim, "capstan", "cap")
