"""The ``engagement`` score: RFO and RFC quintile scores, P(open) and P(click) at the next send.

RFO (recency and frequency of opens) and RFC (of clicks) are read like RFM (``rfm.py``):
thresholds at the 20/40/60/80 % quantiles over the contacts who ever opened (clicked).
P(open) and P(click) come from two logistic regressions on the e-mail features, trained on
features as of ``as_of - horizon`` and the reaction to each contact's first send after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from collections.abc import Sequence

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..evaluation import expected_calibration_error, reliability_bins, roc_auc
from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, Holdout, TrainingRun, as_us
from .email_events import email_rows, next_send

__all__ = ["EMAIL_HORIZON_DAYS", "ENGAGEMENT_FEATURES", "EngagementModel", "fit", "fit_engagement", "fit_from_tables"]

_RF = ("email_days_since_open", "email_opens_365d", "email_days_since_click", "email_clicks_365d")
_P = (
    "email_sends", "email_opens", "email_clicks", "email_sends_7d", "email_sends_30d", "email_sends_90d",
    "email_opens_30d", "email_opens_90d", "email_clicks_90d", "email_days_since_send", "email_days_since_open",
    "email_days_since_click", "email_open_rate", "email_click_rate", "email_opens_last5_sends",
    "email_clicks_last5_sends", "email_mean_send_gap_days", "email_unsubscribed", "email_hard_bounced",
)  # fmt: skip
ENGAGEMENT_FEATURES: tuple[str, ...] = tuple(dict.fromkeys(_RF + _P))
"""The model's input columns, in order."""
_NEVER_DAYS = 3650.0  # a "days since" that is NaN (never) reads as ten years
_QUANTILES = (0.2, 0.4, 0.6, 0.8)
SCORES = "scores"  # int32 [N, 6]: rfo, rfo_r, rfo_f, rfc, rfc_r, rfc_f
PROBABILITIES = "probabilities"  # float32 [N, 2]: P(open), P(click)


def _design(block: np.ndarray, fill: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The regressions' inputs: log1p of the non-negative values, NaN as ``fill``, standardised."""
    x = block.astype(np.float64)
    missing = np.isnan(x)
    v = np.log1p(np.maximum(np.where(missing, 0.0, x), 0.0))
    v = np.where(missing, fill, v)
    return (v - mean) / scale


class EngagementModel:
    """RFO/RFC quintiles and two calibrated logistic regressions (P(open), P(click)).

    RFO: ``R = 1 + #{t >= days_since_open}`` and ``F = 1 + #{t < opens_365d}`` over the four
    thresholds learned on the contacts who ever opened; ``rfo = (R + F + 1) // 2`` (1–5);
    all three are 0 (null) for contacts who never opened. RFC likewise on clicks.

    P(open), P(click): the inputs are ``log1p(x)`` of every feature of :data:`ENGAGEMENT_FEATURES`
    (NaN "days since" as ten years, other NaNs as the training median), standardised; a
    logistic regression (L2, C=1) fitted on 80 % of the labelled contacts, the other 20 %
    held out for the metrics (AUC and ECE, and the AUC of a recency baseline: fewer days since
    the last open or click ranks higher). Logistic regression's log loss keeps the
    probabilities calibrated; the holdout ECE says how well.
    """

    model_type = "engagement-rf-logistic"
    score = "engagement"
    features = ENGAGEMENT_FEATURES

    def __init__(self, *, horizon_days: int = 30, holdout_fraction: float = 0.2, random_state: int = 0) -> None:
        self.horizon_days = horizon_days
        self.holdout_fraction = holdout_fraction
        self.random_state = random_state

    def fit(
        self,
        X_now: np.ndarray,
        X_cutoff: np.ndarray,
        feature_names: Sequence[str],
        sent: np.ndarray,
        opened: np.ndarray,
        clicked: np.ndarray,
    ) -> EngagementModel:
        """Thresholds from ``X_now``; regressions from ``X_cutoff`` rows with ``sent``, labels
        ``opened`` and ``clicked`` (their reaction to the first send after the cutoff)."""
        now = feature_matrix(X_now, feature_names, ENGAGEMENT_FEATURES).astype(np.float64)
        cut = feature_matrix(X_cutoff, feature_names, ENGAGEMENT_FEATURES).astype(np.float64)
        self.thresholds_ = np.empty((4, 4), np.float32)
        self.shares_ = {}
        for j, (what, days, count) in enumerate((("open", 0, 1), ("click", 2, 3))):
            ever = ~np.isnan(now[:, days])
            if ever.sum() < 5:
                raise ValueError(
                    f"engagement: only {int(ever.sum())} contacts ever {what}ed an e-mail; need more to cut quintiles"
                )
            self.thresholds_[2 * j] = np.quantile(now[ever, days], _QUANTILES).astype(np.float32)
            self.thresholds_[2 * j + 1] = np.quantile(now[ever, count], _QUANTILES).astype(np.float32)
            self.shares_[f"ever_{what}ed"] = float(ever.mean())
        labelled = np.flatnonzero(np.asarray(sent, bool))
        y = np.stack([np.asarray(opened, bool), np.asarray(clicked, bool)], axis=1)[labelled]
        for k, what in enumerate(("open", "click")):
            if not 10 <= y[:, k].sum() <= len(y) - 10:
                raise ValueError(
                    f"engagement: {int(y[:, k].sum())} of {len(y)} labelled contacts {what}ed; need 10+ of each class"
                )
        rng = np.random.default_rng(self.random_state)
        holdout = rng.random(len(labelled)) < self.holdout_fraction
        self.holdout_rows_ = labelled[holdout]  # the promotion gate's holdout (rows of the inputs)
        logs = np.log1p(np.maximum(np.nan_to_num(cut[labelled], nan=0.0), 0.0))
        days = np.array([f.startswith("email_days_since_") for f in ENGAGEMENT_FEATURES])
        medians = np.array(
            [
                np.median(logs[~np.isnan(cut[labelled, j]), j]) if (~np.isnan(cut[labelled, j])).any() else 0.0
                for j in range(len(ENGAGEMENT_FEATURES))
            ]
        )
        self.fill_ = np.where(days, np.log1p(_NEVER_DAYS), medians)
        raw = _design(cut[labelled], self.fill_, np.zeros(len(ENGAGEMENT_FEATURES)), np.ones(len(ENGAGEMENT_FEATURES)))
        self.mean_ = raw[~holdout].mean(axis=0)
        scale = raw[~holdout].std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (raw - self.mean_) / self.scale_
        self.coef_ = np.empty((len(ENGAGEMENT_FEATURES), 2))
        self.intercept_ = np.empty(2)
        self.metrics_: dict[str, float] = {"n_labelled": float(len(labelled)), "n_holdout": float(holdout.sum())}
        recency = {"open": cut[labelled, 0], "click": cut[labelled, 2]}
        self.reliability_: dict[str, list[dict[str, float]]] = {}  # holdout reliability diagrams, for the report
        for k, what in enumerate(("open", "click")):
            lr = LogisticRegression(C=1.0, max_iter=2000).fit(Z[~holdout], y[~holdout, k])
            self.coef_[:, k] = lr.coef_[0]
            self.intercept_[k] = lr.intercept_[0]
            p = lr.predict_proba(Z[holdout])[:, 1]
            yh = y[holdout, k]
            baseline = -np.nan_to_num(recency[what][holdout], nan=1e9)  # never: the least recent
            self.metrics_ |= {
                f"auc_{what}": roc_auc(yh, p),
                f"ece_{what}": expected_calibration_error(yh, p),
                f"baseline_auc_{what}": roc_auc(yh, baseline),
                f"rate_{what}": float(yh.mean()),
                f"mean_p_{what}": float(p.mean()),
            }
            self.reliability_[what] = reliability_bins(yh, p)
        return self

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The NumPy reference of the graph: int32 scores [N, 6] and float64 probabilities [N, 2]."""
        self._check_fitted()
        block = feature_matrix(X, feature_names, ENGAGEMENT_FEATURES).astype(np.float32)
        t = self.thresholds_
        cols = []
        for j, (days, count) in enumerate(((0, 1), (2, 3))):
            r = 1 + (block[:, days : days + 1] <= t[2 * j]).sum(axis=1, dtype=np.int32)
            f = 1 + (t[2 * j + 1] < block[:, count : count + 1]).sum(axis=1, dtype=np.int32)
            both = np.stack([(r + f + 1) // 2, r, f], axis=1).astype(np.int32)
            both[np.isnan(block[:, days])] = 0
            cols.append(both)
        Z = _design(block.astype(np.float64), self.fill_, self.mean_, self.scale_)
        probabilities = 1.0 / (1.0 + np.exp(-(Z @ self.coef_ + self.intercept_)))
        return np.concatenate(cols, axis=1), probabilities

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; times are ISO 8601 strings."""
        self._check_fitted()
        null = "0 (null) for contacts who never {}ed"
        outputs = [
            OutputSpec(name, "int32", f"{desc}; {null.format(what)}", SCORES, i, null_value=0)
            for i, (name, desc, what) in enumerate(
                (
                    ("rfo", "opens score 1-5, (R + F + 1) // 2", "open"),
                    ("rfo_r", "open recency score 1-5, 5 = most recent", "open"),
                    ("rfo_f", "open frequency score 1-5 (opens in 365 days), 5 = most", "open"),
                    ("rfc", "clicks score 1-5, (R + F + 1) // 2", "click"),
                    ("rfc_r", "click recency score 1-5, 5 = most recent", "click"),
                    ("rfc_f", "click frequency score 1-5 (clicks in 365 days), 5 = most", "click"),
                )
            )
        ]
        outputs += [
            OutputSpec("p_open", "float32", "probability that the contact opens the next e-mail sent", PROBABILITIES, 0),
            OutputSpec("p_click", "float32", "probability that the contact clicks in the next e-mail sent", PROBABILITIES, 1),
        ]
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=ENGAGEMENT_FEATURES,
            outputs=tuple(outputs),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="RFO/RFC quintile scores and P(open)/P(click) at the next send (logistic regressions on e-mail features)",
            horizon_days=self.horizon_days,
            metrics={**self.metrics_, **self.shares_},
            params={
                "thresholds": {name: [float(v) for v in self.thresholds_[j]] for j, name in enumerate(_RF)},
                "rules": "R = 1 + #(thresholds >= days_since); F = 1 + #(thresholds < count_365d); score = (R + F + 1) // 2; never -> 0",
                "fill": [float(v) for v in self.fill_],
                "mean": [float(v) for v in self.mean_],
                "scale": [float(v) for v in self.scale_],
                "coef_open": [float(v) for v in self.coef_[:, 0]],
                "coef_click": [float(v) for v in self.coef_[:, 1]],
                "intercepts": [float(v) for v in self.intercept_],
                "label": f"reaction to the first send in the {self.horizon_days} days after the training cutoff",
                "report": {"reliability": self.reliability_},
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph of :meth:`predict`, metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        f32, i32 = np.float32, np.int32
        init = {
            "axis1": np.array([1], np.int64),
            "zero_f": np.array(0, f32),
            "one_f": np.array(1, f32),
            "zero_i": np.array(0, i32),
            "one_i": np.array(1, i32),
            "two_i": np.array(2, i32),
            "fill": self.fill_.astype(f32)[None, :],
            "mean": self.mean_.astype(f32)[None, :],
            "scale": self.scale_.astype(f32)[None, :],
            "coef": self.coef_.astype(f32),
            "intercept": self.intercept_.astype(f32)[None, :],
        }
        node = helper.make_node
        nodes = []
        parts = []
        for j, what in enumerate(("open", "click")):
            init[f"col_r_{what}"] = np.array([2 * j], np.int64)
            init[f"col_f_{what}"] = np.array([2 * j + 1], np.int64)
            init[f"t_r_{what}"] = self.thresholds_[2 * j : 2 * j + 1]
            init[f"t_f_{what}"] = self.thresholds_[2 * j + 1 : 2 * j + 2]
            for kind, compare, x_first in (("r", "LessOrEqual", True), ("f", "Less", False)):
                x, t = f"x_{kind}_{what}", f"t_{kind}_{what}"
                nodes += [
                    node("Gather", [INPUT_NAME, f"col_{kind}_{what}"], [x], axis=1),
                    node(compare, [x, t] if x_first else [t, x], [f"hit_{kind}_{what}"]),
                    node("Cast", [f"hit_{kind}_{what}"], [f"hit_{kind}_{what}_i"], to=TensorProto.INT32),
                    node("ReduceSum", [f"hit_{kind}_{what}_i", "axis1"], [f"n_{kind}_{what}"], keepdims=1),
                    node("Add", [f"n_{kind}_{what}", "one_i"], [f"s_{kind}_{what}"]),
                ]
            nodes += [
                node("Add", [f"s_r_{what}", f"s_f_{what}"], [f"rf_{what}"]),
                node("Add", [f"rf_{what}", "one_i"], [f"rf1_{what}"]),
                node("Div", [f"rf1_{what}", "two_i"], [f"s_{what}"]),
                node("Concat", [f"s_{what}", f"s_r_{what}", f"s_f_{what}"], [f"block_{what}"], axis=1),
                node("IsNaN", [f"x_r_{what}"], [f"never_{what}"]),
                node("Where", [f"never_{what}", "zero_i", f"block_{what}"], [f"out_{what}"]),
            ]
            parts.append(f"out_{what}")
        nodes += [
            node("Concat", parts, [SCORES], axis=1),
            node("IsNaN", [INPUT_NAME], ["missing"]),
            node("Where", ["missing", "zero_f", INPUT_NAME], ["x0"]),
            node("Max", ["x0", "zero_f"], ["x_pos"]),
            node("Add", ["x_pos", "one_f"], ["x1"]),
            node("Log", ["x1"], ["logs"]),
            node("Where", ["missing", "fill", "logs"], ["v"]),
            node("Sub", ["v", "mean"], ["centred"]),
            node("Div", ["centred", "scale"], ["z"]),
            node("MatMul", ["z", "coef"], ["zw"]),
            node("Add", ["zw", "intercept"], ["logit"]),
            node("Sigmoid", ["logit"], [PROBABILITIES]),
        ]
        graph = helper.make_graph(
            nodes,
            "engagement",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(ENGAGEMENT_FEATURES)])],
            [
                helper.make_tensor_value_info(SCORES, TensorProto.INT32, [None, 6]),
                helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, 2]),
            ],
            initializer=[numpy_helper.from_array(v, k) for k, v in init.items()],
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("EngagementModel is not fitted: call fit() first")


def fit_engagement(
    X_now: np.ndarray,
    X_cutoff: np.ndarray,
    feature_names: Sequence[str],
    sent: np.ndarray,
    opened: np.ndarray,
    clicked: np.ndarray,
    *,
    horizon_days: int = 30,
) -> EngagementModel:
    """Fit an :class:`EngagementModel` (see its ``fit``)."""
    return EngagementModel(horizon_days=horizon_days).fit(X_now, X_cutoff, feature_names, sent, opened, clicked)


EMAIL_HORIZON_DAYS = 30


def fit_from_tables(tables: dict[str, pa.Table], as_of: datetime) -> EngagementModel:
    """Features as of ``as_of`` and ``as_of - horizon``; labels: each contact's next send in the horizon."""
    now = FeatureFrame(tables, as_us(as_of))
    cutoff = as_of - timedelta(days=EMAIL_HORIZON_DAYS)
    before = FeatureFrame(tables, as_us(cutoff), contact_ids=now.contact_ids)
    labels = next_send(email_rows(now), len(now), as_us(cutoff), as_us(as_of))
    names = list(ENGAGEMENT_FEATURES)
    model = fit_engagement(
        now.matrix(names), before.matrix(names), names, labels.sent, labels.opened, labels.clicked, horizon_days=EMAIL_HORIZON_DAYS
    )
    rows = model.holdout_rows_
    model.holdout_ = Holdout(
        tables, as_us(cutoff), now.contact_ids.take(pa.array(rows)),
        {"p_open": np.asarray(labels.opened, bool)[rows], "p_click": np.asarray(labels.clicked, bool)[rows]},
    )  # fmt: skip
    return model


def fit(run: TrainingRun, version: str) -> Fitted:
    """``engagement`` for ``scorecast train``."""
    tables = run.email_tables()
    model = fit_from_tables(tables, run.as_of)
    return Fitted(model.to_onnx(**run.times(version, run.as_of)), tables, run.as_of, model.holdout_)
