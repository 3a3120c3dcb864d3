"""Tests of training/affinity.py: ONNX parity, the merged graph, holdout metrics, metadata.

Parity tolerance 1e-5: each group's trees route exactly as scikit-learn's (see
test_onnx_export.py); what remains is ONNX Runtime summing float32 leaf values where
scikit-learn sums float64, a few float32 ulps of the raw score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scorecast.metadata import INPUT_NAME, METADATA_KEY, ModelMetadata
from scorecast.model_store import write_model
from scorecast.training.scores.affinity import AffinityModel, fit_affinity

from ...support.affinity_base import synthetic_base

TOLERANCE = 1e-5
GROUPS = ("shoes", "beauty", "books")
TIMES = {"trained_at": "2026-01-02T00:00:00+00:00", "data_as_of": "2026-01-01T00:00:00+00:00"}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base() -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    return synthetic_base(12_000, GROUPS, seed=1)


@pytest.fixture(scope="module")
def model(base: tuple[np.ndarray, list[str], dict[str, np.ndarray]]) -> AffinityModel:
    X, names, labels = base
    return fit_affinity(X, names, labels, horizon_days=90, random_state=0, max_iter=60)


@pytest.fixture(scope="module")
def onnx_model(model: AffinityModel) -> onnx.ModelProto:
    return model.to_onnx(version="1", **TIMES)


def _run(model: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: X})[0]


def test_onnx_matches_sklearn_with_missing_values(
    base: tuple[np.ndarray, list[str], dict[str, np.ndarray]], model: AffinityModel, onnx_model: onnx.ModelProto
) -> None:
    """The merged graph's [N, G] probabilities equal each classifier's predict_proba, on
    contacts without orders (NaN recencies) and with NaN where training had none."""
    X, names, _ = base
    rows = X[:3000].copy()
    rows[::7, names.index("frequency")] = np.nan
    rows[::11, names.index("monetary")] = np.nan
    got = _run(onnx_model, rows)
    assert got.shape == (len(rows), len(GROUPS)) and got.dtype == np.float32
    assert np.isnan(rows).any(axis=1).mean() > 0.2
    assert np.abs(got - model.predict_proba(rows, names)).max() <= TOLERANCE


def test_one_graph_one_input_one_output(onnx_model: onnx.ModelProto) -> None:
    """The groups' sub-graphs are merged: one `features` input, one `probabilities` output,
    prefixed node names with no clash, and it passes the full checker."""
    onnx.checker.check_model(onnx_model, full_check=True)
    assert [i.name for i in onnx_model.graph.input] == [INPUT_NAME]
    assert [o.name for o in onnx_model.graph.output] == ["probabilities"]
    trees = [n for n in onnx_model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert len(trees) == len(GROUPS)
    names = [n.name for n in onnx_model.graph.node]
    assert len(names) == len(set(names))


def test_model_beats_the_recency_frequency_baseline(model: AffinityModel) -> None:
    """On data with a replenishment cycle, the trees find what a monotone baseline cannot."""
    metrics = model.metrics_
    for group in GROUPS:
        assert metrics[f"auc:{group}"] > metrics[f"baseline_auc:{group}"]
    assert metrics["auc_mean"] > metrics["baseline_auc_mean"] + 0.03
    assert metrics["auc_mean"] > 0.7
    assert metrics["lift10_mean"] > metrics["baseline_lift10_mean"]
    assert metrics["ece_mean"] < 0.05



def test_model_beats_group_popularity_and_own_group_frequency(model: AffinityModel) -> None:
    """The simple baselines of every product score, pooled over (contact, group) pairs."""
    m = model.metrics_
    for group in GROUPS:
        assert m[f"auc:{group}"] > m[f"own_group_frequency_auc:{group}"]
    for baseline in ("group_popularity", "own_group_frequency"):
        assert m["pooled_auc"] > m[f"{baseline}_auc"], baseline
        assert m["pooled_lift10"] > m[f"{baseline}_lift10"], baseline


def test_split_and_subsample(base: tuple[np.ndarray, list[str], dict[str, np.ndarray]]) -> None:
    """20 % holdout; training rows capped at max_train_rows; seeded, so refitting repeats."""
    X, names, labels = base
    small = {g: y[:4000] for g, y in labels.items()}
    first = fit_affinity(X[:4000], names, small, max_train_rows=1000, max_iter=5, random_state=3)
    again = fit_affinity(X[:4000], names, small, max_train_rows=1000, max_iter=5, random_state=3)
    assert (first.metrics_["n_train"], first.metrics_["n_holdout"]) == (1000, 800)
    assert first.metrics_ == again.metrics_


def test_metadata_round_trips_through_a_saved_file(model: AffinityModel, onnx_model: onnx.ModelProto, tmp_path: Path) -> None:
    """The saved file carries the metadata: one float32 output per group, metrics, params."""
    path = write_model(onnx_model, tmp_path / "affinity.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta == model.metadata(version="1", **TIMES)
    assert (meta.score, meta.model_type, meta.horizon_days) == ("affinity", "hist-gradient-boosting", 90)
    assert meta.features == tuple(model.features_)
    assert [(o.name, o.dtype, o.onnx_output, o.column) for o in meta.outputs] == [
        (g, "float32", "probabilities", i) for i, g in enumerate(GROUPS)
    ]
    for key in ("auc", "lift10", "ece", "base_rate", "baseline_auc", "baseline_lift10"):
        assert f"{key}_mean" in meta.metrics
        assert all(f"{key}:{g}" in meta.metrics for g in GROUPS)
    assert meta.params["groups"] == list(GROUPS)
    assert meta.params["classifier"]["max_leaf_nodes"] == 31


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({}, "labels is empty"),
        ({"shoes": np.zeros(10, bool)}, r"group 'shoes': labels have shape \(10,\), expected \(500,\)"),
        ({"shoes": np.full(500, 2)}, r"group 'shoes': labels must be bool or 0/1, got values \[2\]"),
        ({"shoes": np.zeros(500, bool)}, "group 'shoes': the 400 training contacts have 0 positives"),
        ({"": np.ones(500, bool)}, "non-empty strings, got ''"),
    ],
    ids=["empty", "length", "non-binary", "one-class", "unnamed"],
)
def test_fit_errors(base: tuple[np.ndarray, list[str], dict[str, np.ndarray]], labels: dict[str, np.ndarray], message: str) -> None:
    X, names, _ = base
    with pytest.raises(ValueError, match=message):
        fit_affinity(X[:500], names, labels, max_iter=2)


def test_a_feature_without_values_is_tolerated(base: tuple[np.ndarray, list[str], dict[str, np.ndarray]]) -> None:
    """A group nobody bought yet has an all-NaN recency column; scikit-learn 1.9.1 cannot bin
    one, so it is trained as a constant, and serving NaN there still matches."""
    X, names, labels = base
    X = X[:3000].copy()
    X[:, names.index("group_recency_days:books")] = np.nan
    small = {g: y[:3000] for g, y in labels.items()}
    model = fit_affinity(X, names, small, max_iter=10)
    assert model.all_nan_features_ == ("group_recency_days:books",)
    got = _run(model.to_onnx(version="1", **TIMES), X)
    assert np.abs(got - model.predict_proba(X, names)).max() <= TOLERANCE


def test_baseline_needs_one_of_its_features(base: tuple[np.ndarray, list[str], dict[str, np.ndarray]]) -> None:
    X, names, labels = base
    keep = [i for i, n in enumerate(names) if n in ("monetary", "tenure_days")]
    with pytest.raises(ValueError, match="group 'shoes': the baseline needs one of"):
        fit_affinity(X[:500, keep], [names[i] for i in keep], {"shoes": labels["shoes"][:500]}, max_iter=2)


def test_unfitted_model_says_so() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        AffinityModel().to_onnx(version="1", **TIMES)
