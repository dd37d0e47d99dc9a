"""K1-K3 of issue 9: webhook configurations, admission policies and APIServices are served
(stored only), and names follow each kind's rule (RBAC names may hold ``:``), with real helm
3 and 4 and kubectl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesim.errors import Invalid
from kubesim.store import Store
from kubesim.testing import KubeSimThread, run_tool

TEMPLATE = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-admission
webhooks:
  - name: validate.{{ .Release.Name }}.example.com
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: {{ .Values.failurePolicy }}
    clientConfig:
      service: {name: {{ .Release.Name }}-webhook, namespace: {{ .Release.Namespace }}, path: /v}
    rules:
      - apiGroups: [networking.k8s.io]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [ingresses]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-webhook
webhooks:
  - name: mutate.{{ .Release.Name }}.example.com
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig:
      service: {name: {{ .Release.Name }}-webhook, namespace: {{ .Release.Namespace }}, path: /m}
    rules:
      - apiGroups: [cert-manager.io]
        apiVersions: [v1]
        operations: [CREATE]
        resources: ["*/*"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ .Release.Name }}-replicas
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [apps]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [deployments]
  validations:
    - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ .Release.Name }}-replicas
spec:
  policyName: {{ .Release.Name }}-replicas
  validationActions: [Deny]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: {{ .Release.Name }}-metrics, namespace: {{ .Release.Namespace }}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}-cainjector:leaderelection
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}-cainjector:leaderelection
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .Release.Name }}-cainjector:leaderelection
subjects:
  - {kind: ServiceAccount, name: default, namespace: {{ .Release.Namespace }}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:{{ .Release.Name }}:aggregated-metrics-reader
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
  - apiGroups: [metrics.k8s.io]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Name }}:system:auth-delegator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
  - {kind: ServiceAccount, name: default, namespace: {{ .Release.Namespace }}}
"""

KINDS = [
    ("validatingwebhookconfigurations", "{r}-admission"),
    ("mutatingwebhookconfigurations", "{r}-webhook"),
    ("validatingadmissionpolicies", "{r}-replicas"),
    ("validatingadmissionpolicybindings", "{r}-replicas"),
    ("apiservices", "v1beta1.metrics.k8s.io"),
    ("roles", "{r}-cainjector:leaderelection"),
    ("rolebindings", "{r}-cainjector:leaderelection"),
    ("clusterroles", "system:{r}:aggregated-metrics-reader"),
    ("clusterrolebindings", "{r}:system:auth-delegator"),
]


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "extensions"
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text("apiVersion: v2\nname: extensions\nversion: 0.1.0\n")
    (root / "values.yaml").write_text("failurePolicy: Fail\n")
    (root / "templates" / "all.yaml").write_text(TEMPLATE)
    return root


@pytest.fixture(params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> Path:
    fixture: Path = request.getfixturevalue(request.param)
    return fixture


def test_helm_lifecycle_of_webhooks_apiservice_and_rbac_names(
    helm: Path, kubectl: Path, chart: Path, kubesim: KubeSimThread
) -> None:
    def run(*args: str) -> str:
        return run_tool(helm, list(args), kubesim.kubeconfig_path).stdout

    def kubectl_json(*args: str) -> dict[str, object]:
        out = run_tool(kubectl, [*args, "-o", "json"], kubesim.kubeconfig_path).stdout
        result: dict[str, object] = json.loads(out)
        return result

    store = kubesim.store
    run("install", "ext", str(chart), "-n", "hooks", "--create-namespace", "--wait")
    for plural, name in KINDS:
        obj = store.try_get(plural, name.format(r="ext"), "hooks")
        assert obj is not None, (plural, name)

    service = kubectl_json("get", "apiservice", "v1beta1.metrics.k8s.io")
    conditions = service["status"]["conditions"]  # type: ignore[index]
    assert [(c["type"], c["status"]) for c in conditions] == [("Available", "True")]

    run("upgrade", "ext", str(chart), "-n", "hooks", "--set", "failurePolicy=Ignore", "--wait")
    webhook = kubectl_json("get", "validatingwebhookconfiguration", "ext-admission")
    assert webhook["webhooks"][0]["failurePolicy"] == "Ignore"  # type: ignore[index]
    assert webhook["metadata"]["generation"] == 2  # type: ignore[index]
    role = kubectl_json("get", "role", "ext-cainjector:leaderelection", "-n", "hooks")
    assert role["metadata"]["name"] == "ext-cainjector:leaderelection"  # type: ignore[index]

    run("rollback", "ext", "1", "-n", "hooks", "--wait")
    assert store.get("validatingwebhookconfigurations", "ext-admission")["webhooks"][0][
        "failurePolicy"] == "Fail"

    run("uninstall", "ext", "-n", "hooks", "--wait")
    for plural, name in KINDS:
        assert store.try_get(plural, name.format(r="ext"), "hooks") is None, (plural, name)


def test_kubectl_lists_the_groups(kubectl: Path, kubesim: KubeSimThread) -> None:
    versions = run_tool(kubectl, ["api-versions"], kubesim.kubeconfig_path).stdout.split()
    assert "admissionregistration.k8s.io/v1" in versions
    assert "apiregistration.k8s.io/v1" in versions


def test_apiservice_name_must_be_version_dot_group() -> None:
    store = Store()
    bad = {"metadata": {"name": "metrics"},
           "spec": {"group": "metrics.k8s.io", "version": "v1beta1"}}
    with pytest.raises(Invalid, match=r'must be `spec.version\+"."\+spec.group`'):
        store.create("apiservices", bad)
    local = store.create("apiservices", {"metadata": {"name": "v1.apps"},
                                         "spec": {"group": "apps", "version": "v1"}})
    assert local["status"]["conditions"][0]["reason"] == "Local"


@pytest.mark.parametrize(
    ("resource", "name", "valid"),
    [
        ("roles", "cert-manager-cainjector:leaderelection", True),
        ("clusterroles", "system:controller:Foo_Bar", True),
        ("clusterrolebindings", "system:kube-dns", True),
        ("rolebindings", "a/b", False),
        ("roles", "..", False),
        ("clusterroles", "100%", False),
        ("configmaps", "settings.v1", True),
        ("configmaps", "a:b", False),
        ("secrets", "Upper", False),
        ("configmaps", "x" * 254, False),
        ("namespaces", "team-a", True),
        ("namespaces", "team.a", False),
        ("services", "web-1", True),
        ("services", "1web", False),
        ("deployments", "1web.v2", True),
        ("validatingwebhookconfigurations", "ingress-nginx-admission", True),
        ("validatingwebhookconfigurations", "ingress:nginx", False),
    ],
)
def test_name_rules_per_kind(resource: str, name: str, valid: bool) -> None:
    store = Store()
    obj = {"metadata": {"name": name}}
    if valid:
        assert store.create(resource, obj)["metadata"]["name"] == name
    else:
        with pytest.raises(Invalid) as err:
            store.create(resource, obj)
        assert err.value.code == 422
        assert f'metadata.name: Invalid value: "{name}"' in err.value.message


def test_invalid_name_over_http_is_422(kubectl: Path, kubesim: KubeSimThread,
                                       tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: 9lives}\n"
                        "spec: {ports: [{port: 80}]}\n")
    proc = run_tool(kubectl, ["apply", "-f", str(manifest)], kubesim.kubeconfig_path,
                    check=False)
    assert proc.returncode != 0
    assert 'Service "9lives" is invalid: metadata.name: Invalid value: "9lives": a DNS-1035 ' \
        "label must consist of" in proc.stderr


def test_several_name_problems_are_aggregated_as_the_api_server_does() -> None:
    with pytest.raises(Invalid) as err:
        Store().create("configmaps", {"metadata": {"name": "X" * 254}})
    message = err.value.message
    assert message.startswith(f'ConfigMap "{"X" * 254}" is invalid: [metadata.name: ')
    assert "must be no more than 253 characters, metadata.name: Invalid value" in message
    assert message.endswith("]")
    assert len(err.value.details["causes"]) == 2  # type: ignore[index]


def test_kubectl_get_prints_the_real_columns(kubectl: Path, kubesim: KubeSimThread) -> None:
    store = kubesim.store
    store.create("apiservices", {"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {
        "group": "metrics.k8s.io", "version": "v1beta1",
        "service": {"name": "metrics-server", "namespace": "kube-system"}}})
    store.create("validatingwebhookconfigurations", {"metadata": {"name": "admission"},
                                                     "webhooks": [{"name": "a.example.com"}]})
    store.create("clusterrolebindings", {"metadata": {"name": "system:metrics"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})

    def table(*args: str) -> list[list[str]]:
        out = run_tool(kubectl, ["get", *args], kubesim.kubeconfig_path).stdout
        return [line.split() for line in out.splitlines()]

    apiservices = table("apiservices")
    assert apiservices[0] == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert apiservices[1][:3] == ["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "True"]
    assert table("validatingwebhookconfigurations")[1][:2] == ["admission", "1"]
    assert table("clusterrolebinding", "system:metrics")[1][:2] == [
        "system:metrics", "ClusterRole/view"]
