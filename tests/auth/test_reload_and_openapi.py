"""The policy is re-read on SIGHUP and when its file changes; a broken file keeps the old one
(and the log says why). The OpenAPI document declares the security schemes and 401/403."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from auth_kit import TOKENS, sha256
from auth_server import Secured, bearer

from capstan.v1 import cluster_pb2

NEW_TOKEN = "a-token-added-later-0123"


def _list(secured: Secured, token: str) -> grpc.StatusCode:
    try:
        secured.clusters().ListClusters(cluster_pb2.ListClustersRequest(),
                                        metadata=bearer(token), timeout=30)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


def _wait_for(check: object, timeout: float = 30.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _bump(path: Path) -> None:
    # Make sure the change is seen even on file systems with coarse modification times.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_policy(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="capstan.auth")
    assert _list(secured, NEW_TOKEN) is grpc.StatusCode.UNAUTHENTICATED
    text = secured.policy.read_text()
    added = text.replace("subjects:\n", "subjects:\n  - name: later\n"
                         f'    token_sha256: "{sha256(NEW_TOKEN)}"\n    role: admin\n', 1)
    secured.policy.write_text(added)
    _bump(secured.policy)
    assert _wait_for(lambda: _list(secured, NEW_TOKEN) is grpc.StatusCode.OK)

    secured.policy.write_text(added.replace("role: admin", "role: overlord", 1))
    _bump(secured.policy)
    assert _wait_for(lambda: any("policy not reloaded" in r.getMessage()
                                 for r in caplog.records))
    message = next(r.getMessage() for r in caplog.records
                   if "policy not reloaded" in r.getMessage())
    assert "'overlord' is not viewer, editor or admin" in message
    assert _list(secured, NEW_TOKEN) is grpc.StatusCode.OK  # the old policy is still in force
    assert secured.server.server.reload_policy() is False


def test_sighup_reloads_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f'subjects:\n  - name: a\n    token_sha256: "{sha256("x" * 20)}"\n'
                      "    role: admin\n")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("capstan-server")), "--driver", "memory",
         "--data-dir", str(tmp_path / "data"), "--grpc-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--auth-policy", str(policy)],
        stderr=subprocess.PIPE, text=True,
    )
    assert server.stderr is not None
    try:
        while " serving " not in (line := server.stderr.readline()):
            assert line, "the server stopped"
        server.send_signal(signal.SIGHUP)
        while "policy reloaded" not in (line := server.stderr.readline()):
            assert line, "the server stopped"
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_openapi_declares_security(secured: Secured) -> None:
    with urllib.request.urlopen(secured.server.http_url + "/openapi.json", timeout=30) as r:
        document = json.loads(r.read())
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["authToken"] == {**schemes["authToken"], "in": "header",
                                    "name": "X-Auth-Token"}
    assert {next(iter(s)) for s in document["security"]} == set(schemes)
    create = document["paths"]["/api/releases"]["post"]
    assert {"401", "403"} <= create["responses"].keys()
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert TOKENS["admin"] not in json.dumps(document)
