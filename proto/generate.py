"""Regenerate the Python stubs of proto/scorecast.proto: ``python proto/generate.py``.

Writes ``scorecast_pb2.py``, ``scorecast_pb2.pyi`` and ``scorecast_pb2_grpc.py`` beside the
.proto (or into ``--out``), with the stub's import made relative so the package works under
its installed name. tests/test_proto.py regenerates into a temp dir and fails on any diff.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILE = "scorecast.proto"
GENERATED = ("scorecast_pb2.py", "scorecast_pb2.pyi", "scorecast_pb2_grpc.py")


def generate(out_dir: Path = PROTO_DIR) -> list[Path]:
    """Run protoc (grpcio-tools) on scorecast.proto into ``out_dir``; return the files written."""
    from grpc_tools import protoc  # test/dev dependency only: the server needs the output, not protoc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO_DIR / PROTO_FILE),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc} on {PROTO_DIR / PROTO_FILE}")
    grpc_stub = out_dir / "scorecast_pb2_grpc.py"
    text = grpc_stub.read_text()
    grpc_stub.write_text(re.sub(r"^import scorecast_pb2 as", "from . import scorecast_pb2 as", text, flags=re.M))
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_DIR, help="output folder (default: proto/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
