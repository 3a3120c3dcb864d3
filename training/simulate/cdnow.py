"""The CDNOW sample (Fader, Hardie & Lee 2005): loaders, the calibration/holdout split, the summary.

The 2,357 customers of CDNOW's 1/10th sample made their first purchase in the first quarter
of 1997 and are followed to 1998-06-30: 78 weeks, split as in the papers into a calibration
period (weeks 1-39, 1997-01-01 to 1997-09-30) and a holdout period (weeks 40-78,
1997-10-01 to 1998-06-30). Time is in weeks in all the published figures. See
``datasets/PROVENANCE.md``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "CALIBRATION_END",
    "CALIBRATION_START",
    "CALIBRATION_WEEKS",
    "HOLDOUT_END",
    "HOLDOUT_WEEKS",
    "CdnowSummary",
    "load_cdnow_summary",
    "load_cdnow_transactions",
    "write_cdnow_base",
]

DATASETS = Path(__file__).parents[1] / "datasets"

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
    ymd = raw[:, 2].astype(np.int64)
    dates = np.array(
        [f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in ymd], dtype="datetime64[D]"
    )
    return pa.table(
        {
            "contact_id": pa.array(raw[:, 1].astype(np.int64)),
            "ts": pa.array(dates.astype("datetime64[us]").astype(np.int64), type=_TS),
            "amount": pa.array(raw[:, 4]),
        }
    )


def load_cdnow_summary() -> CdnowSummary:
    """The papers' calibration summary (weeks 1-39) with zbar, as float64 arrays."""
    table = pacsv.read_csv(DATASETS / "cdnow_customers_summary_with_transactions.csv")
    return CdnowSummary(
        contact_id=table["ID"].to_numpy().astype(np.int64),
        x=table["x"].to_numpy().astype(np.float64),
        t_x=table["t_x"].to_numpy().astype(np.float64),
        T=table["T"].to_numpy().astype(np.float64),
        zbar=table["zbar"].to_numpy().astype(np.float64),
    )


def write_cdnow_base(out: Path, overwrite: bool = False) -> None:
    """Write the CDNOW sample as a base folder (orders.parquet, contacts.parquet, base.json).

    Its as-of is HOLDOUT_END, the end of the data; ``scorecast train --as-of 1997-09-30``
    trains on the calibration period only.
    """
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (use overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    orders = load_cdnow_transactions()
    pq.write_table(orders, out / "orders.parquet")
    ids = pc.unique(orders["contact_id"])
    pq.write_table(pa.table({"contact_id": ids}), out / "contacts.parquet")
    meta = {"as_of": HOLDOUT_END.isoformat(), "n_contacts": len(ids), "generator": "scorecast.training.simulate.cdnow", "source": "datasets/PROVENANCE.md"}
    (out / "base.json").write_text(json.dumps(meta, indent=2))
