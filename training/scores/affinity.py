"""The ``affinity`` score (upsell): P(purchase in product group G within the horizon), per group."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from scorecast.kernels import FeatureFrame, order_feature_names
from scorecast.metadata import ModelMetadata, OutputSpec

from ..evaluation import expected_calibration_error, gains_points, lift_at, roc_auc
from ..onnx_export import attach_metadata, feature_matrix, group_classifiers_to_onnx
from ..run import Fitted, Holdout, TrainingRun, as_us, require_buyers

__all__ = ["AFFINITY_HORIZON_DAYS", "MAX_GROUPS", "MIN_POSITIVES", "AffinityModel", "fit", "fit_affinity"]

log = logging.getLogger(__name__)

AFFINITY_HORIZON_DAYS = 90
# A group needs this many buyers in the label window, and as many non-buyers, for a
# classifier and a holdout AUC worth serving (the holdout then sees >= 10 of each).
MIN_POSITIVES = 50
MAX_GROUPS = 50


OUTPUT = "probabilities"  # the graph's one output: float32 [N, n_groups]

# The baseline's features for group G: overall and in-group recency and frequency.
_BASELINE_FEATURES = ("recency_days", "frequency", "group_count:{group}", "group_recency_days:{group}")
_RECENCY_PREFIXES = ("recency_days", "group_recency_days:")


class AffinityModel:
    """One gradient-boosted classifier per product group on the contact's feature vector.

    For each group G the target is "bought in G within ``horizon_days`` after the training
    reference time" (the caller builds the labels). Contacts are split at random into train
    and holdout (``holdout_fraction``); each group's ``HistGradientBoostingClassifier`` is
    fitted on at most ``max_train_rows`` train contacts (the same subsample for every
    group), with early stopping on 10 % of them. NaN features (recency of contacts without
    orders) are handled natively by the trees.

    Holdout metrics, per group and averaged, are recorded for the model and for a baseline,
    a logistic regression on recency_days, frequency, group_count:G and
    group_recency_days:G (those of them present; NaN recency becomes one year beyond the
    oldest training value), so the metadata shows what the trees add.

    Parameters
    ----------
    horizon_days : int, default=90
        Horizon of the labels; recorded in the metadata.
    holdout_fraction : float, default=0.2
        Share of contacts held out for the metrics.
    max_train_rows : int, default=200_000
        Training contacts are subsampled to this many (keeps fitting time flat in base size).
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to every ``HistGradientBoostingClassifier``.
    random_state : int, default=0
        Seeds the split, the subsample and the classifiers.

    Attributes
    ----------
    groups_ : tuple of str
        The product groups, in the order of the output columns.
    features_ : tuple of str
        The model's input columns, in order.
    estimators_ : dict[str, HistGradientBoostingClassifier]
    baselines_ : dict[str, Pipeline]
    metrics_ : dict[str, float]
        Holdout metrics: ``auc:G``, ``lift10:G``, ``ece:G``, ``base_rate:G``,
        ``baseline_auc:G``, ``baseline_lift10:G``, ``own_group_frequency_auc:G``, their
        ``…_mean`` over groups (of those whose holdout has both classes), ``n_train`` and
        ``n_holdout``; over the holdout's (contact, group) pairs: ``pooled_auc`` /
        ``pooled_lift10`` of the model and the same for the simple baselines group popularity
        (``group_popularity_…``) and the contact's own purchase count in the group
        (``own_group_frequency_…``).
    all_nan_features_ : tuple of str
        Features with no value in the training rows (trained as constant 0, so never split on).
    holdout_ : ndarray of int
        The rows of ``X`` held out for the metrics, sorted.
    fit_seconds_ : float
    """

    model_type = "hist-gradient-boosting"
    score = "affinity"

    def __init__(
        self,
        *,
        horizon_days: int = 90,
        holdout_fraction: float = 0.2,
        max_train_rows: int = 200_000,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 50,
        l2_regularization: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.holdout_fraction = holdout_fraction
        self.max_train_rows = max_train_rows
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: np.ndarray, feature_names: Sequence[str], labels: Mapping[str, ArrayLike]) -> AffinityModel:
        """Fit one classifier per group of ``labels`` (group -> bool per row of ``X``)."""
        start = time.perf_counter()
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be positive, got {self.horizon_days}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.max_train_rows < 2:
            raise ValueError(f"max_train_rows must be >= 2, got {self.max_train_rows}")
        if not labels:
            raise ValueError("labels is empty: give at least one product group")
        features = tuple(feature_names)
        block = feature_matrix(X, features, features)
        n = len(block)
        targets = {group: _check_label(group, y, n) for group, y in labels.items()}

        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(n)
        n_holdout = int(round(self.holdout_fraction * n))
        if n_holdout == 0 or n_holdout == n:
            raise ValueError(f"{n} contacts cannot be split with holdout_fraction={self.holdout_fraction}")
        holdout = np.sort(order[:n_holdout])
        train = order[n_holdout:]
        if len(train) > self.max_train_rows:
            train = train[: self.max_train_rows]  # already a random order
        train = np.sort(train)  # sequential reads of X
        X_train, X_holdout = block[train], block[holdout]
        # scikit-learn 1.9.1's binning crashes on an all-NaN column ("window shape cannot be
        # larger than input array shape"), e.g. the recency in a group nobody bought yet. A
        # constant column gets no split, so training on 0 there changes no prediction.
        all_nan = np.isnan(X_train).all(axis=0)
        if all_nan.any():
            X_train[:, all_nan] = 0.0
        all_nan_features = tuple(f for f, empty in zip(features, all_nan, strict=True) if empty)

        for group, y in targets.items():  # before any fitting: fail fast, leave no half-fitted model
            positives = int(y[train].sum())
            if positives in (0, len(train)):
                raise ValueError(f"group {group!r}: the {len(train)} training contacts have {positives} positives; both classes are needed")

        estimators: dict[str, HistGradientBoostingClassifier] = {}
        baselines: dict[str, Pipeline] = {}
        metrics: dict[str, float] = {"n_train": float(len(train)), "n_holdout": float(len(holdout))}
        pooled: dict[str, list[np.ndarray]] = {"y": [], "model": [], "group_popularity": [], "own_group_frequency": []}
        self.gains_: dict[str, dict[str, list[float]]] = {}  # holdout gains at 5 % steps, for the report
        for group, y in targets.items():
            y_train, y_holdout = y[train], y[holdout]
            estimator = estimators[group] = self._classifier().fit(X_train, y_train)
            design = _BaselineDesign(features, group).fit(X_train)
            baseline = baselines[group] = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            baseline.fit(design.transform(X_train), y_train)
            metrics[f"base_rate:{group}"] = float(y_holdout.mean())
            if 0 < y_holdout.sum() < len(y_holdout):  # AUC and lift need both classes
                p = estimator.predict_proba(X_holdout)[:, 1]
                b = baseline.predict_proba(design.transform(X_holdout))[:, 1]
                metrics[f"auc:{group}"] = roc_auc(y_holdout, p)
                metrics[f"lift10:{group}"] = lift_at(y_holdout, p, 0.10)
                metrics[f"ece:{group}"] = expected_calibration_error(y_holdout, p)
                metrics[f"baseline_auc:{group}"] = roc_auc(y_holdout, b)
                metrics[f"baseline_lift10:{group}"] = lift_at(y_holdout, b, 0.10)
                self.gains_[group] = {"model": gains_points(y_holdout, p), "baseline": gains_points(y_holdout, b)}
                # the simple baselines of every product score: the group's popularity (its
                # training rate, one value per group: it only ranks pairs across groups) and
                # the contact's own purchase count in the group
                own = _own_group_count(X_holdout, features, group)
                if own is not None:
                    metrics[f"own_group_frequency_auc:{group}"] = roc_auc(y_holdout, own)
                    pooled["y"].append(y_holdout)
                    pooled["model"].append(p)
                    pooled["group_popularity"].append(np.full(p.size, float(y_train.mean())))
                    pooled["own_group_frequency"].append(own + 1e-6 * float(y_train.mean()))
        if pooled["y"]:
            yy = np.concatenate(pooled["y"])
            for name in ("model", "group_popularity", "own_group_frequency"):
                scores = np.concatenate(pooled[name])
                prefix = "pooled" if name == "model" else f"{name}"
                metrics[f"{prefix}_auc"] = roc_auc(yy, scores)
                metrics[f"{prefix}_lift10"] = lift_at(yy, scores, 0.10)
        for key in ("auc", "lift10", "ece", "base_rate", "baseline_auc", "baseline_lift10", "own_group_frequency_auc"):
            values = [metrics[f"{key}:{g}"] for g in targets if f"{key}:{g}" in metrics]
            if values:
                metrics[f"{key}_mean"] = float(np.mean(values))

        self.features_ = features
        self.holdout_ = holdout
        self.groups_ = tuple(targets)
        self.estimators_ = estimators
        self.baselines_ = baselines
        self.metrics_ = metrics
        self.all_nan_features_ = all_nan_features
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def predict_proba(self, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """scikit-learn's P(purchase in G) for every group: float64 ``[N, n_groups]``."""
        self._check_fitted()
        block = feature_matrix(X, feature_names, self.features_)
        return np.stack([self.estimators_[g].predict_proba(block)[:, 1] for g in self.groups_], axis=1)

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; times are ISO 8601 strings."""
        self._check_fitted()
        outputs = tuple(
            OutputSpec(group, "float32", f"P(purchase in {group!r} within {self.horizon_days} days)", OUTPUT, i)
            for i, group in enumerate(self.groups_)
        )
        params: dict[str, Any] = {
            "groups": list(self.groups_),
            "classifier": {k: v for k, v in self._classifier().get_params().items() if _json_scalar(v)},
            "n_iter": {g: int(e.n_iter_) for g, e in self.estimators_.items()},
            "holdout_fraction": self.holdout_fraction,
            "max_train_rows": self.max_train_rows,
            "fit_seconds": round(self.fit_seconds_, 3),
            "all_nan_features": list(self.all_nan_features_),
            "baseline": "logistic regression on standardised " + ", ".join(_BASELINE_FEATURES) + " (those present)",
            "report": {"gains": self.gains_},
        }
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=self.features_,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"P(purchase in each product group within {self.horizon_days} days), one gradient-boosted classifier per group",
            horizon_days=self.horizon_days,
            metrics=dict(self.metrics_),
            params=params,
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """One graph, every group's classifier reading ``features``, concatenated into ``probabilities``."""
        self._check_fitted()
        estimators = [self.estimators_[g] for g in self.groups_]
        model = group_classifiers_to_onnx(estimators, len(self.features_), "affinity", OUTPUT)
        return attach_metadata(model, self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _classifier(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=10,
            random_state=self.random_state,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimators_"):
            raise ValueError("AffinityModel is not fitted: call fit() first")


class _BaselineDesign:
    """The baseline's design matrix for one group: its columns of X, NaN recency filled."""

    def __init__(self, feature_names: Sequence[str], group: str) -> None:
        index = {name: i for i, name in enumerate(feature_names)}
        wanted = [name.format(group=group) for name in _BASELINE_FEATURES]
        self.columns = [index[name] for name in wanted if name in index]
        self.recency = [name.startswith(_RECENCY_PREFIXES) for name in wanted if name in index]
        if not self.columns:
            raise ValueError(f"group {group!r}: the baseline needs one of {wanted} among the features")

    def fit(self, X: np.ndarray) -> _BaselineDesign:
        block = X[:, self.columns].astype(np.float64)
        finite = np.where(np.isfinite(block), block, -np.inf).max(axis=0)
        # a contact that never bought looks one year older than the oldest buyer
        self.fill_ = np.where(np.isfinite(finite), finite, 0.0) + 365.0
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        block = X[:, self.columns].astype(np.float64)
        fill = np.where(self.recency, self.fill_, 0.0)
        return np.where(np.isnan(block), fill, block)


def _check_label(group: str, y: ArrayLike, n: int) -> np.ndarray:
    """``y`` as a bool vector of ``n`` values, or a ValueError naming the group."""
    if not isinstance(group, str) or not group:
        raise ValueError(f"product group names must be non-empty strings, got {group!r}")
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"group {group!r}: labels have shape {arr.shape}, expected ({n},)")
    if arr.dtype != np.bool_:
        values = np.unique(arr)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"group {group!r}: labels must be bool or 0/1, got values {values[:10].tolist()}")
        arr = arr.astype(bool)
    return arr


def _json_scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def fit_affinity(
    X: np.ndarray,
    feature_names: Sequence[str],
    labels: Mapping[str, ArrayLike],
    *,
    horizon_days: int = 90,
    random_state: int = 0,
    **params: Any,
) -> AffinityModel:
    """Fit an :class:`AffinityModel`; ``params`` are its other keyword parameters."""
    return AffinityModel(horizon_days=horizon_days, random_state=random_state, **params).fit(X, feature_names, labels)


def _own_group_count(X: np.ndarray, features: Sequence[str], group: str) -> np.ndarray | None:
    """The contacts' ``group_count:G`` (NaN as 0), or None when the model does not read it."""
    name = f"group_count:{group}"
    if name not in features:
        return None
    return np.nan_to_num(X[:, list(features).index(name)].astype(np.float64))


def fit(run: TrainingRun, version: str) -> Fitted:
    """``affinity`` for ``scorecast train``: features as of ``as_of - horizon``, labels what each
    contact bought in each group in ``(as_of - horizon, as_of]``."""
    tables, as_of = run.tables, run.as_of
    orders = tables["orders"]
    if "product_group" not in orders.column_names:
        raise ValueError("affinity needs orders.product_group, which this base does not have")
    cutoff = as_of - timedelta(days=AFFINITY_HORIZON_DAYS)
    before = FeatureFrame(tables, as_us(cutoff))
    n_buyers = require_buyers(
        before.matrix(["frequency"])[:, 0], f"affinity: orders up to {cutoff.date()} (as_of - {AFFINITY_HORIZON_DAYS} days)"
    )
    counts = pc.value_counts(orders["product_group"].combine_chunks().drop_null())
    by_volume = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    candidates = [g for g, _ in by_volume[:MAX_GROUPS]]
    # labels: did the contact buy in G in (cutoff, as_of]? Same kernel, two reference times.
    after = FeatureFrame(tables, as_us(as_of), contact_ids=before.contact_ids)
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
    model = fit_affinity(before.matrix(names), names, labels, horizon_days=AFFINITY_HORIZON_DAYS)
    held = model.holdout_
    holdout = Holdout(tables, as_us(cutoff), before.contact_ids.take(pa.array(held)), {g: y[held] for g, y in labels.items()})
    return Fitted(model.to_onnx(**run.times(version, as_of)), tables, as_of, holdout)
