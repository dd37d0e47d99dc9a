"""Unit tests of helm argv building, validation and error mapping (no cluster needed)."""

from __future__ import annotations

import asyncio
import stat
import sys
import time
from pathlib import Path

import pytest

from capstan_server.drivers.base import (
    ChartSource,
    ClusterTarget,
    InstallOptions,
    ReleaseRef,
    RollbackOptions,
    UpgradeOptions,
)
from capstan_server.drivers.helm.argv import (
    HelmVersion,
    install_argv,
    rollback_argv,
    uninstall_argv,
    upgrade_argv,
    validate_labels,
)
from capstan_server.drivers.helm.command import HelmCommand
from capstan_server.drivers.helm.helm_errors import helm_error_message, map_helm_error
from capstan_server.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    Unavailable,
)

V3 = HelmVersion(3, 17, 2)
V4 = HelmVersion(4, 1, 4)
KC = Path("/data/helm/kubeconfigs/c1-abc.yaml")
VALUES = Path("/data/helm/tmp/values-x.yaml")
CLUSTER = ClusterTarget(id="c1", name="test122", kubeconfig="apiVersion: v1\n")


def chart(tmp_path: Path) -> ChartSource:
    archive = tmp_path / "etcd-8.11.1.tgz"
    archive.write_bytes(b"")
    return ChartSource(repo_id="r1", repo_name="bitnami-new", repo_url="http://x",
                       name="etcd", version="8.11.1", app_version="3.5.8", archive=archive)


def ref(name: str = "etcd-release", namespace: str = "default") -> ReleaseRef:
    return ReleaseRef(cluster=CLUSTER, namespace=namespace, name=name)


def test_version_parse() -> None:
    assert HelmVersion.parse("v3.17.2\n") == V3
    assert HelmVersion.parse("v4.1.4") == V4
    with pytest.raises(OperationFailed):
        HelmVersion.parse("v2.17.0")
    with pytest.raises(OperationFailed):
        HelmVersion.parse("garbage")


@pytest.mark.parametrize("version", [V3, V4])
def test_install_plain(version: HelmVersion, tmp_path: Path) -> None:
    opts = InstallOptions(ref=ref(), chart=chart(tmp_path), values={"a": 1},
                          labels={"capstan.io/release-id": "u1", "capstan.io/type": "external"},
                          timeout=120)
    argv = install_argv(version, opts, kubeconfig=KC, values_file=VALUES)
    assert argv[0] == "install"
    assert argv[-3:] == ["--", "etcd-release", str(opts.chart.archive)]
    assert "--namespace=default" in argv and f"--kubeconfig={KC}" in argv
    assert f"--values={VALUES}" in argv and "--output=json" in argv
    assert "--timeout=120s" in argv
    assert "--labels=capstan.io/release-id=u1,capstan.io/type=external" in argv
    assert not any(a.startswith(("--wait", "--atomic", "--rollback-on-failure", "--dry-run"))
                   for a in argv)
    assert not any(a.startswith("--history-max") for a in argv)  # install has no such flag


def test_install_wait_atomic_per_major(tmp_path: Path) -> None:
    opts = InstallOptions(ref=ref(), chart=chart(tmp_path), values={}, labels={}, wait=True,
                          atomic=True, description="first", create_namespace=True)
    v3 = install_argv(V3, opts, kubeconfig=KC, values_file=VALUES)
    v4 = install_argv(V4, opts, kubeconfig=KC, values_file=VALUES)
    assert "--atomic" in v3 and "--wait" in v3 and "--rollback-on-failure" not in v3
    assert "--rollback-on-failure" in v4 and "--wait=watcher" in v4 and "--atomic" not in v4
    assert "--wait" not in v4  # helm 4's bare --wait would mean the same, but say it
    for argv in (v3, v4):
        assert "--description=first" in argv and "--create-namespace" in argv


def test_atomic_implies_wait(tmp_path: Path) -> None:
    opts = UpgradeOptions(ref=ref(), chart=chart(tmp_path), values={}, labels={}, atomic=True)
    assert "--wait" in upgrade_argv(V3, opts, kubeconfig=KC, values_file=VALUES)
    assert "--wait=watcher" in upgrade_argv(V4, opts, kubeconfig=KC, values_file=VALUES)


@pytest.mark.parametrize("version", [V3, V4])
def test_dry_run_never_waits(version: HelmVersion, tmp_path: Path) -> None:
    opts = InstallOptions(ref=ref(), chart=chart(tmp_path), values={}, labels={},
                          dry_run=True, wait=True, atomic=True)
    argv = install_argv(version, opts, kubeconfig=KC, values_file=VALUES)
    assert "--dry-run=server" in argv
    assert not any(a.startswith(("--wait", "--atomic", "--rollback")) for a in argv)


@pytest.mark.parametrize("version", [V3, V4])
def test_upgrade_flags(version: HelmVersion, tmp_path: Path) -> None:
    base = UpgradeOptions(ref=ref(), chart=chart(tmp_path), values={}, labels={},
                          history_max=5)
    argv = upgrade_argv(version, base, kubeconfig=KC, values_file=VALUES)
    assert argv[0] == "upgrade" and "--history-max=5" in argv
    assert "--reuse-values" not in argv and "--reset-values" not in argv
    reuse = upgrade_argv(version, UpgradeOptions(**{**base.__dict__, "reuse_values": True}),
                         kubeconfig=KC, values_file=VALUES)
    assert "--reuse-values" in reuse
    both = upgrade_argv(version, UpgradeOptions(**{**base.__dict__, "reuse_values": True,
                                                   "reset_values": True}),
                        kubeconfig=KC, values_file=VALUES)
    assert "--reset-values" in both and "--reuse-values" not in both  # helm: reset wins


def test_rollback_and_uninstall() -> None:
    r3 = rollback_argv(V3, RollbackOptions(ref=ref(), revision=2, wait=True, history_max=10),
                       kubeconfig=KC)
    r4 = rollback_argv(V4, RollbackOptions(ref=ref(), revision=2, wait=True), kubeconfig=KC)
    assert r3[-3:] == ["--", "etcd-release", "2"] and "--wait" in r3
    assert "--wait=watcher" in r4 and "--history-max=10" in r4
    prev = rollback_argv(V3, RollbackOptions(ref=ref(), revision=0), kubeconfig=KC)
    assert prev[-2:] == ["--", "etcd-release"]
    un = uninstall_argv(V4, ref(), kubeconfig=KC, timeout=30)
    assert un[0] == "uninstall" and un[-2:] == ["--", "etcd-release"] and "--timeout=30s" in un


@pytest.mark.parametrize("bad", ["-x", "--kubeconfig=/x", "Upper", "a_b", "a" * 54, "",
                                 "a b", "x;rm"])
def test_names_that_could_be_flags_are_rejected(bad: str, tmp_path: Path) -> None:
    opts = InstallOptions(ref=ref(name=bad), chart=chart(tmp_path), values={}, labels={})
    with pytest.raises(InvalidArgument):
        install_argv(V3, opts, kubeconfig=KC, values_file=VALUES)
    with pytest.raises(InvalidArgument):
        uninstall_argv(V4, ref(name=bad), kubeconfig=KC, timeout=1)


def test_bad_namespace_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        rollback_argv(V3, RollbackOptions(ref=ref(namespace="--all"), revision=1),
                      kubeconfig=KC)


def test_description_cannot_become_a_flag(tmp_path: Path) -> None:
    opts = InstallOptions(ref=ref(), chart=chart(tmp_path), values={}, labels={},
                          description="--kubeconfig=/etc/x")
    argv = install_argv(V3, opts, kubeconfig=KC, values_file=VALUES)
    # One argv element, `--flag=value` form: helm reads it as the description's value.
    assert "--description=--kubeconfig=/etc/x" in argv


@pytest.mark.parametrize("labels", [{"owner": "x"}, {"a": "b,c=d"}, {"a=b": "c"},
                                    {"a": "-" * 70}, {"-a": "b"}])
def test_bad_labels_rejected(labels: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        validate_labels(labels)


def test_good_labels() -> None:
    validate_labels({"capstan.io/release-id": "0b7c7f3e-1d2a-4c59-9a1e-7f0e4d1c2b3a",
                     "capstan.io/repo-id": "", "capstan.io/type": "external"})


@pytest.mark.parametrize(("stderr", "error"), [
    ("Error: INSTALLATION FAILED: cannot re-use a name that is still in use", AlreadyExists),
    ('Error: UPGRADE FAILED: "x" has no deployed releases', NotFound),
    ("Error: release: not found", NotFound),
    ("Error: release has no 0 version", NotFound),
    ('Error: INSTALLATION FAILED: create: failed to create: namespaces "nope" not found',
     NotFound),
    ('Error: INSTALLATION FAILED: resource mapping not found for name: "w" namespace: "" '
     'from "": no matches for kind "Widget" in version "demo.capstan.io/v1"\n'
     "ensure CRDs are installed first", FailedPrecondition),
    ("Error: UPGRADE FAILED: execution error at (guarded/templates/NOTES.txt:1:4): \n"
     "PASSWORDS ERROR: You must provide your current passwords", InvalidArgument),
    ("Error: INSTALLATION FAILED: values don't meet the specifications of the schema(s) in the "
     "following chart(s):\netcd:\n- replicaCount: Invalid type", InvalidArgument),
    ('Error: INSTALLATION FAILED: template: x/templates/a.yaml:3:4: executing "x" at '
     "<required \"need it\" .Values.a>: error calling required: need it", InvalidArgument),
    ("Error: INSTALLATION FAILED: Unable to continue with install: ConfigMap \"c\" in "
     "namespace \"n\" exists and cannot be imported into the current release",
     FailedPrecondition),
    ("Error: INSTALLATION FAILED: chart hit a bug in Capstan's own temp files", OperationFailed),
    ("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
     Aborted),
    ('Error: UPGRADE FAILED: create: failed to create: secrets "sh.helm.release.v1.x.v3" '
     "already exists", Aborted),
    ('Error: INSTALLATION FAILED: Kubernetes cluster unreachable: Get "https://127.0.0.1:1/'
     'version": dial tcp 127.0.0.1:1: connect: connection refused', Unavailable),
    ("Error: dial tcp: lookup nowhere.invalid: no such host", Unavailable),
    ("Error: UPGRADE FAILED: context deadline exceeded", DeadlineExceeded),
    ("Error: INSTALLATION FAILED: timed out waiting for the condition", DeadlineExceeded),
    ("Error: INSTALLATION FAILED: resource Deployment/ns/x not ready. status: InProgress, "
     "message: Available: 0/1", DeadlineExceeded),
    ("Error: UPGRADE FAILED: release x failed, and has been rolled back due to atomic being "
     "set: context deadline exceeded", OperationFailed),
    ('level=WARN msg="something"\nError: INSTALLATION FAILED: admission webhook denied',
     FailedPrecondition),
])
def test_error_mapping(stderr: str, error: type[Exception]) -> None:
    mapped = map_helm_error(helm_error_message(stderr), operation="install")
    assert type(mapped) is error
    assert "level=WARN" not in mapped.message and not mapped.message.startswith("Error:")


def test_error_message_keeps_every_line_of_a_multi_line_error() -> None:
    # helm 3's multi-error and a template's multi-line `fail`: nothing after the first line
    # may be lost, and helm's --debug hint and slog lines are no part of it.
    stderr = ("Error: UPGRADE FAILED: 2 errors occurred:\n"
              "\t* Deployment.apps \"x\" is invalid: spec.replicas: must be >= 0\n"
              "\t* Service \"x\" is invalid: spec.ports[0].port: must be > 0\n\n\n"
              'time=2026-12-01T00:00:00Z level=WARN msg="noise"\n'
              "Use --debug flag to render out invalid YAML\n")
    message = helm_error_message(stderr)
    assert message == ("UPGRADE FAILED: 2 errors occurred:\n"
                       "\t* Deployment.apps \"x\" is invalid: spec.replicas: must be >= 0\n"
                       "\t* Service \"x\" is invalid: spec.ports[0].port: must be > 0")
    assert type(map_helm_error(message, operation="upgrade")) is InvalidArgument
    assert len(helm_error_message("Error: x\n" + "y" * 100_000)) <= 4003


def test_error_message_keeps_only_errors_from_helm4_stderr() -> None:
    stderr = ('level=WARN msg="unable to find exact version"\n'
              'level=ERROR msg="release name check failed" error="x"\n'
              "Error: INSTALLATION FAILED: release name check failed: bad")
    assert helm_error_message(stderr) == "INSTALLATION FAILED: release name check failed: bad"


# -- the runner, with a fake helm -------------------------------------------------------------

FAKE_HELM = """#!{python}
import json, os, signal, sys, time
args = sys.argv[1:]
log = os.environ["HELM_DATA_HOME"] + "/../calls.jsonl"
with open(log, "a") as f:
    f.write(json.dumps({{"args": args, "env": {{k: v for k, v in os.environ.items()}}}}) + "\\n")
if args[0] == "version":
    print("v4.1.4", end="")
elif args[0] == "sleep":
    def term(*_):
        print("Release x has been cancelled.")
        sys.stderr.write("Error: UPGRADE FAILED: context canceled\\n")
        sys.exit(1)
    if args[1] == "trap":
        signal.signal(signal.SIGTERM, term)
    elif args[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(30)
elif args[0] == "big":
    sys.stdout.write("x" * 1_000_000)
elif args[0] == "fail":
    sys.stderr.write("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) "
                     "is in progress\\n")
    sys.exit(1)
"""


@pytest.fixture
def fake_helm(tmp_path: Path) -> Path:
    path = tmp_path / "helm"
    path.write_text(FAKE_HELM.format(python=sys.executable))
    path.chmod(0o755)
    return path


async def test_runner_env_files_and_version(fake_helm: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_DRIVER", "sql")
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")
    cmd = HelmCommand(fake_helm, tmp_path / "data")
    assert await cmd.version() == V4
    kubeconfig = cmd.kubeconfig_file(CLUSTER)
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert kubeconfig.read_text() == CLUSTER.kubeconfig
    assert cmd.kubeconfig_file(CLUSTER) == kubeconfig  # written once
    for sub in ("", "home/cache", "home/config", "home/data", "kubeconfigs", "tmp"):
        assert stat.S_IMODE((tmp_path / "data" / "helm" / sub).stat().st_mode) == 0o700
    result = await cmd.run(["big"], deadline=10, operation="test")
    assert len(result.stdout) == 1_000_000
    calls = (tmp_path / "data" / "helm" / "home" / "calls.jsonl").read_text().splitlines()
    import json
    env = json.loads(calls[-1])["env"]
    assert env["HELM_DRIVER"] == "secret" and "KUBECONFIG" not in env
    assert env["HELM_CACHE_HOME"].startswith(str(tmp_path / "data"))


async def test_runner_maps_failures(fake_helm: Path, tmp_path: Path) -> None:
    cmd = HelmCommand(fake_helm, tmp_path / "data")
    with pytest.raises(Aborted):
        await cmd.run(["fail"], deadline=10, operation="upgrade")


async def test_deadline_sends_sigterm_first(fake_helm: Path, tmp_path: Path) -> None:
    cmd = HelmCommand(fake_helm, tmp_path / "data", term_grace=5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await cmd.run(["sleep", "trap"], deadline=0.5, operation="upgrade")
    assert time.monotonic() - started < 4  # exited on SIGTERM, not killed after the grace


async def test_sigkill_only_as_last_resort(fake_helm: Path, tmp_path: Path) -> None:
    cmd = HelmCommand(fake_helm, tmp_path / "data", term_grace=0.5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await cmd.run(["sleep", "ignore"], deadline=0.3, operation="upgrade")
    assert time.monotonic() - started < 5


async def test_cancellation_stops_helm(fake_helm: Path, tmp_path: Path) -> None:
    cmd = HelmCommand(fake_helm, tmp_path / "data", term_grace=5)
    task = asyncio.create_task(cmd.run(["sleep", "trap"], deadline=60, operation="upgrade"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # No helm left behind.
    assert not [p for p in _command_lines() if str(fake_helm) in p and "sleep" in p]


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines
