"""`capstan-server` as a process: it starts, says SERVING, and on SIGTERM shuts down gracefully
(health NOT_SERVING, calls in flight finish, exit status 0)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from capstan_server.dev.chart_repo import ChartRepoServer

SERVER_SCRIPT = Path(sys.executable).with_name("capstan-server")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FREE_PORTS = ["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]

#: `serve()` (what the script runs) with a memory driver whose installs take DELAY seconds.
SLOW_SERVER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from capstan_server.app import ServerOptions, serve
    from capstan_server.charts.limits import RepoLimits
    from capstan_server.drivers.memory import MemoryDriver
    from capstan_server.logs import configure_logging

    async def slow_installs(operation):
        if operation.name == "install":
            await asyncio.sleep(float(sys.argv[2]))

    configure_logging("INFO", "json")
    asyncio.run(serve(ServerOptions(
        data_dir=Path(sys.argv[1]), grpc_listen="127.0.0.1:0", http_listen="127.0.0.1:0",
        driver=MemoryDriver(hook=slow_installs), grace=float(sys.argv[3]),
        repo_limits=RepoLimits(allowed_hosts=frozenset({"127.0.0.1"})))))
""")


@dataclass
class ServerProcess:
    """A server process and its JSON log lines (read on a thread so the pipe never fills)."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    #: Set once stderr is closed (the process has exited) and every line is queued.
    drained: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                self.lines.put(json.loads(raw))
            except json.JSONDecodeError:
                self.lines.put({"msg": raw.rstrip()})
        self.drained.set()

    def wait_for(self, msg: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.drained.is_set() and self.lines.empty():
                    pytest.fail(f"the server exited without a {msg!r} log line; saw {self.seen}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no {msg!r} log line; saw {self.seen}")
                continue
            self.seen.append(line)
            if line.get("msg") == msg:
                return line


@pytest.fixture
def spawn() -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(args: list[str]) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        server = ServerProcess(proc)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.wait(10)
        server.drained.wait(10)
        if server.proc.stderr is not None:
            server.proc.stderr.close()


def test_sigterm_turns_health_not_serving_and_exits_0_promptly(spawn: Any, tmp_path: Path) -> None:
    server = spawn([str(SERVER_SCRIPT), "--driver", "memory", *FREE_PORTS,
                    "--data-dir", str(tmp_path), "--log-format", "json"])
    serving = server.wait_for("serving")
    with grpc.insecure_channel(serving["grpc"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == SERVING

        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        with pytest.raises(grpc.RpcError) as ended:
            next(watch)
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert server.proc.wait(15) == 0
    # Nothing was in flight (the health watch was ended), so no grace period was waited out.
    assert time.monotonic() - started < 5
    server.wait_for("stopped", timeout=5)


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sigterm_lets_a_call_in_flight_finish(
    spawn: Any, tmp_path: Path, chart_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    delay, grace = 2.0, 20.0
    server = spawn([sys.executable, "-c", SLOW_SERVER, str(tmp_path), str(delay), str(grace)])
    http = server.wait_for("serving")["http"]
    cluster = {"name": "test122", "kubeconfig": fake_kubeconfig}
    assert _post(f"{http}/api/clusters", cluster)[0] == 200
    assert _post(f"{http}/api/repos", {"name": "bitnami-new", "url": chart_repo.url})[0] == 200

    with ThreadPoolExecutor(1) as pool:
        create = pool.submit(_post, f"{http}/api/releases", {
            "chart_name": "bitnami-new/etcd", "cluster": "test122", "release_name": "slow-one"})
        time.sleep(delay / 2)  # the install is now in flight
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        status, release = create.result(timeout=grace)
    assert status == 200, release
    assert (release["name"], release["status"]) == ("slow-one", "deployed")
    assert server.proc.wait(grace) == 0
    waited = time.monotonic() - signalled
    assert delay / 2 - 0.5 < waited < grace
