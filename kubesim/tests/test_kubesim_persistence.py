"""Persistence (issue 11): every write is in the journal before it is answered, so a kubesim
killed with SIGKILL and restarted on the same ``--state`` has every object, with the same uids
and resourceVersions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesim.errors import ApiError
from kubesim.persistence import JOURNAL_SUFFIX, StateError, open_state
from kubesim.store import Store
from kubesim.testing import find_tools_bin, run_tool

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object"}}}]},
}


class Proc:
    """A ``kubesim`` command on a fixed port with its kubeconfig."""

    def __init__(self, tmp: Path, state: Path, port: int) -> None:
        self.kubeconfig = tmp / f"kc-{time.monotonic_ns()}.yaml"
        cmd = [sys.executable, "-m", "kubesim.cli", "--listen", f"127.0.0.1:{port}",
               "--kubeconfig-out", str(self.kubeconfig), "--state", str(state),
               "--token", "t0ken"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 30
        while not (self.kubeconfig.exists() and yaml.safe_load(self.kubeconfig.read_text())):
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "kubesim did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=15)
        assert self.proc.returncode == -signal.SIGKILL


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubectl() -> Path:
    tools = find_tools_bin(Path(__file__).parent)
    path = (tools / "kubectl") if tools else Path(".tools/bin/kubectl")
    if not os.access(path, os.X_OK):
        pytest.skip("kubectl is not installed (make setup)")
    return path


def _live(kubectl: Path, kubeconfig: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(kind, namespace, name) -> (uid, resourceVersion) of everything kubectl can list."""
    out = run_tool(kubectl, ["get", "namespaces,configmaps,secrets,deployments,replicasets,"
                             "pods,services,widgets.example.com,crd,roles", "-A", "-o", "json"],
                   kubeconfig).stdout
    return {
        (i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]):
            (i["metadata"]["uid"], i["metadata"]["resourceVersion"])
        for i in json.loads(out)["items"]
    }


MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gone, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "app:reader", namespace: shop}
rules: []
"""


def test_sigkill_loses_nothing(tmp_path: Path) -> None:
    kubectl = _kubectl()
    state = tmp_path / "state.json"
    port = _free_port()
    sim = Proc(tmp_path, state, port)
    try:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(MANIFEST)
        widget = tmp_path / "w.yaml"
        widget.write_text("apiVersion: example.com/v1\nkind: Widget\n"
                          "metadata: {name: w1, namespace: shop}\nspec: {size: 3}\n")
        crd = tmp_path / "crd.json"
        crd.write_text(json.dumps(CRD))
        run_tool(kubectl, ["apply", "-f", str(manifest), "-f", str(crd)], sim.kubeconfig)
        run_tool(kubectl, ["apply", "-f", str(widget)], sim.kubeconfig)
        run_tool(kubectl, ["create", "secret", "generic", "s1", "-n", "shop",
                           "--from-literal=a=b"], sim.kubeconfig)
        run_tool(kubectl, ["scale", "deployment", "web", "-n", "shop", "--replicas=3"],
                 sim.kubeconfig)
        run_tool(kubectl, ["delete", "configmap", "gone", "-n", "shop"], sim.kubeconfig)
        before = _live(kubectl, sim.kubeconfig)
        last_rv = json.loads(run_tool(kubectl, ["get", "--raw", "/api/v1/namespaces"],
                                      sim.kubeconfig).stdout)["metadata"]["resourceVersion"]
    finally:
        sim.kill()
    assert ("Widget", "shop", "w1") in before and ("Role", "shop", "app:reader") in before
    assert ("ConfigMap", "shop", "gone") not in before
    assert len([k for k in before if k[0] == "Pod"]) == 3

    again = Proc(tmp_path, state, port)
    try:
        assert _live(kubectl, again.kubeconfig) == before
        created = json.loads(run_tool(kubectl, ["create", "configmap", "after", "-n", "shop",
                                                "-o", "json"], again.kubeconfig).stdout)
        assert int(created["metadata"]["resourceVersion"]) > int(last_rv)
        widget = json.loads(run_tool(kubectl, ["get", "widget", "w1", "-n", "shop", "-o",
                                               "json"], again.kubeconfig).stdout)
        assert widget["spec"] == {"size": 3}
    finally:
        again.kill()
    third = Proc(tmp_path, state, port)
    try:
        names = run_tool(kubectl, ["get", "configmaps", "-n", "shop", "-o", "name"],
                         third.kubeconfig).stdout.split()
        assert "configmap/after" in names and "configmap/gone" not in names
    finally:
        third.proc.send_signal(signal.SIGTERM)
        third.proc.communicate(timeout=15)
    assert third.proc.returncode == 0
    assert state.with_name(state.name + JOURNAL_SUFFIX).stat().st_size == 0, \
        "a clean stop compacts the journal into the snapshot"


def _objects(store: Store) -> dict[tuple[str, str, str], Any]:
    return {(k[1], s.obj["metadata"].get("namespace", ""), s.obj["metadata"]["name"]): s.obj
            for k, s in store._iter_all()}


def test_journal_replays_over_the_snapshot_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = Store()
    state = open_state(store, path, compact_above=4096)
    store.create("customresourcedefinitions", CRD)
    for i in range(200):
        store.create("configmaps", {"metadata": {"name": f"cm{i}"}, "data": {"i": str(i)}})
    store.modify("configmaps", "cm3", lambda o: o.update(data={"i": "changed"}))
    store.delete("configmaps", "cm4")
    store.create("widgets.example.com", {"metadata": {"name": "w"}, "spec": {"a": 1}})
    journal = path.with_name(path.name + JOURNAL_SUFFIX)
    written = 200 * len(store.get_stored("configmaps", "cm100").json())
    assert journal.stat().st_size < written / 2, "the journal was compacted on the way"
    assert "cm100" in path.read_text(), "into the snapshot"
    expected, rv = _objects(store), store.resource_version
    # no close(): as after kill -9
    reloaded = Store()
    open_state(reloaded, path)
    assert _objects(reloaded) == expected and reloaded.resource_version == rv
    assert reloaded.get("widgets.example.com", "w")["spec"] == {"a": 1}
    assert state.path == path


def test_torn_last_line_is_dropped_and_a_corrupt_journal_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = Store()
    open_state(store, path)
    store.create("configmaps", {"metadata": {"name": "kept"}})
    journal = path.with_name(path.name + JOURNAL_SUFFIX)
    with journal.open("ab") as out:
        out.write(b'{"rv":99,"type":"ADDED","key":["","configmaps"],"object":{"meta')
    reloaded = Store()
    open_state(reloaded, path)
    assert reloaded.try_get("configmaps", "kept") is not None
    journal.write_bytes(b'{"rv":100,"type":"ADDED"}\n')
    with pytest.raises(StateError, match=r"corrupt kubesim journal .* record 1"):
        open_state(Store(), path)
    journal.write_bytes(b"garbage\n" + b'{"rv":1}\n')
    with pytest.raises(StateError, match="corrupt kubesim journal"):
        open_state(Store(), path)
    path.write_text("{not json")
    with pytest.raises(StateError, match="cannot read kubesim state"):
        open_state(Store(), path)
    assert path.read_text() == "{not json", "an unreadable state is left as it is"


def test_a_write_that_cannot_be_persisted_is_refused(tmp_path: Path) -> None:
    store = Store()
    state = open_state(store, tmp_path / "state.json")
    assert state._fd is not None
    os.close(state._fd)
    state._fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
    with pytest.raises(ApiError) as err:
        store.create("configmaps", {"metadata": {"name": "lost"}})
    assert err.value.code == 500 and "could not persist" in err.value.message
    assert store.try_get("configmaps", "lost") is None, "nothing half-done"
