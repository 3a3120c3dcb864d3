"""training/scores/recommendations.py (and training/recommendations/): holdout quality vs baselines, ONNX top-K vs the reference, options."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from scorecast.kernels import FeatureFrame, InputError, required_columns
from scorecast.kernels.sku_features import sku_history_names, sku_weight_names
from scorecast.training.recommendations.model import RecommendationModel
from scorecast.training.scores.recommendations import VIEW_SLOTS, fit_recommendations

from .product_base import product_base


def _us(base) -> int:  # noqa: ANN001
    return int(base.config.end.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def fitted() -> Iterator[tuple[RecommendationModel, dict[str, float]]]:
    base = product_base()
    with threadpool_limits(1):
        yield fit_recommendations({"orders": base.orders}, base.config.end)


@pytest.fixture(scope="module")
def history(fitted: tuple[RecommendationModel, dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The history codes and their time-decayed counts, as served."""
    base = product_base()
    model = fitted[0]
    h = model.history_slots
    frame = FeatureFrame({"orders": base.orders, "contacts": base.contacts}, _us(base))
    x = frame.matrix([*sku_history_names(h), *sku_weight_names(h)], {"skus": model.skus_, "half_life_days": model.half_life_days})
    return x[:, :h], x[:, h:]


def _session(model: RecommendationModel) -> ort.InferenceSession:
    onnx_model = model.to_onnx(version="1", trained_at="t", data_as_of="t", metrics={})
    return ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_beats_popularity_by_half_and_every_baseline(fitted: tuple[RecommendationModel, dict[str, float]]) -> None:
    """Next-30-day purchases of the holdout half the blend was not chosen on: recall@10 and
    NDCG@10 >= 1.5x popularity, and above every simple baseline (stored in the metrics)."""
    model, m = fitted
    assert m["n_eval_contacts"] > 400  # the report half
    assert m["recall_at_10"] >= 1.5 * m["popularity_recall_at_10"]
    assert m["ndcg_at_10"] >= 1.5 * m["popularity_ndcg_at_10"]
    for baseline in ("popularity", "popularity_unseen", "personal_frequency", "item_item"):
        assert m["ndcg_at_10"] > m[f"{baseline}_ndcg_at_10"], baseline
    assert m["beats_best_baseline"] == 1.0 and model.served_ == "model"
    meta = model.metadata(version="1", trained_at="t", data_as_of="t", metrics=m)
    assert meta.params["served"] == "model"
    assert meta.params["request_defaults"]["exclude_bought"] == float(model.exclude_bought)


@pytest.mark.parametrize("exclude", [False, True])
def test_onnx_top_k_equals_reference(
    fitted: tuple[RecommendationModel, dict[str, float]], history: tuple[np.ndarray, np.ndarray], exclude: bool
) -> None:
    model = fitted[0]
    history, weights = history
    x = np.hstack([history, weights, np.full((len(history), 1), float(exclude), np.float32)])
    items, scores, cold = _session(model).run(["items", "scores", "cold"], {"features": x})
    top, ref_scores = model.recommend(history, weights, exclude_bought=exclude)
    finite = np.isfinite(ref_scores)
    assert_allclose(scores[finite], ref_scores[finite], rtol=1e-5, atol=1e-6)
    # the same SKUs in the same order, except where float rounding swaps two scores closer
    # than 1e-6 (ties proper go to the lower code in both)
    same = (items == np.where(finite, top, np.nan)) | (np.isnan(items) & ~finite)
    near_tie = np.zeros_like(same)
    near_tie[:, 1:] |= np.abs(np.diff(ref_scores, axis=1)) < 1e-6
    near_tie[:, :-1] |= near_tie[:, 1:]
    assert (same | near_tie).all()
    assert same.mean() > 0.999
    assert_array_equal(cold[:, 0], history[:, 0] < 0)


def test_exclusion_and_cold_contacts(
    fitted: tuple[RecommendationModel, dict[str, float]], history: tuple[np.ndarray, np.ndarray]
) -> None:
    model = fitted[0]
    history, weights = history
    x = np.hstack([history, weights, np.ones((len(history), 1), np.float32)])
    items, _, cold = _session(model).run(["items", "scores", "cold"], {"features": x})
    for row in range(0, len(history), 7):
        assert not np.isin(items[row], history[row][history[row] >= 0]).any()
    cold_rows = cold[:, 0] == 1
    assert cold_rows.sum() > 1000  # the simulated non-buyers
    # cold: the most popular SKUs, codes 0..k-1 (codes are in popularity order), ties included
    assert_array_equal(items[cold_rows], np.tile(np.arange(model.k_, dtype=np.float32), (cold_rows.sum(), 1)))


def test_ties_go_to_the_lower_code() -> None:
    """Identical SKUs (same factors, same counts) tie: the lower code ranks first in ONNX too."""
    model = RecommendationModel(k=3, factors=1, history_slots=2)
    model.skus_ = ["a", "b", "c", "d"]
    model.item_factors_ = np.ones((4, 1), np.float32)
    model.prior_ = np.zeros(4, np.float32)
    model.slot_weights_ = np.ones(2, np.float32)
    model.k_ = 3
    model.fit_seconds_ = 0.0
    model.served_ = "model"
    history = np.array([[2, -1], [-1, -1]], np.float32)
    weights = np.array([[0.5, 0.0], [0.0, 0.0]], np.float32)
    x = np.hstack([history, weights, np.zeros((2, 1), np.float32)])
    items, _, _ = _session(model).run(["items", "scores", "cold"], {"features": x})
    assert_array_equal(items, model.recommend(history, weights)[0])
    assert_array_equal(items, [[2, 0, 1], [0, 1, 2]])  # the repeat boost lifts the bought SKU


def test_any_retailer_orders_integer_skus_string_ids_no_optional_columns() -> None:
    """Only contact_id, ts and sku; SKUs as integers, ids as strings, contacts without SKU."""
    base = product_base()
    orders = base.orders.select(["contact_id", "ts", "sku"])
    numbers = pc.cast(pc.utf8_slice_codeunits(orders.column("sku"), 4), pa.int64())
    orders = pa.table(
        {
            "contact_id": pc.cast(orders.column("contact_id"), pa.string()),
            "ts": orders.column("ts"),
            "sku": numbers,
        }
    )
    with threadpool_limits(1):
        model, metrics = fit_recommendations({"orders": orders}, base.config.end, factors=16)
    assert metrics["recall_at_10"] > metrics["popularity_recall_at_10"]
    assert all(s.isdigit() for s in model.skus_)
    with pytest.raises(ValueError, match="orders.sku"):
        fit_recommendations({"orders": orders.drop_columns(["sku"])}, base.config.end)
    bad = orders.set_column(2, "sku", pa.array([1.5] * orders.num_rows))
    with pytest.raises(InputError, match="orders.sku"):
        fit_recommendations({"orders": bad}, base.config.end)


def test_partial_top_k_equals_a_stable_full_sort() -> None:
    from scorecast.training.recommendations.baselines import top_k

    rng = np.random.default_rng(0)
    for _ in range(30):
        scores = rng.integers(0, 5, (20, 30)).astype(np.float32)  # many ties
        scores[rng.random(scores.shape) < 0.2] = -np.inf
        for k in (1, 3, 10, 30):
            assert_array_equal(top_k(scores, k), np.argsort(-scores, axis=1, kind="stable")[:, :k])


def test_baselines_by_hand() -> None:
    """Three contacts x four SKUs (codes in popularity order): each baseline's top 2."""
    import scipy.sparse as sp

    from scorecast.training.recommendations import baselines as recommendation_baselines

    counts = sp.csr_matrix(np.array([[0, 3, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], np.float64))
    assert_array_equal(recommendation_baselines.popularity(counts, 2), [[0, 1], [0, 1], [0, 1]])
    assert_array_equal(recommendation_baselines.popularity_unseen(counts, 2), [[0, 2], [1, 2], [0, 1]])
    assert_array_equal(recommendation_baselines.personal_frequency(counts, 2), [[1, 3], [0, 1], [0, 1]])
    similarity = recommendation_baselines.cosine(counts)
    assert_array_equal(recommendation_baselines.item_item(counts, 2, similarity), [[1, 3], [0, 1], [0, 1]])


PRODUCT_PAGE = "/products/{sku}"


@pytest.fixture(scope="module")
def viewed() -> Iterator[tuple[RecommendationModel, dict[str, float]]]:
    """The same base with its web_events: the simulator's visitors view a product's page
    before buying it (training/simulate/web.py)."""
    base = product_base()
    with threadpool_limits(1):
        tables = {"orders": base.orders, "web_events": base.web_events}
        yield fit_recommendations(tables, base.config.end, product_page=PRODUCT_PAGE)


def test_product_page_views_raise_holdout_recall(viewed: tuple[RecommendationModel, dict[str, float]]) -> None:
    """On the report half, the blend with its fitted view weight beats the same blend without
    views by a clear margin, and every baseline; the model reads the views through the pipeline."""
    model, m = viewed
    assert model.view_slots == VIEW_SLOTS and model.view_boost > 0 and model.served_ == "model"
    assert m["recall_at_10"] >= 1.05 * m["no_views_recall_at_10"], m
    assert m["ndcg_at_10"] >= 1.05 * m["no_views_ndcg_at_10"], m
    assert m["beats_best_baseline"] == 1.0
    meta = model.metadata(version="1", trained_at="t", data_as_of="t", metrics=m)
    assert {"sku_viewed:0", f"sku_view_weight:{VIEW_SLOTS - 1}"} <= set(meta.features)
    assert meta.params["feature_params"]["product_page"] == PRODUCT_PAGE
    assert "web_events.page" in required_columns(f for f in meta.features if not f.startswith("request:"))


@pytest.mark.parametrize("exclude", [False, True])
def test_onnx_with_views_equals_reference(viewed: tuple[RecommendationModel, dict[str, float]], exclude: bool) -> None:
    base = product_base()
    model = viewed[0]
    meta = model.metadata(version="1", trained_at="t", data_as_of="t", metrics={})
    frame = FeatureFrame({"orders": base.orders, "web_events": base.web_events, "contacts": base.contacts}, _us(base))
    x = frame.matrix([f for f in meta.features if not f.startswith("request:")], meta.params["feature_params"])
    h, v = model.history_slots, model.view_slots
    history, weights, codes, counts = x[:, :h], x[:, h : 2 * h], x[:, 2 * h : 2 * h + v], x[:, 2 * h + v :]
    assert (codes[:, 0] >= 0).sum() > 1000  # contacts with product-page views
    x = np.hstack([x, np.full((len(x), 1), float(exclude), np.float32)])
    items, scores, cold = _session(model).run(["items", "scores", "cold"], {"features": x})
    top, ref_scores = model.recommend(history, weights, codes, counts, exclude_bought=exclude)
    finite = np.isfinite(ref_scores)
    assert_allclose(scores[finite], ref_scores[finite], rtol=1e-5, atol=1e-6)
    same = (items == np.where(finite, top, np.nan)) | (np.isnan(items) & ~finite)
    assert same.mean() > 0.999
    # the views move recommendations (excluded: only views of SKUs not bought yet, the few
    # whose purchase is still to come)
    plain = model.recommend(history, weights, exclude_bought=exclude)[0]
    assert (top != plain).any(axis=1).mean() > (0.002 if exclude else 0.05)
    assert_array_equal(cold[:, 0], history[:, 0] < 0)


def test_without_product_page_views_nothing_changes(fitted: tuple[RecommendationModel, dict[str, float]]) -> None:
    """web_events without product pages (or without a pattern) leave the model exactly as
    without web_events: no view inputs, no web_events read, the same graph."""
    base = product_base()
    model, metrics = fitted
    no_products = base.web_events.filter(pc.invert(pc.starts_with(base.web_events.column("page"), "/products/SKU")))
    with threadpool_limits(1):
        for tables, pattern in (
            ({"orders": base.orders, "web_events": no_products}, PRODUCT_PAGE),
            ({"orders": base.orders, "web_events": base.web_events}, None),
        ):
            other, other_metrics = fit_recommendations(tables, base.config.end, product_page=pattern)
            assert other.view_slots == 0 and other_metrics == metrics
            same = {"version": "1", "trained_at": "t", "data_as_of": "t", "metrics": metrics}
            assert other.to_onnx(**same).graph.SerializeToString() == model.to_onnx(**same).graph.SerializeToString()
            assert other.metadata(**same).features == model.metadata(**same).features
    meta = model.metadata(version="1", trained_at="t", data_as_of="t", metrics=metrics)
    read = required_columns(f for f in meta.features if not f.startswith("request:"))
    assert not any(c.startswith("web_events.") for c in read)
