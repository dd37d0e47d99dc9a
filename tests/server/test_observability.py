"""Observability: `/metrics` scraped after real calls on the helm driver carries the RPC, helm,
queue, cache and release series; `/livez` and `/readyz`; request ids in log lines, in error
details (gRPC and REST) and in the `X-Request-Id` answer header; `--version`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from capstan.client import CapstanClient, NotFound
from capstan.v1 import release_pb2, release_pb2_grpc
from capstan_server import request_ids
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.logs import RequestIdFilter, TextFormatter
from capstan_server.threaded import ServerHandle
from kubesim.testing import running_kubesim

pytestmark = pytest.mark.timeout(180)

HELM3 = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm3"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def cluster_config() -> Iterator[str]:
    with running_kubesim(tls=True) as sim:
        yield sim.kubeconfig


def test_metrics_carry_rpc_helm_queue_cache_and_release_series(
    capstan_server_factory: Callable[..., ServerHandle], chart_repo: ChartRepoServer,
    cluster_config: str,
) -> None:
    if not os.access(HELM3, os.X_OK):
        pytest.skip(f"{HELM3} is not installed; run `make setup`")
    server = capstan_server_factory(driver="helm", helm_bin=HELM3, max_helm_processes=3)
    with CapstanClient(server.grpc_target, timeout=60, retries=0) as client:
        client.create_cluster("one", cluster_config)
        client.create_repository("samples", chart_repo.url)
        client.create_release("samples/etcd", cluster="one", namespace="default",
                              release_name="metered", version="8.11.1")
        assert [r.name for r in client.list_releases().releases] == ["metered"]
        with pytest.raises(NotFound):
            client.get_release("nothing-here")

    status, headers, body = get(f"{server.http_url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    for series in (
        'capstan_rpc_requests_total{code="OK",method="/capstan.v1.ReleaseService/ListReleases"}',
        'capstan_rpc_requests_total{code="NOT_FOUND",method="/capstan.v1.ReleaseService/'
        'GetRelease"}',
        'capstan_rpc_duration_seconds_bucket{code="OK",le="0.1",'
        'method="/capstan.v1.ReleaseService/ListReleases"}',
        'capstan_helm_runs_total{helm_major="3",operation="install",outcome="ok"}',
        'capstan_helm_run_duration_seconds_count{helm_major="3",operation="install"}',
        "capstan_helm_queue_depth 0.0",
        "capstan_helm_processes_max 3.0",
        'capstan_release_cache_releases{cluster="one"} 1.0',
        'capstan_release_cache_stale_seconds{cluster="one"} 0.0',
        'capstan_release_cache_synced{cluster="one"} 1.0',
        'capstan_releases{cluster="one",status="deployed"} 1.0',
    ):
        assert series in text, f"{series} not in /metrics"

    assert get(f"{server.http_url}/livez")[0] == 200
    status, _, body = get(f"{server.http_url}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"started": True, "registry": "ok",
                                          "release_caches": {"one": "synced"}}


def test_request_ids_in_rest_answers_and_error_details(capstan_server: ServerHandle) -> None:
    url = f"{capstan_server.http_url}/api/releases/nothing-here"
    status, headers, body = get(url, {"X-Request-Id": "req-42"})
    assert (status, headers["X-Request-Id"]) == (404, "req-42")
    assert {"request_id": "req-42"} in json.loads(body)["details"]

    # Without one (or with one that is not a sane token), a new id is made and returned.
    for sent in ({}, {"X-Request-Id": "no spaces allowed"}):
        status, headers, body = get(url, sent)
        generated = headers["X-Request-Id"]
        assert status == 404 and re.fullmatch(r"[0-9a-f]{32}", generated)
        assert {"request_id": generated} in json.loads(body)["details"]

    # The gateway's own refusals carry it too.
    status, headers, body = get(f"{capstan_server.http_url}/api/nowhere", {"X-Request-Id": "r1"})
    assert (status, headers["X-Request-Id"]) == (404, "r1")
    assert {"request_id": "r1"} in json.loads(body)["details"]
    assert get(f"{capstan_server.http_url}/livez")[0] == 200
    assert get(f"{capstan_server.http_url}/readyz")[0] == 200


def test_request_ids_over_grpc_and_in_log_lines(capstan_server: ServerHandle,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="capstan.rpc")
    with grpc.insecure_channel(capstan_server.grpc_target) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetRelease(release_pb2.GetReleaseRequest(id="nothing-here"),
                            metadata=[("x-request-id", "grpc-7")], timeout=30)
        assert dict(caught.value.initial_metadata())["x-request-id"] == "grpc-7"  # type: ignore[attr-defined]
    with CapstanClient(capstan_server.grpc_target, timeout=30) as client:
        with pytest.raises(NotFound) as refused:
            client.get_release("nothing-here")
        assert any("request_id" in d for d in refused.value.details)

    lines = [r for r in caplog.records if r.name == "capstan.rpc"
             and getattr(r, "fields", {}).get("method", "").endswith("/GetRelease")]
    assert "grpc-7" in [r.fields["request_id"] for r in lines]  # type: ignore[attr-defined]


def test_every_log_line_made_while_serving_names_the_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("capstan.test-request-ids")
    logger.addHandler(handler)
    try:
        with request_ids.bound("abc-9"):
            logger.warning("inside a call")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith("inside a call request_id=abc-9")
    assert "request_id" not in outside


@pytest.mark.parametrize("command", ["capstan", "capstan-server"])
def test_version(command: str) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / command), "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert re.fullmatch(rf"{command} \d+\.\d+\.\d+\S*\n", done.stdout)
