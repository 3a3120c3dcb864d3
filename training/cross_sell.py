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

import time
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier

from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec

from .metrics import lift_at, roc_auc
from .onnx_export import attach_metadata, group_classifiers_to_onnx

__all__ = ["TOP_FRACTION", "CrossSellModel"]

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
            if pooled_f:
                ff = np.concatenate(pooled_f)
                metrics["own_frequency_auc"] = roc_auc(yy, ff)
                metrics["own_frequency_lift_top5"] = lift_at(yy, ff, TOP_FRACTION)
            for key in ("auc", "lift_top5"):
                values = [v for k, v in metrics.items() if k.startswith(f"{key}:")]
                metrics[f"{key}_mean"] = float(np.mean(values))
        self.features_ = features
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
