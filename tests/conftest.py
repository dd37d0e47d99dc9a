"""Shared pytest fixtures for Capstan's tests. Keep each fixture small and documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
#: The default helm (3.17.2); `helm3` and `helm4` sit next to it.
HELM = TOOLS_BIN / "helm"


def require_tool(path: Path) -> Path:
    """Return ``path``, or skip the test when the pinned binary is not installed."""
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO_ROOT)} is missing; run `make setup` "
                    "(python3 scripts/install_tools.py --dest .tools)")
    return path


# -- chart repository -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepoServer]:
    """A chart repository of `samples/charts` over HTTP (no auth) for the whole session.

    Holds etcd 8.11.1 and 8.11.2, hooked, crd-demo and never-ready; use ``chart_repo.url`` as
    the repository URL (``helm ... --repo URL`` or a registered Capstan repo).
    """
    helm = require_tool(HELM)
    out = tmp_path_factory.mktemp("chart-repo")
    with ChartRepoServer(SAMPLE_CHARTS_DIR, helm, out_dir=out).serve_in_thread() as server:
        yield server
