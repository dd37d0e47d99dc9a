"""The one place that builds helm argv and runs the helm binary.

Everything above this module speaks in `base.InstallOptions`-style objects; only here do they
become command lines. The helm major version is detected once and flags are adapted to it (helm
4 renamed `--atomic`, turned `--wait` into a strategy, defaults to server-side apply). Helm runs
as an asyncio subprocess, never through a shell, with a minimal environment, private
cache/config/data homes and a per-cluster kubeconfig file that only the service user can read.
Nothing a user typed can be read by helm as a flag: names are validated, values travel in a
private file and positional arguments follow `--`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capstan_server.drivers.base import (
    ClusterTarget,
    InstallOptions,
    KubeIdentity,
    ReleaseRef,
    RollbackOptions,
    UpgradeOptions,
)
from capstan_server.drivers.helm.pool import DEFAULT_MAX_QUEUED, HelmPool
from capstan_server.drivers.helm.records import SYSTEM_LABELS, Storage
from capstan_server.errors import (
    Aborted,
    AlreadyExists,
    CapstanError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    PermissionDenied,
    Unavailable,
)
from capstan_server.names import validate_namespace, validate_release_name

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

#: Environment variables passed through to helm; everything else (HELM_*, KUBECONFIG, the
#: operator's own helm settings) is left out so that helm sees only what this module decides.
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                    "no_proxy")

def process_deadline(timeout: float) -> float:
    """How long a helm process may run for a `--timeout` of `timeout` seconds before Capstan
    stops it. helm's timeout bounds each wait, not the command: an atomic upgrade may wait
    for the upgrade and then for the rollback, hooks wait on their own; hence twice the
    timeout, plus time for the API calls around the waits."""
    return 2 * timeout + 30.0
#: How long helm gets after SIGTERM to mark the release failed before it is killed.
DEFAULT_TERM_GRACE = 20.0
_MESSAGE_MAX = 4000

log = logging.getLogger(__name__)


class HelmStopped(DeadlineExceeded):
    """helm ran past its deadline and Capstan stopped it (SIGTERM, then SIGKILL)."""


@dataclass(frozen=True, order=True)
class HelmVersion:
    """The detected helm version; flags are chosen by `major`."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> HelmVersion:
        m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text.strip())
        if not m:
            raise OperationFailed(f"cannot parse the helm version {text.strip()!r}")
        version = cls(int(m[1]), int(m[2]), int(m[3]))
        if version.major not in (3, 4):
            raise OperationFailed(f"helm {text.strip()} is not supported (need 3.x or 4.x)")
        return version

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class HelmResult:
    """What a finished helm process left: exit status and its two streams, kept apart."""

    returncode: int
    stdout: str
    stderr: str


# -- validation ---------------------------------------------------------------------------------


def validate_labels(labels: Mapping[str, str]) -> None:
    """InvalidArgument unless every label is a valid Kubernetes label helm will store.

    Helm parses `--labels` as CSV `k=v` pairs and copies them onto its Secrets, so keys and
    values must be Kubernetes label keys/values (which also rules out `,`, `=` and quotes).
    """
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (not _LABEL_NAME.match(name) or (prefix and (len(prefix) > 253
                                                         or not _LABEL_PREFIX.match(prefix)))):
            raise InvalidArgument(f"invalid release label key {key!r}")
        if key in SYSTEM_LABELS:  # helm refuses its own labels as user labels
            raise InvalidArgument(f"release label {key!r} is reserved by helm")
        if not _LABEL_VALUE.match(value):
            raise InvalidArgument(f"invalid value {value!r} of release label {key!r}")


def _validate_ref(ref: ReleaseRef) -> None:
    # The shared validators (capstan_server.names) are re-checked here, right before argv is
    # built, because this is the last line between a name and helm's flag parser.
    validate_release_name(ref.name)
    validate_namespace(ref.namespace)


def _validate_chart(archive: Path) -> None:
    # The archive comes from the server's own digest-checked cache; refusing anything else
    # (a relative path, a directory, a URL-ish string) keeps helm from resolving a reference.
    if not archive.is_absolute() or archive.suffix != ".tgz" or not archive.is_file():
        raise InvalidArgument(f"chart archive {str(archive)!r} is not a cached .tgz file")


# -- argv ---------------------------------------------------------------------------------------


def _seconds(timeout: float) -> str:
    if timeout <= 0:
        raise InvalidArgument(f"timeout must be positive, got {timeout}")
    return f"--timeout={max(1, round(timeout))}s"


def _labels_flag(labels: Mapping[str, str]) -> list[str]:
    if not labels:
        return []
    validate_labels(labels)
    return ["--labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]


def _wait_flags(version: HelmVersion, *, wait: bool, atomic: bool) -> list[str]:
    flags: list[str] = []
    if atomic:
        flags.append("--atomic" if version.major == 3 else "--rollback-on-failure")
    if wait or atomic:
        # Helm 4's `--wait` takes a strategy; `watcher` (kstatus) is its readiness check.
        flags.append("--wait" if version.major == 3 else "--wait=watcher")
    return flags


def _write_flags(version: HelmVersion, opts: InstallOptions | UpgradeOptions) -> list[str]:
    """The dry-run or wait flags, and the description, of an install or upgrade."""
    # `server` renders with cluster lookups and validates against it, changing nothing.
    flags = (["--dry-run=server"] if opts.dry_run
             else _wait_flags(version, wait=opts.wait, atomic=opts.atomic))
    if opts.description:
        flags.append(f"--description={opts.description}")
    return flags


def _identity_flags(identity: KubeIdentity | None) -> list[str]:
    """helm's impersonation flags; the `=` form keeps a value from ever being read as a flag,
    and `--kube-as-group` is a string array (one group per flag, commas are not split)."""
    if identity is None:
        return []
    return [f"--kube-as-user={identity.user}",
            *(f"--kube-as-group={group}" for group in identity.groups)]


def _common(ref: ReleaseRef, kubeconfig: Path) -> list[str]:
    return [f"--namespace={ref.namespace}", f"--kubeconfig={kubeconfig}",
            *_identity_flags(ref.cluster.act_as)]


def install_argv(version: HelmVersion, opts: InstallOptions, *, kubeconfig: Path,
                 values_file: Path) -> list[str]:
    """argv (without the binary) of `helm install` for `opts`."""
    _validate_ref(opts.ref)
    argv = ["install", *_common(opts.ref, kubeconfig), "--output=json",
            f"--values={values_file}", *_labels_flag(opts.labels), _seconds(opts.timeout)]
    argv += _write_flags(version, opts)
    if opts.create_namespace:
        argv.append("--create-namespace")
    return [*argv, "--", opts.ref.name, str(opts.chart.archive)]


def upgrade_argv(version: HelmVersion, opts: UpgradeOptions, *, kubeconfig: Path,
                 values_file: Path) -> list[str]:
    """argv of `helm upgrade` for `opts` (Helm's own reuse/reset semantics apply)."""
    _validate_ref(opts.ref)
    argv = ["upgrade", *_common(opts.ref, kubeconfig), "--output=json",
            f"--values={values_file}", *_labels_flag(opts.labels), _seconds(opts.timeout),
            f"--history-max={max(0, opts.history_max)}"]
    if opts.reset_values:
        argv.append("--reset-values")
    elif opts.reuse_values:
        argv.append("--reuse-values")
    argv += _write_flags(version, opts)
    return [*argv, "--", opts.ref.name, str(opts.chart.archive)]


def rollback_argv(version: HelmVersion, opts: RollbackOptions, *, kubeconfig: Path) -> list[str]:
    """argv of `helm rollback`; revision 0 means the previous one. helm has no
    `--description` for rollback, so the driver records a custom description itself."""
    _validate_ref(opts.ref)
    if opts.revision < 0:
        raise InvalidArgument(f"invalid revision {opts.revision}")
    argv = ["rollback", *_common(opts.ref, kubeconfig), _seconds(opts.timeout),
            f"--history-max={max(0, opts.history_max)}",
            *_wait_flags(version, wait=opts.wait, atomic=False), "--", opts.ref.name]
    if opts.revision:
        argv.append(str(opts.revision))
    return argv


def uninstall_argv(version: HelmVersion, ref: ReleaseRef, *, kubeconfig: Path,
                   timeout: float) -> list[str]:
    """argv of `helm uninstall` (history removed, helm's default)."""
    _validate_ref(ref)
    return ["uninstall", *_common(ref, kubeconfig), _seconds(timeout), "--", ref.name]


# -- errors -------------------------------------------------------------------------------------

_ROLLED_BACK = ("has been rolled back", "has been uninstalled", "was rolled back",
                "rollback-on-failure", "due to atomic being set")
_UNAVAILABLE = ("connection refused", "no such host", "kubernetes cluster unreachable",
                "i/o timeout", "network is unreachable", "connection reset by peer",
                "no route to host", "tls handshake timeout")
#: Helm 4's kstatus watcher reports a wait that ran out of time as resources still
#: "InProgress" rather than as a deadline.
#: What helm says about a release, revision or namespace that does not exist. Other "not
#: found"s (a kind a chart uses that the cluster does not serve, ...) are chart failures.
_NOT_FOUND = (r"release: not found", r"has no deployed releases", r"has no \d+ version",
              r'namespaces? "[^"]*" not found', r"release \S+ not found")
#: Failures of the chart as rendered for the cluster that its caller can fix by changing what
#: it installs (values, chart version): template execution errors (`required`, `fail`), values
#: that break the chart's schema, manifests that are not valid Kubernetes objects.
_INVALID = ("execution error at", "parse error at", "template: ", "values don't meet the "
            "specifications of the schema", "error converting yaml to json",
            "error validating data", "unable to build kubernetes objects from release manifest",
            "unable to decode", "yaml: line ", " is invalid: ")
#: The cluster is not ready for the chart: a kind it does not serve (CRDs missing), an object
#: that exists outside the release, a policy that refuses it, a Kubernetes version it needs.
_PRECONDITION = ("resource mapping not found", "ensure crds are installed first",
                 "no matches for kind", "exists and cannot be imported into the current release",
                 "rendered manifests contain a resource that already exists",
                 "admission webhook", "is forbidden", "chart requires kubeversion",
                 "missing in charts/ directory")
_DEADLINE = ("context deadline exceeded", "timed out waiting", "timeout waiting",
             "not ready. status: inprogress")


#: Helm 4 logs through slog (`time=... level=WARN msg=...`); those lines are not the error.
_SLOG_LINE = re.compile(r"^(time=\S+ )?level=(DEBUG|INFO|WARN|ERROR) ")
#: helm's closing hint, which means nothing to an API caller.
_DEBUG_HINT = "Use --debug flag to render out invalid YAML"


def helm_error_message(stderr: str, stdout: str = "") -> str:
    """helm's whole error, without its `Error: ` prefix: every line from the first `Error:`
    line on (a template's multi-line `fail` message, each error of helm 3's "N errors
    occurred:" list), blank runs squeezed, helm 4's slog lines left out, at most
    `_MESSAGE_MAX` characters. Without an `Error:` line, whatever helm said that is not slog.
    """
    lines = [ln.rstrip() for ln in stderr.splitlines()
             if not _SLOG_LINE.match(ln.strip()) and ln.strip() != _DEBUG_HINT]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("Error:")), 0)
    kept: list[str] = []
    for line in lines[first:]:
        if line.startswith("Error:"):
            line = line.removeprefix("Error:").strip()
        if line or (kept and kept[-1]):
            kept.append(line)
    text = "\n".join(kept).strip() or stdout.strip() or "helm failed without a message"
    return text if len(text) <= _MESSAGE_MAX else text[:_MESSAGE_MAX] + "..."


def map_helm_error(message: str, *, operation: str) -> CapstanError:
    """The Capstan error for a helm failure message (see helm_error_message)."""
    low = message.lower()
    details: list[dict[str, Any]] = [{"operation": operation, "helm_error": message}]
    if "while rolling back" in low or "rollback failed" in low:
        return OperationFailed(f"{operation} failed and rolling it back failed too: {message}",
                               details=details)
    if any(s in low for s in _ROLLED_BACK):
        # An atomic operation failed and helm undid it: the operation failed, whatever the
        # cause (often a wait timeout); the caller must not treat it as a plain timeout.
        return OperationFailed(f"{operation} failed and was rolled back: {message}",
                               details=details)
    if "sh.helm.release.v1." in low and "already exists" in low:
        # Two helm processes (two replicas, or helm run by hand) raced for the same revision
        # and this one lost: an operation on the release is in flight.
        return Aborted(f"another operation on the release won the race: {message}",
                       details=details)
    if "cannot re-use a name that is still in use" in low:
        return AlreadyExists(message, details=details)
    if "another operation (install/upgrade/rollback) is in progress" in low:
        return Aborted(message, details=details)
    if _FORBIDDEN.search(low):
        # The cluster's RBAC refused the identity helm acted as (docs/tenancy.md): a write or
        # `lookup` outside the project. Helm renders and checks before it creates anything.
        # Before the chart-error words: a refused `lookup` fails the render too.
        return PermissionDenied(f"the cluster refused it: {message}", details=details)
    # Before the network and deadline words: a chart's own message may contain any of them.
    if any(s in low for s in _PRECONDITION):
        return FailedPrecondition(message, details=details)
    if any(s in low for s in _INVALID):
        return InvalidArgument(message, details=details)
    if any(s in low for s in _DEADLINE):
        return DeadlineExceeded(message, details=details)
    if any(s in low for s in _UNAVAILABLE):
        return Unavailable(message, details=details)
    if any(re.search(p, low) for p in _NOT_FOUND):
        return NotFound(message, details=details)
    return OperationFailed(message, details=details)


_FORBIDDEN = re.compile(r'is forbidden: user "[^"]*" cannot ')


# -- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelmLimits:
    """What one helm process may use (0: no limit). A chart is a stranger's program: its
    templates can loop or allocate without end (`range until 2000000000`).

    Memory is address space (RLIMIT_AS): the Go runtime reserves ~600 MiB of it before it
    does anything (helm 3.17 and 4.1 do not start under 768 MiB), so the limit must leave room
    above that; GOMEMLIMIT makes Go's collector work hard before the wall is hit. CPU time
    (RLIMIT_CPU) counts only work, not waiting, so `--wait` on slow workloads does not use it
    up; Go ignores SIGXCPU, so the kernel's SIGKILL at the hard limit (2 s later) ends it.
    """

    #: `--helm-memory-limit` (MiB).
    memory_mib: int = 2048
    #: `--helm-cpu-limit` (seconds of CPU time).
    cpu_s: int = 120


#: Address space the Go runtime reserves up front (measured: helm 3.17.2 / 4.1.4 need 768 MiB).
_GO_BASELINE_MIB = 768
_OUT_OF_MEMORY = ("fatal error: out of memory", "runtime: out of memory",
                  "failed to reserve page summary memory", "cannot allocate memory")


def _apply_limits(pid: int, limits: HelmLimits) -> None:
    """Set the process's rlimits right after it started (prlimit(2), so nothing runs in the
    forked child before exec, as a preexec_fn would)."""
    if limits.memory_mib > 0:
        size = limits.memory_mib * 1024 * 1024
        resource.prlimit(pid, resource.RLIMIT_AS, (size, size))
    if limits.cpu_s > 0:
        resource.prlimit(pid, resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 2))


async def limit_or_stop(proc: asyncio.subprocess.Process, limits: HelmLimits) -> None:
    """Apply `limits` to a helm just started, or stop it: helm never runs unbounded. A helm
    that already exited (a quick `helm version` can be gone, and reaped by the event loop's
    child watcher, before its limits are set) has nothing left to limit."""
    if proc.returncode is not None:
        return
    try:
        _apply_limits(proc.pid, limits)
    except ProcessLookupError:
        return
    except (OSError, ValueError, OverflowError) as e:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise OperationFailed(f"cannot limit helm's memory and CPU time: {e}") from e


def _limit_error(result: HelmResult, limits: HelmLimits, operation: str) -> CapstanError | None:
    """The error for a helm that hit its limits, or None."""
    details: list[dict[str, Any]] = [{"operation": operation}]
    if limits.memory_mib > 0 and any(s in result.stderr for s in _OUT_OF_MEMORY):
        return FailedPrecondition(
            f"helm {operation} ran out of memory: the chart needs more than the "
            f"{limits.memory_mib} MiB of address space a helm process may use "
            "(--helm-memory-limit)", details=details)
    if limits.cpu_s > 0 and result.returncode in (-signal.SIGKILL, -signal.SIGXCPU):
        return FailedPrecondition(
            f"helm {operation} was killed: it used more than {limits.cpu_s} s of CPU time "
            "(--helm-cpu-limit), e.g. rendering a chart that loops, or the machine ran out "
            "of memory", details=details)
    return None


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _die_with_server() -> tuple[str, ...]:
    """The argv prefix that makes the kernel SIGKILL helm when the server dies (even by
    kill -9), so no helm outlives its server; the release it left pending is then recovered by
    another replica (`recovery.py`). util-linux's `setpriv --pdeathsig` sets PR_SET_PDEATHSIG
    and execs helm (same process). A `preexec_fn` calling prctl cannot be used: Python code
    between fork and exec in a process with gRPC's threads crashes. Without setpriv (not
    Linux, or a minimal image): no prefix, and helm only stops at its own timeout."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


DIE_WITH_SERVER = _die_with_server()


class HelmCommand:
    """Runs one helm binary for the driver: version detection, files, argv, processes.

    Files live under `<data_dir>/helm/`: `home/{cache,config,data}` (helm's homes, private),
    `kubeconfigs/<cluster id>-<digest>.yaml` (0600, written once per kubeconfig content) and
    `tmp/` (values files, deleted after each call).
    """

    def __init__(self, helm_bin: Path, data_dir: Path, *,
                 term_grace: float = DEFAULT_TERM_GRACE, limits: HelmLimits | None = None,
                 max_processes: int | None = None,
                 max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        self.helm_bin = helm_bin
        self.limits = limits or HelmLimits()
        #: At most this many helm processes at once; further runs queue (pool.py).
        self.pool = HelmPool(max_processes, max_queued)
        #: Called after each helm run with (operation, helm major or 0, seconds, ok).
        self.on_run: Callable[[str, int, float, bool], None] | None = None
        self.root = _private_dir(data_dir / "helm")
        self.term_grace = term_grace
        self._homes = {var: str(_private_dir(self.root / "home" / sub)) for var, sub in (
            ("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"))}
        self._kubeconfig_dir = _private_dir(self.root / "kubeconfigs")
        self._tmp = _private_dir(self.root / "tmp")
        self._version: HelmVersion | None = None

    # files

    def kubeconfig_file(self, cluster: ClusterTarget) -> Path:
        """The cluster's kubeconfig as a 0600 file, written the first time it is needed.

        The file name carries a digest of the content, so a kubeconfig replaced in the
        registry gets a new file instead of racing with a helm process reading the old one.
        """
        digest = hashlib.sha256(cluster.kubeconfig.encode()).hexdigest()[:16]
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", cluster.id)[:64] or "cluster"
        path = self._kubeconfig_dir / f"{safe_id}-{digest}.yaml"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self._kubeconfig_dir, prefix=".kc-")  # mode 0600
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(cluster.kubeconfig)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return path

    def _values_file(self, values: Mapping[str, Any]) -> Path:
        # JSON is YAML; a private file keeps values out of argv (and out of `ps`).
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="values-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
        return Path(name)

    def _env(self, storage: Storage) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env.update(self._homes)
        env["HOME"] = str(self.root / "home")
        env["HELM_DRIVER"] = storage
        # Colour codes and update checks have no place in machine-read output.
        env["NO_COLOR"] = "1"
        if self.limits.memory_mib > 0:  # collect hard before the address-space limit
            heap = max(self.limits.memory_mib - _GO_BASELINE_MIB, 64)
            env["GOMEMLIMIT"] = f"{heap}MiB"
        return env

    # version

    async def version(self) -> HelmVersion:
        """The helm version, asked once per process (`helm version --template`)."""
        if self._version is None:
            # Two first calls at once both ask; that is harmless and needs no lock.
            result = await self.run(["version", "--template={{.Version}}"], deadline=30.0,
                                    operation="version")
            self._version = HelmVersion.parse(result.stdout)
        return self._version

    # operations

    async def install(self, opts: InstallOptions, *,
                      storage: Storage = "secret") -> dict[str, Any]:
        """`helm install`; returns helm's release JSON (manifest and config included)."""
        return await self._write_chart("install", install_argv, opts, storage)

    async def upgrade(self, opts: UpgradeOptions, *,
                      storage: Storage = "secret") -> dict[str, Any]:
        """`helm upgrade`; returns helm's release JSON."""
        return await self._write_chart("upgrade", upgrade_argv, opts, storage)

    async def _write_chart(self, operation: str, build_argv: Callable[..., list[str]],
                           opts: InstallOptions | UpgradeOptions,
                           storage: Storage) -> dict[str, Any]:
        """Run `helm install|upgrade` of `opts.chart` with its values in a private file."""
        _validate_chart(opts.chart.archive)
        version = await self.version()
        kubeconfig = self.kubeconfig_file(opts.ref.cluster)
        values = self._values_file(opts.values)
        try:
            argv = build_argv(version, opts, kubeconfig=kubeconfig, values_file=values)
            result = await self.run(argv, deadline=process_deadline(opts.timeout),
                                    storage=storage, operation=operation,
                                    queue_key=queue_key(opts.ref))
        finally:
            values.unlink(missing_ok=True)
        return _release_json(result)

    async def rollback(self, opts: RollbackOptions, *, storage: Storage = "secret") -> None:
        """`helm rollback` (it prints no JSON; read the new record afterwards)."""
        version = await self.version()
        argv = rollback_argv(version, opts, kubeconfig=self.kubeconfig_file(opts.ref.cluster))
        await self.run(argv, deadline=process_deadline(opts.timeout), storage=storage,
                       operation="rollback", queue_key=queue_key(opts.ref))

    async def uninstall(self, ref: ReleaseRef, *, timeout_s: float,
                        storage: Storage = "secret") -> None:
        """`helm uninstall`."""
        version = await self.version()
        argv = uninstall_argv(version, ref, kubeconfig=self.kubeconfig_file(ref.cluster),
                              timeout=timeout_s)
        await self.run(argv, deadline=process_deadline(timeout_s), storage=storage,
                       operation="uninstall", queue_key=queue_key(ref))

    async def run(self, argv: Sequence[str], *, deadline: float, operation: str,
                  storage: Storage = "secret", queue_key: str = "") -> HelmResult:
        """Run helm with `argv`; the mapped CapstanError when it fails.

        The run first takes a slot of `pool` (waiting in its queue under `queue_key`, or
        refused with ResourceExhausted when the queue is full); the deadline starts once helm
        does. Past `deadline` seconds, or when the calling task is cancelled, helm gets SIGTERM
        and `term_grace` seconds to exit (install and upgrade then mark the release failed);
        only then is it killed, since SIGKILL leaves the release `pending-*`.
        """
        async with self.pool.slot(operation, queue_key):
            started = time.monotonic()
            ok = False
            try:
                result = await self._run(argv, deadline=deadline, operation=operation,
                                         storage=storage)
                ok = True
                return result
            finally:
                if self.on_run is not None:
                    major = self._version.major if self._version else 0
                    self.on_run(operation, major, time.monotonic() - started, ok)

    async def _run(self, argv: Sequence[str], *, deadline: float, operation: str,
                   storage: Storage) -> HelmResult:
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *DIE_WITH_SERVER, str(self.helm_bin), *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(storage),
                cwd=str(self.root),
                # Own session: a Ctrl-C aimed at the server does not reach helm directly;
                # the server decides when and how helm is stopped.
                start_new_session=True,
            )
        except OSError as e:
            raise OperationFailed(f"cannot run helm {self.helm_bin}: {e} (install the pinned "
                                  "helm with `make setup`, or pass --helm-bin)") from e
        await limit_or_stop(proc, self.limits)
        # The pipes are drained by a task of their own, which keeps running while helm is
        # being stopped (a full pipe would otherwise block helm's shutdown).
        comm = asyncio.ensure_future(proc.communicate())
        try:
            stdout, stderr = await asyncio.wait_for(asyncio.shield(comm), deadline)
        except TimeoutError:
            await self._stop(proc, comm)
            raise HelmStopped(
                f"helm {operation} did not finish within {deadline:.0f}s and was stopped",
                details=[{"operation": operation}]) from None
        except asyncio.CancelledError:
            await asyncio.shield(self._stop(proc, comm))
            raise
        result = HelmResult(proc.returncode or 0, stdout.decode(errors="replace"),
                            stderr.decode(errors="replace"))
        log.debug("helm %s exited %d after %.0f ms", operation, result.returncode,
                  (time.monotonic() - started) * 1000)
        if result.returncode != 0:
            limited = _limit_error(result, self.limits, operation)
            if limited is not None:
                raise limited
            raise map_helm_error(helm_error_message(result.stderr, result.stdout),
                                 operation=operation)
        return result

    async def _stop(self, proc: asyncio.subprocess.Process,
                    comm: asyncio.Future[tuple[bytes, bytes]]) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(comm), self.term_grace)
                return
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        with contextlib.suppress(Exception):
            await comm


def queue_key(ref: ReleaseRef) -> str:
    """The pool's name for writes to one release (`pool.HelmPool.position`)."""
    return f"{ref.cluster.id}/{ref.namespace}/{ref.name}"


def _release_json(result: HelmResult) -> dict[str, Any]:
    # helm prints exactly one JSON document with -o json; anything around it (a cancellation
    # notice) means the run did not complete normally.
    text = result.stdout.strip()
    start = text.find("{")
    try:
        doc = json.loads(text[start:] if start > 0 else text)
    except ValueError as e:
        raise OperationFailed(f"helm printed no release JSON: {text[:200]!r}") from e
    if not isinstance(doc, dict):
        raise OperationFailed("helm printed JSON that is not a release object")
    return doc
