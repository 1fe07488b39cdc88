"""Regenerate gen/ from proto/: Python modules, .pyi stubs, gRPC stubs and the
descriptor set Envoy reads. `--check` regenerates into a temporary folder and
fails when gen/ differs (stale or hand-edited)."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GEN = ROOT / "gen"
DESCRIPTOR_SET = "switchboard.pb"


def _sources() -> list[str]:
    return sorted(str(p.relative_to(PROTO)) for p in (PROTO / "switchboard").rglob("*.proto"))


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *_sources(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (out / "switchboard").rglob("*"):
        if package.is_dir():
            (package / "__init__.py").touch()
    (out / "switchboard" / "__init__.py").touch()


def _differences(left: Path, right: Path) -> list[str]:
    cmp = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in {cmp.left}: {n}" for n in cmp.left_only]
    found += [f"only in {cmp.right}: {n}" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(left, right, cmp.common_files, shallow=False)
    found += [f"differs: {left / n}" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        found += _differences(left / sub, right / sub)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when gen/ is stale")
    opts = parser.parse_args()
    if not opts.check:
        shutil.rmtree(GEN, ignore_errors=True)
        generate(GEN)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        stale = _differences(fresh, GEN)
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        print("gen/ is stale: run `make gen` and commit the result", file=sys.stderr)
        return 1
    print("gen/ is fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
