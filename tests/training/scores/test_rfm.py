"""Tests of training/rfm.py: learned thresholds, the scoring rule, the ONNX graph, metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scorecast.metadata import INPUT_NAME, METADATA_KEY, ModelMetadata
from scorecast.model_store import write_model
from scorecast.training.scores.rfm import RFM_FEATURES, SEGMENT_MAP, SEGMENTS, RfmModel, fit_rfm

NAMES = ["recency_days", "frequency", "monetary", "tenure_days"]
TIMES = {"trained_at": "2026-01-02T00:00:00+00:00", "data_as_of": "2026-01-01T00:00:00+00:00"}


def _hand_base() -> np.ndarray:
    """Ten buyers (recency 10..100, frequency [1,1,1,1,1,2,2,3,4,10], monetary 10..100) and
    two prospects with values that would move the thresholds if they counted."""
    buyers = np.column_stack(
        [np.arange(10, 101, 10), [1, 1, 1, 1, 1, 2, 2, 3, 4, 10], np.arange(10, 101, 10), np.full(10, 500)]
    )
    prospects = np.array([[np.nan, 0, 1e6, np.nan], [5000, 0, 1e6, 1.0]])
    return np.vstack([buyers, prospects]).astype(np.float32)


def _random_base(rng: np.random.Generator, n: int) -> np.ndarray:
    frequency = rng.poisson(1.2, n).astype(np.float32)
    buyer = frequency > 0
    recency = np.where(buyer, rng.integers(0, 800, n), np.nan)
    monetary = np.where(buyer, np.round(rng.gamma(2.0, 40.0, n), 2), np.nan)
    return np.column_stack([recency, frequency, monetary, rng.random(n)]).astype(np.float32)


def _run(model: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: np.ascontiguousarray(X[:, :3])})[0]


def test_thresholds_are_quantiles_of_the_buyers() -> None:
    """Linear quantiles of the buyers only: 10..100 at 20/40/60/80 % is 28, 46, 64, 82; the
    frequencies' are 1, 1, 2, 3.2. Prospects' huge monetary values do not count."""
    model = fit_rfm(_hand_base(), NAMES)
    np.testing.assert_array_equal(model.thresholds_[0], [28, 46, 64, 82])
    np.testing.assert_array_equal(model.thresholds_[1], np.float32([1, 1, 2, 3.2]))
    np.testing.assert_array_equal(model.thresholds_[2], [28, 46, 64, 82])
    assert model.thresholds_.dtype == np.float32
    assert (model.n_contacts_, model.n_buyers_) == (12, 10)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([10, 10, 100], [5, 5, 5, 555, SEGMENTS.index("champions")]),
        ([100, 1, 10], [1, 1, 1, 111, SEGMENTS.index("lost")]),
        ([28, 2, 46], [5, 3, 2, 532, SEGMENTS.index("potential_loyalists")]),  # FM = (3 + 2) // 2 = 2
        ([30, 1, 10], [4, 1, 1, 411, SEGMENTS.index("promising")]),
        ([82, 4, 83], [2, 5, 5, 255, SEGMENTS.index("cannot_lose_them")]),
        ([83, 3, 64], [1, 4, 3, 143, SEGMENTS.index("at_risk")]),  # FM = 3
        ([46, 1, 30], [4, 1, 2, 412, SEGMENTS.index("promising")]),  # FM = 1
        ([0, 0, 50], [0, 0, 0, 0, 0]),
        ([np.nan, np.nan, np.nan], [0, 0, 0, 0, 0]),
        ([np.nan, 3, np.nan], [1, 4, 1, 141, SEGMENTS.index("lost")]),  # a buyer's NaN scores 1
    ],
    ids=["best", "worst", "at-threshold", "recent-single", "fm-rounds-down", "old-regular", "fm-1", "prospect", "all-nan", "nan-buyer"],
)
def test_scores_by_hand(row: list[float], expected: list[int]) -> None:
    """R = 1 + #(t >= x), F and M = 1 + #(t < x), code, segment; prospects all zero; the
    ONNX graph gives the same."""
    model = fit_rfm(_hand_base(), NAMES)
    X = np.array([[*row, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(X, NAMES), [expected])
    np.testing.assert_array_equal(_run(model.to_onnx(version="1", **TIMES), X), [expected])


def test_onnx_equals_numpy_reference_exactly() -> None:
    """On random contacts plus values exactly at, just below and just above every threshold,
    NaN and values outside the training range, the graph equals predict() bit for bit."""
    rng = np.random.default_rng(11)
    model = fit_rfm(_random_base(rng, 20_000), NAMES)
    X = _random_base(rng, 20_000)
    edges = np.concatenate([model.thresholds_, np.nextafter(model.thresholds_, np.inf), np.nextafter(model.thresholds_, -np.inf)], axis=1)
    picks = rng.integers(0, edges.shape[1], size=(5000, 3))
    at_edges = edges[np.arange(3), picks]  # column j drawn from feature j's edges
    extremes = np.array([[-1, 1, -5], [1e9, 1e6, 1e9], [np.nan, 1, 10], [5, np.nan, 10], [5, -1, 10]], dtype=np.float32)
    X = np.vstack([X, np.column_stack([at_edges, np.zeros(5000)]), np.column_stack([extremes, np.zeros(5)])]).astype(np.float32)
    got = _run(model.to_onnx(version="1", **TIMES), X)
    assert got.dtype == np.int32 and got.shape == (len(X), 5)
    np.testing.assert_array_equal(got, model.predict(X, NAMES))


def test_scores_do_not_depend_on_the_chunk() -> None:
    """Thresholds are fixed at training: a contact scores the same in any serving chunk."""
    rng = np.random.default_rng(5)
    model = fit_rfm(_random_base(rng, 5000), NAMES)
    onnx_model = model.to_onnx(version="1", **TIMES)
    X = _random_base(rng, 3000)
    whole = _run(onnx_model, X)
    chunks = np.vstack([_run(onnx_model, X[:7]), _run(onnx_model, X[7:1000]), _run(onnx_model, X[1000:])])
    np.testing.assert_array_equal(whole, chunks)


def test_scores_cover_the_range_on_a_realistic_base() -> None:
    rng = np.random.default_rng(2)
    X = _random_base(rng, 20_000)
    scores = fit_rfm(X, NAMES).predict(X, NAMES)
    buyers = X[:, 1] > 0
    for j in (0, 2):  # recency and monetary are near-continuous: every level, ~20 % each
        counts = np.bincount(scores[buyers, j], minlength=6)[1:]
        assert np.all(np.abs(counts / buyers.sum() - 0.2) < 0.02)
    assert set(np.unique(scores[~buyers])) == {0}


def test_segment_map_names_every_segment() -> None:
    """The 5x5 grid uses each of the 11 named segments; 'prospect' is code 0 and off the grid."""
    assert len(SEGMENT_MAP) == 5 and all(len(row) == 5 for row in SEGMENT_MAP)
    assert {name for row in SEGMENT_MAP for name in row} == set(SEGMENTS) - {"prospect"}
    assert SEGMENTS[0] == "prospect" and len(SEGMENTS) == 12
    assert SEGMENT_MAP[4][4] == "champions" and SEGMENT_MAP[4][0] == "new_customers"
    assert SEGMENT_MAP[0][0] == "lost" and SEGMENT_MAP[0][4] == "cannot_lose_them"


def test_metadata_round_trips_through_a_saved_file(tmp_path: Path) -> None:
    """The saved file carries the metadata; outputs say where each value is and what 0 means."""
    model = fit_rfm(_hand_base(), NAMES)
    path = write_model(model.to_onnx(version="2026-01-02", **TIMES), tmp_path / "rfm.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta == model.metadata(version="2026-01-02", **TIMES)
    assert (meta.score, meta.model_type, meta.features) == ("rfm", "rfm-quintiles", RFM_FEATURES)
    assert [(o.name, o.dtype, o.onnx_output, o.column, o.null_value) for o in meta.outputs] == [
        ("r", "int32", "rfm", 0, 0),
        ("f", "int32", "rfm", 1, 0),
        ("m", "int32", "rfm", 2, 0),
        ("code", "int32", "rfm", 3, 0),
        ("segment", "category", "rfm", 4, None),
    ]
    assert meta.outputs[4].categories == SEGMENTS
    assert meta.params["thresholds"]["frequency"] == [1.0, 1.0, 2.0, float(np.float32(3.2))]
    assert meta.metrics["buyer_share"] == pytest.approx(10 / 12)
    assert sum(v for k, v in meta.metrics.items() if k.startswith("share:")) == pytest.approx(1.0)
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]


@pytest.mark.parametrize(
    ("X", "names", "kwargs", "message"),
    [
        (np.zeros((3, 4), np.float32), NAMES, {}, "no buyers .* among the 3 training contacts"),
        (np.ones((3, 3), np.float32), ["recency_days", "frequency", "total_amount"], {}, r"features \['monetary'\] are not among"),
        (np.array([[1, 1, np.nan, 0]], np.float32), NAMES, {}, "'monetary' has no finite value among the 1 buyers"),
        (np.ones((3, 4), np.float32), NAMES, {"quantiles": (0.25, 0.5, 0.75)}, r"4 increasing values in \(0, 1\), got \(0.25, 0.5, 0.75\)"),
        (np.ones((3, 4), np.float32), NAMES, {"quantiles": (0.2, 0.6, 0.4, 0.8)}, "4 increasing values"),
    ],
    ids=["no-buyers", "missing-feature", "all-nan", "three-quantiles", "unsorted"],
)
def test_fit_errors(X: np.ndarray, names: list[str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_rfm(X, names, **kwargs)  # type: ignore[arg-type]


def test_unfitted_model_says_so() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        RfmModel().to_onnx(version="1", **TIMES)


@pytest.mark.slow
def test_rfm_on_simulated_base() -> None:
    """On the simulator's base every named segment occurs and the graph equals predict()."""
    from scorecast.kernels import FeatureFrame
    from scorecast.training.simulate.retail import SimulationConfig, simulate_base

    sim = simulate_base(SimulationConfig(n_contacts=60_000, seed=4))
    as_of_us = int(sim.config.end.timestamp() * 1_000_000)
    frame = FeatureFrame({"contacts": sim.contacts, "orders": sim.orders}, as_of_us)
    names = list(RFM_FEATURES)
    X = frame.matrix(names)
    model = fit_rfm(X, names)
    scores = model.predict(X, names)
    assert set(np.unique(scores[:, 4])) == set(range(len(SEGMENTS)))
    np.testing.assert_array_equal(_run(model.to_onnx(version="1", **TIMES), X), scores)
