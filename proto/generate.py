"""Regenerate the Python stubs of proto/*.proto: ``python proto/generate.py``.

Writes ``<name>_pb2.py``, ``<name>_pb2.pyi`` and ``<name>_pb2_grpc.py`` for scorecast.proto and
open_inference.proto beside them (or into ``--out``), with the stubs' imports made relative so
the package works under its installed name. tests/test_proto.py regenerates into a temp dir and fails on any diff.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("scorecast.proto", "open_inference.proto")


def generate(out_dir: Path = PROTO_DIR) -> list[Path]:
    """Run protoc (grpcio-tools) on every file of ``PROTO_FILES`` into ``out_dir``; return the files written."""
    from grpc_tools import protoc  # test/dev dependency only: the server needs the output, not protoc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_DIR}",
                f"-I{well_known}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                str(PROTO_DIR / proto),
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc} on {PROTO_DIR / proto}")
        grpc_stub = out_dir / f"{stem}_pb2_grpc.py"
        text = grpc_stub.read_text()
        grpc_stub.write_text(re.sub(rf"^import {stem}_pb2 as", f"from . import {stem}_pb2 as", text, flags=re.M))
        written += [out_dir / f"{stem}_pb2.py", out_dir / f"{stem}_pb2.pyi", grpc_stub]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_DIR, help="output folder (default: proto/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
