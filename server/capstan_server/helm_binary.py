"""Which helm binary the server runs, decided once at start-up as an absolute path.

helm runs with the driver's own working directory, so a relative `--helm-bin` (as the README
words `.tools/bin/helm4`) must be resolved against the directory the server was started from,
before anything else changes it. Without `--helm-bin`: the pinned helm of a source checkout
(`.tools/bin/helm`, which `make setup` installs), then `helm` on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CHECKOUT_HELM", "HelmNotFound", "default_helm_bin", "resolve_helm_bin"]

#: The pinned helm that `make setup` installs into a checkout (scripts/install_tools.py); it
#: does not exist when Capstan is installed as a package.
CHECKOUT_HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm"


class HelmNotFound(LookupError):
    """No usable helm binary; the message says what was tried and what to do."""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def default_helm_bin() -> Path | None:
    """The checkout's pinned helm, else `helm` on PATH (absolute), else None."""
    if _executable(CHECKOUT_HELM):
        return CHECKOUT_HELM
    found = shutil.which("helm")
    return Path(found).absolute() if found else None


def resolve_helm_bin(given: Path | str | None, *, cwd: Path | None = None) -> Path:
    """The absolute path of the helm to run: `given` (relative to `cwd`, default the current
    directory), or the default; HelmNotFound when it is not an executable file."""
    if given is None or str(given) == "":
        found = default_helm_bin()
        if found is None:
            raise HelmNotFound(
                f"no helm found: neither the checkout's pinned {CHECKOUT_HELM} (run `make "
                "setup`) nor `helm` on PATH; install helm 3 or 4, or pass --helm-bin")
        return found
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if not _executable(path):
        raise HelmNotFound(f"--helm-bin {given} ({path}) is not an executable file")
    return path
