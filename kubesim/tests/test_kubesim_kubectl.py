"""kubectl 1.34 (``.tools/bin/kubectl``) against kubesim, as on a real cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubesim.testing import KubeSimThread, run_tool

IMPERATIVE = [
    "create deployment web --image=nginx:1.27 --replicas=3 --port=8080",
    "create deployment zero --image=nginx --replicas=0",
    "run pod1 --image=busybox --restart=Never --port=80 --env=A=1 --labels=app=x --command "
    "-- sleep 10",
    "create service clusterip svc1 --tcp=80:8080 --tcp=443:8443",
    "create service nodeport np1 --tcp=80:8080 --node-port=30080",
    "create job job1 --image=busybox -- echo hi",
    "create cronjob cj1 --image=busybox --schedule=@hourly -- echo hi",
    "create serviceaccount sa1",
    "create role r1 --verb=get,list --resource=pods,secrets --resource-name=x",
    "create rolebinding rb1 --role=r1 --serviceaccount=default:sa1 --user=bob",
    "create clusterrole cr1 --verb=get --resource=nodes --non-resource-url=/healthz",
    "create clusterrolebinding crb1 --clusterrole=cr1 --group=devs",
    "create secret docker-registry reg1 --docker-server=r.io --docker-username=u "
    "--docker-password=p",
]

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
      - name: side
        image: busybox:1.36
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop, labels: {app: web}}
data: {color: blue}
"""


class Kubectl:
    def __init__(self, binary: Path, sim: KubeSimThread) -> None:
        self.binary, self.sim = binary, sim

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = run_tool(self.binary, list(args), self.sim.kubeconfig_path, check=check)
        return proc.stdout + (proc.stderr if not check else "")

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture(params=["http", "https"])
def k(
    request: pytest.FixtureRequest, kubectl: Path, kubesim: KubeSimThread,
    kubesim_tls: KubeSimThread,
) -> Kubectl:
    return Kubectl(kubectl, kubesim if request.param == "http" else kubesim_tls)


def test_apply_get_patch_delete(k: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(MANIFEST)
    out = k("apply", "-f", str(manifest))
    assert "deployment.apps/web created" in out and "configmap/settings created" in out
    assert "unchanged" in k("apply", "-f", str(manifest))
    manifest.write_text(MANIFEST.replace("color: blue", "color: red"))
    assert "configmap/settings configured" in k("apply", "-f", str(manifest))
    assert k.sim.store.get("configmaps", "settings", "shop")["data"] == {"color": "red"}

    deploy = k.json("-n", "shop", "get", "deployment", "web")
    assert deploy["spec"]["replicas"] == 2 and deploy["metadata"]["generation"] == 1
    names = k("-n", "shop", "get", "deploy,cm", "-l", "app=web", "-o", "name").split()
    assert names == ["deployment.apps/web", "configmap/settings"]
    assert k("-n", "shop", "get", "deploy", "-l", "tier in (front,back)", "-o", "name").strip() == (
        "deployment.apps/web"
    )
    assert "No resources found" in k("-n", "shop", "get", "deploy", "-l", "tier!=front",
                                     check=False)

    k("-n", "shop", "patch", "deploy", "web", "--type", "merge", "-p",
      '{"spec":{"replicas":3}}')
    k("-n", "shop", "patch", "deploy", "web", "--type", "json", "-p",
      '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]')
    k("-n", "shop", "patch", "deploy", "web", "--type", "strategic", "-p",
      '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}')
    deploy = k.json("-n", "shop", "get", "deployment", "web")
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert deploy["spec"]["replicas"] == 3 and deploy["metadata"]["generation"] == 4
    assert [c["name"] for c in containers] == ["web", "side"]
    assert containers[0]["image"] == "nginx:1.28"
    assert [e["name"] for e in containers[0]["env"]] == ["A", "B"]

    out = k("delete", "-f", str(manifest))
    assert 'deployment.apps "web" deleted' in out and 'namespace "shop" deleted' in out
    assert k.sim.store.try_get("namespaces", "shop") is None
    assert k.sim.store.list("deployments", "shop") == []


def test_create_namespace_and_missing_namespace(k: Kubectl) -> None:
    assert "namespace/team created" in k("create", "namespace", "team")
    assert "AlreadyExists" in k("create", "namespace", "team", check=False)
    k("-n", "team", "create", "configmap", "c", "--from-literal=a=b")
    assert k.json("-n", "team", "get", "configmap", "c")["data"] == {"a": "b"}
    out = k("-n", "ghost", "create", "configmap", "c", "--from-literal=a=b", check=False)
    assert 'namespaces "ghost" not found' in out
    k("-n", "team", "create", "secret", "generic", "s", "--from-literal=pw=x")
    assert k.json("-n", "team", "get", "secret", "s")["data"] == {"pw": "eA=="}


def test_server_side_apply_and_crd(k: Kubectl, tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text("""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
""")
    k("apply", "--server-side", "-f", str(crd))
    tab = tmp_path / "tab.yaml"
    tab.write_text("apiVersion: stable.example.com/v1\nkind: CronTab\n"
                   "metadata: {name: t, namespace: default}\nspec: {cron: '* * * * *'}\n")
    k("apply", "--server-side", "-f", str(tab))
    assert k.json("get", "ct", "t")["spec"]["cron"] == "* * * * *"
    deadline = time.monotonic() + 10
    while "crontab" not in k("api-resources", "--api-group=stable.example.com"):
        assert time.monotonic() < deadline
    k("delete", "-f", str(tab))
    assert k.sim.store.list("crontabs.stable.example.com") == []


def _contained(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``sent`` (what kubectl meant to send) is not found in ``stored``."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [bad for k, v in sent.items() if not (k == "creationTimestamp" and v is None)
                for bad in (_contained(v, stored[k], f"{path}.{k}") if k in stored
                            else [f"{path}.{k} missing"])]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(sent) != len(stored):
            return [path]
        return [bad for i, (a, b) in enumerate(zip(sent, stored, strict=True))
                for bad in _contained(a, b, f"{path}[{i}]")]
    return [] if sent == stored or sent == {} else [f"{path}: {sent!r} != {stored!r}"]


@pytest.mark.parametrize("command", IMPERATIVE)
def test_imperative_create_sends_protobuf_we_decode(
    command: str, kubectl: Path, kubesim_bare: KubeSimThread
) -> None:
    """kubectl sends these kinds as protobuf: what is stored equals what it meant to send."""
    args = command.split()
    cut = args.index("--") if "--" in args else len(args)
    intended = run_tool(kubectl, [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]],
                        kubesim_bare.kubeconfig_path).stdout
    created = run_tool(kubectl, [*args[:cut], "-o", "json", *args[cut:]],
                       kubesim_bare.kubeconfig_path).stdout
    assert _contained(json.loads(intended), json.loads(created)) == []


def test_get_prints_server_side_columns(k: Kubectl) -> None:
    k("create", "deployment", "web", "--image=nginx", "--replicas=2")
    header = k("get", "deployment", "web").splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    k("create", "secret", "generic", "s", "--from-literal=a=b", "--from-literal=c=d")
    row = k("get", "secret", "s").splitlines()[1].split()
    assert row[:3] == ["s", "Opaque", "2"]
