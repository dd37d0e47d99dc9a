"""A hung cluster on the helm driver: two kubesims run as processes of their own, one of them
then stopped with SIGSTOP, as an API server that accepts connections and never answers. Lists
and name lookups with `cluster` set to the healthy one answer as usual; a list of every cluster
answers within the read timeout, from the frozen one's last state, naming it with how stale it
is; once it is continued it is live again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capstan.client import CapstanClient, Unavailable
from capstan_server.drivers.helm import records
from capstan_server.kubeconfig import parse_kubeconfig
from capstan_server.threaded import ServerHandle

pytestmark = pytest.mark.timeout(180)

HELM3 = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm3"
KUBESIM = Path(sys.executable).parent / "kubesim"
READ_TIMEOUT = 1.0
#: What "answers within the read timeout" allows on a loaded 2-core machine.
SLACK = 5.0


@pytest.fixture
def kubesim_process(tmp_path: Path) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes],
                                                                          str]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> tuple[subprocess.Popen[bytes], str]:
        out = tmp_path / f"{name}.kubeconfig"
        proc = subprocess.Popen([str(KUBESIM), "--listen", "127.0.0.1:0", "--kubeconfig-out",
                                 str(out), "--no-controllers"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size):
            assert proc.poll() is None and time.monotonic() < deadline, "kubesim did not start"
            time.sleep(0.05)
        return proc, out.read_text()

    yield start
    for proc in started:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)


def seed_release(kubeconfig: str, name: str) -> None:
    """A release record in helm's format, written over the API as helm would."""
    server = parse_kubeconfig(kubeconfig).server
    doc = {"name": name, "namespace": "default", "version": 1, "manifest": "", "config": {},
           "chart": {"metadata": {"name": "etcd", "version": "8.11.1"}},
           "info": {"status": "deployed", "description": "Install complete",
                    "last_deployed": "2026-01-02T03:04:05Z"}}
    body = json.dumps(records.record_object(doc)).encode()
    request = urllib.request.Request(f"{server}/api/v1/namespaces/default/secrets", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_frozen_cluster_is_answered_from_its_last_state(
    capstan_server_factory: Callable[..., ServerHandle],
    kubesim_process: Callable[[str], tuple[subprocess.Popen[bytes], str]],
) -> None:
    if not os.access(HELM3, os.X_OK):
        pytest.skip(f"{HELM3} is not installed; run `make setup`")
    server = capstan_server_factory(driver="helm", helm_bin=HELM3,
                                    cluster_read_timeout=READ_TIMEOUT)
    (_, near_config), (far_proc, far_config) = kubesim_process("near"), kubesim_process("far")
    with CapstanClient(server.grpc_target, timeout=60, retries=0) as client:
        client.create_cluster("near", near_config)
        client.create_cluster("far", far_config)
        seed_release(near_config, "rel-near")
        seed_release(far_config, "rel-far")
        deadline = time.monotonic() + 30
        while len(client.list_releases().releases) < 2:
            assert time.monotonic() < deadline, "the seeded releases were never listed"
            time.sleep(0.1)

        far_proc.send_signal(signal.SIGSTOP)
        # At once: the cache still counts as live, but reading namespace ids is bounded too.
        _, took = timed(client.list_releases)
        assert took < READ_TIMEOUT + SLACK
        time.sleep(READ_TIMEOUT + 0.5)  # past the time an answer counts as proof of life

        for _ in range(3):
            page, took = timed(client.list_releases)
            assert took < READ_TIMEOUT + SLACK
            assert sorted(r.name for r in page.releases) == ["rel-far", "rel-near"]  # type: ignore[attr-defined]
            (down,) = page.unreachable_clusters  # type: ignore[attr-defined]
            assert down.name == "far" and down.stale_seconds >= READ_TIMEOUT

        near_page, took = timed(lambda: client.list_releases(cluster="near"))
        assert took < SLACK
        assert [r.name for r in near_page.releases] == ["rel-near"]  # type: ignore[attr-defined]
        assert list(near_page.unreachable_clusters) == []  # type: ignore[attr-defined]
        found, took = timed(lambda: client.get_release("rel-near", cluster="near"))
        assert took < SLACK and found.cluster == "near"  # type: ignore[attr-defined]

        started = time.monotonic()
        with pytest.raises(Unavailable, match="cluster 'far' could not be reached"):
            client.get_release("rel-near")
        assert time.monotonic() - started < READ_TIMEOUT + SLACK

        far_proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while client.list_releases().unreachable_clusters:
            assert time.monotonic() < deadline, "the continued cluster stayed stale"
            time.sleep(0.1)
        assert client.get_release("rel-far").cluster == "far"
