"""The web side of the simulator (training/simulate_web.py) and the web_heat and segments scores:
ONNX graphs against their NumPy / scikit-learn models, web heat against a page-view baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.kernels.web_config import load_web_config
from scorecast.tables import TABLES
from scorecast.training.evaluation import roc_auc
from scorecast.training.scores.segments import SEGMENT_INPUTS, SegmentsModel
from scorecast.training.scores.web_heat import HEAT_CATEGORIES, WEB_HEAT_FEATURES, fit_web_heat
from scorecast.training.simulate.retail import SimulatedBase, SimulationConfig, simulate_base

N = 20_000
CONFIG = load_web_config(Path(__file__).parents[3] / "training" / "web_config.json")


def _features(base: SimulatedBase, names: list[str] | tuple[str, ...]) -> np.ndarray:
    tables = {"contacts": base.contacts, "orders": base.orders, "web_events": base.web_events}
    return FeatureFrame(tables, int(base.config.end.timestamp() * 1_000_000)).matrix(list(names), {"web": CONFIG})


def _run(model: object, X: np.ndarray) -> list[np.ndarray]:
    onnx_model = model.to_onnx(version="1", trained_at="t", data_as_of="t")  # type: ignore[attr-defined]
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": X})


@pytest.fixture(scope="module")
def train_base() -> SimulatedBase:
    return simulate_base(SimulationConfig(n_contacts=N, seed=21))


@pytest.fixture(scope="module")
def holdout_base() -> SimulatedBase:
    return simulate_base(SimulationConfig(n_contacts=N, seed=22))


def test_web_events_follow_the_table_spec(train_base: SimulatedBase) -> None:
    """web_events has the TABLES columns, its times are in the web window and in order,
    durations are >= 0 or null, every contact is a known one."""
    web = train_base.web_events
    assert web is not None and set(web.column_names) == set(TABLES["web_events"].columns)
    end_us = int(train_base.config.end.timestamp() * 1_000_000)
    ts = web["ts"].cast(pa.int64()).to_numpy()
    assert ts.max() <= end_us and ts.min() >= end_us - train_base.config.web_days * US_PER_DAY
    assert (np.diff(ts) >= 0).all()
    duration = web["duration_s"]
    assert pc.min(duration).as_py() >= 0 and 0 < duration.null_count < 0.05 * web.num_rows
    assert pc.all(pc.is_in(web["contact_id"], value_set=train_base.contacts["contact_id"].combine_chunks())).as_py()


def test_web_events_do_not_change_the_rest_of_the_base(train_base: SimulatedBase) -> None:
    """web=False drops web_events and its truth only: the orders and contacts are the same draws."""
    without = simulate_base(replace(train_base.config, web=False))
    assert without.web_events is None
    assert without.orders.equals(train_base.orders) and without.contacts.equals(train_base.contacts)
    assert "converts_30d" not in without.truth_contacts.column_names


def test_converters_heat_and_job_seekers_read_careers(train_base: SimulatedBase) -> None:
    """Contacts ordering within 30 days view more hot pages in the last 30 days; job seekers
    view careers pages; converts_30d is the truth's future orders within 30 days."""
    truth = train_base.truth_contacts
    converts = truth["converts_30d"].to_numpy(zero_copy_only=False)
    end = train_base.config.end
    future = train_base.future_orders
    soon = pc.less_equal(future["ts"], pa.scalar(end + timedelta(days=30), pa.timestamp("us", "UTC")))
    buyers = set(pc.filter(future["contact_id"], soon).to_pylist())
    assert set(pc.filter(truth["contact_id"], pa.array(converts)).to_pylist()) == buyers
    X = _features(train_base, ["web_hot_views_30d", "web_eliminating_30d"])
    assert X[converts, 0].mean() > 3 * X[~converts, 0].mean()
    seekers = truth["job_seeker"].to_numpy(zero_copy_only=False)
    assert X[seekers, 1].mean() > 0.8 and X[~seekers, 1].mean() < 0.05


def test_web_heat_onnx_matches_numpy(train_base: SimulatedBase) -> None:
    """The graph's heat, density, value, category and quartile equal the NumPy reference."""
    X = _features(train_base, WEB_HEAT_FEATURES)
    model = fit_web_heat(X, WEB_HEAT_FEATURES, CONFIG)
    scores, classes = _run(model, X)
    want_scores, want_classes = model.predict(X, WEB_HEAT_FEATURES)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(classes, want_classes)
    quartiles = np.bincount(classes[:, 1], minlength=5)
    assert quartiles[0] == (scores[:, 0] == 0).sum() and (np.abs(quartiles[1:] / quartiles[1:].mean() - 1) < 0.1).all()
    assert set(np.unique(classes[:, 0])) == set(range(len(HEAT_CATEGORIES)))


def test_eliminating_zeroes_or_caps_the_heat(train_base: SimulatedBase) -> None:
    """An eliminating visit zeroes the heat ("zero") or caps it ("cap"); others are unchanged."""
    X = _features(train_base, WEB_HEAT_FEATURES)
    eliminated = X[:, WEB_HEAT_FEATURES.index("web_eliminating_30d")] > 0
    zero = _run(fit_web_heat(X, WEB_HEAT_FEATURES, CONFIG), X)[0][:, 0]
    capped = _run(fit_web_heat(X, WEB_HEAT_FEATURES, {**CONFIG, "eliminating": "cap", "eliminating_cap": 5.0}), X)[0][:, 0]
    assert eliminated.any() and (zero[eliminated] == 0).all() and (capped[eliminated] <= 5).all()
    assert (capped[eliminated] > 0).any()
    np.testing.assert_array_equal(zero[~eliminated], capped[~eliminated])


def test_web_heat_ranks_future_converters_above_a_page_view_count(train_base: SimulatedBase, holdout_base: SimulatedBase) -> None:
    """Thresholds from one base, scored on another: the heat's AUC for "orders within 30 days"
    beats the 30-day page-view count's, and the conversion rate rises with the quartile."""
    model = fit_web_heat(_features(train_base, WEB_HEAT_FEATURES), WEB_HEAT_FEATURES, CONFIG)
    X = _features(holdout_base, WEB_HEAT_FEATURES)
    scores, classes = _run(model, X)
    y = holdout_base.truth_contacts["converts_30d"].to_numpy(zero_copy_only=False)
    heat_auc = roc_auc(y, scores[:, 0])
    views_auc = roc_auc(y, X[:, WEB_HEAT_FEATURES.index("web_views_30d")])
    rate = [float(y[classes[:, 1] == q].mean()) for q in range(5)]
    print(f"holdout AUC: heat {heat_auc:.4f}, page views {views_auc:.4f}; conversion rate by quartile (0 = none) {rate}")
    assert heat_auc > views_auc + 0.01, (heat_auc, views_auc)
    assert rate == sorted(rate), rate


def test_segments_onnx_labels_equal_scikit_learn(train_base: SimulatedBase, holdout_base: SimulatedBase) -> None:
    """The graph's segment is scikit-learn's KMeans.predict on the same standardised inputs
    (but for near-ties within float32 rounding); names are unique and descriptions readable."""
    names = [i[0] for i in SEGMENT_INPUTS]
    model = SegmentsModel(max_train_rows=10_000, silhouette_rows=2_000).fit(_features(train_base, names), names)
    assert model.kmeans_.n_clusters in (4, 5, 6, 7, 8) and len(model.silhouettes_) == 5
    X = _features(holdout_base, names)
    got = _run(model, X)[0][:, 0]
    want = model.predict(X, names)
    Z = model.transform(X, names)
    d = ((Z[:, None, :] - model.kmeans_.cluster_centers_[None]) ** 2).sum(axis=2)
    d.sort(axis=1)
    clear = d[:, 1] - d[:, 0] > 1e-4
    assert clear.mean() > 0.999
    np.testing.assert_array_equal(got[clear], want[clear])
    meta = model.metadata(version="1", trained_at="t", data_as_of="t")
    assert len(set(model.names_)) == len(model.names_) == model.kmeans_.n_clusters
    assert meta.outputs[0].categories == model.names_
    assert all(s["description"] and s["name"] for s in meta.params["segments"])
    assert meta.params["feature_params"] == {}


def test_segments_take_more_inputs_by_one_line(train_base: SimulatedBase) -> None:
    """A family's features join the clustering as one more SEGMENT_INPUTS tuple."""
    inputs = (*SEGMENT_INPUTS, ("web_sessions_30d", 0.0, "few sessions", "many sessions"))
    names = [i[0] for i in inputs]
    model = SegmentsModel(inputs, k=4, max_train_rows=5_000).fit(_features(train_base, names), names)
    X = _features(train_base, names)[:2_000]
    assert model.features[-1] == "web_sessions_30d" and _run(model, X)[0].shape == (2_000, 1)
