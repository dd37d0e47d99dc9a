"""Capstan at scale, side by side with the helm CLI in the same run: the release cache, a
frozen cluster, and the bounded helm pool.

    .venv/bin/python bench/scale_bench.py [--quick] [--sizes 1000,10000] [--runs 5]
                                          [--creates 50] [--rounds 6] [--helm helm3|helm4]
                                          [--cases lists,frozen,pool]

Prints one table (targets of issue 12 in the last column):

- ListReleases over REST (one kept-alive connection, as a script holds one), one page of 20
  and a full walk in pages of 200, at each size of releases x 3 revisions, with realistic
  records (a real record written by helm, cloned) and with small ones (no manifest, no chart
  files), against `helm list -A -o json` on the same kubesim. Targets: full walk >= 100x
  faster than helm at 1,000 realistic, >= 20x with small records; a page of 20 at the largest
  size within 1.5x of the same page at the smallest (median of 10x the runs: a few ms each).
  Each size has a kubesim and a server of its own, and the pages of 20 are timed on each in
  turn, so that the machine's speed, which drifts over minutes, is the same for both.
- The server's RSS (now and at its peak) with the largest size cached, and of a server started
  on a cluster that already holds it (target <= 300 MB at 10,000).
- ListReleases p50 with one of two clusters frozen (SIGSTOP of its kubesim; target <= 50 ms).
- `--creates` concurrent creates with --max-helm-processes 4 against an unbounded server:
  helm processes sampled (target: never more than 4), all deployed, total time (target: no
  worse than unbounded): 6 rounds, each runs both back to back on a settled machine, and the
  median of the rounds' ratios is compared (`pool_rows`).

kubesim and Capstan run as processes of their own. `--quick`: sizes 100,300, 3 runs, 8 creates,
2 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capstan_bench import (
    BIN,
    TOOLS,
    Helm,
    free_port,
    process,
    seed,
    wait_until,
)

from capstan.client import CapstanClient
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer
from capstan_server.drivers.helm.informer import DEFAULT_FRESH_FOR


class Stack:
    """kubesim(s) and Capstan servers as processes, in one temporary directory."""

    def __init__(self, tmp: Path, helm_bin: Path, stack: ExitStack) -> None:
        self.tmp, self.helm_bin, self.stack = tmp, helm_bin, stack
        self.count = 0

    def kubesim(self, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        path = self.tmp / f"{name}.kubeconfig"
        proc = self.stack.enter_context(process(
            [str(BIN / "kubesim"), "--listen", f"127.0.0.1:{free_port()}", "--tls",
             "--no-controllers", "--kubeconfig-out", str(path)], self.tmp / f"{name}.log"))
        wait_until(lambda: path.exists() and path.stat().st_size > 0, f"kubesim {name}")
        return proc, path

    def capstan(self, *flags: str) -> tuple[subprocess.Popen[bytes], str, str]:
        self.count += 1
        grpc_port, http_port = free_port(), free_port()
        proc = self.stack.enter_context(process(
            [str(BIN / "capstan-server"), "--driver", "helm", "--helm-bin", str(self.helm_bin),
             "--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen",
             f"127.0.0.1:{http_port}", "--data-dir", str(self.tmp / f"capstan-{self.count}"),
             "--allow-repo-host", "127.0.0.1", *flags], self.tmp / f"capstan-{self.count}.log"))
        url = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200,
                   "capstan")
        return proc, f"127.0.0.1:{grpc_port}", url


#: The revision `capstan_bench.seed` writes last for each release (of 1, 2, 3).
SEEDED_REVISION = 3


def listed(url: str, count: int) -> bool:
    """Whether the server lists `count` releases, each at its last seeded revision: it has
    taken in the whole seed (a release is listed from its first record already, and timing
    lists while the server still takes in thousands of writes would time that)."""
    offset, total = 0, count
    while offset < total:
        body = get_json(f"{url}/api/releases?limit=500&offset={offset}")
        total = body["total"]
        if total != count or any(r["version"] != SEEDED_REVISION for r in body["releases"]):
            return False
        offset += 500
    return True


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=600) as answer:
        return json.loads(answer.read())


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


class Rest:
    """GETs of JSON as a script makes them: one kept-alive connection (as `requests.Session`
    keeps one), answers parsed with orjson."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=600)

    def get(self, path: str) -> Any:
        self._conn.request("GET", path)
        answer = self._conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {answer.status}: {body[:200]!r}")
        return orjson.loads(body)

    def close(self) -> None:
        self._conn.close()


def walk(rest: Rest, page: int = 200) -> int:
    """Every release, in pages of `page`."""
    seen, offset, total = 0, 0, 1
    while offset < total:
        body = rest.get(f"/api/releases?limit={page}&offset={offset}")
        total = body["total"]
        seen += len(body["releases"])
        offset += page
    return seen


def memory_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(" ", 1)[0].split("\t", 1)[0]
        if key in found:
            found[key] = int(line.split()[1]) / 1024
    return found["VmRSS:"], found["VmHWM:"]


def proc_stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's name and the fields of /proc/<pid>/stat after it (field 3, the state, on)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def helm_children(pid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, fields = proc_stat(entry)
        except OSError:
            continue
        count += name.startswith("helm") and int(fields[1]) == pid  # helm3/helm4 symlinks too
    return count


def small_template(template: dict[str, Any]) -> dict[str, Any]:
    """The release record without manifest, chart files or templates: a few hundred bytes."""
    doc: dict[str, Any] = json.loads(json.dumps(template))
    doc["manifest"] = ""
    doc["chart"] = {"metadata": template["chart"]["metadata"]}
    doc["info"]["notes"] = ""
    return doc


@contextmanager
def sampling(pid: int) -> Iterator[list[int]]:
    seen: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            seen.append(helm_children(pid))
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def creates(target: str, count: int, namespace: str) -> tuple[float, int]:
    """`count` concurrent creates; (seconds, how many deployed)."""
    def one(i: int) -> str:
        with CapstanClient(target, timeout=900, retries=0) as client:
            return client.create_release("samples/etcd", cluster="c", namespace=namespace,
                                         release_name=f"burst-{i}", version="8.11.1",
                                         create_namespace=True).status

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    return time.monotonic() - started, statuses.count("deployed")


def children_cpu_s(pid: int) -> float:
    """CPU seconds of a process's children that have exited and been waited for (helm runs)."""
    fields = proc_stat(pid)[1]  # cutime and cstime
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def settle(limit: float = 30.0) -> None:
    """Wait (up to `limit` seconds) until the machine is idle: at least 90% of the CPU over
    half a second, so that a run does not pay for the work its predecessor left behind."""
    def idle() -> tuple[int, int]:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        idle0, all0 = idle()
        time.sleep(0.5)
        idle1, all1 = idle()
        if idle1 - idle0 >= 0.9 * max(1, all1 - all0):
            return


def pool_rows(env: Stack, repo_url: str, burst: int, rounds: int
              ) -> list[tuple[str, str, str, str]]:
    """`burst` concurrent creates with --max-helm-processes 4 and unbounded, side by side.

    Both servers (each with a kubesim of its own) are up at once and warmed up (helm's version,
    the chart, the cluster's caches). Each round runs both, one right after the other, on a
    settled machine, and which goes first alternates: a round's two runs see the same minutes
    of this machine, whose speed drifts by half. Their ratio is the round's result, and the
    median over the rounds is compared with the target. helm's CPU time per create shows
    where the difference comes from (fewer processes at once contend less).
    """
    pools: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for label, flags in (("bounded", ("--max-helm-processes", "4",
                                      "--max-queued-writes", str(burst))),
                         ("unbounded", ("--max-helm-processes", "1000"))):
        _, path = env.kubesim(f"pool-{label}")
        proc, target, _ = env.capstan(*flags)
        with CapstanClient(target, timeout=600) as client:
            client.create_cluster("c", path.read_text())
            client.create_repository("samples", repo_url)
        creates(target, 4, "warm-up")
        pools[label] = (proc, target)
    took: dict[str, list[float]] = {label: [] for label in pools}
    cpu = dict.fromkeys(pools, 0.0)
    deployed = dict.fromkeys(pools, 0)
    most = dict.fromkeys(pools, 0)
    for round_ in range(rounds):
        for label in list(pools) if round_ % 2 == 0 else list(reversed(pools)):
            proc, target = pools[label]
            settle()
            before = children_cpu_s(proc.pid)
            with sampling(proc.pid) as seen:
                seconds, ok = creates(target, burst, f"burst-{round_}")
            cpu[label] += children_cpu_s(proc.pid) - before
            took[label].append(seconds)
            deployed[label] += ok
            most[label] = max(most[label], *seen, 0)
    ratios = sorted(b / u - 1 for b, u in zip(took["bounded"], took["unbounded"], strict=True))
    total = burst * rounds
    rows = []
    for label, limit, target in (("bounded", "--max-helm-processes 4", " (target <= 4)"),
                                 ("unbounded", "unbounded", "")):
        rows.append((f"{burst} concurrent creates, {limit}",
                     f"{statistics.median(took[label]) * 1000:.0f}", "",
                     f"max {most[label]} helm at once{target}, {deployed[label]}/{total} "
                     f"deployed, helm CPU {cpu[label] / total * 1000:.0f} ms per create"))
    rows.append(("bounded vs unbounded, same round", "", "",
                 f"{100 * statistics.median(ratios):+.0f}% (target <= 0%; median of {rounds} "
                 f"rounds, from {100 * ratios[0]:+.0f}% to {100 * ratios[-1]:+.0f}%)"))
    return rows


def list_rows(env: Stack, archive: Path, sizes: list[int], runs: int
              ) -> list[tuple[str, str, str, str]]:
    """ListReleases at each size, realistic and small records, against `helm list`; RSS."""
    rows: list[tuple[str, str, str, str]] = []
    # Each size has its own kubesim and server, all up at once, and a page of 20 is timed
    # on each in turn: the ratio between sizes is not the machine's speed drifting while
    # the next size is seeded.
    page20: dict[tuple[str, int], float] = {}
    rss = started_full = (0.0, 0.0)
    for kind in ("realistic", "small"):
        listing: dict[int, tuple[subprocess.Popen[bytes], str, Helm, str]] = {}
        sims: list[subprocess.Popen[bytes]] = []
        template: dict[str, Any] = {}
        for size in sizes:
            sim, kubeconfig_path = env.kubesim(f"list-{kind}-{size}")
            sims.append(sim)
            kubeconfig = kubeconfig_path.read_text()
            helm = Helm(env.helm_bin, kubeconfig_path, env.tmp / f"helm-{kind}-{size}")
            if not template:
                template = json.loads(helm("install", "template", str(archive), "-n",
                                           "default", "-o", "json"))
                helm("uninstall", "template", "-n", "default")
                if kind == "small":
                    template = small_template(template)
            proc, target, url = env.capstan()
            with CapstanClient(target, timeout=600) as client:
                client.create_cluster("c", kubeconfig)
            asyncio.run(seed(kubeconfig, template, 0, size))
            wait_until(functools.partial(listed, url, size), f"{size} releases listed",
                       timeout=600)
            listing[size] = (proc, url, helm, kubeconfig)
        rests = {size: Rest(url) for size, (_, url, _, _) in listing.items()}
        samples: dict[int, list[float]] = {size: [] for size in sizes}
        for turn in range(10 * runs + 2):
            for size, rest in rests.items():
                started = time.perf_counter()
                rest.get("/api/releases?limit=20")
                if turn:  # the first turn warms up
                    samples[size].append((time.perf_counter() - started) * 1000)
        for size in sizes:
            page20[(kind, size)] = page = statistics.median(samples[size])
            # (The lambdas run before the loop moves on: B023 does not apply.)
            full = median_ms(lambda: walk(rests[size]), runs)  # noqa: B023
            helm = listing[size][2]
            theirs = median_ms(lambda: helm("list", "-A", "-o", "json", "--max", "0"),  # noqa: B023
                               max(1, runs // 2))
            target_x = 100 if kind == "realistic" else 20
            rows.append((f"page of 20, {size} x 3 {kind}", f"{page:.1f}", "", ""))
            rows.append((f"full walk (pages of 200), {size} x 3 {kind}", f"{full:.1f}",
                         f"{theirs:.1f}", f"{theirs / full:.1f}x faster (target >= "
                         f"{target_x}x at 1,000)"))
        for rest in rests.values():
            rest.close()
        if kind == "realistic":
            proc, _, _, kubeconfig = listing[sizes[-1]]
            rss = memory_mb(proc.pid)
            # A server started on a cluster that is already full: its first list of
            # every record (decoded page by page) is what peaks.
            fresh, fresh_target, fresh_url = env.capstan()
            with CapstanClient(fresh_target, timeout=600) as client:
                client.create_cluster("c", kubeconfig)
            wait_until(functools.partial(listed, fresh_url, sizes[-1]),
                       "a new server's first list", timeout=600)
            started_full = memory_mb(fresh.pid)
            fresh.terminate()
        # Each server holds its cache, each kubesim its records: one kind at a time.
        for proc in [*(p for p, _, _, _ in listing.values()), *sims]:
            proc.terminate()
    small, large = sizes[0], sizes[-1]
    for kind in ("realistic", "small"):
        ratio = page20[(kind, large)] / page20[(kind, small)]
        rows.append((f"page of 20 at {large} vs {small}, {kind}", "", "",
                     f"{ratio:.2f}x (target <= 1.5x)"))
    rows.append((f"server RSS, {large} x 3 realistic cached", f"{rss[0]:.0f} MB", "",
                 f"peak {rss[1]:.0f} MB (target <= 300 MB at 10,000)"))
    rows.append((f"server RSS, started on {large} x 3 realistic", f"{started_full[0]:.0f} MB",
                 "", f"peak {started_full[1]:.0f} MB (target <= 300 MB at 10,000)"))
    return rows


def frozen_rows(env: Stack, runs: int) -> list[tuple[str, str, str, str]]:
    """ListReleases p50 with one of two clusters frozen (SIGSTOP of its kubesim)."""
    near_proc, near_path = env.kubesim("near")
    far_proc, far_path = env.kubesim("far")
    server, target, url = env.capstan("--cluster-read-timeout", "1")
    with CapstanClient(target, timeout=600) as client:
        client.create_cluster("near", near_path.read_text())
        client.create_cluster("far", far_path.read_text())
    for path in (near_path, far_path):
        template = small_template(json.loads(json.dumps({
            "name": "t", "namespace": "default", "version": 1, "manifest": "",
            "config": {}, "chart": {"metadata": {"name": "etcd", "version": "8.11.1"}},
            "info": {"status": "deployed"}})))
        asyncio.run(seed(path.read_text(), template, 0, 100))
    wait_until(functools.partial(listed, url, 200),
               "both clusters listed", timeout=120)
    far_proc.send_signal(signal.SIGSTOP)
    try:
        # An answer from the far cluster (the seed's last watch events) proves it live for
        # a while: lists in that while rightly answer fresh.
        time.sleep(DEFAULT_FRESH_FOR + 0.5)
        started = time.perf_counter()
        get_json(f"{url}/api/releases?limit=20")  # waits up to the read timeout once
        first = (time.perf_counter() - started) * 1000
        frozen = median_ms(lambda: get_json(f"{url}/api/releases?limit=20"), max(runs, 9))
        body = get_json(f"{url}/api/releases?limit=20")
        stale = body["unreachable_clusters"][0]["stale_seconds"]
    finally:
        far_proc.send_signal(signal.SIGCONT)
    for proc in (server, near_proc, far_proc):  # nothing left running for the next case
        proc.terminate()
    return [("list p50, one of two clusters frozen", f"{frozen:.1f}", "",
                 f"target <= 50 ms; first list {first:.0f} ms, far reported "
                 f"{stale:.1f}s stale")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", choices=("helm3", "helm4"), default="helm3")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", help="release counts (default 1000,10000)")
    parser.add_argument("--runs", type=int, help="runs per timed case (default 5)")
    parser.add_argument("--creates", type=int, help="concurrent creates (default 50)")
    parser.add_argument("--rounds", type=int, help="rounds of creates (default 6)")
    parser.add_argument("--cases", default="lists,frozen,pool",
                        help="which parts to run (default lists,frozen,pool)")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    sizes = [int(s) for s in (args.sizes or ("100,300" if args.quick else "1000,10000"))
             .split(",")]
    runs = args.runs or (3 if args.quick else 5)
    burst = args.creates or (8 if args.quick else 50)
    rounds = args.rounds or (2 if args.quick else 6)
    helm_bin = TOOLS / args.helm
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="capstan-scale-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        env = Stack(tmp, helm_bin, stack)
        repo = ChartRepoServer(SAMPLE_CHARTS_DIR, TOOLS / "helm", out_dir=tmp / "repo")
        stack.enter_context(repo.serve_in_thread())
        if "lists" in cases:
            archive = next((tmp / "repo").glob("etcd-8.11.1.tgz"))
            rows += list_rows(env, archive, sizes, runs)
        if "frozen" in cases:
            rows += frozen_rows(env, runs)
        if "pool" in cases:
            rows += pool_rows(env, repo.url, burst, rounds)

    version = subprocess.run([str(helm_bin), "version", "--template", "{{.Version}}"],
                             capture_output=True, text=True).stdout
    width = max(len(r[0]) for r in rows)
    print(f"\nCapstan at scale vs helm {version} CLI, same kubesim, median of {runs} runs")
    print(f"{'case':<{width}}  {'Capstan ms':>10}  {'helm ms':>9}  result")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 9}  {'-' * 40}")
    for case, our_ms, helm_ms, result in rows:
        print(f"{case:<{width}}  {our_ms:>10}  {helm_ms:>9}  {result}")


if __name__ == "__main__":
    main()
