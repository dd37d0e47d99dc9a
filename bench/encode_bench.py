"""The REST gateway's JSON encoding of answers, in process: a ListReleasesResponse page of 200
listed releases and one shown release (config and live resources), through `to_dict` and the
answer bytes, against the json_format-based encoding they replaced (issue 12).

    .venv/bin/python bench/encode_bench.py [--quick] [--runs 200]

Prints one table: the best of `--runs` runs of each (in-process timings vary with the
machine's load; the best run is the steadiest figure). Target: a page of 200 rows encoded in
well under the ~3.7 ms that a 20x-faster-than-helm walk of 1,000 releases in pages of 200 leaves
each page end to end. The reference (tests/client/json_reference.py) is the encoding before
issue 12: json_format.MessageToDict plus a reshaping pass, then json.dumps.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "client"), str(ROOT / "tests" / "client")]

from json_reference import reference_to_dict  # noqa: E402

from capstan.client import to_dict  # noqa: E402
from capstan.v1 import release_pb2  # noqa: E402
from capstan_server.gateway.json_body import dumps  # noqa: E402

CLUSTER = "3301005f-6563-4d06-9c2e-84f6e5b340c7"


def listed_page(rows: int = 200) -> release_pb2.ListReleasesResponse:
    """A page as ListReleases answers it: the rows of `helm list`, no config or resources."""
    page = release_pb2.ListReleasesResponse(total=1000, limit=rows)
    for i in range(rows):
        name, namespace = f"bench-{i:04d}", f"bench-{i % 10}"
        release = page.releases.add(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)), name=name, cluster="c",
            cluster_id=CLUSTER, clusterID=CLUSTER, namespace=namespace,
            namespace_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, namespace)),
            external_id=f"{CLUSTER}/{namespace}/{name}", chart="etcd", chart_version="8.11.1",
            app_version="3.5.8", version=3, status="deployed", type="external",
            description="Install complete", project_domain="Default")
        release.created_at.FromNanoseconds(1796204841_039822000 + i * 7_000_001_000)
        release.updated_at.CopyFrom(release.created_at)
    return page


def shown_release() -> release_pb2.Release:
    """A release as GetRelease answers it: values and 20 live resources with their objects."""
    release = release_pb2.Release(name="etcd-release", version=3, status="deployed")
    release.created_at.FromNanoseconds(1796204841_039822000)
    release.config.update({
        f"section{i}": {"replicaCount": 3, "image": {"tag": "3.5.8-debian-11-r9"},
                        "ports": [2379, 2380], "ratio": 0.5, "enabled": i % 2 == 0}
        for i in range(20)})
    for i in range(20):
        kind = ("pod", "service", "configmap", "statefulset")[i % 4]
        item = release.resources[kind].items.add(
            api_version="v1", kind=kind.title(), name=f"etcd-{i}", namespace="default",
            uid=str(uuid.uuid4()), ready=True, status="Running")
        item.created_at.FromSeconds(1796204841)
        item.object_json = json.dumps({
            "metadata": {"name": f"etcd-{i}", "labels": {f"k{j}": "v" for j in range(8)}},
            "spec": {"containers": [{"name": "etcd", "ports": [{"containerPort": 2379}]}]}})
    return release


def best_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up (and the encoders are built)
    return min(timeit.repeat(fn, number=1, repeat=runs)) * 1000


def old_dumps(data: Any) -> bytes:
    # The gateway's before issue 12: json.dumps, then aiohttp's encoding of the text.
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, help="runs per case (default 200, --quick 20)")
    args = parser.parse_args()
    runs = args.runs or (20 if args.quick else 200)
    rows: list[tuple[str, float, float]] = []
    for label, message in (("page of 200 listed releases", listed_page()),
                           ("one shown release", shown_release())):
        data = to_dict(message)
        assert json.loads(dumps(data)) == json.loads(old_dumps(reference_to_dict(message)))
        new = best_ms(partial(to_dict, message), runs)
        old = best_ms(partial(reference_to_dict, message), runs)
        rows.append((f"{label}: to_dict", old, new))
        new_bytes = best_ms(partial(dumps, data), runs)
        old_bytes = best_ms(partial(old_dumps, data), runs)
        rows.append((f"{label}: answer bytes ({len(dumps(data)) // 1024} KB)", old_bytes,
                     new_bytes))
        rows.append((f"{label}: both", old + old_bytes, new + new_bytes))
    width = max(len(row[0]) for row in rows)
    print(f"\nJSON encoding of answers, best of {runs} runs")
    print(f"{'case':<{width}}  {'before ms':>9}  {'after ms':>8}  speed-up")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 8}  {'-' * 8}")
    for case, old, new in rows:
        print(f"{case:<{width}}  {old:>9.2f}  {new:>8.2f}  {old / new:>7.1f}x")


if __name__ == "__main__":
    main()
