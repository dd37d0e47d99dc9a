"""Issue 11, acceptance 4: kill -9 of `capstan-server --dev` after installing releases, then a
restart on the same data dir: every release is still there (kubesim persists every write
before answering it)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from capstan_server.auth.setup import DEV_TOKEN_FILE

SERVER_SCRIPT = Path(sys.executable).with_name("capstan-server")
HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm"

pytestmark = pytest.mark.helm


class Server:
    """`capstan-server --dev` as a process, its JSON log lines read on a thread."""

    def __init__(self, data_dir: Path) -> None:
        args = [str(SERVER_SCRIPT), "--dev", "--data-dir", str(data_dir), "--helm-bin",
                str(HELM), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--log-format", "json"]
        self.data_dir = data_dir
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.http = str(self._wait_for("serving")["http"])

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                self.lines.put({"msg": raw.rstrip()})

    def _wait_for(self, msg: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, f"the server exited; saw {seen}"
                continue
            seen.append(line)
            if line.get("msg") == msg:
                return line
        pytest.fail(f"no {msg!r} log line; saw {seen}")

    def _auth(self) -> dict[str, str]:
        # --dev serves with authentication on: its admin token is in the data dir.
        token = (self.data_dir / DEV_TOKEN_FILE).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.http + path, headers=self._auth())
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.http + path, data=json.dumps(body).encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **self._auth()})
        with urllib.request.urlopen(request, timeout=180) as response:
            return json.loads(response.read())

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no shutdown hook runs, kubesim (a thread) dies with it
        self.proc.wait(30)


def test_kill_9_of_dev_server_keeps_every_release(tmp_path: Path) -> None:
    if not HELM.exists():
        pytest.skip(".tools/bin/helm is missing; run `make setup`")
    data_dir = tmp_path / "data"
    first = Server(data_dir)
    try:
        created = {}
        for name in ("kept-one", "kept-two"):
            release = first.post("/api/releases", {
                "chart_name": "samples/etcd", "cluster": "default", "namespace": "default",
                "release_name": name})
            assert release["status"] == "deployed"
            created[name] = release["id"]
        first.post("/api/releases", {"chart_name": "samples/etcd", "cluster": "default",
                                     "namespace": "other", "release_name": "kept-three",
                                     "create_namespace": True})
    finally:
        first.kill9()

    second = Server(data_dir)
    try:
        names = {r["name"] for r in second.get("/api/releases?limit=100")["releases"]}
        assert {"kept-one", "kept-two", "kept-three"} <= names
        for name, release_id in created.items():
            shown = second.get(f"/api/releases/{name}")
            assert (shown["id"], shown["status"]) == (release_id, "deployed")
    finally:
        second.kill9()
