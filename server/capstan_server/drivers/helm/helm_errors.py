"""What helm's failures mean: its message, cleaned (`helm_error_message`), and the gRPC code a
caller gets for it (`map_helm_error`).
"""

from __future__ import annotations

import re
from typing import Any

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

_MESSAGE_MAX = 4000

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


