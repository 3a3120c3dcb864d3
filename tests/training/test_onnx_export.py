"""Tests of training/onnx_export.py: metadata attachment, atomic saving, the fixed HGB conversion.

Parity tolerance: ONNX Runtime sums the trees' float32 leaf values in float32 and applies the
logistic in float32, where scikit-learn works in float64; with every routing decision exact
(see the threshold fix) the difference is a few float32 ulps of the raw score, well below
1e-5 in probability. A wrong branch for one row moves its probability by ~1e-2 or more.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier

from scorecast.metadata import INPUT_NAME, METADATA_KEY, OPTIMIZED_KEY, ModelMetadata, OutputSpec
from scorecast.model_store import write_model
from scorecast.training import onnx_export
from scorecast.training.onnx_export import (
    attach_metadata,
    feature_matrix,
    hist_gradient_boosting_to_onnx,
    optimize_graph,
    read_metadata,
)

TOLERANCE = 1e-5


def _sum_model(n_features: int = 3) -> onnx.ModelProto:
    """features [N, k] -> total [N, 1] (row sums): the smallest model of the right shape."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", [INPUT_NAME, "axes"], ["total"], keepdims=1)],
        "sum",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _meta(**changes: object) -> ModelMetadata:
    fields: dict[str, object] = {
        "score": "total",
        "version": "1",
        "model_type": "sum",
        "features": ("a", "b", "c"),
        "outputs": (OutputSpec("value", "float32", "row sum", "total", 0),),
        "trained_at": "2026-01-02T03:04:05+00:00",
        "data_as_of": "2026-01-01T00:00:00+00:00",
        "metrics": {"auc_mean": 0.75, "auc:shoes": 0.8},
        "params": {"groups": ["shoes"], "nested": {"x": [1, 2]}},
    }
    fields.update(changes)
    return ModelMetadata(**fields)  # type: ignore[arg-type]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_metadata_round_trips_through_a_saved_file(tmp_path: Path) -> None:
    """build -> save -> ONNX Runtime custom_metadata_map -> from_json gives the same metadata."""
    meta = _meta()
    path = write_model(attach_metadata(_sum_model(), meta), tmp_path / "total.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY]) == meta
    assert read_metadata(onnx.load(path)) == meta
    out = session.run(None, {INPUT_NAME: np.ones((2, 3), np.float32)})[0]
    np.testing.assert_array_equal(out, [[3.0], [3.0]])


def test_optimize_graph_folds_once_keeps_outputs_and_marks_the_model() -> None:
    """A constant subgraph (2 + 3) is folded away; the outputs, the opset imports and the
    metadata stay; the mark names the level; optimizing again changes nothing more."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["two", "three"], ["five"]),
            helper.make_node("Mul", [INPUT_NAME, "five"], ["scaled"]),
            helper.make_node("ReduceSum", ["scaled", "axes"], ["total"], keepdims=1),
        ],
        "scaled_sum",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = attach_metadata(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), _meta())
    model.ir_version = 8
    optimized = optimize_graph(model)
    assert [n.op_type for n in optimized.graph.node] == ["Mul", "ReduceSum"]
    assert list(optimized.opset_import) == list(model.opset_import) and optimized.ir_version == 8
    assert read_metadata(optimized) == read_metadata(model)
    marks = {p.key: p.value for p in optimized.metadata_props}
    assert marks[OPTIMIZED_KEY].startswith("basic, onnxruntime ")
    onnx.checker.check_model(optimized, full_check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(_session(optimized).run(None, {INPUT_NAME: x})[0], [[15.0], [60.0]])
    again = optimize_graph(optimized)
    assert again.graph == optimized.graph and [p.key for p in again.metadata_props].count(OPTIMIZED_KEY) == 1


def test_attach_metadata_copies_and_replaces() -> None:
    """The input model is left alone; attaching twice keeps one entry, the latest."""
    model = _sum_model()
    first = attach_metadata(model, _meta(version="1"))
    second = attach_metadata(first, _meta(version="2"))
    assert len(model.metadata_props) == 0
    assert [p.key for p in second.metadata_props] == [METADATA_KEY]
    assert read_metadata(second).version == "2"


@pytest.mark.parametrize(
    ("model", "meta", "message"),
    [
        (_sum_model(4), _meta(), "has 4 columns, metadata lists 3"),
        (_sum_model(), _meta(outputs=(OutputSpec("value", "float32", "", "scores", 0),)), "'scores', which the model lacks"),
        (_sum_model(), _meta(outputs=(OutputSpec("value", "float32", "", "total", 1),)), "column 1 is outside"),
    ],
    ids=["width", "missing-output", "column"],
)
def test_attach_metadata_rejects_a_mismatch(model: onnx.ModelProto, meta: ModelMetadata, message: str) -> None:
    """A model that does not match its metadata is refused, naming the mismatch."""
    with pytest.raises(ValueError, match=message):
        attach_metadata(model, meta)


def test_attach_metadata_rejects_another_input_name() -> None:
    """The one input must be called `features`."""
    model = _sum_model()
    model.graph.input[0].name = "X"
    model.graph.node[0].input[0] = "X"
    with pytest.raises(ValueError, match=r"inputs are \['X'\]"):
        attach_metadata(model, _meta())


def test_read_metadata_without_metadata() -> None:
    with pytest.raises(ValueError, match="no 'scorecast' metadata"):
        read_metadata(_sum_model())


def test_save_model_refuses_an_invalid_model_and_writes_nothing(tmp_path: Path) -> None:
    """check_model runs before anything touches the folder."""
    model = _sum_model()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(onnx.checker.ValidationError):
        write_model(model, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_save_model_leaves_the_old_file_and_no_temp_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while moving into place keeps the previous version and removes the temp file."""
    path = tmp_path / "total.onnx"
    write_model(attach_metadata(_sum_model(), _meta(version="1")), path)

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_model(attach_metadata(_sum_model(), _meta(version="2")), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["total.onnx"]
    assert read_metadata(onnx.load(path)).version == "1"


def test_feature_matrix_selects_and_orders_columns() -> None:
    X = np.arange(6, dtype=np.float64).reshape(2, 3)
    out = feature_matrix(X, ["a", "b", "c"], ["c", "a"])
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[2, 0], [5, 3]])


@pytest.mark.parametrize(
    ("names", "wanted", "message"),
    [
        (["a", "b"], ["a"], r"shape \(2, 3\), expected \(n_contacts, 2\)"),
        (["a", "b", "a"], ["a"], r"duplicate feature names: \['a'\]"),
        (["a", "b", "c"], ["a", "zz"], r"features \['zz'\] are not among"),
    ],
    ids=["width", "duplicate", "missing"],
)
def test_feature_matrix_errors(names: list[str], wanted: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feature_matrix(np.zeros((2, 3)), names, wanted)


# --- HistGradientBoosting conversion -------------------------------------------------------



pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def nan_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/test data where missingness is informative (NaN rows mostly positive), so some
    splits send NaN left and some right; the test rows also have NaN in a column that had
    none at training."""
    rng = np.random.default_rng(7)
    n = 6000
    X = rng.normal(size=(n, 4)).astype(np.float32)
    missing = rng.random(n) < 0.3
    X[missing, 0] = np.nan
    logit = np.where(missing, 1.5, X[:, 0]) + np.sin(3 * X[:, 1]) - 0.5
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    X_test = rng.normal(size=(2000, 4)).astype(np.float32)
    X_test[rng.random(2000) < 0.3, 0] = np.nan
    X_test[rng.random(2000) < 0.2, 2] = np.nan  # never missing at training
    return X, y, X_test


@pytest.fixture(scope="module")
def nan_classifier(nan_data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> HistGradientBoostingClassifier:
    X, y, _ = nan_data
    return HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, random_state=0).fit(X, y)


def test_unpatched_skl2onnx_fails_on_hist_gradient_boosting(nan_classifier: HistGradientBoostingClassifier) -> None:
    """Pins the upstream defect our conversion works around (skl2onnx 1.20, protobuf 7): if
    this starts passing, skl2onnx is fixed and the cast in fixed_hist_gradient_boosting_export
    can go (the threshold fix is separate and has its own test)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with pytest.raises((TypeError, ValueError)) as info:
        convert_sklearn(
            nan_classifier,
            initial_types=[(INPUT_NAME, FloatTensorType([None, 4]))],
            options={"zipmap": False},
            target_opset=onnx_export.TARGET_OPSET,
        )
    error: BaseException | None = info.value
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    assert any("Expected an int, got a boolean" in m for m in messages)


def test_conversion_matches_sklearn_with_missing_values(
    nan_data: tuple[np.ndarray, np.ndarray, np.ndarray], nan_classifier: HistGradientBoostingClassifier
) -> None:
    """P(class 1) from ONNX Runtime equals predict_proba on rows with NaN, within TOLERANCE."""
    X, _, X_test = nan_data
    model = hist_gradient_boosting_to_onnx(nan_classifier, 4)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["probability"]
    rows = np.concatenate([X[:2000], X_test])
    got = _session(model).run(None, {INPUT_NAME: rows})[0]
    assert got.shape == (len(rows), 1) and got.dtype == np.float32
    expected = nan_classifier.predict_proba(rows)[:, 1]
    assert np.abs(got[:, 0] - expected).max() <= TOLERANCE


def test_missing_value_direction_is_carried(
    nan_data: tuple[np.ndarray, np.ndarray, np.ndarray], nan_classifier: HistGradientBoostingClassifier
) -> None:
    """The flags we cast are real: some splits send NaN left, and zeroing the flags breaks
    parity on NaN rows (so the parity test above would catch a lost flag)."""
    X, _, _ = nan_data
    model = hist_gradient_boosting_to_onnx(nan_classifier, 4)
    (tree,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    attrs = {a.name: a for a in tree.attribute}
    flags = attrs["nodes_missing_value_tracks_true"]
    branch_flags = [f for f, mode in zip(flags.ints, attrs["nodes_modes"].strings, strict=True) if mode != b"LEAF"]
    assert 0 < sum(branch_flags) < len(branch_flags)  # NaN goes left at some splits, right at others

    n_nodes = len(flags.ints)
    del flags.ints[:]
    flags.ints.extend([0] * n_nodes)
    rows = X[np.isnan(X[:, 0])][:500]
    got = _session(model).run(None, {INPUT_NAME: rows})[0][:, 0]
    assert np.abs(got - nan_classifier.predict_proba(rows)[:, 1]).max() > 1e-2


def test_adjacent_float32_thresholds_route_like_sklearn() -> None:
    """A split between two adjacent float32 values has a float64 midpoint that rounds up to the
    upper value; skl2onnx's nearest rounding sent that value left (a 0.8 error), ours matches."""
    rng = np.random.default_rng(3)
    low = np.float32(1) + np.float32(2**-23)  # odd mantissa: the midpoint rounds up (ties to even)
    high = np.nextafter(low, np.float32(2))
    n = 4000
    X = rng.normal(size=(n, 2)).astype(np.float32)
    X[:, 0] = np.where(rng.random(n) < 0.5, low, high)
    y = (X[:, 0] == high) ^ (rng.random(n) < 0.05)
    clf = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    thresholds = [node["num_threshold"] for node in clf._predictors[0][0].nodes if not node["is_leaf"] and node["feature_idx"] == 0]
    assert any(np.float32(t) > t for t in thresholds)  # the case the fix is for does occur

    got = _session(hist_gradient_boosting_to_onnx(clf, 2)).run(None, {INPUT_NAME: X})[0][:, 0]
    assert np.abs(got - clf.predict_proba(X)[:, 1]).max() <= TOLERANCE


def test_patch_is_scoped_to_the_conversion(nan_classifier: HistGradientBoostingClassifier) -> None:
    """skl2onnx is unchanged after a conversion, whether it succeeds or fails."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node
    hist_gradient_boosting_to_onnx(nan_classifier, 4)
    assert tree_ensemble.add_node is original
    with pytest.raises(ValueError, match="fitted on 4 features, n_features=5"):
        hist_gradient_boosting_to_onnx(nan_classifier, 5)
    assert tree_ensemble.add_node is original


def test_conversion_rejects_multiclass() -> None:
    X = np.arange(30, dtype=np.float32).reshape(-1, 1)
    clf = HistGradientBoostingClassifier(max_iter=2, min_samples_leaf=2).fit(X, np.arange(30) % 3)
    with pytest.raises(ValueError, match=r"binary classifier, got classes \[0, 1, 2\]"):
        hist_gradient_boosting_to_onnx(clf, 1)


def test_conversion_rejects_an_unfitted_classifier() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        hist_gradient_boosting_to_onnx(HistGradientBoostingClassifier(), 1)


def test_float32_at_most() -> None:
    """The stored threshold is the largest float32 not above the float64 one."""
    low = np.float32(1) + np.float32(2**-23)
    mid = (float(low) + float(np.nextafter(low, np.float32(2)))) / 2
    assert onnx_export.float32_at_most(mid) == float(low)
    assert onnx_export.float32_at_most(0.5) == 0.5
    assert onnx_export.float32_at_most(-mid) == float(-np.nextafter(low, np.float32(2)))
