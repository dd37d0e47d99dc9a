"""Fixtures of the client library tests: a scripted fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_capstan import FakeCapstan


@pytest.fixture
def fake() -> Iterator[FakeCapstan]:
    """A fresh fake Capstan server on 127.0.0.1 for one test."""
    server = FakeCapstan().start()
    yield server
    server.stop()
