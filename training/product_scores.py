"""``scorecast train`` for the product scores: recommendations, cross_sell, promo_appetence.

Each needs only the orders columns of DESIGN.md it uses and refuses, naming the column or
table, a base that lacks them: recommendations needs ``orders.sku``, cross_sell
``orders.product_group``, promo_appetence a ``promotions`` table.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import onnx
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.base import read_table
from scorecast.kernels import FeatureFrame, order_feature_names, timestamps_us

from .scores.cross_sell import CrossSellModel
from .scores.promo_appetence import fit_promo_appetence
from .scores.recommendations import fit_recommendations

__all__ = ["CROSS_SELL_HORIZON_DAYS", "fit_product_score"]

log = logging.getLogger(__name__)

CROSS_SELL_HORIZON_DAYS = 90
MIN_NEW_BUYERS = 50
MAX_GROUPS = 50


def _as_us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def fit_product_score(
    score: str, data: Path, tables: dict[str, pa.Table], as_of: datetime, times: dict[str, str]
) -> onnx.ModelProto:
    """Fit ``score`` on the base's tables and return its ONNX model with metadata."""
    if score == "recommendations":
        model, metrics = fit_recommendations(tables, as_of)
        return model.to_onnx(**times, metrics=metrics)
    if score == "cross_sell":
        return fit_cross_sell(tables, as_of).to_onnx(**times)
    if score == "promo_appetence":
        promotions = read_table(data, "promotions", ["campaign_id", "ts", "treated"])
        with_promotions = {**tables, "promotions": promotions} if promotions is not None else tables
        return fit_promo_appetence(with_promotions, as_of).to_onnx(**times)
    raise ValueError(f"not a product score: {score!r}")


def _features(orders: pa.Table, groups: list[str]) -> list[str]:
    """The affinity features, less the amount ones when the base has no amounts."""
    names = order_feature_names(groups)
    if "amount" not in orders.column_names:
        names = [n for n in names if n not in ("monetary", "total_amount")]
    return names


def fit_cross_sell(tables: dict[str, pa.Table], as_of: datetime, horizon_days: int = CROSS_SELL_HORIZON_DAYS) -> CrossSellModel:
    """Labels: first purchase in G in (as_of - horizon, as_of], features as of its start."""
    orders = tables["orders"]
    if "product_group" not in orders.column_names:
        raise ValueError("cross_sell needs orders.product_group, which this base does not have")
    cutoff = as_of - timedelta(days=horizon_days)
    if "contacts" not in tables:
        # Rows would be whoever ordered by as_of, and contacts first seen in the label window
        # would all be easy positives: the rows are the contacts with an order by the cutoff.
        early = orders.filter(pa.array(timestamps_us(orders.column("ts"), "orders.ts") <= _as_us(cutoff)))
        rows = FeatureFrame({"orders": early}, _as_us(cutoff)).contact_ids
        tables = {"orders": orders.filter(pc.is_in(orders.column("contact_id"), value_set=rows))}
        before = FeatureFrame(tables, _as_us(cutoff), contact_ids=rows)
    else:
        before = FeatureFrame(tables, _as_us(cutoff))
    counts = pc.value_counts(orders["product_group"].combine_chunks().drop_null())
    by_volume = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    candidates = [g for g, _ in by_volume[:MAX_GROUPS]]
    after = FeatureFrame(tables, _as_us(as_of), contact_ids=before.contact_ids)
    names = _features(orders, candidates)
    X = before.matrix(names)
    count_names = [f"group_count:{g}" for g in candidates]
    was = X[:, [names.index(c) for c in count_names]] > 0
    now = after.matrix(count_names) > 0
    new_buyers = now & ~was
    groups = [
        g for i, g in enumerate(candidates) if MIN_NEW_BUYERS <= new_buyers[:, i].sum() <= (~was[:, i]).sum() - MIN_NEW_BUYERS
    ]
    skipped = sorted(set(candidates) - set(groups))
    if skipped:
        log.warning(
            "cross_sell: groups %s have fewer than %d new buyers in the label window; not modelled", skipped, MIN_NEW_BUYERS
        )
    if not groups:
        raise ValueError(
            f"cross_sell: no product group has {MIN_NEW_BUYERS}+ new buyers in ({cutoff.date()}, {as_of.date()}]; a longer or larger base is needed"
        )
    names = _features(orders, groups)
    X = before.matrix(names)
    labels = {g: new_buyers[:, candidates.index(g)] for g in groups}
    return CrossSellModel(horizon_days=horizon_days).fit(X, names, labels)
