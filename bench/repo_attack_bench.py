"""Hostile chart repositories vs the chart shows of a benign one (issue 15).

    .venv/bin/python bench/repo_attack_bench.py [--seconds 20] [--clients 4]

A Capstan server (memory driver, its own process) has a benign repository and the attackers'
repositories registered (served on 127.0.0.1 by `tests/repos/hostile_repo.py`). The benign
chart is shown by `--clients` threads for `--seconds`, first alone, then while every attack of
the issue's table runs in a loop in parallel (index and archive bombs, drips, endless archives,
alias bombs, two-faced archives, catastrophic schema patterns, internal addresses). Prints the
benign calls' p50/p99 and the server's peak RSS (VmHWM) for both phases. Targets (2 cores):
benign p99 under 1 s and peak RSS under 500 MB under attack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from repos.hostile_repo import (  # noqa: E402
    CHART_YAML,
    HostileRepo,
    body,
    drip,
    endless,
    entry,
    gzip_bomb,
    raw_tgz,
    sha256,
    tar_header,
    tgz,
)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://c.invalid:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def call(base: str, method: str, path: str, payload: Any = None) -> int:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(base + path, method=method, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as err:
        err.read()
        return err.code
    except OSError:
        return 0


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("capstan-server")), "--driver", "memory",
         "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir",
         str(data_dir), "--log-format", "json", "--log-level", "WARNING",
         "--allow-repo-host", "127.0.0.1"],
        stderr=subprocess.PIPE, text=True)
    # WARNING hides the "serving" line: find the port from /proc instead.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for port in _listening_ports(proc.pid):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return proc, f"http://127.0.0.1:{port}"
            except OSError:
                continue
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def _listening_ports(pid: int) -> list[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.append(int(fields[1].split(":")[1], 16))
    return ports


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def benign_load(base: str, seconds: float, clients: int) -> list[float]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            status = call(base, "GET", "/api/charts/fine?repo=benign")
            latencies.append(time.monotonic() - started if status == 200 else float("inf"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def attacks(base: str, evil: HostileRepo) -> dict[str, list[Callable[[], int]]]:
    """Attack name -> callables, each run in a loop on its own thread."""
    many = raw_tgz(tar_header(b"evil/Chart.yaml", len(CHART_YAML))
                   + CHART_YAML.ljust(512, b"\x00")
                   + b"".join(tar_header(f"evil/f{i}".encode(), 0) for i in range(200_000)))
    pax = raw_tgz(tar_header(b"././@PaxHeader", 2 << 30, b"x"))
    twin = tgz({"twin/Chart.yaml": CHART_YAML.replace(b"evil", b"twin"),
                "twin/values.yaml": b"a: 1\n", "other/values.yaml": b"a: 2\n"})
    schema = json.dumps({"properties": {"a": {"type": "string", "pattern": "^(a|aa)+$"}}})
    regex = tgz({"regex/Chart.yaml": CHART_YAML.replace(b"evil", b"regex"),
                 "regex/values.yaml": b"a: " + b"a" * 5000 + b"!\n",
                 "regex/values.schema.json": schema.encode()})
    charts = {"many": many, "pax": pax, "twin": twin, "regex": regex}
    index: dict[str, list[dict[str, Any]]] = {}
    for name, data in charts.items():
        evil.archive(f"{name}-1.0.0.tgz", data)
        index[name] = [entry(name, "1.0.0", digest=sha256(data))]
    evil.route("/drip-1.0.0.tgz", drip(b"\x1f" * 100_000, per_second=1))
    evil.route("/endless-1.0.0.tgz", endless())
    index["drip"] = [entry("drip", "1.0.0", digest="0" * 64)]
    index["endless"] = [entry("endless", "1.0.0", digest="0" * 64)]
    index["meta"] = [entry("meta", "1.0.0", digest="0" * 64,
                           urls=["http://169.254.169.254/latest/x.tgz"])]
    evil.index(index)
    assert call(base, "POST", "/api/repos", {"name": "evil", "url": evil.url}) == 200
    bomb = gzip_bomb(1 << 30, prefix=b"apiVersion: v1\nentries: {}\n#")
    gzipped: dict[str, Any] = {"Content-Encoding": "gzip"}  # a header (body's **headers)
    evil.route("/bomb/index.yaml", body(bomb, **gzipped))
    aliases = b"apiVersion: v1\nentries: {}\na: &a [" + b",".join([b"x"] * 9) + b"]\n" + b"".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode()
        for p, c in zip("abcdefg", "bcdefgh", strict=True))
    evil.route("/aliases/index.yaml", body(aliases))

    def show(chart: str) -> Callable[[], int]:
        return lambda: call(base, "GET", f"/api/charts/{chart}?repo=evil")

    def register(path: str) -> Callable[[], int]:
        return lambda: call(base, "POST", "/api/repos", {"name": "x", "url": evil.url + path})

    install = {"chart_name": "evil/regex", "cluster": "c", "namespace": "default",
               "release_name": "r"}
    return {
        **{f"archive-{c}": [show(c)] for c in ("many", "pax", "twin", "endless", "meta")},
        "archive-drip": [show("drip") for _ in range(10)],
        "index-gzip-bomb": [register("/bomb")],
        "index-alias-bomb": [register("/aliases")],
        "metadata-address": [lambda: call(base, "POST", "/api/repos",
                                          {"name": "m", "url": "http://169.254.169.254"})],
        "schema-pattern": [lambda: call(base, "POST", "/api/releases", install)],
    }


def summary(latencies: list[float]) -> str:
    ok = sorted(x for x in latencies if x != float("inf"))
    failed = len(latencies) - len(ok)
    if not ok:
        return f"no successful call ({failed} failed)"
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
    return (f"{len(latencies)} calls, p50 {statistics.median(ok) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, {failed} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="5 s per phase")
    parser.add_argument("--only", default="", metavar="NAMES",
                        help="comma-separated attacks to run (default: all)")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory() as tmp, HostileRepo() as benign, HostileRepo() as evil:
        fine = tgz({"fine/Chart.yaml": CHART_YAML.replace(b"evil", b"fine"),
                    "fine/values.yaml": b"image: registry.example.com/benign:1.0\n"})
        benign.archive("fine-1.0.0.tgz", fine)
        benign.index({"fine": [entry("fine", "1.0.0", digest=sha256(fine))]})
        proc, base = start_server(Path(tmp) / "data")
        try:
            assert call(base, "POST", "/api/repos", {"name": "benign", "url": benign.url}) == 200
            assert call(base, "POST", "/api/clusters", {"name": "c",
                                                        "kubeconfig": KUBECONFIG}) == 200
            calm = benign_load(base, seconds, args.clients)
            calm_rss = peak_rss_mb(proc.pid)
            stop = threading.Event()
            counts: list[int] = []

            def loop(attack: Callable[[], int]) -> None:
                while not stop.is_set():
                    counts.append(attack())

            chosen = attacks(base, evil)
            if args.only:
                chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
            print(f"attacks: {', '.join(chosen)}")
            threads = [threading.Thread(target=loop, args=(a,), daemon=True)
                       for group in chosen.values() for a in group]
            for t in threads:
                t.start()
            time.sleep(1)
            stormy = benign_load(base, seconds, args.clients)
            stop.set()
            stormy_rss = peak_rss_mb(proc.pid)
            print(f"{'phase':<16} {'benign chart shows':<58} peak RSS")
            print(f"{'no attack':<16} {summary(calm):<58} {calm_rss:.0f} MB")
            print(f"{'under attack':<16} {summary(stormy):<58} {stormy_rss:.0f} MB")
            answers = sorted(set(counts))
            print(f"attack calls: {len(counts)}, HTTP statuses seen: {answers} "
                  "(0 = no answer before the bench stopped)")
            ok = [x for x in stormy if x != float("inf")]
            p99 = sorted(ok)[int(len(ok) * 0.99)] if ok else float("inf")
            print(f"targets: benign p99 < 1 s: {'met' if p99 < 1 else 'MISSED'}; "
                  f"peak RSS < 500 MB: {'met' if stormy_rss < 500 else 'MISSED'}")
        finally:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
