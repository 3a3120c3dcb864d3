"""``scorecast train``: fit every model of a base and write them into a model repository.

The features come from the one feature pipeline (``scorecast.kernels.FeatureFrame``), the
same the server runs. For a score with a horizon H (affinity), features are computed as of
``as_of - H`` and labels are what each contact bought in ``(as_of - H, as_of]``; the served
model is then applied to features as of the request's time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from scorecast.base import read_table
from scorecast.kernels import FeatureFrame, order_feature_names

from .affinity import fit_affinity
from .customer_value import CustomerValueModels, fit_customer_value
from .onnx_export import save_model
from .rfm import RFM_FEATURES, fit_rfm

__all__ = ["MIN_BUYERS", "MIN_POSITIVES", "SCORES", "next_version", "train"]

log = logging.getLogger(__name__)

SCORES = ("rfm", "affinity", "clv", "churn")
PRODUCT_SCORES = ("recommendations", "cross_sell", "promo_appetence")
"""Trained when named (``--scores``); not by default, so bases without SKUs or campaigns train."""
AFFINITY_HORIZON_DAYS = 90
# Fewer buyers than this and quintiles / a holdout AUC are mostly noise (a 20 % holdout of
# 500 buyers leaves ~100 for the metrics).
MIN_BUYERS = 500
# A group needs this many buyers in the label window, and as many non-buyers, for a
# classifier and a holdout AUC worth serving (the holdout then sees >= 10 of each).
MIN_POSITIVES = 50
MAX_GROUPS = 50
_DAY_US = 86_400_000_000


def next_version(root: Path, score: str) -> str:
    """One more than the highest numeric version of ``score`` in the repository ("1" if none)."""
    versions = [int(p.stem) for p in (root / score).glob("*.onnx") if p.stem.isdigit()]
    return str(max(versions, default=0) + 1)


def _as_us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def train(
    data: Path,
    out: Path,
    scores: Sequence[str] | None = None,
    as_of: datetime | None = None,
    progress: bool = False,
) -> list[Path]:
    """Fit the requested scores (default: all) on the base in ``data``; return the files written."""
    scores = list(scores or SCORES)
    unknown = sorted(set(scores) - set(SCORES) - set(PRODUCT_SCORES))
    if unknown:
        raise ValueError(f"unknown scores {unknown}; train knows {list(SCORES + PRODUCT_SCORES)}")
    extra = ["sku", "promo"] if set(scores) & set(PRODUCT_SCORES) else []
    orders = read_table(data, "orders", ["ts", "amount", "product_group", *extra])  # only what features read
    if orders is None or orders.num_rows == 0:
        raise ValueError(f"base {data} has no orders (orders.parquet missing or empty): every score needs them")
    contacts = read_table(data, "contacts", [])
    tables = {"orders": orders} if contacts is None else {"orders": orders, "contacts": contacts}
    if as_of is None:
        as_of = pc.max(orders["ts"]).as_py()
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    out.mkdir(parents=True, exist_ok=True)
    # fit everything before writing anything: a refusal leaves the repository as it was
    built = []
    value_models: CustomerValueModels | None = None
    steps = tqdm(scores, desc="train", unit="score", disable=not progress)
    for score in steps:
        steps.set_postfix_str(score)
        version = next_version(out, score)
        times = {"version": version, "trained_at": trained_at, "data_as_of": as_of.isoformat()}
        if score == "rfm":
            onnx_model = _fit_rfm(tables, as_of).to_onnx(**times)
        elif score == "affinity":
            onnx_model = _fit_affinity(tables, as_of).to_onnx(**times)
        elif score in PRODUCT_SCORES:
            from .product_scores import fit_product_score

            onnx_model = fit_product_score(score, data, tables, as_of, times)
        else:
            value_models = value_models or fit_customer_value(tables, as_of)
            onnx_model = value_models.clv_onnx(**times) if score == "clv" else value_models.churn_onnx(**times)
        built.append((score, version, onnx_model))
    written = []
    for score, version, onnx_model in built:
        (out / score).mkdir(exist_ok=True)
        written.append(save_model(onnx_model, out / score / f"{version}.onnx"))
    return written


def _buyers(frame_matrix: np.ndarray, what: str) -> int:
    n = int((frame_matrix > 0).sum())
    if n < MIN_BUYERS:
        raise ValueError(f"{what}: only {n} contacts with orders, need at least {MIN_BUYERS} to fit and validate")
    return n


def _fit_rfm(tables: dict[str, pa.Table], as_of: datetime):  # noqa: ANN202
    frame = FeatureFrame(tables, _as_us(as_of))
    X = frame.matrix(RFM_FEATURES)
    _buyers(X[:, RFM_FEATURES.index("frequency")], f"rfm as of {as_of.date()}")
    return fit_rfm(X, RFM_FEATURES)


def _fit_affinity(tables: dict[str, pa.Table], as_of: datetime):  # noqa: ANN202
    orders = tables["orders"]
    if "product_group" not in orders.column_names:
        raise ValueError("affinity needs orders.product_group, which this base does not have")
    cutoff = as_of - timedelta(days=AFFINITY_HORIZON_DAYS)
    before = FeatureFrame(tables, _as_us(cutoff))
    n_buyers = _buyers(before.matrix(["frequency"])[:, 0], f"affinity: orders up to {cutoff.date()} (as_of - {AFFINITY_HORIZON_DAYS} days)")
    counts = pc.value_counts(orders["product_group"].combine_chunks().drop_null())
    by_volume = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    candidates = [g for g, _ in by_volume[:MAX_GROUPS]]
    # labels: did the contact buy in G in (cutoff, as_of]? Same kernel, two reference times.
    after = FeatureFrame(tables, _as_us(as_of), contact_ids=before.contact_ids)
    count_names = [f"group_count:{g}" for g in candidates]
    bought = (after.matrix(count_names) - before.matrix(count_names)) > 0
    n = bought.shape[0]
    positives = bought.sum(axis=0)
    groups = [g for g, k in zip(candidates, positives, strict=True) if MIN_POSITIVES <= k <= n - MIN_POSITIVES]
    skipped = sorted(set(candidates) - set(groups))
    if skipped:
        log.warning("affinity: groups %s have fewer than %d buyers (or non-buyers) in the label window; not modelled", skipped, MIN_POSITIVES)
    if not groups:
        raise ValueError(
            f"affinity: no product group has {MIN_POSITIVES}+ buyers in ({cutoff.date()}, {as_of.date()}] "
            f"among {n_buyers} buyers; a longer or larger base is needed"
        )
    names = order_feature_names(groups)
    labels = {g: bought[:, candidates.index(g)] for g in groups}
    return fit_affinity(before.matrix(names), names, labels, horizon_days=AFFINITY_HORIZON_DAYS)
