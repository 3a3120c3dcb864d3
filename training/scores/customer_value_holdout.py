"""clv and churn against what customers did after the training date (a base with a later holdout).

Trains as ``scorecast train --as-of CALIBRATION_END`` would (``fit_customer_value`` on the data up
to then), runs the served graphs, and compares with the orders in (calibration end, holdout end]:

- value ranking: share of the holdout spend held by the top 10 % and Spearman correlation with
  the holdout spend, for the served ``clv.value``, the BTYD value (the chosen repeat model +
  Gamma-Gamma over the holdout) and the naive value;
- decisive date: of the customers whose ``churn.decisive_date`` falls before the holdout end,
  the share who bought nothing after it (precision), the share of the customers who bought
  nothing in the holdout that were dated before its end (recall), and how early the dates fall
  (median days from the calibration end to the date of the dated customers, past dates as 0).

``python -m scorecast.training.scores.customer_value_holdout`` prints both tables for the
shipped CDNOW sample (calibration weeks 1-39, holdout weeks 40-78).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from scorecast.kernels import FeatureFrame

from ..clv.calibrated_value import naive_value, ranking_metrics
from ..run import as_us
from .customer_value import CHURN_FEATURES, CLV_FEATURES, DEFAULT_CHURN_THRESHOLD, CustomerValueModels, decisive_check, fit_customer_value

__all__ = ["decisive_date_check", "holdout_check", "value_ranking_check"]

_TIMES = {"version": "holdout", "trained_at": "", "data_as_of": ""}


def _run(model: object, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return {n: v[:, 0].astype(np.float64) for n, v in zip(names, session.run(names, {"features": x}), strict=True)}


def value_ranking_check(tables: dict[str, pa.Table], models: CustomerValueModels, calibration_end: datetime,
                        holdout_end: datetime) -> dict[str, dict[str, float]]:  # fmt: skip
    """Top-10 % capture and Spearman of holdout spend for the served value, BTYD and naive (customers
    with an order by ``calibration_end``; horizon = the holdout's length)."""
    frame = FeatureFrame(tables, as_us(calibration_end))
    data = frame.matrix([f for f in CLV_FEATURES if not f.startswith("request:")]).astype(np.float64)
    later = FeatureFrame(tables, as_us(holdout_end), contact_ids=frame.contact_ids).matrix(["total_amount"])[:, 0]
    rows = np.isfinite(data[:, 2])
    days = (holdout_end - calibration_end).total_seconds() / 86_400
    x = np.column_stack([data[:, :4], np.full(len(data), days), np.full(len(data), DEFAULT_CHURN_THRESHOLD), data[:, 4]])
    out = _run(models.clv_onnx(**_TIMES), x[rows].astype(np.float32), ["clv_value", "value"])
    spend = np.nan_to_num(later[rows]) - np.nan_to_num(data[rows, 4])
    scores = {
        f"model ({models.value_rule.rule} rule)": out["clv_value"],
        f"BTYD ({models.chosen} + Gamma-Gamma)": out["value"],
        "naive": naive_value(data[rows, 0], data[rows, 2], np.nan_to_num(data[rows, 4]), days),
    }
    return {name: ranking_metrics(score, spend) | _bootstrap_sd(score, spend) | {"customers": float(rows.sum())} for name, score in scores.items()}


def _bootstrap_sd(score: np.ndarray, spend: np.ndarray, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """Bootstrap SDs (customers resampled) of :func:`ranking_metrics`: the noise of the comparison."""
    rng = np.random.default_rng(seed)
    boot = [ranking_metrics(score[i], spend[i]) for i in (rng.integers(0, len(score), len(score)) for _ in range(draws))]
    return {f"{k}_sd": float(np.std([b[k] for b in boot])) for k in boot[0]}


def decisive_date_check(tables: dict[str, pa.Table], models: CustomerValueModels, calibration_end: datetime,
                        holdout_end: datetime) -> dict[str, float]:  # fmt: skip
    """Precision and recall of the served decisive date (the model's default threshold) against
    the holdout's orders, and how early the dates fall (module docstring)."""
    frame = FeatureFrame(tables, as_us(calibration_end))
    data = frame.matrix(list(CHURN_FEATURES[:4])).astype(np.float64)
    rows = np.isfinite(data[:, 2])
    x = np.column_stack([data[rows], np.full(int(rows.sum()), models.churn_threshold)]).astype(np.float32)
    days_left = _run(models.churn_onnx(**_TIMES), x, ["decisive_days_left"])["decisive_days_left"]
    # the last purchase day by the holdout end, in days after the calibration end
    later = FeatureFrame(tables, as_us(holdout_end), contact_ids=frame.contact_ids).matrix(["repeat_frequency", "repeat_recency_days", "age_days"])
    later = later[rows].astype(np.float64)
    bought = later[:, 0] > data[rows, 0]
    days = (holdout_end - calibration_end).total_seconds() / 86_400
    last = np.where(bought, later[:, 1] - later[:, 2] + days, -np.inf)  # t_x then, minus T then, plus the holdout
    return {"customers": float(rows.sum()), "threshold": models.churn_threshold} | decisive_check(days_left, bought, last, days) | {
        "lapsed_share": float((~bought).mean()), "median_days_left_all": float(np.median(days_left))}


def holdout_check(orders: pa.Table, calibration_end: datetime, holdout_end: datetime) -> tuple[CustomerValueModels, dict, dict]:
    """Fit on the orders up to ``calibration_end``; (models, value ranking table, decisive date figures)."""
    tables = {"orders": orders}
    models = fit_customer_value(tables, calibration_end)
    return models, value_ranking_check(tables, models, calibration_end, holdout_end), decisive_date_check(tables, models, calibration_end, holdout_end)


def main() -> None:
    """Print the CDNOW sample's tables (markdown)."""
    from ..simulate.cdnow import CALIBRATION_END, HOLDOUT_END, load_cdnow_transactions

    models, ranking, dates = holdout_check(load_cdnow_transactions(), CALIBRATION_END, HOLDOUT_END)
    print(f"CDNOW sample, calibration to {CALIBRATION_END.date()}, holdout to {HOLDOUT_END.date()}\n")
    print("| value score | top-10 % capture of holdout spend (bootstrap SD) | Spearman with holdout spend (SD) |\n|---|---|---|")
    for name, m in ranking.items():
        print(f"| {name} | {m['top10_capture']:.3f} ({m['top10_capture_sd']:.3f}) | {m['spearman']:.3f} ({m['spearman_sd']:.3f}) |")
    inner = {k: v for k, v in models.metrics.items() if k.startswith("value:")}
    print("\nchosen inside calibration (cross-fitted, window of", int(inner["value:window_days"]), "days before the calibration end):")
    for rule in ("calibrated", "BTYD", "naive"):
        print(f"  {rule}: top-10 % capture {inner[f'value:{rule}:top10_capture']:.3f}, Spearman {inner[f'value:{rule}:spearman']:.3f}")
    m = models.metrics
    print(f"\n| decisive date (P(any order in 365 days) < {models.churn_threshold:.2f}) | real holdout | inner holdout "
          f"({int(m['decisive:window_days'])} days, observed) |\n|---|---|---|")  # fmt: skip
    for k in ("precision", "recall", "dated_share", "median_days_to_date"):
        print(f"| {k} | {dates[k]:.3f} | {m[f'decisive:{k}']:.3f} |")
    print(f"| lapsed_share | {dates['lapsed_share']:.3f} | |\n| median_days_left_all | {dates['median_days_left_all']:.1f} | |")
    print(f"\nchose the threshold: projected precision over the {int(m['decisive:horizon_days'])} days after the "
          f"calibration end {m['decisive:projected_precision']:.3f} (return factors on the inner holdout: one-time buyers "
          f"{m['decisive:return_factor_one_time']:.2f}, repeat buyers {m['decisive:return_factor_repeat']:.2f})")


if __name__ == "__main__":
    main()
