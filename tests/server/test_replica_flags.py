"""The flags of several replicas: defaults, bad values, and a kubernetes registry that cannot
be opened (one line, exit status 1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capstan_server.main import build_parser

SERVER_SCRIPT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "capstan-server"


def test_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.registry, args.registry_namespace, args.registry_kubeconfig) == (
        "sqlite", "capstan", None)
    assert (args.replica_id, args.lease_duration, args.on_stuck) == ("", 15.0, "mark-failed")


@pytest.mark.parametrize("flags", [["--lease-duration", "0.5"], ["--lease-duration", "x"],
                                   ["--on-stuck", "ignore"], ["--registry", "etcd"]])
def test_bad_values_are_refused(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(flags)
    assert done.value.code == 2
    assert flags[0] in capsys.readouterr().err


def _start(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER_SCRIPT), "--driver", "memory", "--data-dir", str(tmp_path / "data"),
         "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--registry",
         "kubernetes", *flags], capture_output=True, text=True, timeout=60)


def test_an_unusable_kubernetes_registry_is_a_one_line_error(tmp_path: Path) -> None:
    done = _start(tmp_path, "--registry-kubeconfig", str(tmp_path / "missing"))
    assert done.returncode == 1, done.stderr
    assert "cannot start: registry: cannot read --registry-kubeconfig" in done.stderr
    assert "Traceback" not in done.stderr
