"""The ``clv`` and ``churn`` scores: repeat-purchase models chosen by holdout fit, as ONNX.

Training (one pipeline: the repeat summary comes from ``FeatureFrame``, as at serving time):

1. Calibration / holdout split of the base's own history: the last third of the span from
   the first order to ``as_of``, at most :data:`MAX_HOLDOUT_DAYS`. BG/NBD, MBG/NBD and
   Pareto/NBD are fitted on the summary as of the split; each predicts every customer's
   repeat purchase days in the holdout; the one with the lowest per-customer MAE is chosen
   (a naive baseline, past repeat rate x/T times the holdout length, is reported beside).
2. The value ranking (``clv.value``) is chosen on a second split, at half the history (at
   most :data:`MAX_HOLDOUT_DAYS` before ``as_of``): a Poisson regression of the spend after
   that cut on the chosen model's quantities, BTYD value or the naive value, whichever ranks
   the spend after the cut best (``clv.calibrated_value``).
3. The chosen model and the Gamma-Gamma spend model are refitted on the summary as of
   ``as_of`` and served as ``clv``. ``churn`` always serves MBG/NBD: its P(alive) moves for
   one-time buyers too (BG/NBD keeps it at 1 until a repeat purchase). Its decisive date is
   where, with no new order, P(any order in the next 365 days) falls below the churn
   threshold; the threshold (the request default) is the largest whose dates keep 90 % of the
   dated customers buying nothing after their date over the next min(history, 365) days, as
   projected by the served model with its error rates measured on the second split
   (``decisive:*`` metrics; see ``_lapse_threshold``).

Time unit: days. Fitting uses at most :data:`MAX_FIT_CUSTOMERS` customers (a seeded sample):
the likelihoods have 3-4 parameters and the estimates stop moving long before that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import onnx
import onnx.utils
import pyarrow as pa
import pyarrow.compute as pc
from onnx import TensorProto, helper, numpy_helper

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model, merged_opsets

from ..clv.bg_nbd import BetaGeoModel
from ..clv.calibrated_value import ValueRule, choose_value_rule, glm_features, naive_value
from ..clv.gamma_gamma import GammaGammaModel
from ..clv.graph import LAPSE_WINDOW_DAYS, bgnbd_graph, pareto_nbd_graph
from ..clv.mbg_nbd import ModifiedBetaGeoModel
from ..clv.pareto_nbd import ParetoNBDModel
from ..clv.validation import holdout_metrics
from ..onnx_export import attach_metadata
from ..run import Fitted, Holdout, TrainingRun, as_us

__all__ = ["CustomerValueModels", "decisive_check", "fit_churn", "fit_clv", "fit_customer_value"]

REPEAT_FEATURES = ("repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary")
CLV_FEATURES = (*REPEAT_FEATURES, "request:horizon_days", "request:churn_threshold", "total_amount")
CHURN_FEATURES = (*REPEAT_FEATURES, "request:churn_threshold")
DEFAULT_HORIZON_DAYS = 365
DEFAULT_CHURN_THRESHOLD = 0.5  # clv's P(alive) threshold input (unused by its outputs)
# churn's threshold: the decisive date is where P(any order in the next LAPSE_WINDOW_DAYS) falls
# below it; training picks the largest whose projected share of dated customers buying nothing
# after their date reaches DECISIVE_PRECISION (see _lapse_threshold)
LAPSE_THRESHOLDS = tuple(round(0.01 * k, 2) for k in range(1, 51))
DECISIVE_PRECISION = 0.90
MIN_DATED = 30  # fewer dated customers of a group on the inner holdout: its return factor is noise
CHURN_RISK_DAYS = 90
RISK_BANDS = ("low", "medium", "high")  # P(no order in 90 days) < 1/3, between, > 2/3
MAX_HOLDOUT_DAYS = 365
MAX_FIT_CUSTOMERS = 30_000
# Thresholds below which `train` refuses, with the reason: fewer customers and the holdout
# MAE that picks the model is noise; fewer repeat buyers and Gamma-Gamma (fitted on them
# only) and the purchase-rate heterogeneity are not identified; a shorter history leaves a
# holdout too short to see repeat purchases of typical retail rates (a few per year).
MIN_CUSTOMERS = 500
MIN_REPEAT_BUYERS = 100
MIN_HISTORY_DAYS = 180
CANDIDATES = {"BG/NBD": BetaGeoModel, "MBG/NBD": ModifiedBetaGeoModel, "Pareto/NBD": ParetoNBDModel}


@dataclass
class CustomerValueModels:
    """The fitted models and the holdout comparison that chose among them."""

    chosen: str
    purchase_model: Any
    churn_model: ModifiedBetaGeoModel
    spend_model: GammaGammaModel
    value_rule: ValueRule
    churn_threshold: float
    metrics: dict[str, float] = field(default_factory=dict)
    holdout_days: int = 0
    report: dict[str, Any] = field(default_factory=dict)  # small arrays for the validation report
    # the calibration split's customers (as of the cut, as contact ids) and their repeat purchase
    # days in the holdout: what the promotion gate scores a retrain and the serving version on
    cutoff: datetime | None = None
    holdout_ids: pa.Array | None = None
    holdout_actual: np.ndarray | None = None

    def holdout(self, tables: dict[str, pa.Table], score: str) -> Holdout | None:
        """The gate's holdout for ``score``: clv's expected orders over the holdout (MAE), churn's
        P(no order in 90 days) against no repeat order in it (AUC)."""
        if self.cutoff is None:
            return None
        if score == "clv":
            return Holdout(tables, as_us(self.cutoff), self.holdout_ids, {"expected_orders": self.holdout_actual},
                           metric="mae", request={"horizon_days": float(self.holdout_days)})  # fmt: skip
        return Holdout(tables, as_us(self.cutoff), self.holdout_ids, {"p_no_order_90d": self.holdout_actual == 0})

    def clv_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The served ``clv`` model: value, expected orders, P(alive) and the CRM-style extras."""
        gg = self.spend_model.params_
        if self.chosen == "Pareto/NBD":
            inner = pareto_nbd_graph(self.purchase_model.params_, gg)
        else:
            inner = bgnbd_graph(self.purchase_model.params_, model=self.chosen, gg=gg)
        model = _value_nodes(_wrap(inner, width=len(CLV_FEATURES), pass_through={"historic_value": 6}), self.value_rule, gg)
        model = _keep_outputs(model, [o.name for o in model.graph.output if o.name != "decisive_days_left"])  # churn's, not ours
        rule = self.value_rule.rule
        outputs = (
            OutputSpec("value", "float32", f"expected spend over the horizon (default {DEFAULT_HORIZON_DAYS} days), {rule} rule", "clv_value", 0),
            OutputSpec("expected_orders", "float32", "expected repeat purchase days over the horizon", "expected_orders", 0),
            OutputSpec("p_alive", "float32", "probability the customer is still active now", "p_alive", 0),
            OutputSpec("historic_value", "float32", "spend so far (sum of order amounts)", "historic_value", 0),
            OutputSpec("avg_days_between_orders", "float32", "mean days between purchase days (null below 2)", "avg_days_between_orders", 0),
            OutputSpec("expected_next_order", "timestamp", "as_of + 1 / expected purchase rate", "expected_days_to_next_order", 0),
        )
        meta = ModelMetadata(
            score="clv",
            version=version,
            model_type=self.chosen,
            features=CLV_FEATURES,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="customer lifetime value: expected spend over a horizon from a repeat-purchase model and Gamma-Gamma spend",
            horizon_days=DEFAULT_HORIZON_DAYS,
            metrics=self.metrics,
            params={
                "purchase_model": self.chosen,
                "purchase_params": self.purchase_model.params_,
                "spend_params": gg,
                "time_unit": "day",
                "request_defaults": {"churn_threshold": DEFAULT_CHURN_THRESHOLD},
                "holdout_days": self.holdout_days,
                "value_rule": {"rule": rule, "intercept": self.value_rule.intercept, "coef": list(self.value_rule.coef),
                               "window_days": self.value_rule.window_days},
                "report": {k: self.report[k] for k in ("by_frequency", "weekly") if k in self.report},
            },
        )
        return attach_metadata(model, meta)

    def churn_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The served ``churn`` model (MBG/NBD): decisive date, days left, P(alive), 90-day risk."""
        inner = bgnbd_graph(self.churn_model.params_, model="MBG/NBD", gg=self.spend_model.params_, lapse_window=LAPSE_WINDOW_DAYS)
        model = _wrap(inner, width=len(CHURN_FEATURES), horizon_constant=CHURN_RISK_DAYS, risk_band=True)
        model = _keep_outputs(model, ["decisive_days_left", "p_alive", "p_no_order", "risk_band"])
        outputs = (
            OutputSpec("decisive_date", "timestamp", f"date after which, with no new order, P(any order in the next {LAPSE_WINDOW_DAYS:.0f} days) < threshold", "decisive_days_left", 0),
            OutputSpec("days_left", "float32", "days from as_of to the decisive date (negative: already past)", "decisive_days_left", 0),
            OutputSpec("p_alive", "float32", "probability the customer is still active now", "p_alive", 0),
            OutputSpec("p_no_order_90d", "float32", "probability of no order in the next 90 days", "p_no_order", 0),
            OutputSpec("risk", "category", "churn risk from p_no_order_90d: low < 1/3, high > 2/3", "risk_band", 0, null_value=-1, categories=RISK_BANDS),
        )
        meta = ModelMetadata(
            score="churn",
            version=version,
            model_type="MBG/NBD",
            features=CHURN_FEATURES,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"churn decisive moment: when P(any order in the next {LAPSE_WINDOW_DAYS:.0f} days) falls below the threshold without a new order",
            metrics={k: v for k, v in self.metrics.items() if k.startswith(("MBG/NBD", "naive", "n_", "decisive:", "holdout_days"))},
            params={
                "params": self.churn_model.params_,
                "time_unit": "day",
                "request_defaults": {"churn_threshold": self.churn_threshold},
                "lapse_window_days": LAPSE_WINDOW_DAYS,
                "risk_days": CHURN_RISK_DAYS,
                "report": {k: self.report[k] for k in ("p_alive_histogram",) if k in self.report},
            },
        )
        return attach_metadata(model, meta)


def _wrap(
    inner: onnx.ModelProto,
    width: int,
    pass_through: dict[str, int] | None = None,
    horizon_constant: float | None = None,
    risk_band: bool = False,
) -> onnx.ModelProto:
    """Feed ``inner`` (6 columns: x, t_x, T, zbar, horizon, threshold) from our feature row.

    The row holds the four repeat features, then request options, then pass-through
    features; ``horizon_constant`` replaces the horizon column (churn's 90-day risk).
    """
    graph = inner.graph
    feed, nodes, inits = [], [], []  # feed: nodes before the inner graph; nodes: after it

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    cols = lambda a, b, name: helper.make_node(  # noqa: E731
        "Slice", [INPUT_NAME, const(f"w_{name}_s", np.array([a], np.int64)), const(f"w_{name}_e", np.array([b], np.int64)), const(f"w_{name}_a", np.array([1], np.int64))], [name]
    )
    if horizon_constant is None:  # CLV_FEATURES: 0..5 are the inner graph's columns
        feed.append(cols(0, 6, "w_inner"))
    else:  # CHURN_FEATURES: x, t_x, T, zbar, threshold -> insert the constant horizon
        feed.append(cols(0, 4, "w_head"))
        feed.append(cols(4, 5, "w_threshold"))
        feed.append(helper.make_node("Mul", ["w_threshold", const("w_zero", np.array([0.0], np.float32))], ["w_zeros"]))
        feed.append(helper.make_node("Add", ["w_zeros", const("w_horizon", np.array([horizon_constant], np.float32))], ["w_h"]))
        feed.append(helper.make_node("Concat", ["w_head", "w_h", "w_threshold"], ["w_inner"], axis=1))
    for node in graph.node:
        node.input[:] = ["w_inner" if i == INPUT_NAME else i for i in node.input]
    outputs = list(graph.output)
    # mean days between purchase days: t_x / x, NaN for fewer than two purchase days
    nodes += [
        cols(0, 1, "w_x"),
        cols(1, 2, "w_tx"),
        helper.make_node("Greater", ["w_x", const("w_0", np.array([0.0], np.float32))], ["w_has"]),
        helper.make_node("Div", ["w_tx", "w_x"], ["w_gap"]),
        helper.make_node("Where", ["w_has", "w_gap", const("w_nan", np.array([np.nan], np.float32))], ["avg_days_between_orders"]),
    ]
    outputs.append(helper.make_tensor_value_info("avg_days_between_orders", TensorProto.FLOAT, [None, 1]))
    for name, column in (pass_through or {}).items():
        nodes.append(cols(column, column + 1, name))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
    if risk_band:
        nodes += [
            helper.make_node("Greater", ["p_no_order", const("w_lo", np.array([1 / 3], np.float32))], ["w_gt_lo"]),
            helper.make_node("Greater", ["p_no_order", const("w_hi", np.array([2 / 3], np.float32))], ["w_gt_hi"]),
            helper.make_node("Cast", ["w_gt_lo"], ["w_band_lo"], to=TensorProto.INT32),
            helper.make_node("Cast", ["w_gt_hi"], ["w_band_hi"], to=TensorProto.INT32),
            helper.make_node("Add", ["w_band_lo", "w_band_hi"], ["w_band"]),
            helper.make_node("IsNaN", ["p_no_order"], ["w_undefined"]),
            helper.make_node("Where", ["w_undefined", const("w_minus1", np.array([-1], np.int32)), "w_band"], ["risk_band"]),
        ]
        outputs.append(helper.make_tensor_value_info("risk_band", TensorProto.INT32, [None, 1]))
    new_graph = helper.make_graph(
        feed + list(graph.node) + nodes,
        graph.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, width])],
        outputs,
        initializer=list(graph.initializer) + inits,
    )
    model = make_model(new_graph, merged_opsets(inner))
    onnx.checker.check_model(model)
    return model


def _value_nodes(model: onnx.ModelProto, rule: ValueRule, gg: dict[str, float]) -> onnx.ModelProto:
    """Add ``clv_value``, the chosen value rule (``clv.calibrated_value``), to the wrapped clv graph.

    Reads the feature row (x, T, zbar, horizon, total_amount) and the inner graph's
    ``p_alive``, ``expected_days_to_next_order`` and BTYD ``value``; NaN where P(alive) is
    (contacts without orders).
    """
    graph = model.graph
    nodes, inits = [], []

    def const(name: str, value: float) -> str:
        inits.append(numpy_helper.from_array(np.array([value], np.float32), name))
        return name

    def node(op: str, inputs: list[str], out: str) -> str:
        nodes.append(helper.make_node(op, inputs, [out]))
        return out

    for name, column in (("v_x", 0), ("v_T", 2), ("v_zbar", 3), ("v_h", 4), ("v_total", 6)):
        ends = [numpy_helper.from_array(np.array([c], np.int64), f"{name}_{k}") for k, c in (("s", column), ("e", column + 1), ("a", 1))]
        inits += ends
        node("Slice", [INPUT_NAME, *(e.name for e in ends)], name)
    nan_if_no_orders = node("Mul", ["p_alive", const("v_zero", 0.0)], "v_nan0")  # 0, NaN without orders
    if rule.rule == "BTYD":
        out = node("Identity", ["value"], "v_raw")
    elif rule.rule == "naive":
        x, T = "v_x", "v_T"
        rate = node("Where", [node("Greater", [T, const("v_0", 0.0)], "v_has_T"), node("Div", [x, T], "v_rate_raw"), const("v_00", 0.0)], "v_rate")
        mean = node("Div", ["v_total", node("Add", [x, const("v_1", 1.0)], "v_days")], "v_mean")
        out = node("Mul", [node("Mul", [rate, mean], "v_per_day"), "v_h"], "v_raw")
    else:
        p, q, gamma = (float(gg[k]) for k in ("p", "q", "gamma"))
        x = "v_x"
        # Gamma-Gamma mean spend p (gamma + x zbar) / (p x + q - 1) (repeat buyers only use it)
        # where zbar is unknown (NaN): the population mean p gamma / (q - 1), as the BTYD value
        zbar_nan = node("IsNaN", ["v_zbar"], "v_zbar_nan")
        zbar = node("Where", [zbar_nan, const("v_z0", 0.0), "v_zbar"], "v_zbar_safe")
        num = node("Mul", [node("Add", [node("Mul", [x, zbar], "v_xz"), const("v_gamma", gamma)], "v_gxz"), const("v_p", p)], "v_num")
        den_raw = node("Add", [node("Mul", [x, const("v_p2", p)], "v_px"), const("v_q1", q - 1.0)], "v_den_raw")
        den = node("Where", [zbar_nan, const("v_q1b", q - 1.0), den_raw], "v_den")
        b = rule.coef
        terms = [
            node("Mul", [node("Neg", [node("Log", ["expected_days_to_next_order"], "v_log_days")], "v_log_rate"), const("v_b0", b[0])], "v_t0"),
            node("Mul", [node("Log", [node("Div", [num, den], "v_gg")], "v_log_gg"), const("v_b1", b[1])], "v_t1"),
            node("Mul", [node("Log", [node("Max", ["p_alive", const("v_floor", 1e-30)], "v_p_floor")], "v_log_p"), const("v_b2", b[2])], "v_t2"),
        ]
        repeat = node("Add", [node("Add", [node("Add", terms[:2], "v_t01"), terms[2]], "v_t012"), const("v_b3", rule.intercept + b[3])], "v_lin_rep")
        lin = node("Where", [node("Greater", [x, const("v_x0", 0.0)], "v_is_rep"), repeat, const("v_b_one", rule.intercept)], "v_lin")
        out = node("Mul", [node("Exp", [lin], "v_per_window"), node("Mul", ["v_h", const("v_per_day", 1.0 / rule.window_days)], "v_h_share")], "v_raw")
    node("Add", [out, nan_if_no_orders], "clv_value")
    new_graph = helper.make_graph(
        list(graph.node) + nodes, graph.name, list(graph.input),
        [*graph.output, helper.make_tensor_value_info("clv_value", TensorProto.FLOAT, [None, 1])],
        initializer=list(graph.initializer) + inits,
    )  # fmt: skip
    out_model = make_model(new_graph, merged_opsets(model))
    onnx.checker.check_model(out_model)
    return out_model


def _keep_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """Drop every node the named outputs do not need: ONNX Runtime runs a whole graph each call,
    so churn would otherwise pay for clv's quadrature."""
    pruned = onnx.utils.Extractor(model).extract_model([INPUT_NAME], names)
    pruned.ir_version = model.ir_version
    del pruned.opset_import[:]
    pruned.opset_import.extend(model.opset_import)
    return pruned


def _summary(tables: dict[str, pa.Table], at: datetime) -> tuple[FeatureFrame, np.ndarray]:
    frame = FeatureFrame(tables, as_us(at))
    return frame, frame.matrix(REPEAT_FEATURES).astype(np.float64)


def _sample(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_FIT_CUSTOMERS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_FIT_CUSTOMERS, replace=False))


def fit_customer_value(tables: dict[str, pa.Table], as_of: datetime) -> CustomerValueModels:
    """Choose, fit and validate the clv and churn models on a base (see the module docstring)."""
    frame, full = _summary(tables, as_of)
    customers = np.isfinite(full[:, 2])
    n_customers, repeaters = int(customers.sum()), int((full[:, 0] >= 1).sum())
    if n_customers < MIN_CUSTOMERS:
        raise ValueError(f"clv/churn: only {n_customers} customers with orders up to {as_of.date()}, need at least {MIN_CUSTOMERS}")
    if repeaters < MIN_REPEAT_BUYERS:
        raise ValueError(f"clv/churn: only {repeaters} repeat buyers, need at least {MIN_REPEAT_BUYERS} to fit purchase rates and spend")
    history = float(np.nanmax(full[:, 2]))
    if history < MIN_HISTORY_DAYS:
        raise ValueError(f"clv/churn: the history spans {history:.0f} days, need at least {MIN_HISTORY_DAYS}")
    holdout_days = int(min(MAX_HOLDOUT_DAYS, history // 3))
    cutoff = as_of - timedelta(days=holdout_days)
    _, cal = _summary(tables, cutoff)  # same rows as `frame` (contacts fixed by the tables)
    cal_rows = np.flatnonzero(np.isfinite(cal[:, 2]))
    # one seeded sample fits the candidates and scores them on the holdout: the holdout MAE of
    # MAX_FIT_CUSTOMERS customers is precise to a few %, and Pareto/NBD's 2F1 is costly per row
    cal_rows = cal_rows[_sample(len(cal_rows))]
    x, t_x, T = cal[cal_rows, 0], cal[cal_rows, 1], cal[cal_rows, 2]
    actual = full[cal_rows, 0] - x  # repeat purchase days in (cutoff, as_of]
    fit_rows = np.arange(len(cal_rows))
    metrics: dict[str, float] = {"n_customers": float(n_customers), "n_repeat_buyers": float(repeaters), "holdout_days": float(holdout_days)}
    naive = np.where(T > 0, x / np.maximum(T, 1e-9), 0.0) * holdout_days
    metrics |= {f"naive:{k}": v for k, v in holdout_metrics(naive, actual).items()}
    calibrated = {}
    for name, cls in CANDIDATES.items():
        model = calibrated[name] = cls().fit(x[fit_rows], t_x[fit_rows], T[fit_rows])
        predicted = model.conditional_expected_purchases(holdout_days, x, t_x, T)
        metrics |= {f"{name}:{k}": v for k, v in holdout_metrics(predicted, actual).items()}
    chosen = min(CANDIDATES, key=lambda name: metrics[f"{name}:mae"])
    metrics["beats_naive_mae"] = float(metrics[f"{chosen}:mae"] < metrics["naive:mae"])
    report = _holdout_views(calibrated[chosen], naive, actual, x, t_x, T, holdout_days)
    ids = frame.contact_ids.take(pa.array(cal_rows))
    report["weekly"]["actual"] = _weekly_actual(tables["orders"], ids, cutoff, as_of)

    inner_days = int(min(MAX_HOLDOUT_DAYS, history // 2))
    # the second split's summary, once for both the value rule and the churn threshold
    inner = FeatureFrame(tables, as_us(as_of - timedelta(days=inner_days))).matrix([*REPEAT_FEATURES, "total_amount"])
    inner = inner.astype(np.float64)
    value_rule = _value_rule(inner, frame.matrix(["total_amount"]), inner_days, CANDIDATES[chosen])
    metrics |= value_rule.metrics

    rows = np.flatnonzero(customers)
    fit = rows[_sample(len(rows), seed=1)]
    purchase = CANDIDATES[chosen]().fit(full[fit, 0], full[fit, 1], full[fit, 2])
    churn = purchase if chosen == "MBG/NBD" else ModifiedBetaGeoModel().fit(full[fit, 0], full[fit, 1], full[fit, 2])
    # the dates are projected over as long a future as the past they were learned from
    churn_threshold, decisive = _lapse_threshold(inner, full, inner_days, churn, full[fit, :3], min(LAPSE_WINDOW_DAYS, history))
    metrics |= decisive
    spenders = rows[(full[rows, 0] >= 1) & (full[rows, 3] > 0)]
    spenders = spenders[_sample(len(spenders), seed=2)]
    spend = GammaGammaModel().fit(full[spenders, 0], full[spenders, 3])
    alive = churn.p_alive(full[fit, 0], full[fit, 1], full[fit, 2])
    report["p_alive_histogram"] = np.histogram(alive, bins=20, range=(0, 1))[0].tolist()
    return CustomerValueModels(
        chosen, purchase, churn, spend, value_rule, churn_threshold, metrics, holdout_days, report, cutoff, ids, actual
    )  # fmt: skip


def decisive_check(days_left: np.ndarray, bought: np.ndarray, last: np.ndarray, window_days: float) -> dict[str, float]:
    """The decisive date against the ``window_days`` after the as-of: of the customers dated
    before its end, the share who bought nothing after their date (precision); of those who
    bought nothing, the share dated in time (recall); the dated share and their median days
    from the as-of to the date (how early the dates fall). ``last``: the last purchase in the
    window, days after the as-of (-inf without one)."""
    dated = days_left <= window_days
    return {
        "precision": float(np.mean(last[dated] <= days_left[dated])) if dated.any() else float("nan"),
        "recall": float(np.mean(dated[~bought])) if (~bought).any() else float("nan"),
        "dated_share": float(dated.mean()),
        "median_days_to_date": float(np.median(np.maximum(days_left[dated], 0.0))) if dated.any() else float("nan"),
    }


def _lapse_threshold(before: np.ndarray, after: np.ndarray, window_days: int, served: ModifiedBetaGeoModel,
                     now: np.ndarray, horizon_days: float) -> tuple[float, dict[str, float]]:  # fmt: skip
    """The churn threshold: the largest of :data:`LAPSE_THRESHOLDS` whose projected precision over
    the ``horizon_days`` after ``as_of`` reaches :data:`DECISIVE_PRECISION`; none reaching it, the
    largest within one standard error of the highest projected. Returns it and its figures (the
    inner holdout's observed ones beside).

    Precision falls with the window a date is judged on (more time to come back), and the inner
    holdout (the ``window_days`` before ``as_of``, MBG/NBD fitted on what came before) is half
    the history: on CDNOW it overstated a 273-day window's precision by 0.08. So the threshold
    is chosen on a projection over the longer window instead: for each customer of ``now`` (the
    summary as of ``as_of``, x / t_x / T) dated before its end, the ``served`` model's probability
    of an order between the date and the end, times the factor by which the inner holdout shows
    the model under-predicting such orders at that threshold, per group (one-time buyers and
    repeat buyers: MBG/NBD errs several times more on the latter). ``before`` and ``after``: the
    summaries (x, t_x, T first) as of the inner cut and as of ``as_of``, on the same rows."""
    rows = np.flatnonzero(np.isfinite(before[:, 2]))
    rows = rows[_sample(len(rows), seed=4)]
    x, t_x, T = (before[rows, i] for i in range(3))
    model = ModifiedBetaGeoModel().fit(x, t_x, T)
    bought = after[rows, 0] > x
    last = np.where(bought, after[rows, 1] - after[rows, 2] + window_days, -np.inf)  # days after the cut
    checks, factors = {}, {}
    for th in LAPSE_THRESHOLDS:
        days_left = model.lapse_T(x, t_x, th, LAPSE_WINDOW_DAYS) - T
        checks[th] = decisive_check(days_left, bought, last, window_days)
        factors[th] = _return_factors(model, x, t_x, T, days_left, last, window_days)
    factors = _fill_factors(factors)
    px, pt_x, pT = now[:, 0], now[:, 1], now[:, 2]
    projected = {th: _projected_precision(served, px, pt_x, pT, served.lapse_T(px, pt_x, th, LAPSE_WINDOW_DAYS) - pT,
                                          factors[th], horizon_days)
                 for th in LAPSE_THRESHOLDS}  # fmt: skip
    reaching = [th for th, (p, _) in projected.items() if p >= DECISIVE_PRECISION]
    if reaching:
        chosen = max(reaching)
    else:  # the largest within one standard error of the best: the projections near it are flat and noisy
        best = max(projected, key=lambda th: np.nan_to_num(projected[th][0], nan=-1.0))
        p, n = projected[best]
        floor = p - np.sqrt(p * (1.0 - p) / max(n, 1))
        # nobody dated within the horizon at any threshold: the largest (the earliest dates)
        chosen = max(th for th, (q, _) in projected.items() if q >= floor) if np.isfinite(p) else max(LAPSE_THRESHOLDS)
    return chosen, {
        "decisive:threshold": chosen, "decisive:window_days": float(window_days), "decisive:horizon_days": float(horizon_days),
        "decisive:projected_precision": projected[chosen][0], "decisive:return_factor_one_time": factors[chosen][0],
        "decisive:return_factor_repeat": factors[chosen][1],
    } | {f"decisive:{k}": v for k, v in checks[chosen].items()}  # fmt: skip


def _return_factors(model: ModifiedBetaGeoModel, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, days_left: np.ndarray,
                    last: np.ndarray, window_days: float) -> tuple[float, float]:  # fmt: skip
    """Observed over predicted orders after the date among the customers dated in the window, for
    one-time and repeat buyers (NaN for a group with under :data:`MIN_DATED` dated)."""
    dated = days_left <= window_days
    start = np.maximum(days_left, 0.0)  # a date already past: judged from the cut
    out = []
    for group in (x == 0, x >= 1):
        sel = dated & group
        if sel.sum() < MIN_DATED:
            out.append(float("nan"))
            continue
        predicted = 1.0 - model.p_no_purchase(window_days - start[sel], x[sel], t_x[sel], T[sel] + start[sel])
        out.append(float(np.sum(last[sel] > days_left[sel]) / max(np.sum(predicted), 1e-9)))
    return out[0], out[1]


def _fill_factors(factors: dict[float, tuple[float, float]]) -> dict[float, tuple[float, float]]:
    """A group too rarely dated at a threshold takes the factor of the nearest threshold where it
    was measured (1, the model taken at its word, where it never was)."""
    filled = {th: list(f) for th, f in factors.items()}
    for g in (0, 1):
        measured = [th for th, f in factors.items() if np.isfinite(f[g])]
        for th, f in filled.items():
            if not np.isfinite(f[g]):
                f[g] = factors[min(measured, key=lambda m: abs(m - th))][g] if measured else 1.0
    return {th: (f[0], f[1]) for th, f in filled.items()}


def _projected_precision(model: ModifiedBetaGeoModel, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, days_left: np.ndarray,
                         factors: tuple[float, float], horizon_days: float) -> tuple[float, int]:  # fmt: skip
    """The expected share of the customers dated within ``horizon_days`` who order nothing between
    their date and its end (the model's probability of an order there, times the group's factor),
    and how many are dated."""
    dated = days_left <= horizon_days
    if not dated.any():
        return float("nan"), 0
    start = np.maximum(days_left[dated], 0.0)
    orders = 1.0 - model.p_no_purchase(horizon_days - start, x[dated], t_x[dated], T[dated] + start)
    factor = np.where(x[dated] == 0, factors[0], factors[1])
    return float(np.mean(1.0 - np.minimum(factor * orders, 1.0))), int(dated.sum())


def _value_rule(before: np.ndarray, after: np.ndarray, window_days: int, model_class: type) -> ValueRule:
    """The value rule chosen on the spend in the ``window_days`` before ``as_of`` (``clv.calibrated_value``):
    ``before``, ``REPEAT_FEATURES`` and total_amount as of ``as_of - window_days``; ``after``,
    total_amount as of ``as_of``, on the same rows."""
    rows = np.flatnonzero(np.isfinite(before[:, 2]))
    rows = rows[_sample(len(rows), seed=3)]
    x, t_x, T, zbar, total = (before[rows, i] for i in range(5))
    total = np.nan_to_num(total)
    spend = np.maximum(np.nan_to_num(after[rows, 0].astype(np.float64)) - total, 0.0)
    purchase = model_class().fit(x, t_x, T)
    spenders = (x >= 1) & (zbar > 0)
    gg = GammaGammaModel().fit(x[spenders], zbar[spenders])
    repeat = x > 0
    known = repeat & np.isfinite(zbar)
    mean_spend = np.where(known, gg.conditional_expected_average_value(np.maximum(x, 1), np.where(known, zbar, 1.0)), gg.expected_average_value())
    rate = (purchase.params_["r"] + x) / (purchase.params_["alpha"] + T)
    btyd = purchase.conditional_expected_purchases(window_days, x, t_x, T) * mean_spend
    features = glm_features(x, rate, mean_spend, purchase.p_alive(x, t_x, T))
    return choose_value_rule(features, btyd, naive_value(x, T, total, window_days), spend, window_days)


def _holdout_views(model: Any, naive: np.ndarray, actual: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                   holdout_days: int) -> dict[str, Any]:  # fmt: skip
    """Fader-Hardie's views of the calibration fit: holdout orders by calibration frequency, weekly curve."""
    predicted = model.conditional_expected_purchases(holdout_days, x, t_x, T)
    by_frequency = []
    for f in range(8):
        rows = x >= f if f == 7 else x == f
        if rows.any():
            by_frequency.append({"x": f, "label": "7+" if f == 7 else str(f), "count": int(rows.sum()),
                                 "actual": float(actual[rows].mean()), "model": float(predicted[rows].mean()),
                                 "naive": float(naive[rows].mean())})  # fmt: skip
    days = [min(7 * k, holdout_days) for k in range(1, -(-holdout_days // 7) + 1)]
    rate = np.where(T > 0, x / np.maximum(T, 1e-9), 0.0).sum()
    model_curve = [float(np.sum(model.conditional_expected_purchases(d, x, t_x, T))) for d in days]
    return {"by_frequency": by_frequency, "weekly": {"days": days, "model": model_curve, "naive": [float(rate * d) for d in days]}}


def _weekly_actual(orders: pa.Table, ids: pa.Array, start: datetime, end: datetime) -> list[float]:
    """Cumulative purchase days of ``ids`` in (start, end], week by week (the holdout's actual curve)."""
    us = pc.cast(pc.cast(orders["ts"], pa.timestamp("us", "UTC")), pa.int64()).to_numpy(zero_copy_only=False)
    who = pc.index_in(orders["contact_id"], value_set=ids).to_numpy(zero_copy_only=False)
    lo, hi = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    keep = ~np.isnan(who.astype(np.float64)) & (us > lo) & (us <= hi)
    day = (us[keep] // 86_400_000_000).astype(np.int64)
    pairs = np.unique(who[keep].astype(np.int64) * 1_000_000 + day)
    offset = pairs % 1_000_000 - lo // 86_400_000_000  # days after the cutoff's day, 0..holdout_days
    weeks = -(-(hi - lo) // (7 * 86_400_000_000))
    counts = np.bincount(np.minimum(np.maximum(offset - 1, 0) // 7, weeks - 1), minlength=weeks)
    return np.cumsum(counts).astype(float).tolist()


def _models(run: TrainingRun) -> CustomerValueModels:
    return run.shared("customer_value", lambda: fit_customer_value(run.tables, run.as_of))


def fit_clv(run: TrainingRun, version: str) -> Fitted:
    """``clv`` for ``scorecast train`` (the BTYD fit is shared with churn)."""
    models = _models(run)
    return Fitted(models.clv_onnx(**run.times(version, run.as_of)), run.tables, run.as_of, models.holdout(run.tables, "clv"))


def fit_churn(run: TrainingRun, version: str) -> Fitted:
    """``churn`` for ``scorecast train`` (the BTYD fit is shared with clv)."""
    models = _models(run)
    return Fitted(models.churn_onnx(**run.times(version, run.as_of)), run.tables, run.as_of, models.holdout(run.tables, "churn"))
