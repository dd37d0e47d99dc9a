"""Fixtures for the kubeserver-dialect tests: a Capstan server under `--rest-dialect
kubeserver` and the climc-compatible client (`climc.py`) pointed at its `/api`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from capstan_server.threaded import ServerHandle
from kubeserver.climc import Climc


@pytest.fixture
def kubeserver(capstan_server_factory: Callable[..., ServerHandle]) -> Callable[..., ServerHandle]:
    """Start a Capstan server in the kubeserver dialect: ``kubeserver(driver=..., ...)``."""
    def start(**kwargs: Any) -> ServerHandle:
        return capstan_server_factory(rest_dialect="kubeserver", **kwargs)
    return start


@pytest.fixture
def climc_for() -> Callable[[ServerHandle], Climc]:
    """The climc client for a server's `/api` endpoint (the catalog's `k8s` URL)."""
    return lambda server, token="": Climc(server.http_url + "/api", token or "no-token")
