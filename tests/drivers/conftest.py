"""The `driver` fixture of the driver contract suite: every driver of `HARNESSES` in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from driver_harness import HARNESSES, DriverUnderTest
from helm.contract_harness import HELM_HARNESSES  # tests/drivers/helm/: helm 3 and 4 on kubesim

HARNESSES.update(HELM_HARNESSES)


@pytest.fixture(params=sorted(HARNESSES))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DriverUnderTest]:
    """Each driver of `HARNESSES` in turn, set up for one contract test."""
    async with HARNESSES[request.param](request, tmp_path) as under_test:
        yield under_test
