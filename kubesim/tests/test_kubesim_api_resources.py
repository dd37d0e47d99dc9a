"""kubesim serves the built-in API of Kubernetes 1.34: ``kubectl api-resources -o wide`` (kubectl
1.34) against kubesim is compared with the table a default kube-apiserver 1.34 serves, written
below as data (from the Kubernetes 1.34 sources: the resources' REST storages give short names
and categories, the API groups enabled by default give the list). Every resource listed is then
created, read, listed, watched, patched and deleted through its real path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from kubesim.testing import KubeSimThread, run_tool, running_kubesim

_STD = "create,delete,deletecollection,get,list,patch,update,watch"
_CREATE = "create"

# NAME SHORTNAMES APIVERSION NAMESPACED KIND VERBS CATEGORIES ("-": empty; "std": _STD;
# "ext": api-extensions; "ADM": admissionregistration.k8s.io/v1)
KUBERNETES_1_34 = """
bindings - v1 true Binding create -
componentstatuses cs v1 false ComponentStatus get,list -
configmaps cm v1 true ConfigMap std -
endpoints ep v1 true Endpoints std -
events ev v1 true Event std -
limitranges limits v1 true LimitRange std -
namespaces ns v1 false Namespace create,delete,get,list,patch,update,watch -
nodes no v1 false Node std -
persistentvolumeclaims pvc v1 true PersistentVolumeClaim std -
persistentvolumes pv v1 false PersistentVolume std -
pods po v1 true Pod std all
podtemplates - v1 true PodTemplate std -
replicationcontrollers rc v1 true ReplicationController std all
resourcequotas quota v1 true ResourceQuota std -
secrets - v1 true Secret std -
serviceaccounts sa v1 true ServiceAccount std -
services svc v1 true Service std all
mutatingwebhookconfigurations - ADM false MutatingWebhookConfiguration std ext
validatingadmissionpolicies - ADM false ValidatingAdmissionPolicy std ext
validatingadmissionpolicybindings - ADM false ValidatingAdmissionPolicyBinding std ext
validatingwebhookconfigurations - ADM false ValidatingWebhookConfiguration std ext
customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition std ext
apiservices - apiregistration.k8s.io/v1 false APIService std ext
controllerrevisions - apps/v1 true ControllerRevision std -
daemonsets ds apps/v1 true DaemonSet std all
deployments deploy apps/v1 true Deployment std all
replicasets rs apps/v1 true ReplicaSet std all
statefulsets sts apps/v1 true StatefulSet std all
selfsubjectreviews - authentication.k8s.io/v1 false SelfSubjectReview create -
tokenreviews - authentication.k8s.io/v1 false TokenReview create -
localsubjectaccessreviews - authorization.k8s.io/v1 true LocalSubjectAccessReview create -
selfsubjectaccessreviews - authorization.k8s.io/v1 false SelfSubjectAccessReview create -
selfsubjectrulesreviews - authorization.k8s.io/v1 false SelfSubjectRulesReview create -
subjectaccessreviews - authorization.k8s.io/v1 false SubjectAccessReview create -
horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler std all
cronjobs cj batch/v1 true CronJob std all
jobs - batch/v1 true Job std all
certificatesigningrequests csr certificates.k8s.io/v1 false CertificateSigningRequest std -
leases - coordination.k8s.io/v1 true Lease std -
endpointslices - discovery.k8s.io/v1 true EndpointSlice std -
events ev events.k8s.io/v1 true Event std -
flowschemas - flowcontrol.apiserver.k8s.io/v1 false FlowSchema std -
prioritylevelconfigurations - flowcontrol.apiserver.k8s.io/v1 false PriorityLevelConfiguration std -
ingressclasses - networking.k8s.io/v1 false IngressClass std -
ingresses ing networking.k8s.io/v1 true Ingress std -
ipaddresses ip networking.k8s.io/v1 false IPAddress std -
networkpolicies netpol networking.k8s.io/v1 true NetworkPolicy std -
servicecidrs - networking.k8s.io/v1 false ServiceCIDR std -
runtimeclasses - node.k8s.io/v1 false RuntimeClass std -
poddisruptionbudgets pdb policy/v1 true PodDisruptionBudget std -
clusterrolebindings - rbac.authorization.k8s.io/v1 false ClusterRoleBinding std -
clusterroles - rbac.authorization.k8s.io/v1 false ClusterRole std -
rolebindings - rbac.authorization.k8s.io/v1 true RoleBinding std -
roles - rbac.authorization.k8s.io/v1 true Role std -
deviceclasses - resource.k8s.io/v1 false DeviceClass std -
resourceclaims - resource.k8s.io/v1 true ResourceClaim std -
resourceclaimtemplates - resource.k8s.io/v1 true ResourceClaimTemplate std -
resourceslices - resource.k8s.io/v1 false ResourceSlice std -
priorityclasses pc scheduling.k8s.io/v1 false PriorityClass std -
csidrivers - storage.k8s.io/v1 false CSIDriver std -
csinodes - storage.k8s.io/v1 false CSINode std -
csistoragecapacities - storage.k8s.io/v1 true CSIStorageCapacity std -
storageclasses sc storage.k8s.io/v1 false StorageClass std -
volumeattachments - storage.k8s.io/v1 false VolumeAttachment std -
volumeattributesclasses vac storage.k8s.io/v1 false VolumeAttributesClass std -
"""

#: Served but not preferred (so not in the table): the same objects under another version.
ALSO_SERVED = ["autoscaling/v1"]

Row = tuple[str, str, str, str, str, str, str]


def _expected() -> list[Row]:
    rows = []
    for line in KUBERNETES_1_34.strip().splitlines():
        name, short, gv, namespaced, kind, verbs, cats = line.split()
        gv = "admissionregistration.k8s.io/v1" if gv == "ADM" else gv
        rows.append((name, "" if short == "-" else short, gv, namespaced, kind,
                     _STD if verbs == "std" else verbs,
                     {"-": "", "ext": "api-extensions"}.get(cats, cats)))
    return rows


def _table(text: str) -> list[Row]:
    """Parse kubectl's column output by the header's column starts (cells may be empty)."""
    lines = text.rstrip("\n").splitlines()
    header = lines[0]
    columns = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS", "CATEGORIES"]
    starts = [header.index(c) for c in columns]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], len(line) + 1],
                                                        strict=True)]
        rows.append(tuple(cells))
    return rows  # type: ignore[return-value]


def test_api_resources_match_kubernetes_1_34(kubectl: Path, kubesim: KubeSimThread) -> None:
    out = run_tool(kubectl, ["api-resources", "-o", "wide"], kubesim.kubeconfig_path).stdout
    served = sorted(_table(out))
    expected = sorted(_expected())
    missing = [r for r in expected if r not in served]
    extra = [r for r in served if r not in expected]
    assert (missing, extra) == ([], [])
    versions = run_tool(kubectl, ["api-versions"], kubesim.kubeconfig_path).stdout.split()
    wanted = {r[2] for r in expected} | set(ALSO_SERVED)
    assert set(versions) == wanted


# ---------------------------------------------------------------- generic CRUD on every kind

#: Kinds whose API-server behaviour is not plain storage (tested where that behaviour is).
_SPECIAL = {"bindings", "componentstatuses", "namespaces", "customresourcedefinitions",
            "apiservices"}
_BODIES: dict[str, dict[str, Any]] = {
    "services": {"spec": {"ports": [{"port": 80}]}},
}


def _path(row: Row, namespace: str, name: str = "") -> str:
    plural, _, gv, namespaced = row[0], row[1], row[2], row[3]
    base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
    ns = f"/namespaces/{namespace}" if namespaced == "true" else ""
    return f"{base}{ns}/{plural}" + (f"/{quote(name)}" if name else "")


def _generic_rows() -> list[Row]:
    return [r for r in _expected() if r[5] == _STD and r[0] not in _SPECIAL]


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[KubeSimThread]:
    """One server for the many CRUD cases (each uses its own kind, so they do not interfere)."""
    with running_kubesim(controllers=False) as sim:
        yield sim


@pytest.mark.parametrize("row", _generic_rows(), ids=lambda r: f"{r[0]}.{r[2]}")
def test_generic_crud_watch_patch(row: Row, shared_sim: KubeSimThread) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {shared_sim.token}"
    url = shared_sim.url
    name = "obj-1"
    watched: list[dict[str, Any]] = []
    list_path = _path(row, "default")
    listed = session.get(url + list_path)
    assert listed.status_code == 200, listed.text
    rv = listed.json()["metadata"]["resourceVersion"]

    def watch() -> None:
        with session.get(url + list_path, params={"watch": "1", "resourceVersion": rv,
                                                  "timeoutSeconds": "10"}, stream=True) as r:
            for line in r.iter_lines():
                watched.append(json.loads(line))
                if len(watched) == 3:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)
    body = {"apiVersion": row[2], "kind": row[4], "metadata": {"name": name, "labels": {"a": "1"}},
            **_BODIES.get(row[0], {})}
    created = session.post(url + list_path, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["uid"]
    obj_path = _path(row, "default", name)
    got = session.get(url + obj_path).json()
    assert (got["apiVersion"], got["kind"]) == (row[2], row[4])
    patched = session.patch(url + obj_path, json={"metadata": {"labels": {"b": "2"}}},
                            headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    items = session.get(url + list_path, params={"labelSelector": "b=2"}).json()["items"]
    assert [i["metadata"]["name"] for i in items] == [name]
    deleted = session.delete(url + obj_path)
    assert deleted.status_code == 200, deleted.text
    assert session.get(url + obj_path).status_code == 404
    watcher.join(15)
    assert [e["type"] for e in watched] == ["ADDED", "MODIFIED", "DELETED"]


def test_binding_puts_a_pod_on_a_node(kubesim_bare: KubeSimThread) -> None:
    store = kubesim_bare.store
    store.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "busybox"}]}})
    headers = {"Authorization": f"Bearer {kubesim_bare.token}"}
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "kubesim-node"}}
    path = kubesim_bare.url + "/api/v1/namespaces/default/bindings"
    first = requests.post(path, json=binding, headers=headers)
    assert first.status_code == 201, first.text
    assert store.get("pods", "p")["spec"]["nodeName"] == "kubesim-node"
    again = requests.post(path, json=binding, headers=headers)
    assert again.status_code == 409 and "already assigned" in again.json()["message"]
    assert requests.get(path, headers=headers).status_code == 405


def test_componentstatuses_are_read_only(kubectl: Path, kubesim: KubeSimThread) -> None:
    out = run_tool(kubectl, ["get", "componentstatuses", "-o", "json"],
                   kubesim.kubeconfig_path).stdout
    names = [i["metadata"]["name"] for i in json.loads(out)["items"]]
    assert names == ["controller-manager", "etcd-0", "scheduler"]
    headers = {"Authorization": f"Bearer {kubesim.token}"}
    denied = requests.delete(kubesim.url + "/api/v1/componentstatuses/etcd-0", headers=headers)
    assert denied.status_code == 405


HPA_V1 = """\
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  targetCPUUtilizationPercentage: %d
"""


def test_autoscaling_v1_hpas_are_converted_to_and_from_v2(
    kubectl: Path, kubesim_bare: KubeSimThread, tmp_path: Path
) -> None:
    store = kubesim_bare.store
    manifest = tmp_path / "hpa.yaml"

    def apply(percent: int, *extra: str) -> None:
        manifest.write_text(HPA_V1 % percent)
        run_tool(kubectl, ["apply", "-f", str(manifest), *extra], kubesim_bare.kubeconfig_path)

    def get_v1() -> dict[str, Any]:
        out = run_tool(kubectl, ["get", "--raw", "/apis/autoscaling/v1/namespaces/default/"
                                 "horizontalpodautoscalers/web"], kubesim_bare.kubeconfig_path)
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}
    apply(70)
    stored = store.get("horizontalpodautoscalers", "web")
    assert stored["apiVersion"] == "autoscaling/v2" and stored["spec"]["metrics"] == [cpu]
    assert "targetCPUUtilizationPercentage" not in stored["spec"]
    v1 = get_v1()
    assert (v1["apiVersion"], v1["spec"]["targetCPUUtilizationPercentage"]) == (
        "autoscaling/v1", 70)
    assert "metrics" not in v1["spec"]

    # v2-only parts (a memory metric, behavior) survive a v1 update, client-side and server-side
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "500Mi"}}}
    store.modify("horizontalpodautoscalers", "web",
                 lambda o: o["spec"].update(metrics=[cpu, memory]))
    apply(50)
    assert store.get("horizontalpodautoscalers", "web")["spec"]["metrics"] == [
        {**cpu, "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                       "averageUtilization": 50}}}, memory]
    apply(40, "--server-side", "--force-conflicts")
    assert store.get("horizontalpodautoscalers", "web")["spec"]["metrics"][1] == memory
    assert get_v1()["spec"]["targetCPUUtilizationPercentage"] == 40

    store.update_status("horizontalpodautoscalers", {**store.get(
        "horizontalpodautoscalers", "web"), "status": {"currentReplicas": 2, "desiredReplicas": 2,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": 33}}}]}})
    status = get_v1()["status"]
    assert status == {"currentReplicas": 2, "desiredReplicas": 2,
                      "currentCPUUtilizationPercentage": 33}
