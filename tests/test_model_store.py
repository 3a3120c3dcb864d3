"""scorecast/model_store.py: the repository layout, versions and atomic model writes."""

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from scorecast.model_store import find_model, model_files, model_path, next_version, store_model, version_key, versions
from scorecast.onnx_graph import IR_VERSION, make_model


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    )
    return make_model(graph)


def test_versions_sort_numerically_and_next_is_one_more(tmp_path: Path) -> None:
    for v in ("2", "10", "9", "beta"):
        store_model(tmp_path, "rfm", v, _model())
    assert versions(tmp_path, "rfm") == ["beta", "2", "9", "10"]
    assert next_version(tmp_path, "rfm") == "11"
    assert next_version(tmp_path, "clv") == "1"
    assert find_model(tmp_path, "rfm") == tmp_path / "rfm" / "10.onnx"
    assert find_model(tmp_path, "rfm", "9") == tmp_path / "rfm" / "9.onnx"
    assert sorted(v for _, v, _ in model_files(tmp_path)) == ["10", "2", "9", "beta"]
    assert version_key("10") > version_key("9") > version_key("zzz")


def test_written_models_carry_the_one_ir_version(tmp_path: Path) -> None:
    path = store_model(tmp_path, "rfm", "1", _model())
    assert onnx.load(path).ir_version == IR_VERSION
    assert [p.name for p in (tmp_path / "rfm").iterdir()] == ["1.onnx"]


@pytest.mark.parametrize("score, version", [("../x", "1"), ("rfm", "../../etc"), (".hidden", "1"), ("rfm", "")])
def test_names_cannot_leave_the_folder(tmp_path: Path, score: str, version: str) -> None:
    with pytest.raises(ValueError, match="is not a valid name"):
        model_path(tmp_path, score, version)


def test_find_model_names_what_is_there(tmp_path: Path) -> None:
    store_model(tmp_path, "rfm", "1", _model())
    with pytest.raises(FileNotFoundError, match=r"no score 'clv' .*\['rfm'\]"):
        find_model(tmp_path, "clv")
    with pytest.raises(FileNotFoundError, match="7.onnx does not exist"):
        find_model(tmp_path, "rfm", "7")


def test_an_invalid_model_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = _model()
    bad.graph.node[0].input[0] = "nowhere"
    with pytest.raises(onnx.checker.ValidationError):
        store_model(tmp_path, "rfm", "1", bad)
    assert not any((tmp_path / "rfm").iterdir())
