"""Calibration/holdout validation of the repeat-purchase models on an orders table.

Summaries come from the one feature pipeline (``FeatureFrame``'s repeat features), at the
calibration end and at each later week. Per contact: the conditional expected repeat purchase
days in the holdout against the actual count, scored by MAE and Spearman's rank correlation;
in aggregate: the cumulative weekly repeat purchases over the holdout (mean absolute % error
of the curve) and the error of the total. The naive baseline predicts the contact's
calibration rate times the horizon, x / T · t.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr

from scorecast.kernels import FeatureFrame

from ..simulate.cdnow import CALIBRATION_END, HOLDOUT_END

__all__ = ["NAIVE", "holdout_metrics", "holdout_table", "repeat_summary"]

NAIVE = "naive x/T·t"
_SUMMARY = ("repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary")


def repeat_summary(orders: pa.Table, at: datetime, contact_ids: pa.Array | None = None, unit_days: float = 1) -> np.ndarray:
    """(x, t_x, T, zbar) per contact as of ``at``, times in ``unit_days``; T is NaN before a first order."""
    if unit_days <= 0:
        raise ValueError(f"unit_days must be > 0, got {unit_days}")
    frame = FeatureFrame({"orders": orders}, int(at.timestamp() * 1_000_000), contact_ids=contact_ids)
    summary = frame.matrix(_SUMMARY).astype(np.float64)
    summary[:, 1:3] /= unit_days
    return summary


def holdout_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Per-contact MAE and Spearman of holdout repeat purchases, and the relative error of the total."""
    rho = spearmanr(predicted, actual).statistic if np.ptp(predicted) > 0 else 0.0
    return {
        "mae": float(np.mean(np.abs(predicted - actual))),
        "spearman": float(rho),
        "total_error": float((predicted.sum() - actual.sum()) / max(actual.sum(), 1.0)),
    }


def holdout_table(
    models: Mapping[str, object],
    orders: pa.Table,
    calibration_end: datetime = CALIBRATION_END,
    holdout_end: datetime = HOLDOUT_END,
    unit_days: float = 7,
) -> dict[str, dict[str, float]]:
    """Score fitted models (``conditional_expected_purchases(t, x, t_x, T)``) and the naive baseline.

    ``models`` maps a row label to a model fitted on the calibration summary in ``unit_days``.
    One row per model plus :data:`NAIVE`: ``mae``, ``spearman``, ``total_error``,
    ``total_pred``, ``total_actual`` and ``cum_mape`` (the cumulative unit-by-unit curve).
    """
    cal = repeat_summary(orders, calibration_end, unit_days=unit_days)
    ids = FeatureFrame({"orders": orders}, int(calibration_end.timestamp() * 1_000_000)).contact_ids
    rows = np.isfinite(cal[:, 2])
    x, t_x, T = cal[rows, 0], cal[rows, 1], cal[rows, 2]
    n_units = int(np.ceil((holdout_end - calibration_end) / timedelta(days=unit_days)))
    cumulative = np.empty(n_units)
    for k in range(1, n_units + 1):
        at = min(calibration_end + timedelta(days=unit_days * k), holdout_end)
        cumulative[k - 1] = np.sum(repeat_summary(orders, at, ids)[rows, 0] - x)
    actual = repeat_summary(orders, holdout_end, ids)[rows, 0] - x
    units = np.arange(1, n_units + 1, dtype=np.float64)
    horizon = (holdout_end - calibration_end) / timedelta(days=unit_days)

    def row(per_contact: np.ndarray, curve: np.ndarray) -> dict[str, float]:
        return holdout_metrics(per_contact, actual) | {
            "total_pred": float(per_contact.sum()),
            "total_actual": float(actual.sum()),
            "cum_mape": float(np.mean(np.abs(curve - cumulative) / np.maximum(cumulative, 1.0))),
        }

    table = {}
    for name, model in models.items():
        per_contact = np.asarray(model.conditional_expected_purchases(horizon, x, t_x, T))  # type: ignore[attr-defined]
        curve = np.array([np.sum(model.conditional_expected_purchases(min(u, horizon), x, t_x, T)) for u in units])  # type: ignore[attr-defined]
        table[name] = row(per_contact, curve)
    rate = np.divide(x, T, out=np.zeros_like(x), where=T > 0)
    table[NAIVE] = row(rate * horizon, rate.sum() * np.minimum(units, horizon))
    return table
