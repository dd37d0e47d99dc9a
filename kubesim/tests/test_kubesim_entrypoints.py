"""The ``kubesim`` command and the asyncio embedding."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import yaml

from kubesim.testing import kubesim_async


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "kubesim did not write its kubeconfig"
        time.sleep(0.05)


def test_cli_tls_kubeconfig_and_state(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    state = tmp_path / "state.json"
    cmd = [sys.executable, "-m", "kubesim.cli", "--listen", "127.0.0.1:0", "--tls",
           "--kubeconfig-out", str(kubeconfig), "--state", str(state), "--no-controllers"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(kubeconfig, proc)
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        token = config["users"][0]["user"]["token"]
        import base64

        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        req = urllib.request.Request(
            cluster["server"] + "/api/v1/namespaces",
            data=json.dumps({"metadata": {"name": "saved"}}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:
            assert resp.status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "kubesim serving https://127.0.0.1:" in out
    names = [o["object"]["metadata"]["name"] for o in json.loads(state.read_text())["objects"]]
    assert "saved" in names


async def test_async_embedding_restarts_on_same_port() -> None:
    async with kubesim_async(controllers=False) as sim:
        headers = {"Authorization": f"Bearer {sim.token}"}
        sim.store.create("configmaps", {"metadata": {"name": "kept"}})
        url = sim.url
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(f"{url}/api/v1/namespaces/default/configmaps/kept") as resp:
                assert resp.status == 200
            await sim.stop()
            await sim.start()
            assert sim.url == url
            async with http.get(f"{url}/api/v1/namespaces/default/configmaps/kept") as resp:
                assert resp.status == 200
        assert yaml.safe_load(sim.kubeconfig)["clusters"][0]["cluster"]["server"] == url
        assert sim.kubeconfig_path.exists()
