"""Tiny real ONNX models with scorecast metadata, for server tests that need no training.

Each builder returns an ``onnx.ModelProto``; ``write_model`` puts it in a repository folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scorecast.metadata import INPUT_NAME, METADATA_KEY, ModelMetadata, OutputSpec
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base

TRAINED_AT = "2026-01-02T00:00:00+00:00"
AS_OF = "2026-01-01T00:00:00+00:00"


def _model(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto], width: int, meta: ModelMetadata, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        meta.score,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, width])],
        outputs,
        initializer=list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.checker.check_model(model)
    return model


def linear_model(score: str = "spend", version: str = "1", weights: tuple[float, ...] = (1.0, 10.0)) -> onnx.ModelProto:
    """``value = features @ weights`` over (frequency, total_amount): exact, easy to check."""
    features = ("frequency", "total_amount")[: len(weights)]
    meta = ModelMetadata(
        score=score,
        version=version,
        model_type="fake-linear",
        features=features,
        outputs=(OutputSpec("value", "float32", "weighted sum", onnx_output="value", column=0),),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
        metrics={"auc": 0.5},
        params={"weights": list(weights)},
    )
    w = numpy_helper.from_array(np.array(weights, dtype=np.float32).reshape(-1, 1), "w")
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "w"], ["value"])]
    return _model(nodes, [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])], len(features), meta, [w])


def grouped_model(groups: tuple[str, ...] = ("shoes", "books"), horizon_days: int = 90) -> onnx.ModelProto:
    """An affinity-shaped model: one column per group, ``group_count:<g>`` passed through."""
    features = tuple(f"group_count:{g}" for g in groups)
    meta = ModelMetadata(
        score="affinity",
        version="1",
        model_type="fake-identity",
        features=features,
        outputs=tuple(OutputSpec(g, "float32", f"count in {g}", onnx_output="probabilities", column=i) for i, g in enumerate(groups)),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
        horizon_days=horizon_days,
        params={"groups": list(groups)},
    )
    nodes = [helper.make_node("Identity", [INPUT_NAME], ["probabilities"])]
    out = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(groups)])]
    return _model(nodes, out, len(features), meta)


def keyword_model(keywords: tuple[str, ...] = ("running", "tech")) -> onnx.ModelProto:
    """An interests-shaped model: ``keyword_weight:<k>`` passed through, one column per keyword
    (the one feature that reads the ``campaigns`` reference table)."""
    features = tuple(f"keyword_weight:{k}" for k in keywords)
    meta = ModelMetadata(
        score="interests",
        version="1",
        model_type="fake-identity",
        features=features,
        outputs=tuple(OutputSpec(k, "float32", f"weight of {k}", onnx_output="weights", column=i) for i, k in enumerate(keywords)),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
    )
    nodes = [helper.make_node("Identity", [INPUT_NAME], ["weights"])]
    out = [helper.make_tensor_value_info("weights", TensorProto.FLOAT, [None, len(keywords)])]
    return _model(nodes, out, len(features), meta)


def segment_model() -> onnx.ModelProto:
    """A category output with nulls: segment 'none' (null) for frequency 0, 'one', 'many'."""
    meta = ModelMetadata(
        score="segments",
        version="1",
        model_type="fake-segments",
        features=("frequency",),
        outputs=(
            OutputSpec("count", "int32", "orders, null when none", onnx_output="codes", column=0, null_value=0),
            OutputSpec("segment", "category", "bucket", onnx_output="codes", column=1, categories=("none", "one", "many")),
        ),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
    )
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["count"], to=TensorProto.INT32),
        helper.make_node("Min", [INPUT_NAME, "two"], ["bucket_f"]),
        helper.make_node("Cast", ["bucket_f"], ["bucket"], to=TensorProto.INT32),
        helper.make_node("Concat", ["count", "bucket"], ["codes"], axis=1),
    ]
    return _model(nodes, [helper.make_tensor_value_info("codes", TensorProto.INT32, [None, 2])], 1, meta, [two])


def horizon_model(default_threshold: float = 0.5) -> onnx.ModelProto:
    """A clv-shaped model fed request options: ``value = frequency * horizon``, ``due`` = the
    horizon in days after as-of (a timestamp output), ``threshold`` echoed back."""
    meta = ModelMetadata(
        score="value",
        version="1",
        model_type="fake-horizon",
        features=("frequency", "request:horizon_days", "request:churn_threshold"),
        outputs=(
            OutputSpec("value", "float32", "frequency x horizon", onnx_output="out", column=0),
            OutputSpec("due", "timestamp", "as_of + horizon", onnx_output="out", column=1),
            OutputSpec("threshold", "float32", "the threshold used", onnx_output="out", column=2),
        ),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
        horizon_days=365,
        params={"request_defaults": {"churn_threshold": default_threshold}},
    )
    idx = {k: numpy_helper.from_array(np.array([v], dtype=np.int64), f"i{k}") for k, v in (("f", 0), ("h", 1), ("t", 2))}
    nodes = [
        helper.make_node("Gather", [INPUT_NAME, "if"], ["f"], axis=1),
        helper.make_node("Gather", [INPUT_NAME, "ih"], ["h"], axis=1),
        helper.make_node("Gather", [INPUT_NAME, "it"], ["t"], axis=1),
        helper.make_node("Mul", ["f", "h"], ["v"]),
        helper.make_node("Concat", ["v", "h", "t"], ["out"], axis=1),
    ]
    out = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])]
    return _model(nodes, out, 3, meta, list(idx.values()))


def write_model(root: Path, model: onnx.ModelProto) -> Path:
    """Save a model where the repository expects it (``<score>/<version>.onnx``)."""
    meta = ModelMetadata.from_json(dict((p.key, p.value) for p in model.metadata_props)[METADATA_KEY])
    path = root / meta.score / f"{meta.version}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def wide_model(score: str = "wide", version: str = "1", width: int = 65_536) -> onnx.ModelProto:
    """``linear_model`` with ``width`` output columns (only the first served): 8 x ``width`` bytes
    of weights, a model whose memory is mostly its own (for memory-measurement tests)."""
    meta = ModelMetadata(
        score=score,
        version=version,
        model_type="fake-wide",
        features=("frequency", "total_amount"),
        outputs=(OutputSpec("value", "float32", "first column", onnx_output="value", column=0),),
        trained_at=TRAINED_AT,
        data_as_of=AS_OF,
    )
    weights = np.random.default_rng(len(score) + width).random((2, width), dtype=np.float32)
    w = numpy_helper.from_array(weights, "w")
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "w"], ["value"])]
    return _model(nodes, [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, width])], 2, meta, [w])


def served_base(root: Path) -> tuple[Path, Path]:
    """A 12,000-contact simulated base and a repository of ``spend`` and ``segments``, under
    ``root``: what the client-side fault tests (retries, resume) score. (base, models)."""
    write_base(simulate_base(SimulationConfig(n_contacts=12_000, seed=4)), root / "base")
    for model in (linear_model(), segment_model()):
        write_model(root / "models", model)
    return root / "base", root / "models"
