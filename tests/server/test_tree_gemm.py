"""The GEMM form of tree ensembles (server/tree_gemm.py) vs ONNX Runtime's native TreeEnsemble.

Tolerance: ``TOLERANCE`` = 1e-5 absolute plus 1e-5 relative, on the CPU provider. Routing is
exact (the same float32 comparisons, NaN rules and thresholds), so every row reaches the same
leaves; what may differ is the order in which float32 leaf values are summed over trees
(ONNX Runtime sums tree by tree, per thread; ReduceSum in its own order) and Sigmoid vs
ONNX Runtime's own logistic, a few float32 ulps.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from scorecast.metadata import INPUT_NAME, METADATA_KEY, ModelMetadata, OutputSpec
from scorecast.model_store import write_model
from scorecast.server import runtime
from scorecast.server.runtime import CUDA, IO_BINDING_MIN_ROWS, OnnxModel, SessionOptions
from scorecast.server.tree_gemm import (
    TREE_OPS,
    GemmRewrite,
    UnsupportedTree,
    probe_rows,
    to_gemm,
    tree_nodes,
)
from scorecast.training.scores.affinity import fit_affinity

from ..support.affinity_base import synthetic_base

TOLERANCE = 1e-5
HAS_CUDA = CUDA in ort.get_available_providers()
AFFINITY_GROUPS = ("apparel", "beauty", "books", "electronics", "garden", "grocery", "shoes", "toys")
TIMES = {"trained_at": "2026-01-02T00:00:00+00:00", "data_as_of": "2026-01-01T00:00:00+00:00"}
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
N_FEATURES = 5
# Thresholds and inputs come from this small grid (and its float32 neighbours), so equality
# with a threshold, where <= and < or == and != part ways, happens often.
GRID = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0], dtype=np.float32)


def random_trees(rng: np.random.Generator, n_trees: int, max_depth: int, modes: tuple[str, ...]) -> dict[str, list]:
    """Random binary trees as nodes_* attribute lists (leaves listed in ``leaves``)."""
    attrs: dict[str, list] = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids", "missing")}
    leaves: list[tuple[int, int]] = []
    for tree in range(n_trees):
        next_id = [0]

        def grow(depth: int, tree: int = tree, next_id: list[int] = next_id) -> int:
            node = next_id[0]
            next_id[0] += 1
            split = depth < max_depth and (depth == 0 or rng.random() < 0.7)
            row = len(attrs["nodeids"])
            for key, value in (("treeids", tree), ("nodeids", node), ("featureids", int(rng.integers(N_FEATURES)) if split else 0),
                               ("values", float(rng.choice(GRID)) if split else 0.0), ("modes", str(rng.choice(modes)) if split else "LEAF"),
                               ("truenodeids", 0), ("falsenodeids", 0), ("missing", int(rng.random() < 0.5) if split else 0)):  # fmt: skip
                attrs[key].append(value)
            if split:
                attrs["truenodeids"][row] = grow(depth + 1)
                attrs["falsenodeids"][row] = grow(depth + 1)
            else:
                leaves.append((tree, node))
            return node

        grow(0)
    attrs["leaves"] = leaves
    return attrs


def ensemble_model(
    rng: np.random.Generator,
    op: str,
    *,
    n_outputs: int = 1,
    n_trees: int = 4,
    max_depth: int = 4,
    modes: tuple[str, ...] = MODES,
    classes: tuple[int, ...] | None = None,
    weight_sign: str = "mixed",
    **extra: object,
) -> onnx.ModelProto:
    """One TreeEnsembleRegressor/Classifier reading ``features``; ``classes``: the class ids
    given weights at every leaf (default: all outputs)."""
    trees = random_trees(rng, n_trees, max_depth, modes)
    w_trees, w_nodes, w_ids, w_values = [], [], [], []
    for tree, node in trees.pop("leaves"):
        for j in classes if classes is not None else range(n_outputs):
            w = float(rng.normal())
            w = abs(w) / 4 if weight_sign == "positive" else w
            w_trees.append(tree), w_nodes.append(node), w_ids.append(j), w_values.append(w)
    attrs = {f"nodes_{k}": v for k, v in trees.items() if k != "missing"}
    attrs["nodes_missing_value_tracks_true"] = trees["missing"]
    prefix = "class" if op == "TreeEnsembleClassifier" else "target"
    attrs.update({f"{prefix}_treeids": w_trees, f"{prefix}_nodeids": w_nodes, f"{prefix}_ids": w_ids, f"{prefix}_weights": w_values})
    if op == "TreeEnsembleClassifier":
        attrs["classlabels_int64s"] = list(range(10, 10 + n_outputs))
        outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]), helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, n_outputs])]
        node_outputs = ["label", "scores"]
    else:
        attrs["n_targets"] = n_outputs
        outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, n_outputs])]
        node_outputs = ["scores"]
    attrs.update(extra)
    node = helper.make_node(op, [INPUT_NAME], node_outputs, name="trees", domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "trees", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, N_FEATURES])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def random_inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Grid values, their float32 neighbours, NaN (~15 %) and ±inf."""
    pool = np.concatenate([GRID, np.nextafter(GRID, np.float32(np.inf)), np.nextafter(GRID, np.float32(-np.inf)), [np.inf, -np.inf]])
    x = rng.choice(pool, (n, N_FEATURES)).astype(np.float32)
    x[rng.random((n, N_FEATURES)) < 0.15] = np.nan
    return x


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_NAME: x}), strict=True))


def assert_parity(model: onnx.ModelProto, x: np.ndarray) -> None:
    """Every output of the rewritten graph matches the native one; no tree op is left."""
    rewritten = to_gemm(model).model
    assert not tree_nodes(rewritten)
    assert not [n for n in rewritten.graph.node if n.domain == "ai.onnx.ml" or n.op_type in TREE_OPS]
    native, gemm = run(model, x), run(rewritten, x)
    assert native.keys() == gemm.keys()
    for name in native:
        assert gemm[name].shape == native[name].shape, name
        if native[name].dtype == np.int64:
            np.testing.assert_array_equal(gemm[name], native[name], err_msg=name)
        else:
            np.testing.assert_allclose(gemm[name], native[name], rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("missing", [0, 1])
def test_every_branch_mode_and_missing_rule(mode: str, missing: int) -> None:
    """One mode at a time, NaN tracking all on or all off: exact routing at the thresholds."""
    rng = np.random.default_rng(MODES.index(mode) * 2 + missing)
    model = ensemble_model(rng, "TreeEnsembleRegressor", modes=(mode,), n_trees=6)
    for a in model.graph.node[0].attribute:
        if a.name == "nodes_missing_value_tracks_true":
            a.ints[:] = [missing] * len(a.ints)
    assert_parity(model, random_inputs(rng, 4000))


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE"])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("with_base", [False, True])
def test_regressor(aggregate: str, n_targets: int, with_base: bool) -> None:
    """Mixed modes and NaN rules, several trees and targets, SUM/AVERAGE, base values."""
    rng = np.random.default_rng(n_targets * 10 + with_base)
    extra: dict[str, object] = {"aggregate_function": aggregate}
    if with_base:
        extra["base_values"] = rng.normal(size=n_targets).tolist()
    model = ensemble_model(rng, "TreeEnsembleRegressor", n_outputs=n_targets, n_trees=7, max_depth=5, **extra)
    assert_parity(model, random_inputs(rng, 4000))


@pytest.mark.parametrize(
    ("transform", "weight_sign", "base"),
    [("LOGISTIC", "mixed", 1), ("LOGISTIC", "mixed", 0), ("NONE", "positive", 0), ("LOGISTIC", "positive", 1)],
)
def test_binary_classifier(transform: str, weight_sign: str, base: int) -> None:
    """Binary with one score (class-0 weights, skl2onnx's layout for boosting): probabilities
    and labels, base value or none, logistic or not."""
    rng = np.random.default_rng(len(transform) + base)
    extra: dict[str, object] = {"post_transform": transform}
    if base:
        extra["base_values"] = [float(rng.normal())]
    model = ensemble_model(rng, "TreeEnsembleClassifier", n_outputs=2, classes=(0,), weight_sign=weight_sign, **extra)
    assert_parity(model, random_inputs(rng, 4000))


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX"])
@pytest.mark.parametrize("with_base", [False, True])
def test_multiclass_classifier(transform: str, with_base: bool) -> None:
    """Four classes, weights for every class at every leaf, labels by arg max."""
    rng = np.random.default_rng(len(transform) + 7 * with_base)
    extra: dict[str, object] = {"post_transform": transform}
    if with_base:
        extra["base_values"] = rng.normal(size=4).tolist()
    model = ensemble_model(rng, "TreeEnsembleClassifier", n_outputs=4, n_trees=5, **extra)
    assert_parity(model, random_inputs(rng, 4000))


def test_single_leaf_trees_are_padded() -> None:
    """A tree that is only a leaf (a constant) among others still adds its value."""
    rng = np.random.default_rng(3)
    model = ensemble_model(rng, "TreeEnsembleRegressor", n_trees=3)
    node = model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v for k, v in attrs.items() if isinstance(v, list)}
    for key in attrs:  # append tree 3: one leaf with weight 5
        attrs[key] = [*attrs[key], {"nodes_treeids": 3, "nodes_modes": b"LEAF", "target_treeids": 3, "target_weights": 5.0}.get(key, 0)]
    del node.attribute[:]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    node.attribute.append(helper.make_attribute("n_targets", 1))
    assert_parity(model, random_inputs(rng, 2000))


@pytest.mark.parametrize(
    ("op", "change", "reason"),
    [
        ("TreeEnsembleRegressor", {"aggregate_function": "MAX"}, "aggregate_function MAX"),
        ("TreeEnsembleRegressor", {"post_transform": "PROBIT"}, "post_transform PROBIT"),
        ("TreeEnsembleClassifier", {"n_outputs": 2, "classes": (0, 1)}, "classifier layout not reproduced"),
        ("TreeEnsembleClassifier", {"n_outputs": 3, "classes": (0, 2)}, "classifier layout not reproduced"),
        ("TreeEnsembleClassifier", {"n_outputs": 3, "post_transform": "SOFTMAX_ZERO"}, "post_transform SOFTMAX_ZERO"),
    ],
)
def test_what_is_not_reproduced_is_refused(op: str, change: dict[str, object], reason: str) -> None:
    """Configurations outside the exact subset raise UnsupportedTree naming the node and why."""
    model = ensemble_model(np.random.default_rng(0), op, **change)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedTree, match=f"'trees'.*{reason}"):
        to_gemm(model)


def test_size_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MAX_PARAMETER_BYTES the rewrite is refused (the native form stays)."""
    from scorecast.server import tree_gemm

    monkeypatch.setattr(tree_gemm, "MAX_PARAMETER_BYTES", 100)
    with pytest.raises(UnsupportedTree, match="MAX_PARAMETER_BYTES"):
        to_gemm(ensemble_model(np.random.default_rng(0), "TreeEnsembleRegressor"))


def test_probe_rows_hit_thresholds_and_their_neighbours() -> None:
    """The load-time probe holds every threshold, both float32 neighbours, and NaN."""
    model = ensemble_model(np.random.default_rng(1), "TreeEnsembleRegressor")
    probe = probe_rows(model, N_FEATURES, n_rows=4096)
    assert probe.shape == (4096, N_FEATURES) and probe.dtype == np.float32
    node = model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for f, t, m in zip(attrs["nodes_featureids"], attrs["nodes_values"], attrs["nodes_modes"], strict=True):
        if m != b"LEAF":
            t = np.float32(t)
            for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
                assert (probe[:, f] == v).any()
    assert np.isnan(probe).any(axis=0).all()



# -- the affinity score: one HistGradientBoosting per product group, merged into one graph --


@pytest.fixture(scope="module")
def affinity() -> tuple[onnx.ModelProto, np.ndarray]:
    """A small affinity model over the 8 product groups, and held-out rows (NaN recencies)."""
    from threadpoolctl import threadpool_limits

    X, names, labels = synthetic_base(8_000, AFFINITY_GROUPS, seed=3)
    with threadpool_limits(1):  # small fits on a busy 2-core machine (see tests/training/conftest.py)
        model = fit_affinity(X[:6_000], names, {g: y[:6_000] for g, y in labels.items()}, max_iter=25, random_state=0)
    return model.to_onnx(version="1", **TIMES), X[6_000:]


@pytest.fixture
def affinity_path(tmp_path: Path, affinity: tuple[onnx.ModelProto, np.ndarray]) -> Path:
    path = tmp_path / "affinity" / "1.onnx"
    path.parent.mkdir()
    return write_model(affinity[0], path)


def test_affinity_model_parity(affinity: tuple[onnx.ModelProto, np.ndarray]) -> None:
    """The trained affinity graph (8 TreeEnsembleClassifiers) in GEMM form: same
    probabilities on held-out contacts (NaN recencies), with NaN sprinkled in, and on the
    probe batch of thresholds and their float32 neighbours."""
    model, holdout = affinity
    assert len(tree_nodes(model)) == len(AFFINITY_GROUPS)
    x = holdout.copy()
    x[np.random.default_rng(0).random(x.shape) < 0.1] = np.nan
    assert_parity(model, x)
    assert_parity(model, probe_rows(model, x.shape[1], n_rows=8192, seed=1))


def test_runtime_serves_gemm_form_on_request(affinity_path: Path, affinity: tuple[onnx.ModelProto, np.ndarray]) -> None:
    """tree_form='gemm' on the CPU serves the rewritten graph (and slices big batches);
    'auto' on the CPU keeps the native TreeEnsemble."""
    native = OnnxModel.load(affinity_path, SessionOptions(tree_form="native"))
    auto = OnnxModel.load(affinity_path, SessionOptions(tree_form="auto"))
    gemm = OnnxModel.load(affinity_path, SessionOptions(tree_form="gemm"))
    assert (native.tree_form, auto.tree_form, gemm.tree_form) == ("native", "native", "gemm")
    assert native.rows_per_run is None and gemm.rows_per_run is not None and gemm.rows_per_run >= 1024
    x = affinity[1]
    expected = native.run(x)["probabilities"]
    np.testing.assert_allclose(gemm.run(x)["probabilities"], expected, rtol=TOLERANCE, atol=TOLERANCE)
    gemm.rows_per_run = 700  # three slices and a remainder
    np.testing.assert_allclose(gemm.run(x)["probabilities"], expected, rtol=TOLERANCE, atol=TOLERANCE)


def test_parity_failure_keeps_native(
    affinity_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A rewrite that disagrees with the native form on the probe batch is not served."""

    def off_by_a_little(model: onnx.ModelProto) -> GemmRewrite:
        rewrite = to_gemm(model)
        for init in rewrite.model.graph.initializer:
            if init.name.endswith("_E"):  # leaf values: shift one by 1e-3
                values = onnx.numpy_helper.to_array(init).copy()
                values.flat[np.flatnonzero(values)[0]] += 1e-3
                init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
                break
        return rewrite

    monkeypatch.setattr(runtime, "to_gemm", off_by_a_little)
    with caplog.at_level(logging.WARNING, logger="scorecast.server.runtime"):
        model = OnnxModel.load(affinity_path, SessionOptions(tree_form="gemm"))
    assert model.tree_form == "native" and model.rows_per_run is None
    assert "keeping the native tree form: output 'probabilities' of the GEMM form differs by up to" in caplog.text


def test_unsupported_trees_keep_native(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A tree node outside the exact subset (MAX aggregation) is served natively, and logged."""
    model = ensemble_model(np.random.default_rng(0), "TreeEnsembleRegressor", aggregate_function="MAX")
    meta = ModelMetadata(
        score="trees", version="1", model_type="fake-trees", features=tuple(f"f{i}" for i in range(N_FEATURES)),
        outputs=(OutputSpec("value", "float32", "max over trees", onnx_output="scores", column=0),),
        trained_at=TIMES["trained_at"], data_as_of=TIMES["data_as_of"],
    )  # fmt: skip
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    path = tmp_path / "trees" / "1.onnx"
    path.parent.mkdir()
    onnx.save(model, path)
    with caplog.at_level(logging.WARNING, logger="scorecast.server.runtime"):
        loaded = OnnxModel.load(path, SessionOptions(tree_form="gemm"))
    assert loaded.tree_form == "native"
    assert "aggregate_function MAX" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a GPU")
def test_affinity_on_cuda_matches_cpu(affinity_path: Path, affinity: tuple[onnx.ModelProto, np.ndarray]) -> None:
    """Served on CUDA (trees in GEMM form, IO binding above IO_BINDING_MIN_ROWS): the CPU's
    probabilities, for small and large batches."""
    cpu = OnnxModel.load(affinity_path, SessionOptions("cpu"))
    gpu = OnnxModel.load(affinity_path, SessionOptions("cuda"))
    assert gpu.providers[0] == CUDA and gpu.tree_form == "gemm"
    holdout = affinity[1]
    rows = np.random.default_rng(1).integers(0, len(holdout), 3 * IO_BINDING_MIN_ROWS)
    x = np.ascontiguousarray(holdout[rows])
    for batch in (x[:100], x):
        got, expected = gpu.run(batch), cpu.run(batch)
        assert got.keys() == expected.keys() == {"probabilities"}
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=TOLERANCE, atol=TOLERANCE)
