"""Calibration/holdout validation of the repeat-purchase models on an orders table (CDNOW by default).

Per contact: the conditional expected repeat purchases in the holdout window against the
actual count (distinct purchase days), scored by MAE and Spearman's rank correlation; in
aggregate: the cumulative weekly repeat purchases over the holdout, scored by the mean
absolute percentage error of the cumulative curve and the error of the total. The naive
baseline predicts the contact's calibration rate times the horizon, x / T · t.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.stats import spearmanr

from .cdnow import CALIBRATION_END, HOLDOUT_END, _daily, summary_from_transactions

__all__ = ["holdout_actuals", "holdout_table"]

NAIVE = "naive x/T·t"


def holdout_actuals(
    orders: pa.Table | pd.DataFrame,
    calibration_end: datetime,
    holdout_end: datetime,
    unit_days: float = 7,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The calibration summary, each contact's holdout purchase days, and the cumulative weekly count.

    Returns (summary with an added ``holdout_x`` column, cumulative[k] = repeat purchase days of
    all contacts in (calibration_end, calibration_end + (k+1) units]).
    """
    summary = summary_from_transactions(orders, calibration_end, unit_days)
    end, stop = (
        pd.Timestamp(v).tz_convert("UTC") for v in (calibration_end, holdout_end)
    )
    daily = _daily(orders)
    hold = daily[
        (daily["day"] > end)
        & (daily["day"] <= stop)
        & daily["contact_id"].isin(summary.index)
    ]
    summary["holdout_x"] = (
        hold.groupby("contact_id")
        .size()
        .reindex(summary.index)
        .fillna(0)
        .astype(np.int64)
    )
    n_units = int(np.ceil((stop - end) / pd.Timedelta(days=unit_days)))
    unit_index = (
        np.ceil((hold["day"] - end) / pd.Timedelta(days=unit_days)).astype(np.int64) - 1
    )
    cumulative = np.cumsum(np.bincount(unit_index, minlength=n_units)[:n_units])
    return summary, cumulative


def holdout_table(
    models: Mapping[str, object],
    orders: pa.Table | pd.DataFrame,
    calibration_end: datetime = CALIBRATION_END,
    holdout_end: datetime = HOLDOUT_END,
    unit_days: float = 7,
) -> pd.DataFrame:
    """Score fitted models (``conditional_expected_purchases(t, x, t_x, T)``) and the naive baseline.

    ``models`` maps a row label to a model fitted on the same calibration summary. One row
    per model plus ``"naive x/T·t"``; columns: ``mae`` and ``spearman`` per contact,
    ``total_pred`` and ``total_actual`` (holdout repeat purchases), ``cum_mape`` (mean
    absolute % error of the cumulative weekly curve over the holdout weeks).
    """
    summary, cumulative = holdout_actuals(
        orders, calibration_end, holdout_end, unit_days
    )
    x, t_x, T = (summary[c].to_numpy(np.float64) for c in ("x", "t_x", "T"))
    actual = summary["holdout_x"].to_numpy(np.float64)
    weeks = np.arange(1, len(cumulative) + 1, dtype=np.float64)
    horizon = weeks[-1]

    def row(per_contact: np.ndarray, curve: np.ndarray) -> dict[str, float]:
        return {
            "mae": float(np.mean(np.abs(per_contact - actual))),
            "spearman": float(spearmanr(per_contact, actual).statistic),
            "total_pred": float(per_contact.sum()),
            "total_actual": float(actual.sum()),
            "cum_mape": float(np.mean(np.abs(curve - cumulative) / cumulative)),
        }

    rows = {}
    for name, model in models.items():
        per_contact = np.asarray(
            model.conditional_expected_purchases(horizon, x, t_x, T)
        )
        curve = np.array(
            [np.sum(model.conditional_expected_purchases(w, x, t_x, T)) for w in weeks]
        )
        rows[name] = row(per_contact, curve)
    rate = np.divide(x, T, out=np.zeros_like(x), where=T > 0)
    rows[NAIVE] = row(rate * horizon, rate.sum() * weeks)
    return pd.DataFrame.from_dict(rows, orient="index")
