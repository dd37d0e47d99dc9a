"""Shared pytest fixtures for Capstan's tests. Keep each fixture small and documented."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer
from capstan_server.drivers.base import Driver
from capstan_server.threaded import ServerHandle, start_server

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
#: The default helm (3.17.2); `helm3` and `helm4` sit next to it.
HELM = TOOLS_BIN / "helm"


def require_tool(path: Path) -> Path:
    """Return ``path``, or skip the test when the pinned binary is not installed."""
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO_ROOT)} is missing; run `make setup` "
                    "(python3 scripts/install_tools.py --dest .tools)")
    return path


# -- chart repository -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepoServer]:
    """A chart repository of `samples/charts` over HTTP (no auth) for the whole session.

    Holds every sample chart (etcd 8.11.1 and 8.11.2, hooked, crd-demo, never-ready, guarded,
    deep-crd, big-manifest, webhooks); use ``chart_repo.url`` as
    the repository URL (``helm ... --repo URL`` or a registered Capstan repo).
    """
    helm = require_tool(HELM)
    out = tmp_path_factory.mktemp("chart-repo")
    with ChartRepoServer(SAMPLE_CHARTS_DIR, helm, out_dir=out).serve_in_thread() as server:
        yield server


@pytest.fixture
def seed_repo() -> Iterator[ChartRepoServer]:
    """The seed's `bitnami-new` repository as it was when the seed was written: a fresh chart
    repository (for this test only) that holds only etcd 8.11.1.

    Publish etcd 8.11.2 to it when the scenario gets there: ``seed_repo.publish_now(
    "etcd-8.11.2")`` in a sync test, ``await seed_repo.publish("etcd-8.11.2")`` in an async
    one; then sync the repository (`k8s-repo-sync bitnami-new`) so Capstan sees the new index.
    """
    helm = require_tool(HELM)
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=["etcd-8.11.1"])
    with server.serve_in_thread() as running:
        yield running


# -- Capstan server -------------------------------------------------------------------------


@pytest.fixture
def capstan_server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Start Capstan servers: ``capstan_server_factory(driver="memory", **start_server_kwargs)``.

    Each server gets free ports on 127.0.0.1 and its own data dir under ``tmp_path`` (unless
    ``data_dir=`` is given), and may fetch chart repositories on 127.0.0.1 (unless
    ``allow_repo_hosts=`` says otherwise); all of them stop when the test ends. See
    `capstan_server.threaded.start_server` for the keyword arguments (``interceptors``,
    ``grace``...).
    """
    handles: list[ServerHandle] = []

    def start(driver: str | Driver = "memory", **kwargs: Any) -> ServerHandle:
        kwargs.setdefault("data_dir", tmp_path / f"capstan-data-{len(handles)}")
        # Tests finish their calls before teardown; a long grace would only hide a hang.
        kwargs.setdefault("grace", 5.0)
        # The test chart repositories are served on 127.0.0.1, which the address policy refuses
        # unless allowed (tests of the policy itself pass allow_repo_hosts=()).
        kwargs.setdefault("allow_repo_hosts", ("127.0.0.1",))
        handle = start_server(driver=driver, **kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in reversed(handles):
        handle.stop()


@pytest.fixture
def capstan_server(capstan_server_factory: Callable[..., ServerHandle]) -> ServerHandle:
    """A running Capstan server on the memory driver, with a tmp data dir and free ports.

    ``.grpc_target`` is "127.0.0.1:PORT", ``.http_url`` "http://127.0.0.1:PORT", ``.data_dir``
    the data dir. It runs on a thread of its own, so sync tests, async tests and CLI tests can
    all use it; it stops by itself at the end of the test.
    """
    return capstan_server_factory()


#: A kubeconfig that parses; the memory driver never dials it.
FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test122
  cluster: {server: "https://test122.invalid:6443"}
users:
- name: admin
  user: {token: not-a-secret}
contexts:
- name: test122
  context: {cluster: test122, user: admin, namespace: default}
current-context: test122
"""


@pytest.fixture
def fake_kubeconfig() -> str:
    """A kubeconfig for a cluster `test122` that parses; for the memory driver, which never
    dials it (register it with ``POST /api/clusters`` or ``CreateCluster``)."""
    return FAKE_KUBECONFIG


# -- OCI registry ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def packaged_charts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`helm package` of every sample chart, once: ``{"etcd-8.11.1": Path(".../etcd-8.11.1.tgz"),
    ...}`` (keys are the directory names under `samples/charts`), for `helm push`."""
    import subprocess

    helm = require_tool(HELM)
    out = tmp_path_factory.mktemp("packaged-charts")
    home = tmp_path_factory.mktemp("packaged-charts-helm")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CACHE_HOME": f"{home}/cache",
           "HELM_CONFIG_HOME": f"{home}/config", "HELM_DATA_HOME": f"{home}/data"}
    packaged = {}
    for chart in sorted(SAMPLE_CHARTS_DIR.iterdir()):
        if (chart / "Chart.yaml").is_file():
            before = set(out.iterdir())
            subprocess.run([str(helm), "package", str(chart), "--destination", str(out)],
                           env=env, check=True, capture_output=True, timeout=120)
            (archive,) = set(out.iterdir()) - before
            packaged[chart.name] = archive
    return packaged


def _registry(**options: Any) -> Iterator[Any]:
    from oci_registry import registry_available, running_registry

    if not registry_available():
        pytest.skip("docker-registry / htpasswd are not installed; run `make setup` as root "
                    "(apt-get install docker-registry apache2-utils)")
    with running_registry(**options) as registry:
        yield registry


@pytest.fixture
def oci_registry() -> Iterator[Any]:
    """A real OCI registry (`oci_registry.OciRegistry`: Debian's docker-registry) on a free
    loopback port, plain HTTP, no auth, empty; ``.push(helm, archive)`` puts a chart under
    ``.url()`` (``oci://127.0.0.1:PORT/charts``). Skips when the registry is not installed."""
    yield from _registry()


@pytest.fixture
def oci_registry_auth() -> Iterator[Any]:
    """`oci_registry` behind htpasswd basic auth (`oci_registry.OCI_USER` / `OCI_PASSWORD`)."""
    from oci_registry import OCI_PASSWORD, OCI_USER

    yield from _registry(username=OCI_USER, password=OCI_PASSWORD)


@pytest.fixture
def oci_registry_token() -> Iterator[Any]:
    """`oci_registry` as public registries are: HTTPS with a certificate of a test CA
    (``.ca_pem``), Bearer tokens from a token service (`registry_token.py`) that knows
    `OCI_USER` / `OCI_PASSWORD` and, like Docker Hub, never grants the catalog."""
    from oci_registry import OCI_PASSWORD, OCI_USER

    yield from _registry(username=OCI_USER, password=OCI_PASSWORD, token=True, tls=True)
