"""training/scores/recommendations.py on real data (training/datasets/, see PROVENANCE.md): the
served ONNX top 10 against every simple baseline on a time split the fit never saw."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from scorecast.kernels import FeatureFrame, category_codes, contact_codes
from scorecast.kernels.sku_features import sku_history_names, sku_strings, sku_weight_names
from scorecast.training.evaluation import ranking_metrics
from scorecast.training.recommendations import baselines as recommendation_baselines
from scorecast.training.scores.recommendations import fit_recommendations

DATASETS = Path(__file__).parents[3] / "training" / "datasets"
K = 10


def served_against_baselines(name: str, test_days: int, **params: object) -> tuple[dict[str, dict[str, float]], dict]:
    """Fit on the orders up to ``max(ts) - test_days``, score every contact that buys after it
    (and before) with the ONNX graph; recall@10 / NDCG@10 of it and of each baseline."""
    orders = pq.read_table(DATASETS / f"{name}.parquet")
    as_of = pc.max(orders.column("ts")).as_py() - timedelta(days=test_days)
    as_of_us = int(as_of.timestamp() * 1_000_000)
    with threadpool_limits(1):
        model, metrics = fit_recommendations({"orders": orders}, as_of, holdout_days=test_days, **params)
    contact, ids = contact_codes(orders.column("contact_id"), field="contact_id")
    ts = orders.column("ts").cast(pa.int64()).to_numpy()
    sku = category_codes(sku_strings(orders.column("sku"), "sku"), model.skus_, "sku")
    n, n_items = len(ids), len(model.skus_)
    before, after = (ts <= as_of_us) & (sku >= 0), (ts > as_of_us) & (sku >= 0)
    counts = sp.csr_matrix((np.ones(int(before.sum())), (contact[before], sku[before])), shape=(n, n_items))
    counts.sum_duplicates()
    later = sp.csr_matrix((np.ones(int(after.sum())), (contact[after], sku[after])), shape=(n, n_items))
    warm = np.flatnonzero((np.diff(counts.indptr) > 0) & (np.diff(later.indptr) > 0))
    relevant = [later.indices[later.indptr[c] : later.indptr[c + 1]] for c in warm]
    h = model.history_slots
    warm_ids = ids.take(pa.array(warm))
    mine = orders.filter(pc.is_in(orders.column("contact_id"), value_set=warm_ids))
    frame = FeatureFrame({"orders": mine}, as_of_us, contact_ids=warm_ids)
    x = frame.matrix([*sku_history_names(h), *sku_weight_names(h)], {"skus": model.skus_, "half_life_days": model.half_life_days})
    exclude = model.exclude_bought  # the learned default, as the server fills it
    x = np.hstack([x, np.full((len(x), 1), float(exclude), np.float32)])
    session = ort.InferenceSession(
        model.to_onnx(version="1", trained_at="t", data_as_of="t", metrics=metrics).SerializeToString()
    )
    items = session.run(["items"], {"features": x})[0]
    served = np.where(np.isnan(items), -1, items).astype(np.int64)
    rows = counts[warm]
    table = {"served": ranking_metrics(served, relevant, K)}
    similarity = recommendation_baselines.cosine(counts)
    for baseline, top in recommendation_baselines.BASELINES.items():
        table[baseline] = ranking_metrics(top(rows, K, similarity) if baseline == "item_item" else top(rows, K), relevant, K)
    return table, {"served": model.served_, "exclude_bought": model.exclude_bought, "n_test_contacts": warm.size, **metrics}


@pytest.mark.slow
def test_instacart_served_beats_personal_frequency() -> None:
    """Next baskets of real online-grocery shoppers (61 % repeats): the served blend beats the
    contact's own most-bought SKUs, the strongest baseline, in recall@10 and NDCG@10."""
    table, info = served_against_baselines("instacart_sample", 30)
    assert info["served"] == "model" and not info["exclude_bought"]
    assert info["holdout_repeat_share"] > 0.5
    for baseline in recommendation_baselines.BASELINES:
        assert table["served"]["ndcg"] > table[baseline]["ndcg"], (baseline, table)
        assert table["served"]["recall"] > table[baseline]["recall"], (baseline, table)


@pytest.mark.slow
def test_movielens_served_beats_popularity_among_unseen() -> None:
    """Ratings of a real movie catalogue (no repeats): exclusion of seen titles is learned, and
    the served blend beats popularity among unseen titles, the strongest baseline."""
    table, info = served_against_baselines("movielens100k_sample", 60)
    assert info["exclude_bought"] and info["holdout_repeat_share"] == 0.0
    assert max(recommendation_baselines.BASELINES, key=lambda b: table[b]["ndcg"]) == "popularity_unseen", table
    for baseline in recommendation_baselines.BASELINES:
        assert table["served"]["ndcg"] > table[baseline]["ndcg"], (baseline, table)
        assert table["served"]["recall"] > table[baseline]["recall"], (baseline, table)
