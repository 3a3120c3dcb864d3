"""The CDNOW sample (Fader, Hardie & Lee 2005): loaders, the calibration/holdout split, the summary.

The 2,357 customers of CDNOW's 1/10th sample made their first purchase in the first quarter
of 1997 and are followed to 1998-06-30: 78 weeks, split as in the papers into a calibration
period (weeks 1-39, 1997-01-01 to 1997-09-30) and a holdout period (weeks 40-78,
1997-10-01 to 1998-06-30). Time is in weeks in all the published figures. See
``datasets/PROVENANCE.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "CALIBRATION_END",
    "CALIBRATION_START",
    "CALIBRATION_WEEKS",
    "HOLDOUT_END",
    "HOLDOUT_WEEKS",
    "CdnowSummary",
    "load_cdnow_summary",
    "load_cdnow_transactions",
    "summary_from_transactions",
]

DATASETS = Path(__file__).parent / "datasets"

CALIBRATION_START = datetime(1997, 1, 1, tzinfo=UTC)
# Days are the time grain: an order "on 1997-09-30" is stamped at its midnight, so it is in the
# calibration period, and a first purchase on 1997-01-01 has T = 272 days = 38.86 weeks.
CALIBRATION_END = datetime(1997, 9, 30, tzinfo=UTC)
HOLDOUT_END = datetime(1998, 6, 30, tzinfo=UTC)
CALIBRATION_WEEKS = 39
HOLDOUT_WEEKS = 39  # (HOLDOUT_END - CALIBRATION_END) = 273 days

_TS = pa.timestamp("us", tz="UTC")


class CdnowSummary(NamedTuple):
    """The published calibration summary, one row per customer (sample id order), weeks."""

    contact_id: np.ndarray  # int64, 1..2357
    x: np.ndarray  # repeat purchases (distinct purchase days after the first)
    t_x: np.ndarray  # time of the last repeat purchase since the first, weeks
    T: np.ndarray  # time from the first purchase to CALIBRATION_END, weeks
    zbar: np.ndarray  # mean value of the repeat purchases, $ (0 where x = 0)


def load_cdnow_transactions() -> pa.Table:
    """The 6,919 CDNOW transactions as an orders table.

    Columns: ``contact_id`` int64 (the sample id, 1..2357), ``ts`` timestamp[us, UTC] at
    midnight of the purchase date, ``amount`` float64 (dollars). No ``sku`` or
    ``product_group``: the data has none (the number of CDs is dropped). In file order:
    by customer, then date; a customer may have several rows on one day.
    """
    raw = np.loadtxt(DATASETS / "CDNOW_sample.txt", dtype=np.float64)
    dates = pd.to_datetime(
        raw[:, 2].astype(np.int64).astype(str), format="%Y%m%d", utc=True
    )
    return pa.table(
        {
            "contact_id": pa.array(raw[:, 1].astype(np.int64)),
            "ts": pa.array(dates.as_unit("us"), type=_TS),
            "amount": pa.array(raw[:, 4]),
        }
    )


def load_cdnow_summary() -> CdnowSummary:
    """The papers' calibration summary (weeks 1-39) with zbar, as float64 arrays."""
    df = pd.read_csv(DATASETS / "cdnow_customers_summary_with_transactions.csv")
    return CdnowSummary(
        contact_id=df["ID"].to_numpy(np.int64),
        x=df["x"].to_numpy(np.float64),
        t_x=df["t_x"].to_numpy(np.float64),
        T=df["T"].to_numpy(np.float64),
        zbar=df["zbar"].to_numpy(np.float64),
    )


def _daily(orders: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per (contact, purchase day) with the day's total amount, sorted."""
    df = (
        orders.select(["contact_id", "ts", "amount"]).to_pandas()
        if isinstance(orders, pa.Table)
        else orders[["contact_id", "ts", "amount"]].copy()
    )
    df["day"] = pd.to_datetime(df["ts"], utc=True).dt.floor("D")
    return df.groupby(["contact_id", "day"], as_index=False, sort=True)["amount"].sum()


def summary_from_transactions(
    orders: pa.Table | pd.DataFrame, calibration_end: datetime, unit_days: float = 7
) -> pd.DataFrame:
    """The (x, t_x, T, zbar) summary of orders up to ``calibration_end``: a NumPy/pandas reference.

    Purchases are counted by day: ``x`` is the number of distinct purchase days after the
    first, ``t_x`` the time from the first purchase day to the last, ``T`` from the first
    purchase day to ``calibration_end`` (all in units of ``unit_days`` days), ``zbar`` the
    mean of the repeat days' total amounts (0 where x = 0). Orders after ``calibration_end``
    are ignored, and so are contacts whose first order is after it. Indexed by contact_id.
    """
    if unit_days <= 0:
        raise ValueError(f"unit_days must be > 0, got {unit_days}")
    end = pd.Timestamp(calibration_end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    daily = _daily(orders)
    daily = daily[daily["day"] <= end]
    g = daily.groupby("contact_id", sort=True)
    first = g["day"].transform("min")
    repeat = daily[daily["day"] > first]
    unit = pd.Timedelta(days=unit_days)
    out = pd.DataFrame(
        {"first": g["day"].min(), "last": g["day"].max(), "x": g.size() - 1}
    )
    out["t_x"] = (out["last"] - out["first"]) / unit
    out["T"] = (end - out["first"]) / unit
    out["zbar"] = (
        repeat.groupby("contact_id")["amount"].mean().reindex(out.index).fillna(0.0)
    )
    out["x"] = out["x"].astype(np.int64)
    return out[["x", "t_x", "T", "zbar"]]
