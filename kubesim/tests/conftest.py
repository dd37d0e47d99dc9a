"""Fixtures for kubesim's own tests: a running server and the pinned helm/kubectl binaries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesim.testing import KubeSimThread, find_tools_bin, running_kubesim


@pytest.fixture
def kubesim() -> Iterator[KubeSimThread]:
    """A kubesim on a free 127.0.0.1 port (plain HTTP), stopped after the test."""
    with running_kubesim() as sim:
        yield sim


@pytest.fixture
def kubesim_bare() -> Iterator[KubeSimThread]:
    """A kubesim without the simulated controllers (nothing but the API server writes)."""
    with running_kubesim(controllers=False) as sim:
        yield sim


@pytest.fixture
def kubesim_tls() -> Iterator[KubeSimThread]:
    """A kubesim serving HTTPS with a generated CA (its kubeconfig carries the CA)."""
    with running_kubesim(tls=True) as sim:
        yield sim


def _tool(name: str) -> Path:
    tools = find_tools_bin(Path(__file__).parent)
    path = tools / name if tools else Path(".tools/bin") / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed (scripts/install_tools.py installs it)")
    return path


@pytest.fixture
def kubectl() -> Path:
    """``.tools/bin/kubectl`` (1.34); the test is skipped if it is missing."""
    return _tool("kubectl")


@pytest.fixture
def helm3() -> Path:
    return _tool("helm3")


@pytest.fixture
def helm4() -> Path:
    return _tool("helm4")
