"""What the hostile-repository tests share: a plain REST client, a /healthz probe, and
`attack()`, the checks every row of issue 15 makes (time bound, health, nothing left behind)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capstan_server.charts.limits import MiB, RepoLimits
from capstan_server.threaded import ServerHandle
from repos.hostile_repo import CHART_YAML, HostileRepo, entry, sha256, tgz

LIMITS = RepoLimits(
    fetch_timeout_s=8.0,
    idle_timeout_s=4.0,
    min_rate_bytes_s=4096,
    rate_grace_s=1.5,
    connections_per_repo=2,
    max_index_bytes=8 * MiB,
    chart_cache_bytes=8 * MiB,
)
#: Generous: the machine is shared; what matters is "seconds", not "minutes".
BOUND_S = 20.0
HEALTH_WORST_S = 3.0


class Rest:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.base + path, method=method, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def register(self, name: str, url: str) -> tuple[int, Any]:
        return self.call("POST", "/api/repos", {"name": name, "url": url})

    def show(self, repo: str, chart: str = "evil") -> tuple[int, Any]:
        return self.call("GET", f"/api/charts/{chart}?repo={repo}")

    def install(self, repo: str, chart: str = "evil", **extra: Any) -> tuple[int, Any]:
        return self.call("POST", "/api/releases", {
            "chart_name": f"{repo}/{chart}", "cluster": "test122", "namespace": "default",
            "release_name": "victim", **extra})


class HealthProbe:
    """Asks /healthz every 50 ms on a thread; `worst` is the slowest answer (inf: none)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.worst = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=30) as answer:
                    assert answer.status == 200
                self.answers += 1
            except (OSError, AssertionError):
                self.worst = float("inf")
            self.worst = max(self.worst, time.monotonic() - started)
            self._stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(35)


def cache_files(data_dir: Path) -> list[str]:
    """Archives and temporary files under the data dir's chart cache."""
    charts = data_dir / "charts"
    return sorted(str(p.relative_to(charts)) for p in charts.rglob("*") if p.is_file()) if (
        charts.exists()) else []


@contextlib.contextmanager
def attack(capstan: ServerHandle, bound_s: float = BOUND_S, cached: int = 0) -> Iterator[None]:
    """The attack inside must end within `bound_s`, /healthz must keep answering, and
    nothing may be left in the cache (but `cached` sound, digest-checked archives) or written
    next to the data dir."""
    outside = sorted(p.name for p in capstan.data_dir.parent.iterdir())
    started = time.monotonic()
    with HealthProbe(capstan.http_url) as probe:
        yield
    elapsed = time.monotonic() - started
    assert elapsed < bound_s, f"took {elapsed:.1f} s"
    assert probe.answers > 0 and probe.worst < HEALTH_WORST_S, f"/healthz: {probe.worst:.1f} s"
    assert len(cache_files(capstan.data_dir)) == cached
    assert all(name.endswith(".tgz") for name in cache_files(capstan.data_dir))
    assert not [p for p in capstan.data_dir.rglob(".*-*") if p.is_file()]  # no temp files
    assert sorted(p.name for p in capstan.data_dir.parent.iterdir()) == outside


def benign_chart(hostile: HostileRepo, name: str = "evil", **files: bytes) -> str:
    members = {f"{name}/Chart.yaml": CHART_YAML.replace(b"evil", name.encode()),
               **{f"{name}/{k.replace('_', '.')}": v for k, v in files.items()}}
    archive = tgz(members)
    hostile.archive(f"{name}-1.0.0.tgz", archive)
    return sha256(archive)


def serve_chart(hostile: HostileRepo, archive: bytes, **extra: Any) -> None:
    hostile.archive("evil-1.0.0.tgz", archive)
    hostile.index({"evil": [entry("evil", "1.0.0", digest=sha256(archive), **extra)]})
