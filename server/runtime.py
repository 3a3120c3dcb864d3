"""One served model: an ONNX Runtime session on the CPU or CUDA provider, and its metadata.

``OnnxModel.load`` builds the session, reads the model's own metadata (the ONNX file is all
the server needs), checks that the graph matches it and warms it up. ``run`` takes the
float32 feature matrix and returns the named outputs as NumPy arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from scorecast.metadata import INPUT_NAME, METADATA_KEY, ModelMetadata

from .errors import ModelLoadError

__all__ = ["OnnxModel", "providers_for"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Below this many rows, binding buffers costs more than the copies it saves.
IO_BINDING_MIN_ROWS = 10_000


def providers_for(device: str) -> list[str]:
    """Execution providers for a device; raises RuntimeError if CUDA is asked for and absent."""
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA not in available:
        raise RuntimeError(
            f"device 'cuda' needs ONNX Runtime's {CUDA}, but this onnxruntime build offers only "
            f"{available}: install onnxruntime-gpu (pip install 'scorecast[cuda]') in place of onnxruntime"
        )
    # CPU stays listed so operators without a CUDA kernel (TreeEnsemble) still run.
    return [CUDA, CPU]


@dataclass
class OnnxModel:
    """A loaded model version: session, metadata and where it came from."""

    path: Path
    meta: ModelMetadata
    session: ort.InferenceSession
    load_seconds: float

    @classmethod
    def load(cls, path: Path, device: str = "cpu", intra_op_threads: int = 0) -> OnnxModel:
        """Build the session and check the graph against its metadata; ModelLoadError if unservable."""
        start = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3  # CUDA fallback notices for tree operators are expected
        providers = providers_for(device)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelLoadError(path, f"ONNX Runtime refused it: {exc}") from None
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelLoadError(path, f"no '{METADATA_KEY}' entry in its metadata_props")
        try:
            meta = ModelMetadata.from_json(raw)
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from None
        _check_graph(path, session, meta)
        model = cls(path=path, meta=meta, session=session, load_seconds=0.0)
        model.run(np.zeros((1, len(meta.features)), dtype=np.float32))  # warm-up: allocations, kernels
        model.load_seconds = time.perf_counter() - start
        return model

    @property
    def providers(self) -> list[str]:
        """Execution providers of the session, in priority order."""
        return list(self.session.get_providers())

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Score a float32 C-contiguous ``[n, len(features)]`` matrix; outputs by name.

        A model whose ``params["max_batch_rows"]`` is set (recommendations: rows x catalogue
        scores) runs in slices of that many rows, so its memory stays bounded per chunk.
        """
        rows = self.meta.params.get("max_batch_rows")
        if rows and features.shape[0] > rows:
            parts = [self._run(features[lo : lo + rows]) for lo in range(0, features.shape[0], rows)]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return self._run(features)

    def _run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        names = self._output_names
        if CUDA in self.session.get_providers() and features.shape[0] >= IO_BINDING_MIN_ROWS:
            # One host-to-device copy of the input, outputs gathered on the host at the end:
            # without binding, ONNX Runtime copies per run and allocates outputs each time.
            binding = self.session.io_binding()
            binding.bind_cpu_input(INPUT_NAME, features)
            for name in names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            return dict(zip(names, binding.copy_outputs_to_cpu(), strict=True))
        return dict(zip(names, self.session.run(names, {INPUT_NAME: features}), strict=True))

    @property
    def _output_names(self) -> list[str]:
        return sorted({o.onnx_output for o in self.meta.outputs})


def _check_graph(path: Path, session: ort.InferenceSession, meta: ModelMetadata) -> None:
    """The graph must take ``features`` [n, len(meta.features)] and emit every output named."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ModelLoadError(path, f"expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
    width = inputs[0].shape[-1]
    if isinstance(width, int) and width != len(meta.features):
        raise ModelLoadError(path, f"input width {width} != {len(meta.features)} features in its metadata")
    graph_outputs = {o.name for o in session.get_outputs()}
    missing = sorted({o.onnx_output for o in meta.outputs} - graph_outputs)
    if missing:
        raise ModelLoadError(path, f"metadata names outputs {missing} the graph does not have ({sorted(graph_outputs)})")
