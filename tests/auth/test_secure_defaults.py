"""Acceptance 7: without a policy the server refuses to listen beyond loopback, unless told
`--insecure-no-auth` (then it warns); a broken policy stops the start with its reason."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from capstan_server.auth.setup import is_loopback

SERVER = Path(sys.executable).with_name("capstan-server")


def _start(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SERVER), "--driver", "memory", "--data-dir", str(tmp_path / "data"),
         "--http-listen", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_no_policy_on_every_interface_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    done = _start(tmp_path, "--grpc-listen", "0.0.0.0:0")
    _, stderr = done.communicate(timeout=60)
    assert done.returncode == 1, stderr
    assert "refusing to listen on 0.0.0.0 without authentication" in stderr
    assert "--auth-policy" in stderr and "--insecure-no-auth" in stderr
    assert "Traceback" not in stderr


def test_insecure_no_auth_starts_and_warns(tmp_path: Path) -> None:
    server = _start(tmp_path, "--grpc-listen", "0.0.0.0:0", "--insecure-no-auth")
    try:
        deadline = time.monotonic() + 60
        seen = ""
        assert server.stderr is not None
        while time.monotonic() < deadline and "serving" not in seen:
            line = server.stderr.readline()
            if not line:
                break
            seen += line
        assert "WARNING" in seen and "WITHOUT authentication" in seen
        assert " serving " in seen, seen
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_a_broken_policy_stops_the_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("subjects:\n  - name: x\n    role: boss\n    token_sha256: abc\n")
    done = _start(tmp_path, "--grpc-listen", "127.0.0.1:0", "--auth-policy", str(policy))
    _, stderr = done.communicate(timeout=60)
    assert done.returncode == 1
    assert "subjects[0].token_sha256: expected 64 hex digits" in stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.8.0.1", True),
     ("", False), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
