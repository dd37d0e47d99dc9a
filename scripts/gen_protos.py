"""Generate the Python stubs for protos/ into client/capstan/v1/, or check that they are current.

    python scripts/gen_protos.py          # regenerate
    python scripts/gen_protos.py --check  # exit 1 when the checked-in stubs are stale

Messages get `_pb2.py` and `_pb2.pyi` (mypy-protobuf), services `_pb2_grpc.py` and `_pb2_grpc.pyi`.
`descriptor_set.binpb` is a FileDescriptorSet of capstan.v1 *with source info*: the generated
`_pb2.py` files drop the proto comments, and the REST gateway's OpenAPI document wants them.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("capstan") / "v1"
OUT_ROOT = ROOT / "client"
DESCRIPTOR_SET = "descriptor_set.binpb"
INIT_TEXT = (
    '"""Generated protobuf and gRPC stubs for capstan.v1 '
    '(scripts/gen_protos.py; do not edit)."""\n'
)


def _generate(out_root: Path) -> None:
    bin_dir = Path(sys.executable).parent
    includes = [
        PROTO_ROOT,
        Path(grpc_tools.__file__).parent / "_proto",
        # google/api/*.proto ship with googleapis-common-protos.
        Path(annotations_pb2.__file__).parent.parent.parent,
    ]
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{inc}" for inc in includes),
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        f"--descriptor_set_out={out_root / PACKAGE_DIR / DESCRIPTOR_SET}",
        "--include_source_info",
        *protos,
    ]
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    subprocess.run(args, check=True, cwd=PROTO_ROOT)
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT_TEXT)
    (out_root / PACKAGE_DIR / "py.typed").write_text("")


def _stale_files(fresh: Path, current: Path) -> list[str]:
    names = {p.name for p in fresh.iterdir()} | {
        p.name for p in current.iterdir() if p.suffix in {".py", ".pyi", ".typed", ".binpb"}
    } if current.exists() else {p.name for p in fresh.iterdir()}
    stale = []
    for name in sorted(names):
        a, b = fresh / name, current / name
        if not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)):
            stale.append(name)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the stubs are stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE_DIR
        current = OUT_ROOT / PACKAGE_DIR
        stale = _stale_files(fresh, current)
        if check:
            if stale:
                print("Generated stubs are stale; run `make protos`:", ", ".join(stale))
                return 1
            print("Generated stubs are current.")
            return 0
        if current.exists():
            shutil.rmtree(current)
        shutil.copytree(fresh, current)
        print(f"Generated {len(list(current.iterdir()))} files in {current.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
