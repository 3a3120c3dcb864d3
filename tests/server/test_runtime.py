"""Execution-provider selection and the ONNX session wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from scorecast.server.runtime import CUDA, OnnxModel, providers_for

from .fakes import linear_model, write_model

HAS_CUDA = CUDA in ort.get_available_providers()


def test_cpu_providers() -> None:
    """The CPU path asks for the CPU provider only."""
    assert providers_for("cpu") == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised where CUDA is absent")
def test_cuda_absent_is_a_clear_error() -> None:
    """Asking for CUDA without it says what to install and which providers exist."""
    with pytest.raises(RuntimeError, match="CPUExecutionProvider.*onnxruntime-gpu"):
        providers_for("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a GPU")
def test_cuda_matches_cpu(tmp_path: Path) -> None:
    """The CUDA session (with IO binding above its row threshold) gives the CPU's results."""
    path = write_model(tmp_path, linear_model())
    cpu, gpu = OnnxModel.load(path, "cpu"), OnnxModel.load(path, "cuda")
    assert gpu.providers[0] == CUDA
    x = np.random.default_rng(0).random((50_000, 2), dtype=np.float32)
    np.testing.assert_allclose(gpu.run(x)["value"], cpu.run(x)["value"], rtol=1e-5)


def test_run_returns_named_outputs(tmp_path: Path) -> None:
    """run() maps the metadata's ONNX outputs to arrays."""
    model = OnnxModel.load(write_model(tmp_path, linear_model(weights=(2.0, 1.0))), "cpu")
    out = model.run(np.array([[1, 2], [3, 4]], dtype=np.float32))
    np.testing.assert_allclose(out["value"][:, 0], [4, 10])
    assert model.load_seconds > 0
