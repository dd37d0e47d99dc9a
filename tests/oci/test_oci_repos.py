"""OCI registries as chart repositories, against the real registry (memory driver): register,
list charts and versions, show a chart, and each bad input with its code, leaving nothing
registered or installed."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from cli.runner import capstan
from oci_registry import BUILD_VERSION, OCI_PASSWORD, OCI_USER, pinned_helm

from capstan.client import CapstanClient, CapstanError, InvalidArgument, NotFound, to_dict
from capstan_server.threaded import ServerHandle

IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
IMAGE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@pytest.fixture
def helm() -> Path:
    return pinned_helm()


@pytest.fixture
def client(capstan_server: ServerHandle) -> Any:
    with CapstanClient(capstan_server.grpc_target, timeout=60) as c:
        yield c


def no_repos(client: Any) -> None:
    assert client.list_repositories().total == 0


def test_register_list_and_show(client: Any, oci_registry: Any, helm: Path,
                                packaged_charts: dict[str, Path], build_chart: Path,
                                capstan_server: ServerHandle) -> None:
    for chart in ("etcd-8.11.1", "etcd-8.11.2", "never-ready"):
        oci_registry.push(helm, packaged_charts[chart])
    oci_registry.push(helm, build_chart)
    oci_registry.tag("charts/etcd", "8.11.2", "latest")  # not a version: ignored
    oci_registry.push(helm, packaged_charts["crd-demo"], path="elsewhere")  # another path
    oci_registry.put_artifact("charts/an-image", "1.0.0", config_media_type=IMAGE_CONFIG,
                              layer=b"not a chart", layer_media_type=IMAGE_LAYER)

    repo = client.create_repository("bitnami-new", oci_registry.url(), plain_http=True)
    assert (repo.url, repo.plain_http, repo.chart_count, list(repo.charts)) == (
        oci_registry.url(), True, 3, [])
    # The catalog lists the charts under the path; the container image is left out.
    listed = client.list_charts(repo="bitnami-new", all_version=True).charts
    assert [(c.name, c.version) for c in listed] == [
        ("etcd", "8.11.2"), ("etcd", "8.11.1"), ("hooked", BUILD_VERSION),
        ("never-ready", "0.1.0")]
    newest = listed[0]
    assert newest.app_version == "3.5.9" and "etcd" in newest.description
    assert len(newest.digest) == 64

    shown = client.get_chart("bitnami-new/etcd").chart
    assert (shown.name, shown.version, shown.repo) == ("etcd", "8.11.2", "bitnami-new")
    assert "etcd" in shown.readme
    content = to_dict(shown)["chart"]
    assert content["values"]["image"]["repository"] == "bitnami/etcd"
    assert content["schema"]["type"] == "object"  # values.schema.json
    assert [v.version for v in shown.versions] == ["8.11.2", "8.11.1"]
    # The chart layer, pulled once, is cached by its digest (the sha256 of the pushed .tgz),
    # per repository as HTTP archives are.
    layer = hashlib.sha256(packaged_charts["etcd-8.11.2"].read_bytes()).hexdigest()
    assert (capstan_server.data_dir / "charts" / shown.repo_id / f"{layer}.tgz").is_file()
    older = client.get_chart("etcd", repo="bitnami-new", version="8.11.1").chart
    assert older.chart.metadata.version == "8.11.1"
    # OCI tags write `+` as `_`: the version is given and shown with `+`.
    built = client.get_chart("bitnami-new/hooked", version=BUILD_VERSION).chart
    assert built.chart.metadata.version == BUILD_VERSION

    with pytest.raises(InvalidArgument, match="SemVer tags"):
        client.get_chart("bitnami-new/etcd", version="latest")


def test_charts_registered_by_name_and_sync(client: Any, oci_registry: Any, helm: Path,
                                            packaged_charts: dict[str, Path]) -> None:
    oci_registry.push(helm, packaged_charts["etcd-8.11.1"])
    oci_registry.push(helm, packaged_charts["never-ready"])
    repo = client.create_repository("bitnami-new", oci_registry.url(), plain_http=True,
                                    charts=["etcd"])
    assert (repo.chart_count, list(repo.charts)) == (1, ["etcd"])
    oci_registry.push(helm, packaged_charts["etcd-8.11.2"])
    assert client.get_chart("bitnami-new/etcd").chart.version == "8.11.1"  # until synced
    assert client.sync_repository("bitnami-new").chart_count == 1
    assert client.get_chart("bitnami-new/etcd").chart.version == "8.11.2"
    with pytest.raises(NotFound):
        client.get_chart("bitnami-new/never-ready")


def test_password_protected_registry(client: Any, oci_registry_auth: Any, helm: Path,
                                     packaged_charts: dict[str, Path],
                                     fake_kubeconfig: str) -> None:
    oci_registry_auth.push(helm, packaged_charts["etcd-8.11.1"])
    url = oci_registry_auth.url()
    for user, password, said in ((OCI_USER, "wrong", "refused the credentials"),
                                 ("", "", "needs credentials")):
        with pytest.raises(CapstanError) as refused:
            client.create_repository("private", url, plain_http=True, username=user,
                                     password=password)
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert said in refused.value.message
        no_repos(client)

    repo = client.create_repository("private", url, plain_http=True, username=OCI_USER,
                                    password=OCI_PASSWORD)
    assert (repo.username, repo.has_password) == (OCI_USER, True)
    assert client.get_chart("private/etcd").chart.version == "8.11.1"
    client.create_cluster("test122", fake_kubeconfig)
    created = client.create_release("private/etcd", cluster="test122", namespace="default",
                                    release_name="etcd-release")
    assert created.chart_version == "8.11.1" and created.repo_id == repo.id
    assert len(created.chart_digest) == 63
    # The password is never echoed, not even to the API.
    answers = [to_dict(client.get_repository("private")), to_dict(client.list_repositories())]
    assert OCI_PASSWORD not in json.dumps(answers)


def test_bad_input_registers_nothing(client: Any, oci_registry: Any, helm: Path,
                                     packaged_charts: dict[str, Path]) -> None:
    oci_registry.push(helm, packaged_charts["etcd-8.11.1"])
    oci_registry.put_artifact("charts/an-image", "1.0.0", config_media_type=IMAGE_CONFIG,
                              layer=b"not a chart", layer_media_type=IMAGE_LAYER)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
        ({"url": "oci://no-such-registry.invalid/charts"}, grpc.StatusCode.UNAVAILABLE,
         "cannot be reached"),
        ({"url": f"oci://127.0.0.1:{closed}/charts"}, grpc.StatusCode.UNAVAILABLE,
         "cannot be reached"),
        ({"charts": ["an-image"]}, grpc.StatusCode.INVALID_ARGUMENT, "is not a Helm chart"),
        ({"charts": ["etcd", "no-such-chart"]}, grpc.StatusCode.NOT_FOUND, "no-such-chart"),
        ({"charts": ["../etc"]}, grpc.StatusCode.INVALID_ARGUMENT, "invalid chart name"),
        ({"url": "oci://user:pw@127.0.0.1/charts"}, grpc.StatusCode.INVALID_ARGUMENT,
         "username/password"),
        ({"url": f"oci://{oci_registry.host}/Charts"}, grpc.StatusCode.INVALID_ARGUMENT,
         "invalid repository path"),
        ({"url": "http://127.0.0.1:1/charts"}, grpc.StatusCode.INVALID_ARGUMENT,
         "OCI registries"),
        ({"ca_pem": "not a certificate"}, grpc.StatusCode.INVALID_ARGUMENT, "ca_pem"),
        ({"ca_pem": "\x1f\U000beda7\u00eb"}, grpc.StatusCode.INVALID_ARGUMENT, "outside ASCII"),
    ]
    for change, code, said in cases:
        request = {"url": oci_registry.url(), "plain_http": True, **change}
        if change.get("url", "").startswith("http:") or "ca_pem" in change:
            request["plain_http"] = "ca_pem" not in change  # OCI options on an HTTP url
        with pytest.raises(CapstanError) as failed:
            client.create_repository("bad", **request)
        assert (failed.value.code, said in failed.value.message) == (code, True), (
            change, failed.value)
        no_repos(client)


def test_version_that_is_not_a_chart(client: Any, oci_registry: Any, helm: Path,
                                     packaged_charts: dict[str, Path],
                                     fake_kubeconfig: str) -> None:
    """A tag of a chart whose manifest is something else: show and install refuse it."""
    oci_registry.push(helm, packaged_charts["etcd-8.11.1"])
    oci_registry.put_artifact("charts/etcd", "9.0.0", config_media_type=IMAGE_CONFIG,
                              layer=b"not a chart", layer_media_type=IMAGE_LAYER)
    client.create_repository("bitnami-new", oci_registry.url(), plain_http=True)
    client.create_cluster("test122", fake_kubeconfig)
    with pytest.raises(InvalidArgument, match="config media type"):
        client.get_chart("bitnami-new/etcd", version="9.0.0")
    with pytest.raises(InvalidArgument, match="is not a Helm chart"):
        client.create_release("bitnami-new/etcd", cluster="test122", namespace="default",
                              release_name="etcd-release", version="9.0.0")
    assert client.list_releases().total == 0
    assert client.get_chart("bitnami-new/etcd", version="8.11.1").chart.version == "8.11.1"


def test_a_layer_that_is_no_chart_is_not_kept(client: Any, capstan_server: ServerHandle,
                                              oci_registry: Any, helm: Path,
                                              packaged_charts: dict[str, Path],
                                              fake_kubeconfig: str) -> None:
    """A chart manifest whose layer is not a chart archive: refused, and nothing of it is kept
    in the archive cache (it is read under the limits before it is written there)."""
    oci_registry.push(helm, packaged_charts["etcd-8.11.1"])
    layer = gzip.compress(b"not a tar archive " * 64)
    oci_registry.put_artifact(
        "charts/etcd", "9.1.0", config_media_type=HELM_CONFIG, layer_media_type=HELM_LAYER,
        layer=layer, config=json.dumps({"apiVersion": "v2", "name": "etcd",
                                        "version": "9.1.0"}).encode())
    client.create_repository("bitnami-new", oci_registry.url(), plain_http=True)
    client.create_cluster("test122", fake_kubeconfig)
    with pytest.raises(CapstanError) as refused:
        client.create_release("bitnami-new/etcd", cluster="test122", namespace="default",
                              release_name="etcd-release", version="9.1.0")
    assert refused.value.code in (grpc.StatusCode.FAILED_PRECONDITION,
                                  grpc.StatusCode.INVALID_ARGUMENT), refused.value
    assert "9.1.0" in refused.value.message
    kept = [p.name for p in capstan_server.data_dir.rglob("*.tgz")]
    assert f"{hashlib.sha256(layer).hexdigest()}.tgz" not in kept
    assert client.list_releases().total == 0


def test_rest_and_cli(capstan_server: ServerHandle, oci_registry_auth: Any, helm: Path,
                      packaged_charts: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                      tmp_path: Path) -> None:
    from gateway.conftest import Rest

    oci_registry_auth.push(helm, packaged_charts["etcd-8.11.1"])
    rest = Rest(capstan_server.http_url)
    answer = rest.post("/api/repos", {
        "name": "bitnamicharts", "url": oci_registry_auth.url(), "type": "external",
        "username": OCI_USER, "password": OCI_PASSWORD, "plain_http": True})
    assert answer.status == 200, answer.text
    assert answer.body["plain_http"] is True and OCI_PASSWORD not in answer.text
    wrong = rest.post("/api/repos", {"name": "other", "url": oci_registry_auth.url(),
                                     "username": OCI_USER, "password": "x", "plain_http": True})
    assert (wrong.status, wrong.body["status"]) == (403, "PERMISSION_DENIED")

    endpoint = capstan_server.grpc_target
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(OCI_PASSWORD + "\n"))
    made = capstan(endpoint, "--output", "json", "k8s-repo-create", "bitnami-new",
                   oci_registry_auth.url(), "--username", OCI_USER, "--password-stdin",
                   "--plain-http", "--chart", "etcd")
    assert made.code == 0, made.stderr
    assert made.json()["charts"] == ["etcd"] and OCI_PASSWORD not in made.stdout
    missing = capstan(endpoint, "k8s-repo-create", "x", oci_registry_auth.url(),
                      "--ca-file", str(tmp_path / "none.pem"))
    assert missing.code == 2 and "--ca-file" in missing.stderr


def test_token_auth_tls_and_no_catalog(client: Any, oci_registry_token: Any,
                                       packaged_charts: dict[str, Path]) -> None:
    """A registry as Docker Hub is: Bearer tokens, no catalog; here over TLS with its own CA."""
    # helm 3.17 speaks plain HTTP to any 127.0.0.1 registry despite --ca-file; helm 4 does not.
    oci_registry_token.push(pinned_helm("helm4"), packaged_charts["etcd-8.11.1"])
    url, ca = oci_registry_token.url(), oci_registry_token.ca_pem
    login = {"username": OCI_USER, "password": OCI_PASSWORD}
    with pytest.raises(CapstanError, match="certificate") as untrusted:
        client.create_repository("hub", url, charts=["etcd"], **login)
    assert untrusted.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(InvalidArgument, match="offers no catalog"):
        client.create_repository("hub", url, ca_pem=ca, **login)
    with pytest.raises(CapstanError, match="refused the credentials") as refused:
        client.create_repository("hub", url, ca_pem=ca, charts=["etcd"],
                                 username=OCI_USER, password="wrong")
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    no_repos(client)

    repo = client.create_repository("hub", url, ca_pem=ca, charts=["etcd"], **login)
    assert (repo.has_ca, repo.plain_http, repo.chart_count) == (True, False, 1)
    shown = client.get_chart("hub/etcd").chart
    assert (shown.version, [v.version for v in shown.versions]) == ("8.11.1", ["8.11.1"])


def test_no_credentials_to_a_plain_http_token_realm(client: Any) -> None:
    """A registry over HTTPS whose challenge names an http:// token realm: refused before
    the credentials are sent anywhere."""
    from oci_registry import registry_available, running_registry

    if not registry_available():
        pytest.skip("docker-registry is not installed")

    with running_registry(username=OCI_USER, password=OCI_PASSWORD, token=True, tls=True,
                          token_tls=False) as registry:
        with pytest.raises(CapstanError, match="not https") as refused:
            client.create_repository("hub", registry.url(), ca_pem=registry.ca_pem,
                                     charts=["etcd"], username=OCI_USER,
                                     password=OCI_PASSWORD)
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    no_repos(client)


def test_catalog_and_tags_come_in_pages(client: Any, oci_registry: Any, helm: Path,
                                        packaged_charts: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from capstan_server.charts import oci

    for chart in ("etcd-8.11.1", "etcd-8.11.2", "never-ready", "hooked"):
        oci_registry.push(helm, packaged_charts[chart])
    monkeypatch.setattr(oci, "_PAGE_SIZE", 1)  # every answer one entry and a Link to the next
    client.create_repository("bitnami-new", oci_registry.url(), plain_http=True)
    listed = client.list_charts(repo="bitnami-new", all_version=True).charts
    assert [(c.name, c.version) for c in listed] == [
        ("etcd", "8.11.2"), ("etcd", "8.11.1"), ("hooked", "0.1.0"), ("never-ready", "0.1.0")]
