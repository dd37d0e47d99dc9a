"""The official Python ``kubernetes`` client against kubesim: typed APIs, dynamic client, watch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from kubernetes.dynamic import DynamicClient  # noqa: E402

from kubesim.testing import KubeSimThread  # noqa: E402


@pytest.fixture(params=["http", "https"])
def api_client(
    request: pytest.FixtureRequest, kubesim: KubeSimThread, kubesim_tls: KubeSimThread
) -> Iterator[Any]:
    sim = kubesim if request.param == "http" else kubesim_tls
    api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    try:
        yield api
    finally:
        api.close()


def _deployment(name: str) -> Any:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
            ),
        ),
    )


def test_core_v1_crud(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s", labels={"a": "1"}),
                             string_data={"password": "hunter2"})
    created = core.create_namespaced_secret("py", secret)
    assert created.metadata.uid
    assert created.data == {"password": "aHVudGVyMg=="} and created.string_data is None
    read = core.read_namespaced_secret("s", "py")
    assert read.metadata.name == "s"
    listed = core.list_namespaced_secret("py", label_selector="a=1")
    assert [s.metadata.name for s in listed.items] == ["s"]
    read.metadata.labels["b"] = "2"
    replaced = core.replace_namespaced_secret("s", "py", read)
    assert replaced.metadata.labels == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_secret("s", "py", read)
    assert err.value.status == 409
    core.patch_namespaced_secret("s", "py", {"metadata": {"labels": {"c": "3"}}})
    assert core.read_namespaced_secret("s", "py").metadata.labels["c"] == "3"
    status = core.delete_namespaced_secret("s", "py")
    assert (status["status"] if isinstance(status, dict) else status.status) == "Success"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret("s", "py")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            "nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        )
    assert err.value.status == 404


def test_apps_v1_crud(api_client: Any) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment("default", _deployment("web"))
    assert created.metadata.generation == 1
    patched = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})
    assert patched.spec.replicas == 4 and patched.metadata.generation == 2
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 4
    names = [d.metadata.name for d in apps.list_deployment_for_all_namespaces().items]
    assert names == ["web"]
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    assert apps.list_namespaced_deployment("default").items == []


def test_dynamic_client_crud(api_client: Any) -> None:
    dyn = DynamicClient(api_client)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    crds.create(body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "kind": "CronTab", "singular": "crontab"},
                 "versions": [{"name": "v1", "served": True, "storage": True}]},
    })
    dyn.resources.invalidate_cache()
    tabs = dyn.resources.get(api_version="stable.example.com/v1", kind="CronTab")
    tabs.create(namespace="default", body={
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "tab"}, "spec": {"cron": "* * * * *"},
    })
    got = tabs.get(name="tab", namespace="default")
    assert got.spec.cron == "* * * * *"
    tabs.patch(name="tab", namespace="default", body={"spec": {"cron": "0 * * * *"}},
               content_type="application/merge-patch+json")
    assert tabs.get(name="tab", namespace="default").spec.cron == "0 * * * *"
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(namespace="default", body={"metadata": {"name": "dyn"}, "data": {"a": "b"}})
    assert [i.metadata.name for i in cms.get(namespace="default").items] == ["dyn"]
    tabs.delete(name="tab", namespace="default")
    assert tabs.get(namespace="default").items == []


def test_watch(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    seen: list[tuple[str, str]] = []

    def produce() -> None:
        time.sleep(0.3)
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"a": "1"})
        core.create_namespaced_config_map("default", cm)
        core.patch_namespaced_config_map("watched", "default", {"data": {"a": "2"}})
        core.delete_namespaced_config_map("watched", "default")

    thread = threading.Thread(target=produce)
    thread.start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    thread.join()
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]
