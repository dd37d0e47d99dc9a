"""Every benchmark in turn: kubesim under load, Capstan against the bare helm CLI, then Capstan
under hostile input and at scale.

`kubesim_bench.py` runs first, then `capstan_bench.py` (the helm driver vs helm itself),
`hostile_bench.py` (latency of ordinary calls with and without issue 8's hostile inputs),
`repo_attack_bench.py` (hostile chart repositories vs benign chart shows), then
`scale_bench.py` (the release cache, a frozen cluster, the helm pool), and `encode_bench.py`
(the gateway's JSON encoding of answers, in process); this is what `make bench` runs.

    .venv/bin/python bench/run.py [--quick]

`--quick` is passed to each (small sizes, for a smoke run). Each runs in a process of its own;
the exit status is non-zero if any of them failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("kubesim_bench.py", "capstan_bench.py", "hostile_bench.py", "repo_attack_bench.py",
              "scale_bench.py", "encode_bench.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes in every benchmark")
    args = parser.parse_args(argv)
    failed = []
    for script in BENCHMARKS:
        print(f"== {script}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script),
                               *(["--quick"] if args.quick else [])], check=False)
        if done.returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
