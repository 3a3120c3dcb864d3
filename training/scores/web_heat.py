"""The ``web_heat`` score (GetQuanty's method): density, value, category, heat and its quartile.

Per contact, over the last 30 days of web visits (features from ``kernels.web_features``,
page points and categories from the web config the model carries):

- ``density`` = ln(1 + page views) + ln(1 + sessions) + ln(1 + minutes on site): how
  intensely the contact visits;
- ``value`` = the sum of the pages' points (time-decayed with the config's half-life): what
  the contact looks at;
- ``heat`` = ``value + density_weight * density``; a visit to an eliminating page (careers …)
  zeroes it (config ``eliminating: "zero"``) or caps it at ``eliminating_cap`` (``"cap"``);
- ``category``: ``eliminated`` (an eliminating page), else ``hot`` (a hot page), else
  ``warm`` (a warm page), else ``cold`` (other visits), else ``inactive`` (no visit);
- ``quartile`` 1–4 of the heat among the training base's contacts with a heat > 0 (the
  thresholds are learned once, at training, and stored in the graph); null for heat 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, TrainingRun, as_us

__all__ = ["HEAT_CATEGORIES", "WEB_HEAT_FEATURES", "WebHeatModel", "fit", "fit_web_heat"]

WEB_HEAT_FEATURES: tuple[str, ...] = (
    "web_views_30d",
    "web_sessions_30d",
    "web_time_30d",
    "web_points_30d",
    "web_hot_views_30d",
    "web_warm_views_30d",
    "web_eliminating_30d",
)
HEAT_CATEGORIES: tuple[str, ...] = ("inactive", "cold", "warm", "hot", "eliminated")
SCORES_OUTPUT = "web_heat"  # float32 [N, 3]: heat, density, value
CLASS_OUTPUT = "web_heat_class"  # int32 [N, 2]: category code, quartile (0: none)


class WebHeatModel:
    """Web heat with quartile thresholds learned on a training base (see the module docstring).

    Parameters
    ----------
    web_config
        The checked web config (``kernels.web_config.parse_web_config``): its density weight
        and eliminating rule shape the graph; it travels in the metadata's feature params.

    Attributes
    ----------
    thresholds_ : ndarray of shape (3,), float32
        The 25/50/75 % quantiles of the heat among training contacts with a heat > 0.
    category_shares_ : dict[str, float]
    n_contacts_, n_heated_ : int
    """

    model_type = "web-heat-rules"
    score = "web_heat"
    features = WEB_HEAT_FEATURES

    def __init__(self, web_config: Mapping[str, Any]) -> None:
        self.web_config = dict(web_config)
        self.report: dict[str, Any] = {}  # small arrays for the validation report (see conversion_by_quartile)

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> WebHeatModel:
        """Learn the quartile thresholds from the rows of ``X`` (one per contact of the base)."""
        heat, _, _, category = _heat(feature_matrix(X, feature_names, WEB_HEAT_FEATURES), self.web_config)
        warm = heat[heat > 0]
        if warm.size < 4:
            raise ValueError(
                f"web_heat: only {warm.size} of {len(heat)} contacts have a heat > 0; need web visits to set quartiles"
            )
        self.thresholds_ = np.quantile(warm.astype(np.float64), [0.25, 0.5, 0.75]).astype(np.float32)
        self.n_contacts_ = len(heat)
        self.n_heated_ = int(warm.size)
        counts = np.bincount(category, minlength=len(HEAT_CATEGORIES))
        self.category_shares_ = {c: float(k / len(heat)) for c, k in zip(HEAT_CATEGORIES, counts, strict=True)}
        return self

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The NumPy reference of the graph: float32 [N, 3] (heat, density, value), int32 [N, 2]
        (category code, quartile)."""
        self._check_fitted()
        heat, density, value, category = _heat(feature_matrix(X, feature_names, WEB_HEAT_FEATURES), self.web_config)
        quartile = np.where(heat > 0, 1 + (heat[:, None] > self.thresholds_[None, :]).sum(axis=1), 0).astype(np.int32)
        return np.stack([heat, density, value], axis=1), np.stack([category, quartile], axis=1).astype(np.int32)

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; the web config is its feature params."""
        self._check_fitted()
        cfg = self.web_config
        rule = "zeroes the heat" if cfg["eliminating"] == "zero" else f"caps the heat at {cfg['eliminating_cap']:g}"
        outputs = (
            OutputSpec(
                "heat", "float32", f"value + {cfg['density_weight']:g} x density; an eliminating visit {rule}", SCORES_OUTPUT, 0
            ),
            OutputSpec(
                "density", "float32", "ln(1+views) + ln(1+sessions) + ln(1+minutes on site), last 30 days", SCORES_OUTPUT, 1
            ),
            OutputSpec("value", "float32", "sum of page points, last 30 days, time-decayed", SCORES_OUTPUT, 2),
            OutputSpec(
                "category",
                "category",
                "eliminated > hot > warm > cold > inactive (no visit in 30 days)",
                CLASS_OUTPUT,
                0,
                categories=HEAT_CATEGORIES,
            ),
            OutputSpec(
                "quartile",
                "int32",
                "heat quartile 1-4 over the training base's heated contacts; null for heat 0",
                CLASS_OUTPUT,
                1,
                null_value=0,
            ),
        )
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=WEB_HEAT_FEATURES,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="Web heat (GetQuanty's method): visit density, page value and category over the last 30 days, heat quartile",
            metrics={
                "n_contacts": float(self.n_contacts_),
                "heated_share": self.n_heated_ / self.n_contacts_,
                **{f"share:{c}": s for c, s in self.category_shares_.items()},
            },
            params={
                "feature_params": {"web": cfg},
                "quartile_thresholds": [float(t) for t in self.thresholds_],
                "report": self.report,
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph of :meth:`predict`, thresholds as initializers, metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        cfg = self.web_config
        f32, i32 = np.float32, np.int32
        consts = {
            "one_f": np.array(1, f32),
            "zero_f": np.array(0, f32),
            "sixty": np.array(60, f32),
            "weight": np.array(cfg["density_weight"], f32),
            "cap": np.array(cfg["eliminating_cap"] if cfg["eliminating"] == "cap" else 0.0, f32),
            "thresholds": self.thresholds_.reshape(1, 3),
            "axis1": np.array([1], np.int64),
            "one_i": np.array(1, i32),
            "zero_i": np.array(0, i32),
            **{f"code_{c}": np.array(i, i32) for i, c in enumerate(HEAT_CATEGORIES)},
        }
        node = helper.make_node
        nodes = []
        for j, name in enumerate(WEB_HEAT_FEATURES):
            consts[f"col_{name}"] = np.array([j], np.int64)
            nodes.append(node("Gather", [INPUT_NAME, f"col_{name}"], [name], axis=1))  # [N, 1]
        nodes += [
            node("Add", ["web_views_30d", "one_f"], ["views1"]),
            node("Log", ["views1"], ["ln_views"]),
            node("Add", ["web_sessions_30d", "one_f"], ["sessions1"]),
            node("Log", ["sessions1"], ["ln_sessions"]),
            node("Div", ["web_time_30d", "sixty"], ["minutes"]),
            node("Add", ["minutes", "one_f"], ["minutes1"]),
            node("Log", ["minutes1"], ["ln_minutes"]),
            node("Add", ["ln_views", "ln_sessions"], ["d2"]),
            node("Add", ["d2", "ln_minutes"], ["density"]),
            node("Mul", ["density", "weight"], ["weighted"]),
            node("Add", ["web_points_30d", "weighted"], ["raw_heat"]),
            node("Greater", ["web_eliminating_30d", "zero_f"], ["eliminated"]),
            node("Min", ["raw_heat", "cap"], ["capped"]),
            node("Where", ["eliminated", "capped", "raw_heat"], ["heat"]),
            node("Concat", ["heat", "density", "web_points_30d"], [SCORES_OUTPUT], axis=1),
            # category: the highest rule that holds, applied from the lowest up
            node("Greater", ["web_views_30d", "zero_f"], ["visited"]),
            node("Greater", ["web_warm_views_30d", "zero_f"], ["warm"]),
            node("Greater", ["web_hot_views_30d", "zero_f"], ["hot"]),
            node("Where", ["visited", "code_cold", "code_inactive"], ["cat1"]),
            node("Where", ["warm", "code_warm", "cat1"], ["cat2"]),
            node("Where", ["hot", "code_hot", "cat2"], ["cat3"]),
            node("Where", ["eliminated", "code_eliminated", "cat3"], ["category"]),
            node("Less", ["thresholds", "heat"], ["above"]),  # [N, 3]
            node("Cast", ["above"], ["above_i"], to=TensorProto.INT32),
            node("ReduceSum", ["above_i", "axis1"], ["n_above"], keepdims=1),
            node("Add", ["n_above", "one_i"], ["q"]),
            node("Greater", ["heat", "zero_f"], ["heated"]),
            node("Where", ["heated", "q", "zero_i"], ["quartile"]),
            node("Concat", ["category", "quartile"], [CLASS_OUTPUT], axis=1),
        ]
        graph = helper.make_graph(
            nodes,
            "web_heat",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(WEB_HEAT_FEATURES)])],
            [
                helper.make_tensor_value_info(SCORES_OUTPUT, TensorProto.FLOAT, [None, 3]),
                helper.make_tensor_value_info(CLASS_OUTPUT, TensorProto.INT32, [None, 2]),
            ],
            initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise ValueError("WebHeatModel is not fitted: call fit() first")


def _heat(block: np.ndarray, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """heat, density, value (float32, in the graph's order of operations) and category code."""
    views, sessions, time_s, points, hot, warm, eliminating = (block[:, j] for j in range(block.shape[1]))
    one = np.float32(1)
    density = np.log(views + one) + np.log(sessions + one) + np.log(time_s / np.float32(60) + one)
    raw = points + density * np.float32(cfg["density_weight"])
    cap = np.float32(cfg["eliminating_cap"] if cfg["eliminating"] == "cap" else 0.0)
    eliminated = eliminating > 0
    heat = np.where(eliminated, np.minimum(raw, cap), raw).astype(np.float32)
    category = np.where(views > 0, 1, 0)
    category = np.where(warm > 0, 2, category)
    category = np.where(hot > 0, 3, category)
    category = np.where(eliminated, 4, category).astype(np.int32)
    return heat, density.astype(np.float32), points, category


def fit_web_heat(X: np.ndarray, feature_names: Sequence[str], web_config: Mapping[str, Any]) -> WebHeatModel:
    """Fit a :class:`WebHeatModel` on the feature matrix ``X`` whose columns are ``feature_names``."""
    return WebHeatModel(web_config).fit(X, feature_names)


def conversion_by_quartile(tables: Mapping[str, Any], as_of: datetime, web_config: Mapping[str, Any]) -> list[float]:
    """The heat's backtest: quartiles (0: no heat, 1-4) as of 30 days before ``as_of``, each
    with the share of its contacts who ordered in the 30 days that followed."""
    cutoff = as_of - timedelta(days=30)  # the heat's window (kernels.web_features)
    before = FeatureFrame(tables, as_us(cutoff))
    X = before.matrix(WEB_HEAT_FEATURES, {"web": web_config})
    quartile = fit_web_heat(X, WEB_HEAT_FEATURES, web_config).predict(X, WEB_HEAT_FEATURES)[1][:, 1]
    orders = {"orders": tables["orders"]}
    count = [FeatureFrame(orders, as_us(at), contact_ids=before.contact_ids).matrix(["frequency"])[:, 0] for at in (cutoff, as_of)]
    ordered = np.nan_to_num(count[1]) > np.nan_to_num(count[0])
    return [float(ordered[quartile == q].mean()) if (quartile == q).any() else 0.0 for q in range(5)]


def fit(run: TrainingRun, version: str) -> Fitted:
    """``web_heat`` for ``scorecast train``, with the run's page configuration."""
    if "web_events" not in run.tables:
        raise ValueError("web_heat needs web_events, which this base does not have")
    X = FeatureFrame(run.tables, as_us(run.as_of)).matrix(WEB_HEAT_FEATURES, {"web": run.web_config})
    model = fit_web_heat(X, WEB_HEAT_FEATURES, run.web_config)
    if "orders" in run.tables:
        model.report["conversion_by_quartile"] = conversion_by_quartile(run.tables, run.as_of, run.web_config)
    return Fitted(model.to_onnx(**run.times(version, run.as_of)), run.tables, run.as_of)
