"""The ``lead`` score: P(a B2B lead converts within 21 days), 1–99, tier and the reasons why.

**Model: a scorecard.** Every feature (firmographic ``attr:*``, interaction ``lead_int_*``,
web ``lead_web_*``) is cut into bins (quantiles of the training leads; indicators at 0.5;
missing values in a bin of their own) and a logistic regression with an L2 penalty is fitted
on the bins' indicators. So the logit is a sum of one weight per feature,
``logit = intercept + sum_j W[j, bin_j(x)]``; each feature's weights are centred on the
training leads (the intercept absorbs the means), so a contribution says how much the feature
moves this lead above or below an average one. One-hot columns of an attribute add up into
one *factor* (``country``, ``job_role`` …); other features are their own factor. The reasons
are the top positive and negative factors; with ``reasons_rest`` (every factor not shown)
they reproduce the logit exactly: ``logit = intercept + sum(shown) + rest``.

A gradient-boosting model (HGB) is fitted on the same split for comparison; its AUC is
recorded, and the scorecard is served because its reasons are exact.

**Score and tier.** ``score = 1 + #(t < logit)`` over the 98 quantiles ``i/99`` of the
training leads' logits: a percentile 1–99 of the base. ``tier``: low below ``tier_thresholds[0]``
(default 34), high from ``tier_thresholds[1]`` (default 67), i.e. thirds of the base.

**Labels.** Features as of ``as_of - 21 days``; a lead is positive when it has an interaction
of kind ``conversion`` in ``(as_of - 21 days, as_of]``; leads converted before are not leads
any more and are left out. 25 % of the leads (seeded) are held out for the validation report;
the served model is the one fitted on the other 75 %.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from onnx import TensorProto, helper, numpy_helper
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..evaluation import expected_calibration_error, lift_at, roc_auc
from ..onnx_export import attach_metadata, float32_at_most
from .rules import RuleSet

__all__ = [
    "CONVERSION_KIND",
    "HORIZON_DAYS",
    "MIN_CONVERSIONS",
    "MIN_LEADS",
    "TIERS",
    "LeadModel",
    "LeadTraining",
    "base_vocabulary",
    "fit_lead",
    "holdout_mask",
    "lead_feature_names",
    "rule_vocabulary",
    "scorecard_from_onnx",
]

log = logging.getLogger(__name__)

HORIZON_DAYS = 21
CONVERSION_KIND = "conversion"
# Why these: the 25 % holdout then holds >= 250 leads and ~25 conversions; with fewer the
# holdout AUC's standard error (Hanley & McNeil) exceeds ~0.03 and the tiers' conversion
# rates rest on a handful of conversions, so the report could not tell a model from noise.
MIN_LEADS = 1000
MIN_CONVERSIONS = 100
HOLDOUT_SHARE = 0.25
TIERS = ("low", "medium", "high")
DEFAULT_TIER_THRESHOLDS = (34, 67)
N_REASONS = 3
NO_REASON = "(none)"
_QUANTILES = np.linspace(0.1, 0.9, 9)
_MAX_VALUES = 30  # one-hot columns per string attribute
_MIN_VALUE_SHARE = 0.005
_MAX_CATEGORIES = 20  # interaction kinds / pages modelled
_COUNT_DAYS = (7, 21, 90)
C_PENALTY = 0.1  # inverse L2 strength on bin indicators (chosen on simulated bases; see tests)


def holdout_mask(n: int, seed: int = 0) -> np.ndarray:
    """The held-out leads (``HOLDOUT_SHARE`` of ``n``, seeded): True = validation."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, bool)
    mask[rng.permutation(n)[: round(HOLDOUT_SHARE * n)]] = True
    return mask


@dataclass(frozen=True)
class Vocabulary:
    """What a base holds: attributes (name -> "string" / "number") and their frequent values,
    interaction kinds and pages (by volume)."""

    attributes: dict[str, str]
    values: dict[str, list[str]]
    kinds: list[str]
    pages: list[str]


def _top_values(column: pa.ChunkedArray, limit: int, min_share: float) -> list[str]:
    counts = pc.value_counts(column.combine_chunks().drop_null())
    pairs = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    total = max(1, len(column))
    return [v for v, k in pairs[:limit] if k / total >= min_share]


def base_vocabulary(tables: Mapping[str, pa.Table], conversion_kind: str = CONVERSION_KIND) -> Vocabulary:
    """The attributes, values, kinds and pages of a base, for feature names and rule checks."""
    attributes: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    contacts = tables.get("contacts")
    for name in [] if contacts is None else contacts.column_names:
        if name == "contact_id":
            continue
        kind = contacts.schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            attributes[name] = "string"
            values[name] = _top_values(contacts[name], _MAX_VALUES, _MIN_VALUE_SHARE)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            attributes[name] = "number"
    kinds: list[str] = []
    if tables.get("interactions") is not None:
        kinds = [k for k in _top_values(tables["interactions"]["kind"], _MAX_CATEGORIES + 1, 0.0) if k != conversion_kind]
    pages: list[str] = []
    if tables.get("web_events") is not None and "page" in tables["web_events"].column_names:
        pages = _top_values(tables["web_events"]["page"], _MAX_CATEGORIES, 0.0)
    return Vocabulary(attributes, values, kinds[:_MAX_CATEGORIES], pages)


def lead_feature_names(vocab: Vocabulary, has_durations: bool = True) -> list[str]:
    """The model's features for a base: attributes, interactions by kind, web visits by page."""
    names = []
    for column, kind in vocab.attributes.items():
        if kind == "number":
            names.append(f"attr:{column}")
        else:
            names += [f"attr:{column}={v}" for v in vocab.values[column]]
    for kind in vocab.kinds:
        names += [f"lead_int_count:{kind}:{d}" for d in _COUNT_DAYS] + [f"lead_int_recency_days:{kind}"]
    if vocab.kinds:
        names.append("lead_int_recency_days:*")
    for page in vocab.pages:
        names += [f"lead_web_visits:{page}:21", f"lead_web_visits:{page}:90"]
    if vocab.pages:
        names += [f"lead_web_visits:*:{d}" for d in _COUNT_DAYS] + ["lead_web_recency_days:*"]
        if has_durations:
            names.append("lead_web_duration_s:*:21")
    return names


def factor_of(name: str) -> str:
    """The factor a feature adds into: its attribute for ``attr:*``, else the feature itself."""
    if name.startswith("attr:"):
        return name[5:].partition("=")[0]
    return name


def _edges(values: np.ndarray) -> np.ndarray:
    """Bin edges of one feature: 0.5 for indicators, else distinct deciles (``bin = #(e < x)``)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0, np.float32)
    if np.isin(finite, (0.0, 1.0)).all():
        return np.array([0.5], np.float32)
    return np.unique(np.quantile(finite, _QUANTILES).astype(np.float32))


class LeadModel:
    """The scorecard: bins, centred weights, factors, score quantiles, tiers and the rules."""

    model_type = "scorecard-logistic"
    score = "lead"

    def __init__(
        self, features: Sequence[str], *, c_penalty: float = C_PENALTY, tier_thresholds: Sequence[int] = DEFAULT_TIER_THRESHOLDS
    ) -> None:
        lo, hi = tier_thresholds
        if not (isinstance(lo, int) and isinstance(hi, int) and 2 <= lo < hi <= 99):
            raise ValueError(f"tier_thresholds must be two integer scores 2 <= low < high <= 99, got {list(tier_thresholds)}")
        self.features = list(features)
        self.c_penalty = c_penalty
        self.tier_thresholds = (lo, hi)
        self.factors = list(dict.fromkeys(factor_of(f) for f in self.features))

    # --- fitting -----------------------------------------------------------------------
    def _bins(self, X: np.ndarray) -> np.ndarray:
        """int64 bin of every cell: ``#(edges < x)``, NaN in the last bin (``n_bins - 1``)."""
        E = self.edges_
        with np.errstate(invalid="ignore"):
            bins = (E[None, :, :] < X[:, :, None]).sum(axis=2)
        return np.where(np.isnan(X), self.n_bins_ - 1, bins)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LeadModel:
        """Bins from ``X`` (float32, columns ``features``), then the penalised logistic fit."""
        X = np.asarray(X, np.float32)
        per_feature = [_edges(X[:, j]) for j in range(X.shape[1])]
        m = max([len(e) for e in per_feature] + [1])
        self.edges_ = np.full((X.shape[1], m), np.inf, np.float32)
        for j, e in enumerate(per_feature):
            self.edges_[j, : len(e)] = e
        self.n_bins_ = m + 2  # 0..m, then NaN
        bins = self._bins(X)
        F, B = X.shape[1], self.n_bins_
        # one indicator per (feature, bin): sparse, F ones per row
        cells = (np.arange(F)[None, :] * B + bins).ravel()
        design = sparse.csr_matrix((np.ones(cells.size), cells, np.arange(0, cells.size + 1, F)), shape=(len(X), F * B))
        lr = LogisticRegression(C=self.c_penalty, max_iter=3000)
        lr.fit(design, y)
        W = lr.coef_[0].reshape(F, B).astype(np.float64)
        means = W[np.arange(F)[None, :], bins].mean(axis=0)
        self.weights_ = (W - means[:, None]).astype(np.float32)
        self.intercept_ = np.float32(lr.intercept_[0] + means.sum())
        G = np.zeros((F, len(self.factors)), np.float32)
        for j, f in enumerate(self.features):
            G[j, self.factors.index(factor_of(f))] = 1.0
        self.factor_matrix_ = G
        logits = self.logit(X)
        self.score_thresholds_ = np.quantile(logits.astype(np.float64), np.arange(1, 99) / 99).astype(np.float32)
        return self

    # --- NumPy reference of the graph ----------------------------------------------------
    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-factor contributions ``[N, n_factors]`` (float32, as the graph computes them)."""
        X = np.asarray(X, np.float32)
        F = len(self.features)
        c = self.weights_[np.arange(F)[None, :], self._bins(X)]
        return (c @ self.factor_matrix_).astype(np.float32)

    def logit(self, X: np.ndarray) -> np.ndarray:
        """``intercept + sum(contributions)``."""
        return self.intercept_ + self.contributions(X).astype(np.float64).sum(axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(convert within 21 days)."""
        return 1.0 / (1.0 + np.exp(-self.logit(X)))

    def score_of(self, logit: np.ndarray) -> np.ndarray:
        """Scores 1–99 of logits."""
        return 1 + (self.score_thresholds_[None, :] < np.asarray(logit, np.float32)[:, None]).sum(axis=1)

    def tier_of(self, score: np.ndarray) -> np.ndarray:
        """Tier codes 0 low, 1 medium, 2 high."""
        lo, hi = self.tier_thresholds
        return (np.asarray(score) >= lo).astype(np.int32) + (np.asarray(score) >= hi)

    # --- export ----------------------------------------------------------------------
    def metadata(self, *, version: str, trained_at: str, data_as_of: str, all_features: Sequence[str], rules: RuleSet | None,
                 metrics: Mapping[str, float], params: Mapping[str, object]) -> ModelMetadata:  # fmt: skip
        """The model's metadata; ``all_features`` = its features then the rules' extra ones."""
        reasons = (NO_REASON, *self.factors)
        k = min(N_REASONS, len(self.factors))
        floats = [
            "probability",
            "logit",
            "reasons_rest",
            *[f"pos_{i}_value" for i in range(1, k + 1)],
            *[f"neg_{i}_value" for i in range(1, k + 1)],
        ]
        ints = ["score", "tier", *[f"pos_{i}" for i in range(1, k + 1)], *[f"neg_{i}" for i in range(1, k + 1)]]
        if rules is not None:
            floats.append("rule_points")
            ints += ["rules_fired", "rule_excluded"]
        desc = {
            "probability": "P(converts within 21 days), calibrated on the training leads",
            "logit": "log-odds: intercept + the sum of every factor's contribution",
            "reasons_rest": "sum of the contributions of the factors not shown as reasons",
            "score": "1-99: percentile of the probability among the training leads",
            "tier": f"low (score < {self.tier_thresholds[0]}), medium, high (score >= {self.tier_thresholds[1]})",
            "rule_points": "points of the configured rules that fired (0 when a filter excludes the lead)",
            "rules_fired": "bitmask: bit i set when rule i fired (names in params.rules.names)",
            "rule_excluded": "1 when a country / ip-country filter excludes the lead",
        }
        outputs = []
        for i, name in enumerate(floats):
            if name.startswith(("pos_", "neg_")):
                d = f"log-odds contribution of reason {name[:-6]} (null: none)"
            else:
                d = desc[name]
            outputs.append(OutputSpec(name, "float32", d, "lead_float", i))
        for i, name in enumerate(ints):
            if name == "tier":
                outputs.append(OutputSpec(name, "category", desc[name], "lead_int", i, categories=TIERS))
            elif name.startswith(("pos_", "neg_")):
                side = "positive" if name.startswith("pos") else "negative"
                outputs.append(
                    OutputSpec(
                        name,
                        "category",
                        f"factor with the {name[4:]}. largest {side} contribution",
                        "lead_int",
                        i,
                        null_value=0,
                        categories=reasons,
                    )
                )
            else:
                outputs.append(OutputSpec(name, "int32", desc[name], "lead_int", i))
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=tuple(all_features),
            outputs=tuple(outputs),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="B2B lead conversion within 21 days: scorecard logistic regression on binned fit and behaviour features, "
            "score 1-99, tier, reasons that add up to the logit, and configurable rules",
            horizon_days=HORIZON_DAYS,
            metrics=dict(metrics),
            params={
                "intercept": float(self.intercept_),
                "factors": self.factors,
                "tier_thresholds": list(self.tier_thresholds),
                "score_thresholds": [float(t) for t in self.score_thresholds_],
                "c_penalty": self.c_penalty,
                **params,
            },
        )

    def to_onnx(self, meta: ModelMetadata, rules: RuleSet | None) -> onnx.ModelProto:
        """The graph of the NumPy reference (and of ``rules``), ``meta`` attached."""
        return attach_metadata(_graph(self, list(meta.features), rules), meta)


def _graph(model: LeadModel, all_features: list[str], rules: RuleSet | None) -> onnx.ModelProto:
    F, B, K = len(model.features), model.n_bins_, len(model.factors)
    k = min(N_REASONS, K)
    init = []

    def const(name: str, value: np.ndarray) -> str:
        init.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    node = helper.make_node
    const("model_cols", np.arange(F, dtype=np.int64))
    const("edges", model.edges_[None, :, :])
    const("axes2", np.array([2], np.int64))
    const("axes1", np.array([1], np.int64))
    const("nan_bin", np.array(B - 1, np.int64))
    const("offsets", (np.arange(F) * B).astype(np.int64))
    const("weights", model.weights_.reshape(-1))
    const("factor_matrix", model.factor_matrix_)
    const("intercept", np.array([[model.intercept_]], np.float32))
    const("score_t", model.score_thresholds_[None, :])
    const("one_i", np.array(1, np.int32))
    const("tier_t", np.array([list(model.tier_thresholds)], np.int32))
    const("k", np.array([k], np.int64))
    const("zero_f", np.array(0, np.float32))
    const("zero_i", np.array(0, np.int32))
    const("nan_f", np.array(np.nan, np.float32))
    nodes = [
        node("Gather", [INPUT_NAME, "model_cols"], ["xm"], axis=1),
        node("Unsqueeze", ["xm", "axes2"], ["xu"]),
        node("Less", ["edges", "xu"], ["above"]),
        node("Cast", ["above"], ["above_i"], to=TensorProto.INT64),
        node("ReduceSum", ["above_i", "axes2"], ["bins0"], keepdims=0),
        node("IsNaN", ["xm"], ["isnan"]),
        node("Where", ["isnan", "nan_bin", "bins0"], ["bins"]),
        node("Add", ["bins", "offsets"], ["cells"]),
        node("Gather", ["weights", "cells"], ["contrib"], axis=0),
        node("MatMul", ["contrib", "factor_matrix"], ["factors"]),
        node("ReduceSum", ["factors", "axes1"], ["sum_f"], keepdims=1),
        node("Add", ["sum_f", "intercept"], ["logit"]),
        node("Sigmoid", ["logit"], ["probability"]),
        node("Less", ["score_t", "logit"], ["score_above"]),
        node("Cast", ["score_above"], ["score_above_i"], to=TensorProto.INT32),
        node("ReduceSum", ["score_above_i", "axes1"], ["score0"], keepdims=1),
        node("Add", ["score0", "one_i"], ["score"]),
        node("GreaterOrEqual", ["score", "tier_t"], ["tier_ge"]),
        node("Cast", ["tier_ge"], ["tier_ge_i"], to=TensorProto.INT32),
        node("ReduceSum", ["tier_ge_i", "axes1"], ["tier"], keepdims=1),
        node("Neg", ["factors"], ["neg_factors"]),
    ]
    shown = []
    for side, source in (("pos", "factors"), ("neg", "neg_factors")):
        nodes += [
            node("TopK", [source, "k"], [f"{side}_v", f"{side}_i64"], axis=1, largest=1, sorted=1),
            node("Greater", [f"{side}_v", "zero_f"], [f"{side}_ok"]),
            node("Cast", [f"{side}_i64"], [f"{side}_i32"], to=TensorProto.INT32),
            node("Add", [f"{side}_i32", "one_i"], [f"{side}_code1"]),
            node("Where", [f"{side}_ok", f"{side}_code1", "zero_i"], [f"{side}_code"]),
            node("Where", [f"{side}_ok", f"{side}_v", "zero_f"], [f"{side}_shown"]),
            node("ReduceSum", [f"{side}_shown", "axes1"], [f"{side}_sum"], keepdims=1),
        ]
        if side == "pos":
            nodes.append(node("Where", ["pos_ok", "pos_v", "nan_f"], ["pos_value"]))
        else:
            nodes += [node("Neg", ["neg_v"], ["neg_vn"]), node("Where", ["neg_ok", "neg_vn", "nan_f"], ["neg_value"])]
        shown.append(f"{side}_sum")
    nodes += [node("Sub", ["sum_f", "pos_sum"], ["rest0"]), node("Add", ["rest0", "neg_sum"], ["rest"])]
    float_cols = ["probability", "logit", "rest", "pos_value", "neg_value"]
    int_cols = ["score", "tier", "pos_code", "neg_code"]
    if rules is not None:
        nodes += _rule_nodes(rules, all_features, const)
        float_cols.append("rule_points")
        int_cols += ["rules_fired", "rule_excluded"]
    nodes += [node("Concat", float_cols, ["lead_float"], axis=1), node("Concat", int_cols, ["lead_int"], axis=1)]
    n_float = 3 + 2 * k + (rules is not None)
    n_int = 2 + 2 * k + 2 * (rules is not None)
    graph = helper.make_graph(
        nodes,
        "lead",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(all_features)])],
        [
            helper.make_tensor_value_info("lead_float", TensorProto.FLOAT, [None, n_float]),
            helper.make_tensor_value_info("lead_int", TensorProto.INT32, [None, n_int]),
        ],
        initializer=init,
    )
    model_proto = make_model(graph)
    return model_proto


def _rule_nodes(rules: RuleSet, all_features: list[str], const) -> list[onnx.NodeProto]:  # noqa: ANN001
    """Nodes computing rule_points [N,1] float, rules_fired [N,1] int32, rule_excluded [N,1] int32."""
    preds = [*rules.predicates, *rules.filters]
    used = rules.features
    A = np.zeros((len(used), len(preds)), np.float32)
    for p, pred in enumerate(preds):
        for f in pred.features:
            A[used.index(f), p] = 1.0
    R = len(rules.predicates)
    low = np.array([[-float32_at_most(-p.low) if math.isfinite(p.low) else -np.inf for p in preds]], np.float32)
    high = np.array([[float32_at_most(p.high) if math.isfinite(p.high) else np.inf for p in preds]], np.float32)
    points = np.array([[*rules.points, *[0.0] * len(rules.filters)]], np.float32)
    bits = np.array([[*(1 << i for i in range(R)), *[0] * len(rules.filters)]], np.int32)
    when_hit = np.array([[0.0] * R + [1.0 if w else 0.0 for w in rules.filter_excludes_when]], np.float32)
    when_miss = np.array([[0.0] * R + [0.0 if w else 1.0 for w in rules.filter_excludes_when]], np.float32)
    const("rule_cols", np.array([all_features.index(f) for f in used], np.int64))
    const("rule_a", A)
    const("rule_low", low)
    const("rule_high", high)
    const("rule_pts", points)
    const("rule_bits", bits)
    const("when_hit", when_hit)
    const("when_miss", when_miss)
    const("one_f", np.array(1, np.float32))
    node = helper.make_node
    return [
        node("Gather", [INPUT_NAME, "rule_cols"], ["xr"], axis=1),
        node("IsNaN", ["xr"], ["xr_nan"]),
        node("Where", ["xr_nan", "zero_f", "xr"], ["xr0"]),
        node("MatMul", ["xr0", "rule_a"], ["rule_value"]),
        node("Cast", ["xr_nan"], ["xr_nan_f"], to=TensorProto.FLOAT),
        node("MatMul", ["xr_nan_f", "rule_a"], ["rule_nan"]),
        node("Greater", ["rule_nan", "zero_f"], ["rule_has_nan"]),
        node("Not", ["rule_has_nan"], ["rule_defined"]),
        node("GreaterOrEqual", ["rule_value", "rule_low"], ["rule_ge"]),
        node("LessOrEqual", ["rule_value", "rule_high"], ["rule_le"]),
        node("And", ["rule_ge", "rule_le"], ["rule_in"]),
        node("And", ["rule_in", "rule_defined"], ["fired"]),
        node("Cast", ["fired"], ["fired_f"], to=TensorProto.FLOAT),
        node("Cast", ["fired"], ["fired_i"], to=TensorProto.INT32),
        node("Mul", ["fired_i", "rule_bits"], ["fired_bits"]),
        node("ReduceSum", ["fired_bits", "axes1"], ["rules_fired"], keepdims=1),
        node("Mul", ["fired_f", "rule_pts"], ["fired_pts"]),
        node("ReduceSum", ["fired_pts", "axes1"], ["points0"], keepdims=1),
        node("Sub", ["one_f", "fired_f"], ["missed_f"]),
        node("Mul", ["fired_f", "when_hit"], ["excl_hit"]),
        node("Mul", ["missed_f", "when_miss"], ["excl_miss"]),
        node("Add", ["excl_hit", "excl_miss"], ["excl_any"]),
        node("ReduceSum", ["excl_any", "axes1"], ["excl_sum"], keepdims=1),
        node("Greater", ["excl_sum", "zero_f"], ["excluded"]),
        node("Cast", ["excluded"], ["rule_excluded"], to=TensorProto.INT32),
        node("Where", ["excluded", "zero_f", "points0"], ["rule_points"]),
    ]


@dataclass
class LeadTraining:
    """A fitted lead model with its validation: what ``train`` exports and ``report`` shows."""

    model: LeadModel
    rules: RuleSet | None
    all_features: list[str]
    metrics: dict[str, float]
    validation: dict[str, object]
    holdout_contact_ids: pa.Array
    holdout_proba: np.ndarray
    holdout_labels: np.ndarray
    vocabulary: dict[str, object]

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The served model: graph, metadata (metrics, validation report, rules) attached."""
        params: dict[str, object] = {
            "validation": self.validation,
            "conversion_kind": CONVERSION_KIND,
            "holdout_share": HOLDOUT_SHARE,
            "n_model_features": len(self.model.features),
            "vocabulary": self.vocabulary,
        }
        if self.rules is not None:
            params["rules"] = {"names": list(self.rules.names), "points": list(self.rules.points), "config": self.rules.config}
        meta = self.model.metadata(
            version=version, trained_at=trained_at, data_as_of=data_as_of, all_features=self.all_features, rules=self.rules,
            metrics=self.metrics, params=params,
        )  # fmt: skip
        return self.model.to_onnx(meta, self.rules)


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def _reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Deciles of the predicted probability: mean predicted, observed rate, count."""
    order = np.argsort(p, kind="stable")
    rows = []
    for part in np.array_split(order, n_bins):
        if part.size:
            rows.append({"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "count": int(part.size)})
    return rows


def validation_report(
    y: np.ndarray, p: np.ndarray, score: np.ndarray, tier: np.ndarray
) -> tuple[dict[str, float], dict[str, object]]:
    """Holdout metrics (flat, for ``ModelInfo.metrics``) and the tables behind the report's charts."""
    metrics = {
        "auc": roc_auc(y, p),
        "lift10": lift_at(y, p, 0.10),
        "ece": expected_calibration_error(y, p, 10),
        "brier": float(np.mean((p - y) ** 2)),
        "holdout_leads": float(len(y)),
        "holdout_conversions": float(y.sum()),
        "holdout_conversion_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
    }
    tiers = []
    for code, name in enumerate(TIERS):
        mask = tier == code
        rate = float(y[mask].mean()) if mask.any() else float("nan")
        metrics[f"tier_share:{name}"] = float(mask.mean())
        metrics[f"tier_rate:{name}"] = rate
        tiers.append({"tier": name, "count": int(mask.sum()), "conversions": int(y[mask].sum()), "rate": rate})
    low, high = metrics["tier_rate:low"], metrics["tier_rate:high"]
    metrics["tier_ratio:high_low"] = high / low if low > 0 else float("inf")
    order = np.argsort(-p, kind="stable")
    gains = np.cumsum(y[order]) / max(1, y.sum())
    fractions = np.linspace(0.05, 1.0, 20)
    histogram = {
        name: np.bincount(np.clip((score[tier == c] - 1) // 10, 0, 9), minlength=10).tolist() for c, name in enumerate(TIERS)
    }
    report = {
        "reliability": _reliability(y, p),
        "tiers": tiers,
        "score_histogram": {"bins": [f"{10 * i + 1}-{min(10 * i + 10, 99)}" for i in range(10)], **histogram},
        "gains": [{"fraction": float(f), "captured": float(gains[max(0, round(f * len(y)) - 1)])} for f in fractions],
    }
    return metrics, report


def fit_lead(
    tables: Mapping[str, pa.Table],
    as_of: datetime,
    rules: RuleSet | None = None,
    *,
    tier_thresholds: Sequence[int] = DEFAULT_TIER_THRESHOLDS,
    seed: int = 0,
    compare_hgb: bool = True,
) -> LeadTraining:
    """Fit the lead scorecard on a base: features as of ``as_of - 21 days``, conversions after.

    Raises
    ------
    ValueError
        No contacts or interactions, or fewer than ``MIN_LEADS`` leads or ``MIN_CONVERSIONS``
        conversions (or non-conversions) to fit and validate a model.
    """
    if tables.get("interactions") is None or tables["interactions"].num_rows == 0:
        raise ValueError("lead needs interactions.parquet (contact_id, ts, kind) with conversions of kind 'conversion'")
    cutoff = as_of - timedelta(days=HORIZON_DAYS)
    vocab = base_vocabulary(tables)
    has_durations = tables.get("web_events") is not None and "duration_s" in tables["web_events"].column_names
    names = lead_feature_names(vocab, has_durations)
    before = FeatureFrame(tables, _us(cutoff))
    after = FeatureFrame(tables, _us(as_of), contact_ids=before.contact_ids)
    ever = f"lead_int_count:{CONVERSION_KIND}:36500"
    converted_before = before.matrix([ever])[:, 0] > 0
    label = (after.matrix([ever])[:, 0] > 0) & ~converted_before
    leads = ~converted_before
    n_leads, n_conv = int(leads.sum()), int(label.sum())
    window = f"({cutoff.date()}, {as_of.date()}]"
    if n_leads < MIN_LEADS:
        raise ValueError(
            f"lead: only {n_leads} leads (contacts not converted before {cutoff.date()}); need at least {MIN_LEADS} to fit and validate"
        )
    if n_conv < MIN_CONVERSIONS or n_leads - n_conv < MIN_CONVERSIONS:
        raise ValueError(
            f"lead: {n_conv} conversions (interactions of kind {CONVERSION_KIND!r}) among {n_leads} leads in {window}; "
            f"need at least {MIN_CONVERSIONS} conversions and as many non-conversions: with fewer the holdout AUC and "
            "tier rates are noise"
        )
    extra = [] if rules is None else [f for f in rules.features if f not in names]
    all_features = names + extra
    X = before.matrix(names)[leads]
    y = label[leads]
    test = holdout_mask(len(y), seed)
    t0 = time.perf_counter()
    model = LeadModel(names, tier_thresholds=tier_thresholds).fit(X[~test], y[~test])
    log.info("lead: scorecard fitted in %.1fs", time.perf_counter() - t0)
    p = model.predict_proba(X[test])
    score = model.score_of(model.logit(X[test]))
    metrics, report = validation_report(y[test], p, score, model.tier_of(score))
    metrics["auc:scorecard"] = metrics["auc"]
    metrics.update(
        {"train_leads": float((~test).sum()), "train_conversions": float(y[~test].sum()), "n_features": float(len(names))}
    )
    comparison = {"served": "scorecard-logistic", "why": "exact additive reasons in ONNX (logit = intercept + sum of factors)"}
    if compare_hgb:
        t0 = time.perf_counter()
        hgb = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, early_stopping=False, random_state=seed)
        # one OpenMP thread: the comparison is small, and on a busy machine sklearn's
        # threads spin against each other (34 s instead of 3 s on 2 loaded cores, measured)
        with threadpool_limits(limits=1, user_api="openmp"):
            hgb.fit(X[~test], y[~test])
        metrics["auc:hgb"] = roc_auc(y[test], hgb.predict_proba(X[test])[:, 1])
        comparison["auc:hgb"] = metrics["auc:hgb"]
        log.info("lead: HGB fitted in %.1fs", time.perf_counter() - t0)
        if metrics["auc:hgb"] > metrics["auc"] + 0.01:
            log.warning(
                "lead: HGB holdout AUC %.3f beats the scorecard's %.3f; the scorecard is served for its exact reasons",
                metrics["auc:hgb"],
                metrics["auc"],
            )
    comparison["auc:scorecard"] = metrics["auc"]
    report["model_comparison"] = comparison
    if rules is not None and rules.names:
        pts, _, _ = rules.evaluate(before.matrix(all_features)[leads][test], all_features)
        if np.ptp(pts) > 0:
            metrics["auc:rules"] = roc_auc(y[test], pts)
    ids = before.contact_ids.filter(pa.array(leads)).filter(pa.array(test))
    return LeadTraining(model, rules, all_features, metrics, report, ids, p, y[test], rule_vocabulary(tables))


def rule_vocabulary(tables: Mapping[str, pa.Table]) -> dict[str, object]:
    """What rules may name, checked at load: attributes with their kinds, every interaction
    kind and page of the base. Stored in the model so rules can be replaced without the base."""

    def values(table: str, column: str) -> list[str]:
        if tables.get(table) is None or column not in tables[table].column_names:
            return []
        return sorted(v for v in pc.unique(tables[table][column].combine_chunks().drop_null()).to_pylist() if isinstance(v, str))

    return {
        "attributes": base_vocabulary(tables).attributes,
        "kinds": values("interactions", "kind"),
        "pages": values("web_events", "page"),
    }


def scorecard_from_onnx(model: onnx.ModelProto, meta: ModelMetadata) -> LeadModel:
    """The :class:`LeadModel` inside an exported lead graph (its initializers and metadata)."""
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    n = int(meta.params["n_model_features"])
    scorecard = LeadModel(
        meta.features[:n], c_penalty=float(meta.params["c_penalty"]), tier_thresholds=tuple(meta.params["tier_thresholds"])
    )
    if list(meta.params["factors"]) != scorecard.factors:
        raise ValueError(f"lead version {meta.version}: factors in the metadata do not match its features")
    scorecard.edges_ = arrays["edges"][0]
    scorecard.n_bins_ = scorecard.edges_.shape[1] + 2
    scorecard.weights_ = arrays["weights"].reshape(n, scorecard.n_bins_)
    scorecard.intercept_ = np.float32(arrays["intercept"].item())
    scorecard.factor_matrix_ = arrays["factor_matrix"]
    scorecard.score_thresholds_ = arrays["score_t"][0]
    return scorecard
