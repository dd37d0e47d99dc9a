"""The helm driver's Kubernetes API reads (kube.py): kubeconfig handling, TLS, errors,
discovery, concurrent object reads and watches, against kubesim."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import yaml

from capstan_server.drivers.base import ClusterTarget
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.drivers.helm.kube import KubeClient, load_kubeconfig
from capstan_server.errors import FailedPrecondition, InvalidArgument, Unavailable
from kubesim.testing import KubeSimThread


def kubeconfig(server: str, user: dict[str, object], cluster: dict[str, object] | None = None
               ) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ns"}}],
    })


def test_load_kubeconfig_inline_credentials() -> None:
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    cfg = load_kubeconfig(kubeconfig(
        "https://k.example:6443/", {"client-certificate-data": pem, "client-key-data": pem},
        {"certificate-authority-data": pem, "tls-server-name": "api.internal"}))
    assert cfg.server == "https://k.example:6443" and cfg.namespace == "ns"
    assert cfg.cert_pem == cfg.key_pem == cfg.ca_pem == b"-----BEGIN CERTIFICATE-----\n"
    assert cfg.tls_server_name == "api.internal" and not cfg.insecure
    basic = load_kubeconfig(kubeconfig("http://k:8080", {"username": "a", "password": "b"},
                                       {"insecure-skip-tls-verify": True}))
    assert (basic.username, basic.password, basic.insecure) == ("a", "b", True)


@pytest.mark.parametrize("user", [{"exec": {"command": "/bin/sh"}}, {"tokenFile": "/etc/t"},
                                  {"client-key": "/etc/k"}, {"auth-provider": {"name": "x"}}])
def test_kubeconfigs_that_run_or_read_things_are_refused(user: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        load_kubeconfig(kubeconfig("https://k:6443", user))


@pytest.mark.parametrize(("server", "user", "cluster", "said"), [
    ("https://[::1:6443", {"token": "t"}, {}, "server URL"),  # urlsplit's ValueError
    ("https://k:99999", {"token": "t"}, {}, "server URL"),
    ("https://k:6443/a\nb", {"token": "t"}, {}, "server URL"),
    ("https://k:6443", {"token": "a\r\nX-Injected: 1"}, {}, "token"),  # a header smuggled
    ("https://k:6443", {"token": ["t"]}, {}, "token"),
    ("https://k:6443", {"username": "u", "password": "p\x00"}, {}, "password"),
    ("https://k:6443", {"token": "t"}, {"tls-server-name": "a\tb"}, "tls-server-name"),
    ("https://k:6443", {"client-certificate-data": "!!!", "client-key-data": "a2V5"}, {},
     "client-certificate-data is not base64"),
])
def test_kubeconfigs_that_cannot_make_a_request_are_refused(
        server: str, user: dict[str, object], cluster: dict[str, object], said: str) -> None:
    with pytest.raises(InvalidArgument, match=said):
        load_kubeconfig(kubeconfig(server, user, cluster))


async def test_tls_token_discovery_and_concurrent_reads(kubesim: KubeSimThread,
                                                        unique_namespace: str) -> None:
    client = KubeClient(load_kubeconfig(kubesim.kubeconfig), cluster_name="sim")
    try:
        for i in range(20):
            kubesim.store.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": f"cm-{i}",
                                                             "labels": {"n": str(i % 2)}}},
                                 unique_namespace)
        refs = [("v1", "ConfigMap", unique_namespace, f"cm-{i}") for i in range(25)]
        refs.append(("apps/v1", "Deployment", unique_namespace, "absent"))
        refs.append(("nothing.example/v1", "Thing", unique_namespace, "x"))
        found = await client.get_objects(refs)
        assert [obj is not None for _, obj in found[:25]] == [True] * 20 + [False] * 5
        assert found[25][0] is not None and found[25][1] is None  # served kind, no object
        assert found[26] == (None, None)  # kind the cluster does not serve
        info = await client.resource_for("rbac.authorization.k8s.io/v1", "ClusterRole")
        assert info is not None and not info.namespaced
        items, version = await client.list_objects(
            f"/api/v1/namespaces/{unique_namespace}/configmaps", label_selector="n=1")
        assert len(items) == 10 and version
        paged, _ = await client.list_objects(
            f"/api/v1/namespaces/{unique_namespace}/configmaps", page_size=7)
        assert len(paged) == 20  # `continue` followed

        async def first_event() -> tuple[str, str]:
            async for kind, obj in client.watch(
                    f"/api/v1/namespaces/{unique_namespace}/configmaps",
                    resource_version=version, seconds=10, label_selector="n=1"):
                return kind, obj["metadata"]["name"]
            return "", ""

        watching = asyncio.create_task(first_event())
        await asyncio.sleep(0.2)
        kubesim.store.delete("configmaps", "cm-3", unique_namespace)
        assert await asyncio.wait_for(watching, 10) == ("DELETED", "cm-3")
    finally:
        await client.close()


async def test_errors(kubesim: KubeSimThread, tmp_path: Path) -> None:
    driver = HelmDriver(data_dir=tmp_path)
    try:
        wrong = kubesim.kubeconfig.replace(kubesim.token, "not-the-token")
        refused = ClusterTarget("c-wrong", "wrong", wrong)
        with pytest.raises(FailedPrecondition):
            await driver.namespaces(refused)
        with pytest.raises(InvalidArgument):  # at registration: the kubeconfig is unusable
            await driver.check_cluster(refused)
        nowhere = ClusterTarget("c-off", "off", kubeconfig("https://127.0.0.1:9",
                                                           {"token": "t"}))
        with pytest.raises(Unavailable):
            await driver.check_cluster(nowhere)
        with pytest.raises(InvalidArgument):
            await driver.check_cluster(ClusterTarget("c-bad", "bad", "clusters: [oops"))
        not_ascii = base64.b64encode("é".encode()).decode()  # a CA that is no PEM, nor ASCII
        with pytest.raises(InvalidArgument, match="CA data"):
            await driver.check_cluster(ClusterTarget("c-ca", "ca", kubeconfig(
                "https://127.0.0.1:9", {"token": "t"}, {"certificate-authority-data": not_ascii})))
        # Concurrent namespace reads of one cluster share one API call and one answer.
        good = ClusterTarget("c-good", "good", kubesim.kubeconfig)
        answers = await asyncio.gather(*(driver.namespaces(good) for _ in range(50)))
        assert all(a == answers[0] for a in answers)
        assert {"default", "kube-system"} <= {n.name for n in answers[0]}
        assert all(n.uid for n in answers[0])
    finally:
        await driver.close()
