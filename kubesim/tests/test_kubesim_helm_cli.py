"""Plain helm 3 and helm 4 release lifecycles against kubesim (no --wait: see test_helm*)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesim.testing import KubeSimThread, run_tool

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: '1.0'\n",
    "values.yaml": "replicas: 1\nmessage: hello\nextraLabel: ''\nservice:\n  enabled: true\n",
    "templates/configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
  labels:
    app: {{ .Release.Name }}
    {{- if .Values.extraLabel }}
    extra: {{ .Values.extraLabel | quote }}
    {{- end }}
data:
  message: {{ .Values.message | quote }}
""",
    "templates/secret.yaml": """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
stringData:
  token: {{ .Values.message | quote }}
""",
    "templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          env:
            - name: MESSAGE
              value: {{ .Values.message | quote }}
""",
    "templates/service.yaml": """\
{{- if .Values.service.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-svc
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80}]
{{- end }}
""",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for name, text in CHART.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> Path:
    fixture: Path = request.getfixturevalue(request.param)
    return fixture


def test_release_lifecycle(helm: Path, chart: Path, kubesim: KubeSimThread) -> None:
    store = kubesim.store

    def run(*args: str) -> str:
        return run_tool(helm, list(args), kubesim.kubeconfig_path).stdout

    def live(kind: str, name: str) -> dict[str, Any] | None:
        return store.try_get(kind, name, "apps")

    run("install", "r1", str(chart), "-n", "apps", "--create-namespace",
        "--set", "extraLabel=yes")
    cm = live("configmaps", "r1-cm")
    assert cm is not None and cm["data"] == {"message": "hello"}
    assert cm["metadata"]["labels"]["extra"] == "yes"
    assert live("secrets", "r1-secret")["data"] == {"token": "aGVsbG8="}  # type: ignore[index]
    assert live("services", "r1-svc") is not None
    records = store.list("secrets", "apps", label_selector="owner=helm,name=r1")
    assert [r["metadata"]["name"] for r in records] == ["sh.helm.release.v1.r1.v1"]

    run("upgrade", "r1", str(chart), "-n", "apps", "--set", "message=bye,replicas=2",
        "--set", "service.enabled=false")
    cm = live("configmaps", "r1-cm")
    assert cm is not None and cm["data"] == {"message": "bye"}
    assert "extra" not in cm["metadata"]["labels"], "a label dropped from the chart is removed"
    web = live("deployments", "r1-web")
    assert web is not None and web["spec"]["replicas"] == 2 and web["metadata"]["generation"] == 2
    assert live("services", "r1-svc") is None, "a resource dropped from the chart is deleted"

    history = json.loads(run("history", "r1", "-n", "apps", "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    run("rollback", "r1", "1", "-n", "apps")
    cm = live("configmaps", "r1-cm")
    assert cm is not None and cm["data"] == {"message": "hello"}
    assert live("deployments", "r1-web")["spec"]["replicas"] == 1  # type: ignore[index]
    assert live("services", "r1-svc") is not None

    releases = json.loads(run("list", "-n", "apps", "-o", "json"))
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [
        ("r1", "3", "deployed")
    ]
    assert "STATUS: deployed" in run("status", "r1", "-n", "apps")
    manifest = run("get", "manifest", "r1", "-n", "apps")
    assert "kind: ConfigMap" in manifest and "name: r1-web" in manifest

    run("uninstall", "r1", "-n", "apps")
    for kind, name in [("configmaps", "r1-cm"), ("deployments", "r1-web"),
                       ("services", "r1-svc"), ("secrets", "r1-secret")]:
        assert live(kind, name) is None
    assert store.list("secrets", "apps", label_selector="owner=helm") == []
    assert json.loads(run("list", "-A", "-o", "json")) == []


def test_install_into_missing_namespace_fails(helm: Path, chart: Path,
                                              kubesim: KubeSimThread) -> None:
    proc = run_tool(helm, ["install", "r2", str(chart), "-n", "ghost"], kubesim.kubeconfig_path,
                    check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr
