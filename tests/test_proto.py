"""The committed gRPC stubs are exactly what proto/generate.py makes from scorecast.proto and
open_inference.proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_are_up_to_date(tmp_path: Path) -> None:
    """Regenerating into a temp folder gives byte-identical files (else: run `make proto`)."""
    generator = _generator()
    for fresh in generator.generate(tmp_path):
        committed = ROOT / "proto" / fresh.name
        assert committed.read_bytes() == fresh.read_bytes(), f"{committed} is stale: run `make proto`"


def test_contract_has_no_repeated_numeric_bulk_fields() -> None:
    """Bulk data travels as Arrow IPC bytes: no repeated float/double/int field in the contract."""
    text = (ROOT / "proto" / "scorecast.proto").read_text()
    for kind in ("float", "double", "int32", "int64"):
        assert f"repeated {kind}" not in text


def test_both_contracts_are_generated(tmp_path: Path) -> None:
    """The freshness check above covers the Open Inference Protocol stubs too."""
    names = {p.name for p in _generator().generate(tmp_path)}
    assert {"scorecast_pb2_grpc.py", "open_inference_pb2.py", "open_inference_pb2_grpc.py"} <= names
