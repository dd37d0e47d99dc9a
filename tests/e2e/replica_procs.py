"""`capstan-server` replicas as real processes (so a test can kill -9 one), on free ports; the
helm binaries they run (`HELMS`, to parametrize over) and `within`, the bounded wait for what one
replica wrote to show on another."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from capstan.client import CapstanClient, Unavailable

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bin"
#: Both helm majors, for `@pytest.mark.parametrize("helm", HELMS)`; see `require`.
HELMS = [pytest.param(TOOLS / "helm3", id="helm3"), pytest.param(TOOLS / "helm4", id="helm4")]
T = TypeVar("T")


def require(helm: Path) -> Path:
    """Return `helm`, or skip the test when that pinned binary is not installed."""
    if not os.access(helm, os.X_OK):
        pytest.skip(f"{helm} is not installed; run `make setup`")
    return helm


def within(seconds: float, probe: Callable[[], T | None]) -> T:
    """Poll `probe` until it returns something other than None; fail once `seconds` have
    passed (a probe started before the bound still counts)."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"not seen within {seconds} s"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One `capstan-server` process; `.client` talks to it over gRPC."""

    def __init__(self, name: str, data_dir: Path, helm_bin: Path, extra: Sequence[str]) -> None:
        self.name = name
        self.data_dir = data_dir
        self.grpc_target = f"127.0.0.1:{free_port()}"
        self.http_url = f"http://127.0.0.1:{free_port()}"
        self.log_path = data_dir.parent / f"{name}.log"
        argv = [sys.executable, "-m", "capstan_server.main", "--grpc-listen", self.grpc_target,
                "--http-listen", self.http_url.removeprefix("http://"), "--data-dir",
                str(data_dir), "--helm-bin", str(helm_bin), "--replica-id", name,
                "--shutdown-grace", "5", "--allow-repo-host", "127.0.0.1", *extra]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.client = CapstanClient(self.grpc_target, timeout=120, retries=0)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited: {self.log_path.read_text()}")
            try:
                self.client.list_clusters()
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def register(self, kubeconfig: str, repo_url: str) -> None:
        """Register cluster `sim` and chart repository `samples` (each replica keeps its own
        registry unless its flags share one)."""
        self.client.create_cluster("sim", kubeconfig)
        self.client.create_repository("samples", repo_url)

    def helm_pids(self, *words: str) -> list[int]:
        """helm processes this replica started (their working dir is under its data dir),
        whose command line holds every one of `words`."""
        root = str(self.data_dir.resolve())
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if not os.readlink(entry / "cwd").startswith(root):
                        continue
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if all(w.encode() in argv for w in words):
                    out.append(int(entry.name))
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def replicas(tmp_path: Path, helm_bin: Path, names: Sequence[str],
             extra: Sequence[str] = ()) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for name in names:
            started.append(Replica(name, tmp_path / name, helm_bin, extra))
        yield started
    finally:
        for replica in started:
            replica.stop()
