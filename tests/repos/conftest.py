"""Fixtures of the hostile-repository tests (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from repos.hostile_repo import HostileRepo


@pytest.fixture
def hostile() -> Iterator[HostileRepo]:
    """A malicious chart repository on 127.0.0.1, scripted by the test (see hostile_repo.py)."""
    with HostileRepo() as repo:
        yield repo
