"""The benchmarks in bench/ still start: each one `bench/run.py` (`make bench`) runs imports and
parses its flags (`--help`), and run.py runs every `*_bench.py` there is.

A bench is only run by hand, so without this a rename in the server or the client breaks it
unnoticed until the next `make bench`. What a bench measures stays in bench/ (no timed tests).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCHMARKS: tuple[str, ...] = _load_run().BENCHMARKS


def test_run_py_runs_every_bench() -> None:
    assert sorted(BENCHMARKS) == sorted(p.name for p in BENCH.glob("*_bench.py"))


@pytest.mark.parametrize("script", [*BENCHMARKS, "run.py"])
def test_bench_parses_its_flags(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout  # run.py passes it to each
