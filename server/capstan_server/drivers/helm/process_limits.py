"""What one helm process may use: memory (address space) and CPU time, set with prlimit(2) right
after it starts, and the errors of a helm that ran into them."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from dataclasses import dataclass
from typing import Any

from capstan_server.errors import (
    CapstanError,
    FailedPrecondition,
    OperationFailed,
)


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


def go_memory_limit(limits: HelmLimits) -> str | None:
    """GOMEMLIMIT for a helm under `limits`: Go's collector works hard before the address-space
    limit is reached (None without a memory limit)."""
    if limits.memory_mib <= 0:
        return None
    return f"{max(limits.memory_mib - _GO_BASELINE_MIB, 64)}MiB"


def limit_error(returncode: int, stderr: str, limits: HelmLimits, operation: str
                ) -> CapstanError | None:
    """The error for a helm that exited `returncode` after hitting its limits, or None."""
    details: list[dict[str, Any]] = [{"operation": operation}]
    if limits.memory_mib > 0 and any(s in stderr for s in _OUT_OF_MEMORY):
        return FailedPrecondition(
            f"helm {operation} ran out of memory: the chart needs more than the "
            f"{limits.memory_mib} MiB of address space a helm process may use "
            "(--helm-memory-limit)", details=details)
    if limits.cpu_s > 0 and returncode in (-signal.SIGKILL, -signal.SIGXCPU):
        return FailedPrecondition(
            f"helm {operation} was killed: it used more than {limits.cpu_s} s of CPU time "
            "(--helm-cpu-limit), e.g. rendering a chart that loops, or the machine ran out "
            "of memory", details=details)
    return None


