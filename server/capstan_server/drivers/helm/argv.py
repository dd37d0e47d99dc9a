"""The one place that builds helm argv.

Everything above the helm driver speaks in `base.InstallOptions`-style objects; only here do
they become command lines. Flags are adapted to the detected helm major (helm 4 renamed
`--atomic`, turned `--wait` into a strategy, defaults to server-side apply). Nothing a user
typed can be read by helm as a flag: names and labels are validated, values travel in a private
file and positional arguments follow `--`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from capstan_server.drivers.base import (
    InstallOptions,
    KubeIdentity,
    ReleaseRef,
    RollbackOptions,
    UpgradeOptions,
)
from capstan_server.drivers.helm.records import SYSTEM_LABELS
from capstan_server.errors import (
    InvalidArgument,
    OperationFailed,
)
from capstan_server.names import validate_namespace, validate_release_name

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


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


def validate_chart(archive: Path) -> None:
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

