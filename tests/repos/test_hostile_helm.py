"""Issue 15, row 9, end to end: a chart whose template allocates without end, dry-run
installed through a Capstan server on the real helm (3.17.2) against kubesim, gets a 409 naming
the limit in bounded time, while /healthz keeps answering and no release is left."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from capstan_server.drivers.helm.process_limits import HelmLimits
from capstan_server.threaded import ServerHandle
from kubesim.testing import running_kubesim
from repos.harness import LIMITS, Rest, attack, serve_chart
from repos.hostile_repo import CHART_YAML, HostileRepo, tgz

HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm3"


def test_row9_a_chart_that_eats_memory_stops_at_the_helm_limit(
    capstan_server_factory: Callable[..., ServerHandle], hostile: HostileRepo
) -> None:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"{HELM} is not installed; run `make setup`")
    with running_kubesim() as sim:
        capstan = capstan_server_factory(
            "helm", helm_bin=HELM, repo_limits=LIMITS,
            helm_limits=HelmLimits(memory_mib=1024, cpu_s=30))
        rest = Rest(capstan.http_url)
        assert rest.call("POST", "/api/clusters", {"name": "test122",
                                                   "kubeconfig": sim.kubeconfig})[0] == 200
        template = b"{{ range until 2000000000 }}{{ end }}\n"
        serve_chart(hostile, tgz({"evil/Chart.yaml": CHART_YAML,
                                  "evil/templates/cm.yaml": template}))
        assert rest.register("evil", hostile.url)[0] == 200
        with attack(capstan, cached=1):  # the archive is sound; its template is the attack
            status, answer = rest.install("evil", dry_run=True, timeout=30)
        assert status == 409 and "--helm-memory-limit" in answer["message"], answer
        assert rest.call("GET", "/api/releases/victim?cluster=test122")[0] == 404
