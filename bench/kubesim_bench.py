"""kubesim under load: many large Secrets, and many concurrent clients.

    .venv/bin/python bench/kubesim_bench.py [--quick] [--secrets N] [--secret-kb KB]
                                             [--clients N] [--requests N] [--no-persist]

Prints one table. Each scenario runs against a fresh kubesim *process* (``python -m
kubesim.cli`` on 127.0.0.1, controllers on, ``--state`` unless ``--no-persist``), so its peak
memory (``VmHWM`` of that process) is measured alone:

1. ``secrets``: N Secrets of KB kilobytes each are created (50 concurrent writers), then listed by
   label selector the way helm looks up a release (``owner=...,name=...``: 10 of N), by a broad
   selector (N/10), and all of them in pages of 500 (``limit``/``continue``).
2. ``mixed``: C concurrent clients, each in its own namespace, issue a bounded number of
   requests in total: gets, label-selector lists, creates, read-modify-write updates (PUT with
   resourceVersion), merge patches and deletes of ConfigMaps, plus scaling a Deployment (which
   the simulated controllers follow with ReplicaSet and Pod changes). Errors must be zero.

Everything is bounded (counts and a global time limit) and loopback only; the script stops the
servers it started and exits non-zero if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "kubesim-bench-token"


# ---------------------------------------------------------------------- the server process


@dataclass
class Server:
    """A kubesim process and what the benchmark needs to talk to it."""

    proc: asyncio.subprocess.Process
    url: str

    def memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) of the kubesim process in MiB, from /proc."""
        rss = hwm = 0.0
        with contextlib.suppress(OSError), open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
        return rss, hwm


def _log_file(path: Path) -> BinaryIO:
    return open(path, "ab")  # closed by the caller's with-block


@contextlib.asynccontextmanager
async def kubesim_process(workdir: Path, persist: bool = True) -> AsyncIterator[Server]:
    """``python -m kubesim.cli`` on a free loopback port; its log goes to ``workdir``.

    ``persist``: with ``--state`` (every write journaled before it is answered), as ``--dev``
    runs it; a fresh state file per scenario.
    """
    state = ["--state", str(workdir / f"state-{time.monotonic_ns()}.json")] if persist else []
    with _log_file(workdir / "kubesim.log") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kubesim.cli", "--listen", "127.0.0.1:0", "--token", TOKEN,
            "--kubeconfig-out", str(workdir / "kubeconfig"), *state,
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT,
        )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"serving (http\S+)", line)
        if not match:
            raise RuntimeError(f"kubesim did not start: {line!r}")
        yield Server(proc, match.group(1))
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# ---------------------------------------------------------------------- measuring requests


@dataclass
class Stats:
    """Latencies and failures of one scenario's requests."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Client:
    """A thin JSON client for kubesim's API that records latency and unexpected statuses."""

    def __init__(self, session: aiohttp.ClientSession, url: str, stats: Stats) -> None:
        self.session = session
        self.url = url
        self.stats = stats

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: tuple[int, ...] = (200, 201),
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body
            kwargs["headers"] = {"Content-Type": content_type}
        try:
            async with self.session.request(method, self.url + path, **kwargs) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.stats.errors.append(f"{method} {path}: {exc!r}")
            return None
        self.stats.latencies.append(time.perf_counter() - started)
        if status not in ok:
            self.stats.errors.append(f"{method} {path}: HTTP {status} {data.get('message')}")
            return None
        return data


def _session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
        timeout=aiohttp.ClientTimeout(total=120),
    )


async def _bounded(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# ---------------------------------------------------------------------- scenario 1: secrets


@dataclass
class Row:
    scenario: str
    operation: str
    count: int
    seconds: float
    extra: str = ""


async def secrets_scenario(args: argparse.Namespace, rows: list[Row], workdir: Path) -> bool:
    n, size = args.secrets, args.secret_kb * 1024
    stats = Stats()
    async with kubesim_process(workdir, args.persist) as server, _session(50) as session:
        client = Client(session, server.url, stats)
        rss0, _ = server.memory_mib()
        rng = random.Random(args.seed)
        releases = max(1, n // 10)

        def make(i: int) -> Callable[[], Awaitable[None]]:
            async def create() -> None:
                payload = base64.b64encode(rng.randbytes(size)).decode()
                await client.call("POST", "/api/v1/namespaces/default/secrets", {
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": f"bench-{i:06d}", "labels": {
                        "owner": "bench", "name": f"rel-{i % releases}", "group": f"g{i % 10}"}},
                    "type": "Opaque", "data": {"payload": payload},
                })
            return create

        started = time.perf_counter()
        await _bounded(50, [make(i) for i in range(n)])
        elapsed = time.perf_counter() - started
        _, peak = server.memory_mib()
        rows.append(Row("secrets", f"create {n} x {args.secret_kb} KB (50 writers)", n, elapsed,
                        f"{n / elapsed:,.0f} req/s, p99 {stats.percentile(0.99):.1f} ms"))

        async def timed_list(label: str, selector: str, expect: int, repeat: int = 1) -> None:
            times = []
            for r in range(repeat):
                t0 = time.perf_counter()
                out = await client.call("GET", "/api/v1/namespaces/default/secrets",
                                        params={"labelSelector": selector})
                times.append(time.perf_counter() - t0)
                got = len(out["items"]) if out else -1
                if got != expect:
                    stats.errors.append(f"list {selector} #{r}: {got} items, expected {expect}")
            rows.append(Row("secrets", f"list {label} ({selector})", expect,
                            statistics.median(times), f"median of {repeat}"))

        await timed_list("one release", f"owner=bench,name=rel-{releases // 2}",
                         len(range(releases // 2, n, releases)), repeat=20)
        await timed_list("a tenth", "group=g3", len(range(3, n, 10)), repeat=3)

        t0 = time.perf_counter()
        total, pages, token = 0, 0, ""
        while True:
            params = {"labelSelector": "owner=bench", "limit": "500"}
            if token:
                params["continue"] = token
            out = await client.call("GET", "/api/v1/namespaces/default/secrets", params=params)
            if out is None:
                break
            total += len(out["items"])
            pages += 1
            token = out["metadata"].get("continue", "")
            if not token:
                break
        if total != n:
            stats.errors.append(f"paged list returned {total} items, expected {n}")
        rows.append(Row("secrets", "list all (owner=bench), pages of 500", total,
                        time.perf_counter() - t0, f"{pages} pages"))
        rss, peak = server.memory_mib()
        rows.append(Row("secrets", "kubesim memory", n, 0.0,
                        f"start {rss0:,.0f} MiB, now {rss:,.0f} MiB, peak {peak:,.0f} MiB"))
    rows.append(Row("secrets", "errors", len(stats.errors), 0.0, "; ".join(stats.errors[:3])))
    return not stats.errors


# ---------------------------------------------------------------------- scenario 2: mixed load


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}},
    }


async def mixed_scenario(args: argparse.Namespace, rows: list[Row], workdir: Path) -> bool:
    clients, total = args.clients, args.requests
    stats = Stats()
    counts: dict[str, int] = {}
    async with kubesim_process(workdir, args.persist) as server, _session(clients) as session:
        api = Client(session, server.url, stats)
        rss0, _ = server.memory_mib()
        for c in range(clients):
            await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": f"load-{c}"}})
            await api.call("POST", f"/apis/apps/v1/namespaces/load-{c}/deployments",
                           _deployment("web"))
        stats.latencies.clear()
        per_client = [total // clients + (1 if c < total % clients else 0) for c in range(clients)]

        async def run_client(c: int, budget: int) -> None:
            rng = random.Random(args.seed * 1000 + c)
            ns = f"load-{c}"
            base = f"/api/v1/namespaces/{ns}/configmaps"
            live: list[str] = []
            serial = 0
            for _ in range(budget):
                roll = rng.random()
                if not live or roll < 0.15:
                    op = "create"
                    serial += 1
                    name = f"cm-{serial}"
                    out = await api.call("POST", base, {"metadata": {
                        "name": name, "labels": {"client": str(c), "kind": "bench"}},
                        "data": {"value": "x" * rng.randint(10, 2000)}})
                    if out is not None:
                        live.append(name)
                elif roll < 0.50:
                    op = "get"
                    await api.call("GET", f"{base}/{rng.choice(live)}")
                elif roll < 0.65:
                    op = "list"
                    await api.call("GET", base, params={"labelSelector": f"client={c}"})
                elif roll < 0.78:
                    op = "update"
                    name = rng.choice(live)
                    obj = await api.call("GET", f"{base}/{name}")
                    if obj is not None:
                        obj["data"] = {"value": str(rng.random())}
                        await api.call("PUT", f"{base}/{name}", obj)
                elif roll < 0.88:
                    op = "patch"
                    await api.call("PATCH", f"{base}/{rng.choice(live)}",
                                   {"metadata": {"annotations": {"n": str(rng.random())}}},
                                   content_type="application/merge-patch+json")
                elif roll < 0.95:
                    op = "delete"
                    name = live.pop(rng.randrange(len(live)))
                    await api.call("DELETE", f"{base}/{name}")
                else:
                    op = "scale"
                    await api.call("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                                   {"spec": {"replicas": rng.randint(1, 3)}},
                                   content_type="application/merge-patch+json")
                counts[op] = counts.get(op, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(run_client(c, b) for c, b in enumerate(per_client)))
        elapsed = time.perf_counter() - started
        done = len(stats.latencies) + len(stats.errors)
        mix = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        rows.append(Row("mixed", f"{clients} clients, {total} operations", done, elapsed,
                        f"{done / elapsed:,.0f} req/s, p50 {stats.percentile(0.5):.1f} ms, "
                        f"p99 {stats.percentile(0.99):.1f} ms"))
        rows.append(Row("mixed", "operation mix", total, 0.0, mix))
        # The controllers followed every scale: each Deployment reports its spec.
        pods = await api.call("GET", "/api/v1/pods")
        deps = await api.call("GET", "/apis/apps/v1/deployments")
        if deps is not None:
            lagging = [d["metadata"]["namespace"] for d in deps["items"]
                       if d["status"].get("readyReplicas") != d["spec"]["replicas"]]
            if lagging:
                stats.errors.append(f"deployments not ready after the run: {lagging[:5]}")
        rss, peak = server.memory_mib()
        rows.append(Row("mixed", "kubesim memory", len(pods["items"]) if pods else 0, 0.0,
                        f"start {rss0:,.0f} MiB, now {rss:,.0f} MiB, peak {peak:,.0f} MiB "
                        "(count: pods)"))
    rows.append(Row("mixed", "errors", len(stats.errors), 0.0, "; ".join(stats.errors[:3])))
    return not stats.errors


# ---------------------------------------------------------------------- main


def print_table(rows: list[Row]) -> None:
    headers = ("scenario", "operation", "count", "seconds", "notes")
    cells = [(r.scenario, r.operation, f"{r.count:,}", f"{r.seconds:.3f}" if r.seconds else "",
              r.extra) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) if i in (2, 3) else v.ljust(w)
                        for i, (v, w) in enumerate(zip(c, widths, strict=True))))


async def main_async(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        async with asyncio.timeout(args.time_limit):
            ok = True
            if "secrets" in args.scenarios:
                ok = await secrets_scenario(args, rows, Path(tmp)) and ok
            if "mixed" in args.scenarios:
                ok = await mixed_scenario(args, rows, Path(tmp)) and ok
    print_table(rows)
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (1,000 secrets, 2,000 mixed operations)")
    parser.add_argument("--secrets", type=int, help="number of Secrets (default 10000)")
    parser.add_argument("--secret-kb", type=int, default=20, help="size of each Secret")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--requests", type=int, help="mixed operations in total (default 20000)")
    parser.add_argument("--scenarios", default="secrets,mixed",
                        help="comma-separated: secrets, mixed")
    parser.add_argument("--no-persist", dest="persist", action="store_false",
                        help="run kubesim without --state (no journal), to compare")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=900,
                        help="abort after this many seconds")
    args = parser.parse_args(argv)
    args.secrets = args.secrets or (1000 if args.quick else 10000)
    args.requests = args.requests or (2000 if args.quick else 20000)
    args.scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
