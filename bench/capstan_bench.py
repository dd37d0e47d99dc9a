"""Capstan on the helm driver vs the bare helm CLI, side by side against the same kubesim.

    .venv/bin/python bench/capstan_bench.py [--helm helm3|helm4] [--quick] [--sizes 100,1000]
                                            [--runs 9]

Prints one table:

- ListReleases vs `helm list -A -o json` with N releases x 3 revisions (target: Capstan at
  least 10x faster at 1,000 releases). The records are seeded straight through the API in
  helm's exact format (a real record written by helm, cloned), which is quick.
- GetRelease (with live resources) vs `helm status` + `helm get manifest`.
- CreateRelease / UpgradeRelease vs a bare `helm install` / `helm upgrade` of the same chart
  archive (target: Capstan's own overhead at most 10% of the helm call). Capstan's own time is
  measured per call from the server's log: the RPC's duration minus the duration of the helm
  process it ran, so it does not depend on how noisy the machine is; the end-to-end medians
  are printed too.

kubesim and the Capstan server run as separate processes (as in production, and so that
neither competes with the benchmark for Python's GIL); every figure is the median of `--runs`
runs after one warm-up run, Capstan's and helm's runs alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "client")]

from capstan.client import CapstanClient  # noqa: E402
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer  # noqa: E402
from capstan_server.drivers.helm import records  # noqa: E402
from capstan_server.drivers.helm.kube import KubeClient, load_kubeconfig  # noqa: E402
from capstan_server.errors import Aborted  # noqa: E402

BIN = ROOT / ".venv" / "bin"
TOOLS = ROOT / ".tools" / "bin"
NAMESPACES = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {timeout}s")


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Helm:
    """The bare helm CLI against the same kubesim, with private homes."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
                    "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}

    def __call__(self, *args: str) -> str:
        result = subprocess.run([str(self.binary), *args, f"--kubeconfig={self.kubeconfig}"],
                                capture_output=True, text=True, env=self.env, timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"helm {' '.join(args)} failed: {result.stderr}")
        return result.stdout


def own_times(log: Path, method: str, operation: str) -> list[float]:
    """Per RPC of `method` in the server's log: its duration minus that of the helm run
    (`operation`) it made, in ms."""
    helm_ms: float | None = None
    out = []
    for line in log.read_text().splitlines():
        m = re.search(rf"helm {operation} exited 0 after (\d+) ms", line)
        if m:
            helm_ms = float(m[1])
        m = re.search(rf"/{method} code=OK duration_ms=([\d.]+)", line)
        if m and helm_ms is not None:
            out.append(float(m[1]) - helm_ms)
            helm_ms = None
    return out


def paired(ours: Callable[[], Any], theirs: Callable[[], Any], runs: int
           ) -> tuple[float, float]:
    """Median wall times (ms) of `ours` and `theirs`, run alternately after one warm-up each,
    so that both see the same cluster state and the same background load."""
    ours(), theirs()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((ours, samples[0]), (theirs, samples[1])):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def _records_of(template: dict[str, Any], start: int, stop: int
                ) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, record Secret) of releases bench-<i> x 3 revisions (run in a worker
    process: gzip at helm's level 9 is most of a seed's time)."""
    out = []
    for i in range(start, stop):
        ns = f"bench-{i % NAMESPACES}"
        for revision, status in ((1, "superseded"), (2, "superseded"), (3, "deployed")):
            doc = json.loads(json.dumps(template))
            doc.update(name=f"bench-{i:04d}", namespace=ns, version=revision)
            doc["info"]["status"] = status
            doc["manifest"] = template["manifest"].replace(template["name"], doc["name"])
            out.append((ns, records.record_object(doc)))
    return out


async def seed(kubeconfig: str, template: dict[str, Any], start: int, stop: int) -> None:
    """Releases bench-<i> (i in [start, stop)) x 3 revisions, through the API; the records are
    encoded by a pool of worker processes while earlier ones are posted."""
    client = KubeClient(load_kubeconfig(kubeconfig), concurrency=32)
    loop = asyncio.get_running_loop()
    try:
        for ns in range(NAMESPACES):
            with contextlib.suppress(Aborted):  # 409: already there from a smaller size
                await client.request("POST", "/api/v1/namespaces", body={
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{ns}"}})
        step = 100
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            batches = [loop.run_in_executor(pool, _records_of, template, i, min(i + step, stop))
                       for i in range(start, stop, step)]
            for batch in batches:
                await asyncio.gather(*(
                    client.request("POST", f"/api/v1/namespaces/{ns}/secrets", body=obj)
                    for ns, obj in await batch))
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", choices=("helm3", "helm4"), default="helm3")
    parser.add_argument("--quick", action="store_true",
                        help="100 releases and 3 runs, unless --sizes/--runs say otherwise")
    parser.add_argument("--sizes", help="release counts to list (default 100,1000)")
    parser.add_argument("--runs", type=int, help="runs per case (default 9)")
    args = parser.parse_args()
    args.sizes = args.sizes or ("100" if args.quick else "100,1000")
    args.runs = args.runs or (3 if args.quick else 9)
    helm_bin = TOOLS / args.helm
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, float, float, str]] = []
    log = Path()

    with tempfile.TemporaryDirectory(prefix="capstan-bench-") as tmp_name:
        tmp = Path(tmp_name)
        kubeconfig_path = tmp / "kubeconfig"
        sim_argv = [str(BIN / "kubesim"), "--listen", f"127.0.0.1:{free_port()}", "--tls",
                    "--kubeconfig-out", str(kubeconfig_path)]
        grpc_port, http_port = free_port(), free_port()
        server_argv = [str(BIN / "capstan-server"), "--driver", "helm", "--helm-bin",
                       str(helm_bin), "--grpc-listen", f"127.0.0.1:{grpc_port}",
                       "--http-listen", f"127.0.0.1:{http_port}", "--data-dir",
                       str(tmp / "capstan"), "--log-level", "DEBUG",
                       # The sample repository is served on loopback (the address policy).
                       "--allow-repo-host", "127.0.0.1"]
        repo = ChartRepoServer(SAMPLE_CHARTS_DIR, TOOLS / "helm", out_dir=tmp / "repo")
        log = tmp / "capstan.log"
        with process(sim_argv, tmp / "kubesim.log"), repo.serve_in_thread(), \
                process(server_argv, log):
            wait_until(kubeconfig_path.exists, "kubesim")
            wait_until(lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/healthz", timeout=2).status == 200, "capstan")
            kubeconfig = kubeconfig_path.read_text()
            helm = Helm(helm_bin, kubeconfig_path, tmp / "helm-home")
            archive = next((tmp / "repo").glob("etcd-8.11.1.tgz"))
            with CapstanClient(f"127.0.0.1:{grpc_port}", timeout=600) as capstan:
                capstan.create_cluster("bench", kubeconfig)
                capstan.create_repository("samples", repo.url)

                # A real record, written by helm, is the template of the seeded ones.
                template = json.loads(helm("install", "template", str(archive), "-n",
                                           "default", "-o", "json"))
                helm("uninstall", "template", "-n", "default")

                seeded = 0
                for size in sizes:
                    asyncio.run(seed(kubeconfig, template, seeded, size))
                    seeded = size
                    page = capstan.list_releases(limit=1000)
                    assert page.total == size, page.total
                    listed = json.loads(helm("list", "-A", "-o", "json", "--max", "0"))
                    assert len(listed) == size, len(listed)
                    ours, theirs = paired(
                        lambda: capstan.list_releases(limit=1000),
                        lambda: helm("list", "-A", "-o", "json", "--max", "0"), args.runs)
                    rows.append((f"ListReleases, {size} releases x 3 revisions", ours,
                                 theirs, f"{theirs / ours:.1f}x faster"
                                 + (" (target >= 10x)" if size >= 1000 else "")))

                def show() -> None:
                    capstan.get_release("bench-0001", cluster="bench", namespace="bench-1")

                def helm_show() -> None:
                    helm("status", "bench-0001", "-n", "bench-1", "-o", "json")
                    helm("get", "manifest", "bench-0001", "-n", "bench-1")

                ours, theirs = paired(show, helm_show, args.runs)
                rows.append(("GetRelease vs status + get manifest", ours, theirs,
                             f"{theirs / ours:.1f}x faster"))

                ours_names = iter(f"cap-{i}" for i in range(10_000))
                bare_names = iter(f"bare-{i}" for i in range(10_000))

                def create() -> None:
                    capstan.create_release("samples/etcd", cluster="bench", namespace="default",
                                           release_name=next(ours_names), version="8.11.1")

                def helm_install() -> None:
                    helm("install", next(bare_names), str(archive), "-n", "default", "-o",
                         "json")

                ours, theirs = paired(create, helm_install, args.runs)
                own = statistics.median(own_times(log, "CreateRelease", "install")[1:])
                rows.append(("CreateRelease vs helm install", ours, theirs,
                             f"own {own:.0f} ms = {100 * own / theirs:.1f}% (target <= 10%); "
                             f"end to end {100 * (ours - theirs) / theirs:+.0f}%"))

                tags = iter(f"3.5.8-debian-11-r{i}" for i in range(10, 10_000))

                def upgrade() -> None:
                    capstan.upgrade_release("cap-0", "samples/etcd", cluster="bench",
                                            namespace="default", version="8.11.1",
                                            values_json={"image": {"tag": next(tags)}})

                def helm_upgrade() -> None:
                    helm("upgrade", "bare-0", str(archive), "-n", "default", "-o", "json",
                         "--set", f"image.tag={next(tags)}")

                ours, theirs = paired(upgrade, helm_upgrade, args.runs)
                own = statistics.median(own_times(log, "UpgradeRelease", "upgrade")[1:])
                rows.append(("UpgradeRelease vs helm upgrade", ours, theirs,
                             f"own {own:.0f} ms = {100 * own / theirs:.1f}% (target <= 10%); "
                             f"end to end {100 * (ours - theirs) / theirs:+.0f}%"))

    version = subprocess.run([str(helm_bin), "version", "--template", "{{.Version}}"],
                             capture_output=True, text=True).stdout
    width = max(len(r[0]) for r in rows)
    print(f"\nCapstan (helm driver) vs helm {version} CLI, same kubesim, median of "
          f"{args.runs} runs")
    print(f"{'case':<{width}}  {'Capstan ms':>10}  {'helm ms':>9}  result")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 9}  {'-' * 32}")
    for case, ours, theirs, result in rows:
        print(f"{case:<{width}}  {ours:>10.1f}  {theirs:>9.1f}  {result}")


if __name__ == "__main__":
    main()
