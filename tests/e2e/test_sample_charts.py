"""The sample charts of popular-chart patterns (issue 9), end to end on the real helm 3.17.2 and
4.1.4 against kubesim, through a Capstan server on the `helm` driver, over REST and the CLI:

create -> show -> upgrade values -> upgrade version -> history -> rollback -> delete of each of
`guarded` (Bitnami's password guard, a library chart in `charts/`, `lookup` of its Secret),
`deep-crd` (a CRD nested deeper than protobuf's 100 levels, a YAML 1.1 `- =` enum value),
`big-manifest` (a manifest over 4 MiB), `crd-demo` (a `crds/` directory) and `webhooks`
(webhook configurations, an APIService, RBAC names with `:`), with show's resources complete
(every object of the manifest, none missing, none unparsed) and every integer an integer.
Then the points that need a particular chart: the guard's refused upgrade, Secret redaction,
the whole live object of a deep CRD, and a small answer for a huge release.

Each chart is served at two versions (the sample as it is, and a copy one patch version up).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capstan.cli.main import run as capstan_cli
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer
from capstan_server.threaded import ServerHandle, start_server
from kubesim.testing import KubeSimThread, running_kubesim

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
#: The password the `guarded` release is given: it may appear in `config` and nowhere else.
KNOWN = "Capstan-Known-Value-7f3a"
_KNOWN_FORMS = (KNOWN, base64.b64encode(KNOWN.encode()).decode())

#: chart -> (first version, values at install, values of the values upgrade, resources shown:
#: kind key -> number of objects)
CHARTS: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]] = {
    "guarded": ("1.0.0", {"auth": {"password": KNOWN}},
                {"auth": {"password": KNOWN}, "replicaCount": 2},
                {"secret": 1, "deployment": 1, "k8s_service": 1}),
    "deep-crd": ("1.0.0", {}, {"settings": {"level": 2}},
                 {"customresourcedefinition": 1, "configmap": 1}),
    "big-manifest": ("1.0.0", {}, {"sizeKiB": 901}, {"configmap": 5}),
    "crd-demo": ("0.1.0", {}, {"widget": {"size": 5}}, {"widget": 1}),
    "webhooks": ("1.0.0", {}, {"replicaCount": 2},
                 {"serviceaccount": 1, "clusterrole": 1, "clusterrolebinding": 1, "role": 1,
                  "rolebinding": 1, "validatingwebhookconfiguration": 1,
                  "mutatingwebhookconfiguration": 1, "apiservice": 1, "deployment": 1,
                  "k8s_service": 1}),
}


def next_version(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubesim() -> Iterator[KubeSimThread]:
    with running_kubesim(tls=True) as sim:
        yield sim


@pytest.fixture(scope="module")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepoServer]:
    """The sample charts of CHARTS at their version and one patch version up."""
    charts = tmp_path_factory.mktemp("sample-charts")
    for name, (version, *_) in CHARTS.items():
        shutil.copytree(SAMPLE_CHARTS_DIR / name, charts / name)
        bumped = charts / f"{name}-next"
        shutil.copytree(SAMPLE_CHARTS_DIR / name, bumped)
        meta = bumped / "Chart.yaml"
        meta.write_text(meta.read_text().replace(f"version: {version}",
                                                 f"version: {next_version(version)}", 1))
    out = tmp_path_factory.mktemp("sample-repo")
    with ChartRepoServer(charts, TOOLS_BIN / "helm3", out_dir=out).serve_in_thread() as repo:
        yield repo


@pytest.fixture(scope="module", params=["helm3", "helm4"])
def server(request: pytest.FixtureRequest, kubesim: KubeSimThread, sample_repo: ChartRepoServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    helm = TOOLS_BIN / str(request.param)
    if not os.access(helm, os.X_OK):
        pytest.skip(f"{helm} is not installed; run `make setup`")
    handle = start_server(driver="helm", helm_bin=helm, grace=5.0, allow_repo_hosts=("127.0.0.1",),
                          data_dir=tmp_path_factory.mktemp(f"capstan-{request.param}"))
    try:
        rest = Rest(handle.http_url)
        assert rest.call("POST", "/api/clusters", {"name": "sim",
                                                   "kubeconfig": kubesim.kubeconfig})[0] == 200
        assert rest.call("POST", "/api/repos", {"name": "samples",
                                                "url": sample_repo.url})[0] == 200
        yield handle
    finally:
        handle.stop()


class Rest:
    """Plain HTTP: (status, parsed JSON, raw text)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode()
        try:
            return status, json.loads(text), text
        except ValueError:
            return status, None, text


def helm_major(server: ServerHandle) -> str:
    """`helm3` or `helm4`: the data dir of the `server` fixture is named after it."""
    return Path(str(server.data_dir)).name.removeprefix("capstan-")[:5]


def cli(server: ServerHandle, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = capstan_cli(["--endpoint", server.grpc_target, "--output", "json", *argv],
                       stdout=out, stderr=err, env={})
    assert code == 0, f"capstan {' '.join(argv)}: {err.getvalue()}"
    return out.getvalue()


def integral_floats(text: str) -> list[str]:
    """Numbers of a JSON (or NDJSON) text written as floats although they are whole (`2.0`)."""
    found: list[str] = []

    def check(number: str) -> float:
        if float(number).is_integer() and "e" not in number.lower():
            found.append(number)
        return float(number)
    try:
        json.loads(text, parse_float=check)
    except ValueError:
        for line in text.splitlines():
            if line.strip():
                json.loads(line, parse_float=check)
    return found


def assert_complete(release: dict[str, Any], expected: dict[str, int]) -> None:
    """show's resources hold every object of the manifest, each present and parsed."""
    resources = release["resources"]
    assert {key: len(items) for key, items in resources.items()} == expected
    for items in resources.values():
        for item in items:
            assert (item["missing"], item["error"]) == (False, ""), item
            assert item["uid"] and item["created_at"], item


# -- the lifecycle of every sample chart ------------------------------------------------------


def test_sample_charts_lifecycle(server: ServerHandle, kubesim: KubeSimThread,
                                 tmp_path: Path) -> None:
    rest = Rest(server.http_url)
    major = helm_major(server)
    namespace = f"samples-{major}"
    kubesim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": namespace}})
    where = f"cluster=sim&namespace={namespace}"
    for chart, (version, install, upgrade, expected) in CHARTS.items():
        name = f"{chart}-{major}"[:53]

        status, created, text = create(rest, chart, name, namespace, version=version,
                                       values_json=install)
        assert status == 200, text
        assert (created["status"], created["version"]) == ("deployed", 1)

        status, shown, text = rest.call("GET", f"/api/releases/{name}?{where}")
        assert status == 200, text
        assert_complete(shown, expected)
        assert integral_floats(text) == []
        assert shown["config"] == install

        out = cli(server, "k8s-release-show", name, "--cluster", "sim", "--namespace", namespace)
        assert integral_floats(out) == []
        assert_complete(json.loads(out), expected)

        values = tmp_path / f"{chart}.yaml"
        values.write_text(json.dumps(upgrade))
        upgraded = json.loads(cli(server, "k8s-release-upgrade", name, f"samples/{chart}",
                                  "--version", version, "--values", str(values),
                                  "--cluster", "sim", "--namespace", namespace))
        assert (upgraded["version"], upgraded["config"]) == (2, upgrade)

        status, bumped, text = rest.call("PUT", f"/api/releases/{name}?{where}", {
            "chart_name": f"samples/{chart}", "version": next_version(version),
            "reuse_values": True})
        assert status == 200, text
        assert (bumped["version"], bumped["chart_version"]) == (3, next_version(version))
        assert integral_floats(text) == []

        history = json.loads(cli(server, "k8s-release-history", name, "--cluster", "sim",
                                 "--namespace", namespace))
        assert [(h["revision"], h["chart"]) for h in history] == [
            (1, f"{chart}-{version}"), (2, f"{chart}-{version}"),
            (3, f"{chart}-{next_version(version)}")]

        status, rolled, text = rest.call("POST", f"/api/releases/{name}/rollback?{where}",
                                         {"revision": 1})
        assert status == 200, text
        assert (rolled["version"], rolled["chart_version"], rolled["config"]) == (
            4, version, install)
        status, shown, text = rest.call("GET", f"/api/releases/{name}?{where}")
        assert_complete(shown, expected)

        deleted = json.loads(cli(server, "k8s-release-delete", name, "--cluster", "sim",
                                 "--namespace", namespace))
        assert deleted["release"]["name"] == name
        assert rest.call("GET", f"/api/releases/{name}?{where}")[0] == 404


# -- what needs a particular chart ------------------------------------------------------------


@pytest.fixture
def namespace(kubesim: KubeSimThread, request: pytest.FixtureRequest, server: ServerHandle
              ) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{request.node.name}"[:40].lower()).strip("-")
    name = f"{name}-{helm_major(server)}"
    kubesim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": name}})
    return name


def create(rest: Rest, chart: str, name: str, namespace: str, **body: Any
           ) -> tuple[int, Any, str]:
    """POST /api/releases of `samples/<chart>` as `name` into `namespace` of cluster `sim`."""
    return rest.call("POST", "/api/releases", {
        "chart_name": f"samples/{chart}", "cluster": "sim", "namespace": namespace,
        "release_name": name, **body})


def test_the_guard_refuses_an_upgrade_with_helms_whole_message(server: ServerHandle,
                                                               namespace: str) -> None:
    rest = Rest(server.http_url)
    where = f"cluster=sim&namespace={namespace}"
    assert create(rest, "guarded", "guarded", namespace)[0] == 200
    _, before, _ = rest.call("GET", f"/api/releases/guarded?{where}")

    status, error, text = rest.call("PUT", f"/api/releases/guarded?{where}", {
        "chart_name": "samples/guarded", "values_json": {"replicaCount": 2}})
    assert status == 400, text
    assert error["status"] == "INVALID_ARGUMENT"
    for line in ("execution error at (guarded/templates/NOTES.txt",
                 "PASSWORDS ERROR: You must provide your current passwords when upgrading",
                 "'auth.password' must not be empty, please add '--set auth.password=$PASSWORD'",
                 f"kubectl get secret --namespace {namespace} guarded-guarded"):
        assert line in error["message"]

    _, after, _ = rest.call("GET", f"/api/releases/guarded?{where}")
    assert (after["version"], after["status"], after["config"]) == (1, "deployed", {})
    assert after["resources"] == before["resources"]
    history = rest.call("GET", f"/api/releases/guarded/history?{where}")[1]
    assert [h["revision"] for h in history] == [1]


def test_secret_values_appear_in_no_answer_and_no_log(
        server: ServerHandle, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rest = Rest(server.http_url)
    where = f"cluster=sim&namespace={namespace}"
    answers: list[str] = []
    # The chart prints the password in its notes too, as some charts do.
    config = {"auth": {"password": KNOWN, "showPassword": True}}

    status, dry, text = create(rest, "guarded", "secretive", namespace, values_json=config,
                               dry_run=True)
    assert status == 200 and "kind: Secret" in dry["manifest"], text
    answers.append(text)
    status, created, text = create(rest, "guarded", "secretive", namespace, values_json=config,
                                   details=True)
    assert status == 200, text
    answers.append(text)
    answers.append(rest.call("GET", f"/api/releases/secretive?{where}")[2])
    status, full, text = rest.call("GET", f"/api/releases/secretive?{where}&objects=true")
    answers.append(text)
    answers.append(rest.call("GET", f"/api/releases?{where}&details=true")[2])
    answers.append(rest.call("GET", f"/api/releases/secretive/watch?{where}&timeout=5")[2])
    status, _, text = rest.call("PUT", f"/api/releases/secretive?{where}", {
        "chart_name": "samples/guarded", "values_json": config, "dry_run": True})
    assert status == 200, text
    answers.append(text)
    answers.append(cli(server, "k8s-release-show", "secretive", "--cluster", "sim",
                       "--namespace", namespace, "--objects"))

    (secret,) = full["resources"]["secret"]
    assert secret["secret_data"] == {"password": len(KNOWN), "username": 5}
    assert secret["object"]["data"] == {"password": f"<redacted: {len(KNOWN)} bytes>",
                                        "username": "<redacted: 5 bytes>"}
    assert "<redacted: " in created["manifest"]
    assert "Admin password: <redacted>" in created["notes"]
    for answer in answers:
        try:
            documents = [json.loads(answer)]
        except ValueError:  # NDJSON (watch)
            documents = [json.loads(line) for line in answer.splitlines() if line.strip()]
        without_config = json.dumps(_drop_config(documents))
        for form in _KNOWN_FORMS:
            assert form not in without_config
    # The server's own lines (one per RPC, helm runs) were captured: the check is not vacuous.
    assert any(r.name.startswith("capstan") for r in caplog.records)
    for record in caplog.records:
        for form in _KNOWN_FORMS:
            assert form not in record.getMessage() and form not in str(record.__dict__)


def _drop_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_config(v) for k, v in value.items() if k != "config"}
    if isinstance(value, list):
        return [_drop_config(v) for v in value]
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_a_crd_deeper_than_protobuf_allows_is_shown_whole(server: ServerHandle,
                                                           namespace: str) -> None:
    rest = Rest(server.http_url)
    where = f"cluster=sim&namespace={namespace}"
    assert create(rest, "deep-crd", "deep", namespace)[0] == 200
    status, shown, text = rest.call("GET", f"/api/releases/deep?{where}&objects=true")
    assert status == 200, text
    (crd,) = shown["resources"]["customresourcedefinition"]
    assert crd["name"] == "deepthings.deep.capstan.io" and crd["error"] == ""
    assert _depth(crd["object"]) > 120
    schema = crd["object"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    enum = schema["properties"]["spec"]["properties"]["selector"]["properties"]["operator"]
    assert enum["enum"] == ["=", "!=", "=~", "!~"]
    out = cli(server, "k8s-release-show", "deep", "--cluster", "sim", "--namespace", namespace,
              "--objects")
    assert _depth(json.loads(out)["resources"]["customresourcedefinition"][0]["object"]) > 120
    # The CRD is cluster-scoped: leave it to the next helm major's run.
    assert rest.call("DELETE", f"/api/releases/deep?{where}")[0] == 200


def test_a_release_over_4_mib_is_answered_small(server: ServerHandle, namespace: str) -> None:
    out = cli(server, "k8s-release-create", "samples/big-manifest", "--name", "big",
              "--cluster", "sim", "--namespace", namespace, "--details")
    created = json.loads(out)
    assert (created["status"], created["manifest_truncated"]) == ("deployed", True)
    assert len(out) < 2 * 1024 * 1024
    assert len(created["resources"]["configmap"]) == 5
    shown = json.loads(cli(server, "k8s-release-show", "big", "--cluster", "sim",
                           "--namespace", namespace))
    assert len(shown["resources"]["configmap"]) == 5
