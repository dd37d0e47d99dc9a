"""`make fuzz`: schemathesis over the gateway's own /openapi.json, with every check, against a
test server (memory driver, a cluster and the sample chart repository registered, one release),
with an auth policy loaded: schemathesis calls as its admin, and also checks that calls without
a credential, or with a made-up one, are refused.

Fails (exit code non-zero) on any 5xx, any answer that breaks the document (status, content
type, headers, schema), any schema-invalid request the server accepts and any valid one it
refuses. Time-bounded: `--max-time` (default 90 s, so about two minutes with start-up).

    python scripts/fuzz.py [--max-time SECONDS] [--workers N] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "server"), str(REPO_ROOT / "client")]

from capstan_server.auth.options import SecurityOptions  # noqa: E402
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer  # noqa: E402
from capstan_server.threaded import start_server  # noqa: E402

HELM = REPO_ROOT / ".tools" / "bin" / "helm"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fuzz
  cluster: {server: "https://fuzz.invalid:6443"}
users:
- name: admin
  user: {token: not-a-secret}
contexts:
- name: fuzz
  context: {cluster: fuzz, user: admin, namespace: default}
current-context: fuzz
"""


def _policy(directory: Path, token: str) -> Path:
    path = directory / "policy.yaml"
    digest = hashlib.sha256(token.encode()).hexdigest()
    path.write_text(f"subjects:\n  - name: fuzz\n    token_sha256: \"{digest}\"\n    role: admin\n")
    return path


def _post(base: str, path: str, body: object, token: str) -> None:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-time", type=int, default=90, help="seconds of fuzzing")
    # One worker: hypothesis builds strategies with `ast`, which CPython 3.11 does not
    # guard against concurrent threads ("AST constructor recursion depth mismatch").
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="for a reproducible run")
    args = parser.parse_args()
    st = Path(sys.executable).with_name("st")
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="capstan-fuzz-") as tmp, ChartRepoServer(
        SAMPLE_CHARTS_DIR, HELM, out_dir=Path(tmp) / "charts"
    ).serve_in_thread() as charts, start_server(
        data_dir=Path(tmp) / "data", grace=5, allow_repo_hosts=("127.0.0.1",),
        security=SecurityOptions(auth_policy=_policy(Path(tmp), token)),
    ) as server:
        base = server.http_url
        _post(base, "/api/clusters", {"name": "fuzz", "kubeconfig": KUBECONFIG}, token)
        _post(base, "/api/repos", {"name": "samples", "url": charts.url}, token)
        _post(base, "/api/releases", {"chart_name": "samples/etcd", "release_name": "etcd"},
              token)
        command = [
            str(st), "--config-file", str(REPO_ROOT / "scripts" / "fuzz.toml"),
            "run", f"{base}/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--checks", "all",
            "--max-time", str(args.max_time),
            "--workers", str(args.workers),
            "--request-timeout", "30",
            "--suppress-health-check", "too_slow",
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        return subprocess.run(command, cwd=tmp, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
