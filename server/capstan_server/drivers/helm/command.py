"""The one place that runs the helm binary (`HelmCommand`): version detection, files,
environment, processes and how they are stopped.

Argv comes from `argv.py`, what a process may use from `process_limits.py`, what its failure
means from `helm_errors.py`. Helm runs as an asyncio subprocess, never through a shell, at a
lower CPU priority than the server, with a minimal environment, private cache/config/data homes
and a per-cluster kubeconfig file that only the service user can read; values travel in a
private file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
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
    validate_chart,
)
from capstan_server.drivers.helm.helm_errors import helm_error_message, map_helm_error
from capstan_server.drivers.helm.pool import DEFAULT_MAX_QUEUED, HelmPool
from capstan_server.drivers.helm.process_limits import (
    HelmLimits,
    go_memory_limit,
    limit_error,
    limit_or_stop,
)
from capstan_server.drivers.helm.records import Storage
from capstan_server.errors import (
    DeadlineExceeded,
    OperationFailed,
)

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

log = logging.getLogger(__name__)


class HelmStopped(DeadlineExceeded):
    """helm ran past its deadline and Capstan stopped it (SIGTERM, then SIGKILL)."""


@dataclass(frozen=True)
class HelmResult:
    """What a finished helm process left: exit status and its two streams, kept apart."""

    returncode: int
    stdout: str
    stderr: str


# -- running ------------------------------------------------------------------------------------


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


def _below_server() -> tuple[str, ...]:
    """The argv prefix that runs helm at a lower CPU priority than the server (nice 10, which
    execs helm: every thread of it inherits). A helm process is batch work; the server's event
    loop is what hands a free pool slot to the next write and answers reads. On a busy machine
    the loop otherwise waits for a CPU behind helm processes, and pool slots stand idle between
    runs (measured: 11% of the time one of 4 slots, and bounded creates 0-7% slower than
    unbounded; niced, 8-14% faster). Without `nice`: no prefix."""
    nice = shutil.which("nice")
    return (nice, "-n", "10") if nice else ()


#: What every helm argv starts with: niced below the server, and killed with it.
HELM_PREFIX = (*_below_server(), *_die_with_server())


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
        go_limit = go_memory_limit(self.limits)
        if go_limit is not None:
            env["GOMEMLIMIT"] = go_limit
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
        validate_chart(opts.chart.archive)
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
                *HELM_PREFIX, str(self.helm_bin), *argv,
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
            limited = limit_error(result.returncode, result.stderr, self.limits, operation)
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
