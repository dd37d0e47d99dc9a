"""The dev chart repository packages the sample charts and serves them like a real repository."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoError, ChartRepoServer

pytestmark = pytest.mark.helm

TOOLS_BIN = Path(__file__).resolve().parents[1] / ".tools" / "bin"
HELM = TOOLS_BIN / "helm"


def require_tool(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing; run `make setup` (scripts/install_tools.py)")
    return path


EXPECTED = {
    "etcd": {"8.11.1", "8.11.2"},
    "hooked": {"0.1.0"},
    "crd-demo": {"0.1.0"},
    "never-ready": {"0.1.0"},
    "guarded": {"1.0.0"},
    "deep-crd": {"1.0.0"},
    "big-manifest": {"1.0.0"},
    "webhooks": {"1.0.0"},
}


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _index(server: ChartRepoServer) -> dict[str, Any]:
    status, _, body = _get(server.index_url)
    assert status == 200
    index: dict[str, Any] = yaml.safe_load(body)
    return index


def _helm_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    return env


def test_index_lists_every_sample_chart(chart_repo: ChartRepoServer) -> None:
    entries = _index(chart_repo)["entries"]
    found = {name: {v["version"] for v in versions} for name, versions in entries.items()}
    assert found == EXPECTED
    etcd = {v["version"]: v for v in entries["etcd"]}
    assert etcd["8.11.1"]["appVersion"] == "3.5.8"
    assert etcd["8.11.1"]["urls"] == [f"{chart_repo.url}/etcd-8.11.1.tgz"]
    assert chart_repo.url.startswith("http://127.0.0.1:")
    assert chart_repo.archives == sorted(
        f"{name}-{version}.tgz" for name, versions in EXPECTED.items() for version in versions)


def test_archives_download_as_gzipped_charts(chart_repo: ChartRepoServer) -> None:
    for versions in _index(chart_repo)["entries"].values():
        for entry in versions:
            status, headers, body = _get(entry["urls"][0])
            assert status == 200
            assert headers["Content-Type"] == "application/gzip"
            assert "Content-Encoding" not in headers  # clients must get the .tgz untouched
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                member = tar.extractfile(f"{entry['name']}/Chart.yaml")
                assert member is not None
                chart = yaml.safe_load(member.read())
            assert (chart["name"], chart["version"]) == (entry["name"], entry["version"])


def test_unknown_paths_are_404(chart_repo: ChartRepoServer) -> None:
    for path in ("/nope-1.0.0.tgz", "/..%2Fetc%2Fpasswd", "/Chart.yaml.txt", "/.hidden.yaml"):
        assert _get(chart_repo.url + path)[0] == 404


@pytest.mark.parametrize("helm_name", ["helm3", "helm4"])
def test_helm_pulls_from_the_repository(
    chart_repo: ChartRepoServer, helm_name: str, tmp_path: Path
) -> None:
    helm = require_tool(TOOLS_BIN / helm_name)
    proc = subprocess.run(
        [str(helm), "show", "chart", "etcd", "--repo", chart_repo.url, "--version", "8.11.2"],
        capture_output=True, text=True, env=_helm_env(tmp_path), timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["appVersion"] == "3.5.9"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _helm_async(*args: str, env: dict[str, str]) -> tuple[int, str]:
    # The server shares this event loop, so helm must not be run with a blocking call.
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def test_basic_auth(tmp_path: Path) -> None:
    helm = require_tool(HELM)
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, helm, username="capstan", password="s3cret")
    async with server, aiohttp.ClientSession() as session:
        assert server.credentials == ("capstan", "s3cret")
        async with session.get(server.index_url) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with session.get(server.index_url, headers=_basic("capstan", "wrong")) as resp:
            assert resp.status == 401
        async with session.get(server.index_url, headers=_basic("intruder", "s3cret")) as resp:
            assert resp.status == 401
        good = _basic("capstan", "s3cret")
        async with session.get(server.index_url, headers=good) as resp:
            assert resp.status == 200
            index = yaml.safe_load(await resp.read())
        async with session.get(index["entries"]["hooked"][0]["urls"][0], headers=good) as resp:
            assert resp.status == 200
            assert (await resp.read())[:2] == b"\x1f\x8b"

        # helm itself passes repository credentials.
        base = [str(helm), "show", "chart", "hooked", "--repo", server.url, "--username", "capstan"]
        env = _helm_env(tmp_path)
        code, stderr = await _helm_async(*base, "--password", "nope", env=env)
        assert code != 0 and "401" in stderr
        code, stderr = await _helm_async(*base, "--password", "s3cret", env=env)
        assert code == 0, stderr
    with pytest.raises(ChartRepoError, match="not started"):
        _ = server.url


def test_serve_in_thread_stops_and_cleans_up() -> None:
    helm = require_tool(HELM)
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, helm)
    with server.serve_in_thread() as running:
        out = running.out_dir
        url = running.index_url
        assert _get(url)[0] == 200
        assert (out / "index.yaml").is_file()
    assert not out.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


async def test_helm_failure_is_a_clear_error(tmp_path: Path) -> None:
    helm = require_tool(HELM)
    broken = tmp_path / "charts" / "broken"
    broken.mkdir(parents=True)
    (broken / "Chart.yaml").write_text("apiVersion: v2\nname: broken\n")  # no version
    server = ChartRepoServer(tmp_path / "charts", helm)
    with pytest.raises(ChartRepoError, match="helm package"):
        await server.start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChartRepoError, match="no charts"):
        await ChartRepoServer(tmp_path / "empty", helm).start()
    with pytest.raises(ChartRepoError, match="does not exist"):
        await ChartRepoServer(tmp_path / "missing", helm).start()


def test_credentials_come_in_pairs() -> None:
    with pytest.raises(ValueError, match="together"):
        ChartRepoServer(SAMPLE_CHARTS_DIR, HELM, username="only")


def _etcd_versions(server: ChartRepoServer) -> list[str]:
    return sorted(v["version"] for v in _index(server)["entries"]["etcd"])


def test_a_subset_of_the_charts_then_publish_from_sync_code() -> None:
    helm = require_tool(HELM)
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=["etcd-8.11.1"])
    with pytest.raises(ChartRepoError, match="serve_in_thread"):
        server.publish_now("etcd-8.11.2")
    with server.serve_in_thread() as running:
        assert list(_index(running)["entries"]) == ["etcd"]
        assert _etcd_versions(running) == ["8.11.1"]
        assert running.archives == ["etcd-8.11.1.tgz"]
        assert running.charts == ["etcd-8.11.1"]
        assert _get(f"{running.url}/etcd-8.11.2.tgz")[0] == 404

        running.publish_now("etcd-8.11.2")
        assert _etcd_versions(running) == ["8.11.1", "8.11.2"]
        entry = next(v for v in _index(running)["entries"]["etcd"] if v["version"] == "8.11.2")
        assert entry["urls"] == [f"{running.url}/etcd-8.11.2.tgz"]
        status, _, body = _get(entry["urls"][0])
        assert status == 200 and body[:2] == b"\x1f\x8b"
        assert running.archives == ["etcd-8.11.1.tgz", "etcd-8.11.2.tgz"]
        assert running.charts == ["etcd-8.11.1", "etcd-8.11.2"]

        running.publish_now("etcd-8.11.2")  # again: re-packaged, nothing else changes
        assert running.charts == ["etcd-8.11.1", "etcd-8.11.2"]
        for bad in ("nope", "../charts/etcd-8.11.2", "etcd"):
            with pytest.raises(ChartRepoError, match="no chart directory"):
                running.publish_now(bad)
        assert _etcd_versions(running) == ["8.11.1", "8.11.2"]


async def test_publish_from_async_code(tmp_path: Path) -> None:
    helm = require_tool(HELM)
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=["hooked"], out_dir=tmp_path)
    with pytest.raises(ChartRepoError, match="not started"):
        await server.publish("crd-demo")
    async with server, aiohttp.ClientSession() as session:
        await server.publish("crd-demo")
        async with session.get(server.index_url) as resp:
            index = yaml.safe_load(await resp.read())
        assert sorted(index["entries"]) == ["crd-demo", "hooked"]
        with pytest.raises(ChartRepoError, match="publish_now"):
            server.publish_now("etcd-8.11.1")  # not served from a thread: await publish()

    # A server served from a thread, published to from another loop (this test's).
    threaded = ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=["etcd-8.11.1"])
    with threaded.serve_in_thread() as running:
        await running.publish("etcd-8.11.2")
        async with aiohttp.ClientSession() as session, session.get(running.index_url) as resp:
            versions = {v["version"] for v in yaml.safe_load(await resp.read())["entries"]["etcd"]}
        assert versions == {"8.11.1", "8.11.2"}


async def test_a_reused_out_dir_serves_only_the_charts_given(tmp_path: Path) -> None:
    helm = require_tool(HELM)
    async with ChartRepoServer(SAMPLE_CHARTS_DIR, helm, out_dir=tmp_path) as everything:
        assert len(everything.archives) == 9
    async with ChartRepoServer(SAMPLE_CHARTS_DIR, helm, out_dir=tmp_path,
                               charts=["etcd-8.11.1"]) as subset:
        assert subset.archives == ["etcd-8.11.1.tgz"]


async def test_unknown_charts_are_refused() -> None:
    helm = require_tool(HELM)
    with pytest.raises(ChartRepoError, match=r"no chart directory 'etcd-9\.9\.9'"):
        await ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=["etcd-9.9.9"]).start()
    with pytest.raises(ChartRepoError, match="no charts to serve"):
        await ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts=[]).start()
    with pytest.raises(TypeError, match="sequence"):
        ChartRepoServer(SAMPLE_CHARTS_DIR, helm, charts="etcd-8.11.1")
