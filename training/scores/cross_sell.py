"""The ``cross_sell`` score: P(first purchase in product group G within the horizon), for the
contacts who never bought in G; null for the others.

A score of its own rather than a mode of ``affinity`` (upsell): discovering a group is a
different event from buying in it again, so each group's classifier is trained only on the
contacts who had not bought in G by the training reference time (label: bought in G within
the horizon after it), and the graph returns null (NaN) exactly where ``group_count:G > 0``
as of the request's time. Same features as ``affinity`` (``order_feature_names``), so one
FeatureFrame pass serves both.

Holdout metrics (contacts split at random): per group AUC and lift in the top 5 % (50k
contacts of a 1M base), and the same pooled over (contact, group) pairs against the
group-popularity baseline (each pair scored by its group's discovery rate in training) and the
contact's own purchase frequency (``frequency``; its own count in G is 0 for every eligible
pair, so the own-group frequency of ``affinity`` has nothing to rank here).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier

from scorecast.kernels import FeatureFrame, order_feature_names, timestamps_us
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec

from ..evaluation import gains_points, lift_at, roc_auc
from ..onnx_export import attach_metadata, group_classifiers_to_onnx
from ..run import Fitted, Holdout, TrainingRun, as_us

log = logging.getLogger(__name__)

__all__ = ["CROSS_SELL_HORIZON_DAYS", "TOP_FRACTION", "CrossSellModel", "fit", "fit_cross_sell"]

TOP_FRACTION = 0.05
"""Lift is measured in this top share: a 50k-contact campaign in a 1M base."""


class CrossSellModel:
    """One gradient-boosted classifier per group, each on the contacts new to its group."""

    model_type = "hist-gradient-boosting"
    score = "cross_sell"

    def __init__(
        self, *, horizon_days: int = 90, holdout_fraction: float = 0.2, max_train_rows: int = 200_000, random_state: int = 0
    ) -> None:
        self.horizon_days = horizon_days
        self.holdout_fraction = holdout_fraction
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def _classifier(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, min_samples_leaf=50, l2_regularization=1.0,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=10, random_state=self.random_state,
        )  # fmt: skip

    def fit(self, X: np.ndarray, feature_names: Sequence[str], labels: Mapping[str, np.ndarray]) -> CrossSellModel:
        """``labels[G]``: bought in G within the horizon; rows with ``group_count:G > 0`` are left out."""
        start = time.perf_counter()
        features = tuple(feature_names)
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        hold = rng.random(n) < self.holdout_fraction
        estimators: dict[str, HistGradientBoostingClassifier] = {}
        metrics: dict[str, float] = {"n_rows": float(n), "n_holdout": float(hold.sum())}
        pooled_y, pooled_p, pooled_b, pooled_f = [], [], [], []
        own = features.index("frequency") if "frequency" in features else None
        self.gains_: dict[str, list[float]] = {}  # holdout gains at 5 % steps, for the report
        for group, y in labels.items():
            y = np.asarray(y, bool)
            new = ~(X[:, features.index(f"group_count:{group}")] > 0)
            train = np.flatnonzero(new & ~hold)
            if train.size > self.max_train_rows:
                train = np.sort(rng.choice(train, self.max_train_rows, replace=False))
            if y[train].sum() in (0, train.size):
                raise ValueError(
                    f"cross_sell: group {group!r} has {int(y[train].sum())} new buyers among {train.size} training contacts; both classes are needed"
                )
            block = X[train]
            # scikit-learn's binning fails on an all-NaN column (G's recency, for contacts new
            # to G, always is); a constant column is never split on, so 0 changes no prediction
            block[:, np.isnan(block).all(axis=0)] = 0.0
            estimators[group] = self._classifier().fit(block, y[train])
            holdout = new & hold
            rate = float(y[train].mean())
            metrics[f"base_rate:{group}"] = float(y[holdout].mean()) if holdout.any() else float("nan")
            if 0 < y[holdout].sum() < holdout.sum():
                p = estimators[group].predict_proba(X[holdout])[:, 1]
                metrics[f"auc:{group}"] = roc_auc(y[holdout], p)
                metrics[f"lift_top5:{group}"] = lift_at(y[holdout], p, TOP_FRACTION)
                self.gains_[group] = gains_points(y[holdout], p)
                pooled_y.append(y[holdout])
                pooled_p.append(p)
                pooled_b.append(np.full(p.size, rate))
                if own is not None:
                    pooled_f.append(np.nan_to_num(X[holdout, own].astype(np.float64)) + 1e-6 * rate)
        if pooled_y:
            yy, pp, bb = np.concatenate(pooled_y), np.concatenate(pooled_p), np.concatenate(pooled_b)
            metrics["pooled_auc"] = roc_auc(yy, pp)
            metrics["pooled_lift_top5"] = lift_at(yy, pp, TOP_FRACTION)
            metrics["group_popularity_auc"] = roc_auc(yy, bb)
            metrics["group_popularity_lift_top5"] = lift_at(yy, bb, TOP_FRACTION)
            self.gains_["pooled"] = gains_points(yy, pp)
            self.gains_["group_popularity"] = gains_points(yy, bb)
            if pooled_f:
                ff = np.concatenate(pooled_f)
                metrics["own_frequency_auc"] = roc_auc(yy, ff)
                metrics["own_frequency_lift_top5"] = lift_at(yy, ff, TOP_FRACTION)
            for key in ("auc", "lift_top5"):
                values = [v for k, v in metrics.items() if k.startswith(f"{key}:")]
                metrics[f"{key}_mean"] = float(np.mean(values))
        self.features_ = features
        self.holdout_rows_ = np.flatnonzero(hold)  # the promotion gate's holdout
        self.groups_ = tuple(labels)
        self.estimators_ = estimators
        self.metrics_ = metrics
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float64 ``[N, n_groups]``: P(first purchase in G), NaN for contacts who bought in G."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.stack([self.estimators_[g].predict_proba(X)[:, 1] for g in self.groups_], axis=1)
        bought = np.stack([X[:, self.features_.index(f"group_count:{g}")] > 0 for g in self.groups_], axis=1)
        out[bought] = np.nan
        return out

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        outputs = tuple(
            OutputSpec(
                g,
                "float32",
                f"P(first purchase in {g!r} within {self.horizon_days} days); null if the contact already bought in it",
                "probabilities",
                i,
            )
            for i, g in enumerate(self.groups_)
        )
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=self.features_,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"P(first purchase in each product group within {self.horizon_days} days), for contacts new to the group",
            horizon_days=self.horizon_days,
            metrics=dict(self.metrics_),
            params={
                "groups": list(self.groups_),
                "top_fraction": TOP_FRACTION,
                "fit_seconds": round(self.fit_seconds_, 3),
                "baseline": "group popularity: each (contact, group) pair scored by the group's discovery rate in training",
                "report": {"gains": self.gains_},
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """Every group's classifier, NaN where ``group_count:G > 0``, concatenated."""
        shared = [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("nan", TensorProto.FLOAT, [], [np.nan]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        ]

        def null_existing_buyers(i: int, column: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
            col = self.features_.index(f"group_count:{self.groups_[i]}")
            inits = [
                helper.make_tensor(f"c{i}_lo", TensorProto.INT64, [1], [col]),
                helper.make_tensor(f"c{i}_hi", TensorProto.INT64, [1], [col + 1]),
            ]
            nodes = [
                helper.make_node("Slice", [INPUT_NAME, f"c{i}_lo", f"c{i}_hi", "axis1"], [f"count{i}"]),
                helper.make_node("Greater", [f"count{i}", "zero"], [f"bought{i}"]),
                helper.make_node("Where", [f"bought{i}", "nan", column], [f"p{i}"]),
            ]
            return nodes, inits, f"p{i}"

        estimators = [self.estimators_[g] for g in self.groups_]
        model = group_classifiers_to_onnx(estimators, len(self.features_), "cross_sell", "probabilities", null_existing_buyers, shared)
        return attach_metadata(model, self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))


CROSS_SELL_HORIZON_DAYS = 90
MIN_NEW_BUYERS = 50
MAX_GROUPS = 50


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
        early = orders.filter(pa.array(timestamps_us(orders.column("ts"), "orders.ts") <= as_us(cutoff)))
        rows = FeatureFrame({"orders": early}, as_us(cutoff)).contact_ids
        tables = {"orders": orders.filter(pc.is_in(orders.column("contact_id"), value_set=rows))}
        before = FeatureFrame(tables, as_us(cutoff), contact_ids=rows)
    else:
        before = FeatureFrame(tables, as_us(cutoff))
    counts = pc.value_counts(orders["product_group"].combine_chunks().drop_null())
    by_volume = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    candidates = [g for g, _ in by_volume[:MAX_GROUPS]]
    after = FeatureFrame(tables, as_us(as_of), contact_ids=before.contact_ids)
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
    model = CrossSellModel(horizon_days=horizon_days).fit(X, names, labels)
    held = pa.array(model.holdout_rows_)
    # the gate scores both versions on the held contacts as of the cutoff; each group's rows
    # are the contacts new to it (the graph gives null for the others)
    model.holdout_ = Holdout(tables, as_us(cutoff), before.contact_ids.take(held), {g: y[model.holdout_rows_] for g, y in labels.items()})
    return model


def fit(run: TrainingRun, version: str) -> Fitted:
    """``cross_sell`` for ``scorecast train``."""
    model = fit_cross_sell(run.tables, run.as_of)
    return Fitted(model.to_onnx(**run.times(version, run.as_of)), run.tables, run.as_of, model.holdout_)
