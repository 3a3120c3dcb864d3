"""Building ONNX graphs by hand: one IR version and opset policy for every model we write.

Training's closed-form scores (rfm, clv, engagement, …) and the server's tree rewrite both
emit graphs; they all end in ``make_model`` so every file has the same header, which the
server's loader accepts and ONNX Runtime >= 1.15 runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["IR_VERSION", "TARGET_OPSET", "GraphBuilder", "make_model", "merged_opsets"]

TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}
"""Pinned so a library upgrade never changes the exported graphs silently."""
IR_VERSION = 9
"""The IR version of every model file (opset 18 needs >= 8; ONNX Runtime >= 1.15 reads 9)."""


def merged_opsets(*models: onnx.ModelProto) -> dict[str, int]:
    """The highest opset of each domain that ``models`` import (skl2onnx may list one twice)."""
    opsets: dict[str, int] = {}
    for model in models:
        for imp in model.opset_import:
            opsets[imp.domain] = max(imp.version, opsets.get(imp.domain, 0))
    return opsets


def make_model(graph: onnx.GraphProto, opsets: Mapping[str, int] | None = None) -> onnx.ModelProto:
    """``graph`` as a model with our IR version; ``opsets`` default to the default domain of
    ``TARGET_OPSET`` (pass ``merged_opsets(...)`` for graphs that embed converted models)."""
    chosen = dict(opsets) if opsets is not None else {"": TARGET_OPSET[""]}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(chosen.items())])
    model.ir_version = IR_VERSION
    return model


class GraphBuilder:
    """Collects nodes and initializers with unique names under one prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        """A fresh tensor name made from ``hint``."""
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: float | np.ndarray, hint: str = "c", dtype: type | np.dtype | None = None, *, name: str | None = None) -> str:
        """An initializer holding ``value`` (cast to ``dtype`` when given); its name."""
        full = f"{self.prefix}{name}" if name is not None else self.name(hint)
        array = np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
        self.initializers.append(numpy_helper.from_array(array, full))
        return full

    def op(self, op_type: str, inputs: Sequence[str] | Iterable[str], *, hint: str | None = None, output: str | None = None, **attrs: object) -> str:
        """Append one ``op_type`` node reading ``inputs``; the name of its (single) output."""
        out = output or self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    @property
    def parameter_bytes(self) -> int:
        """Bytes of raw initializer data collected so far."""
        return sum(len(t.raw_data) for t in self.initializers)
