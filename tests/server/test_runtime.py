"""Execution-provider selection and the ONNX session wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from scorecast.metadata import METADATA_KEY, OPTIMIZED_KEY, ModelMetadata, OutputSpec
from scorecast.server import runtime
from scorecast.server.runtime import CUDA, OnnxModel, SessionOptions, providers_for

from ..support.fakes import linear_model, write_model

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
    cpu, gpu = OnnxModel.load(path, SessionOptions("cpu")), OnnxModel.load(path, SessionOptions("cuda"))
    assert gpu.providers[0] == CUDA
    x = np.random.default_rng(0).random((50_000, 2), dtype=np.float32)
    np.testing.assert_allclose(gpu.run(x)["value"], cpu.run(x)["value"], rtol=1e-5)


def test_run_returns_named_outputs(tmp_path: Path) -> None:
    """run() maps the metadata's ONNX outputs to arrays."""
    model = OnnxModel.load(write_model(tmp_path, linear_model(weights=(2.0, 1.0))))
    out = model.run(np.array([[1, 2], [3, 4]], dtype=np.float32))
    np.testing.assert_allclose(out["value"][:, 0], [4, 10])
    assert model.load_seconds > 0


def test_a_model_training_optimized_is_not_optimized_again(tmp_path: Path) -> None:
    """A model marked as optimized (``OPTIMIZED_KEY``) gets a CPU session with ONNX Runtime's
    optimizer off and scores the same; an unmarked one keeps the optimizer on."""
    plain = OnnxModel.load(write_model(tmp_path / "plain", linear_model(weights=(2.0, 1.0))))
    marked_model = linear_model(weights=(2.0, 1.0))
    marked_model.metadata_props.add(key=OPTIMIZED_KEY, value="basic, onnxruntime test")
    marked = OnnxModel.load(write_model(tmp_path / "marked", marked_model))
    level = ort.GraphOptimizationLevel
    assert marked.session.get_session_options().graph_optimization_level == level.ORT_DISABLE_ALL
    assert plain.session.get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    np.testing.assert_array_equal(marked.run(x)["value"], plain.run(x)["value"])


def test_io_binding_path_keeps_output_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The IO-binding branch of run() (taken on CUDA above IO_BINDING_MIN_ROWS), exercised on
    the CPU provider: each output comes back under its own name, though the graph lists them
    in another order than run() binds them, and slices are stitched back in order."""
    meta = ModelMetadata(
        score="two", version="1", model_type="fake-two", features=("frequency", "total_amount"),
        outputs=(OutputSpec("doubled", "float32", "2x", "z_doubled", 0), OutputSpec("plus", "float32", "x+1", "a_plus", 1)),
        trained_at="2026-01-02T00:00:00+00:00", data_as_of="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    nodes = [helper.make_node("Add", ["features", "features"], ["z_doubled"]), helper.make_node("Add", ["features", "one"], ["a_plus"])]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 2]) for n in ("z_doubled", "a_plus")],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    loaded = OnnxModel.load(write_model(tmp_path, model))
    monkeypatch.setattr(runtime, "CUDA", runtime.CPU)  # take the binding branch on the CPU session
    x = np.random.default_rng(0).random((runtime.IO_BINDING_MIN_ROWS + 5, 2), dtype=np.float32)
    out = loaded.run(x)
    np.testing.assert_array_equal(out["z_doubled"], 2 * x)
    np.testing.assert_array_equal(out["a_plus"], x + 1)
    loaded.rows_per_run = 12_000  # slices (as for the GEMM form): the first bound, the second not
    out = loaded.run(np.concatenate([x, x]))
    np.testing.assert_array_equal(out["a_plus"], np.concatenate([x, x]) + 1)


def test_session_options_refuse_an_unknown_tree_form() -> None:
    """A tree form the runtime does not know fails when the options are built, naming it."""
    with pytest.raises(ValueError, match="tree_form must be one of .* got 'dense'"):
        SessionOptions(tree_form="dense")


def _external_constant(name: str) -> object:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/etc/hostname")
    return helper.make_node("Constant", [], [f"{name}_out"], value=tensor)


@pytest.mark.parametrize("where", ["constant", "subgraph"])
def test_external_data_anywhere_is_refused(tmp_path: Path, where: str) -> None:
    """A tensor in an external file is refused in a Constant node and inside a subgraph too, not
    only among the initializers: a model must be one file (external data reads server paths)."""
    model = linear_model()
    if where == "constant":
        model.graph.node.append(_external_constant("ext"))
    else:
        branch = helper.make_graph([_external_constant("deep")], "branch", [], [helper.make_tensor_value_info("deep_out", TensorProto.FLOAT, [1])])
        model.graph.initializer.append(helper.make_tensor("cond", TensorProto.BOOL, [], [True]))
        model.graph.node.append(helper.make_node("If", ["cond"], ["if_out"], then_branch=branch, else_branch=branch))
    path = write_model(tmp_path, model)
    with pytest.raises(runtime.ModelLoadError, match="external files"):
        OnnxModel.load(path)


def test_session_is_built_from_the_checked_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file swapped between the checks and the session cannot skip the checks: the session is
    built from the bytes that were checked, so it serves the model that was checked."""
    path = write_model(tmp_path, linear_model(weights=(1.0, 10.0)))
    swapped = write_model(tmp_path / "other", linear_model(weights=(5.0, 50.0))).read_bytes()
    checked = runtime._check_file

    def check_then_swap(p: Path, max_bytes: int):  # noqa: ANN202
        result = checked(p, max_bytes)
        p.write_bytes(swapped)
        return result

    monkeypatch.setattr(runtime, "_check_file", check_then_swap)
    model = OnnxModel.load(path)
    out = model.run(np.array([[1.0, 1.0]], np.float32))
    assert np.ravel(next(iter(out.values())))[0] == pytest.approx(11.0)  # 1*1 + 10*1, not 5 + 50
