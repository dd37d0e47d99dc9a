"""`capstan-server`'s flags and its start-up failures."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from capstan_server import helm_binary
from capstan_server.app import split_host_port
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.helm_binary import HelmNotFound, resolve_helm_bin
from capstan_server.main import build_parser, helm_for, repo_limits
from capstan_server.threaded import ServerHandle

SERVER_SCRIPT = Path(sys.executable).with_name("capstan-server")


def test_flag_defaults_match_the_documented_ones() -> None:
    args = build_parser().parse_args([])
    assert (args.grpc_listen, args.http_listen) == ("127.0.0.1:50051", "127.0.0.1:8080")
    assert (args.driver, args.dev, args.log_format, args.shutdown_grace) == (
        "helm", False, "text", 30.0)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:50051", "127.0.0.1", 50051), ("[::1]:0", "::1", 0), (":8080", "", 8080)],
)
def test_listen_addresses(listen: str, host: str, port: int) -> None:
    assert split_host_port(listen) == (host, port)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("which", ["grpc", "http"])
def test_a_taken_port_is_a_clear_error_and_exit_status_1(
    which: str, taken_port: int, tmp_path: Path
) -> None:
    listen = {"grpc": "127.0.0.1:0", "http": "127.0.0.1:0"}
    listen[which] = f"127.0.0.1:{taken_port}"
    done = subprocess.run(
        [str(SERVER_SCRIPT), "--driver", "memory", "--data-dir", str(tmp_path),
         "--grpc-listen", listen["grpc"], "--http-listen", listen["http"]],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    label = "gRPC" if which == "grpc" else "HTTP"
    assert f"cannot start: cannot listen for {label} on 127.0.0.1:{taken_port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "advice"),
    [([], "is not an executable file"), (["--driver", "memory", "--dev"], "--dev needs helm")],
    ids=["helm-driver", "dev"],
)
def test_a_missing_helm_is_a_one_line_error_and_exit_status_1(
    flags: list[str], advice: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-helm"
    done = subprocess.run(
        [str(SERVER_SCRIPT), *flags, "--helm-bin", str(missing), "--data-dir",
         str(tmp_path / "data"), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot start: " in lines[0] and str(missing) in lines[0] and advice in lines[0]
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_a_relative_helm_bin_is_resolved_at_start_up(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's `--helm-bin .tools/bin/helm4`: relative to where the server starts, while
    # helm later runs in another working directory.
    tools = tmp_path / ".tools" / "bin"
    tools.mkdir(parents=True)
    helm = tools / "helm4"
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert resolve_helm_bin(Path(".tools/bin/helm4")) == helm
    assert resolve_helm_bin(".tools/bin/helm4", cwd=tmp_path) == helm
    assert helm_for(Path(".tools/bin/helm4"), driver="helm", dev=False) == (helm, None)
    assert helm_for(None, driver="memory", dev=False) == (None, None)
    with pytest.raises(HelmNotFound, match="nope"):
        resolve_helm_bin("nope")
    driver = HelmDriver(data_dir=tmp_path / "d", helm_bin=Path(".tools/bin/helm4"))
    assert driver.command.helm_bin == helm


def test_without_helm_bin_the_checkout_helm_then_path_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helm_binary, "CHECKOUT_HELM", tmp_path / "absent" / "helm")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(HelmNotFound, match=r"no helm found: neither the checkout's pinned .* nor "
                                           r"`helm` on PATH"):
        resolve_helm_bin(None)
    (tmp_path / "bin").mkdir()
    on_path = tmp_path / "bin" / "helm"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert resolve_helm_bin(None) == on_path
    monkeypatch.undo()
    assert resolve_helm_bin(None) == helm_binary.CHECKOUT_HELM  # this checkout's pinned helm


def test_the_fixture_server_reports_its_addresses(capstan_server: ServerHandle) -> None:
    assert capstan_server.grpc_target.startswith("127.0.0.1:")
    assert capstan_server.http_url.startswith("http://127.0.0.1:")
    assert capstan_server.data_dir.is_dir()


def test_repository_and_helm_limit_flags() -> None:
    args = build_parser().parse_args([
        "--allow-repo-host", "charts.internal", "--allow-repo-host", "127.0.0.1",
        "--repo-fetch-timeout", "5", "--repo-min-rate", "100", "--repo-connections", "0",
        "--helm-memory-limit", "1024", "--helm-cpu-limit", "0"])
    limits = repo_limits(args)
    assert limits.allowed_hosts == {"charts.internal", "127.0.0.1"}
    assert (limits.fetch_timeout_s, limits.min_rate_bytes_s) == (5, 100)
    assert limits.connections_per_repo == 1 and not limits.allow_loopback  # only --dev allows it
    assert (args.helm_memory_limit, args.helm_cpu_limit) == (1024, 0)
