"""The example in client/README.md runs as written against a server on the memory driver."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from capstan.client import CapstanClient
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle

README = Path(__file__).resolve().parents[2] / "client" / "README.md"


def test_the_readme_example_runs(
    capstan_server: ServerHandle, chart_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    with CapstanClient(capstan_server.grpc_target) as capstan:
        capstan.create_cluster("test122", fake_kubeconfig)
        capstan.create_repository("bitnami-new", chart_repo.url)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example.replace("127.0.0.1:50051", capstan_server.grpc_target), {})

    lines = printed.getvalue().splitlines()
    assert "[(1, 'etcd-8.11.1', 'superseded'), (2, 'etcd-8.11.1', 'superseded'), " \
        "(3, 'etcd-8.11.2', 'deployed')]" in lines
    assert "{'image': {'tag': '3.5.8-debian-11-r9'}}" in lines
    assert lines[-1].startswith("StatusCode.NOT_FOUND ")
