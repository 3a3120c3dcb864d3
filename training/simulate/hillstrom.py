"""The Hillstrom e-mail campaign (MineThatData, 2008) as a base: a real randomised promotion.

64,000 customers who bought in the past year were split at random into three groups: an
e-mail featuring men's merchandise, one featuring women's, no e-mail; visits, purchases and
spend were recorded over the two weeks after the send. ``datasets/hillstrom_half.csv.gz`` holds
half of them (see ``datasets/PROVENANCE.md``). The file has no dates: the campaign is dated
:data:`SEND` and every outcome :data:`OUTCOME_DAYS` days after it, inside the two weeks.

The base: ``contacts`` (contact_id = the row's 1-based position in the file, and the customer
columns), ``promotions`` (one campaign, treated = an e-mail of either kind, ``email`` the kind),
``orders`` (one per conversion, amount = spend) and ``web_events`` (one per visit); its as-of is
the end of the two-week window. Train ``promo_appetence`` on it with ``--promo-window 14``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..run import as_us

__all__ = ["AS_OF", "CAMPAIGN_ID", "DATASET", "SEND", "WINDOW_DAYS", "hillstrom_tables", "write_hillstrom_base"]

DATASET = Path(__file__).parents[1] / "datasets" / "hillstrom_half.csv.gz"
SEND = datetime(2008, 3, 1, tzinfo=UTC)
WINDOW_DAYS = 14
AS_OF = SEND + timedelta(days=WINDOW_DAYS)
OUTCOME_DAYS = 7  # the middle of the window: the file says "within two weeks", not when
CAMPAIGN_ID = "hillstrom-2008-03"
CONTACT_COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel")
_COLUMNS = (*CONTACT_COLUMNS, "segment", "visit", "conversion", "spend")
_TS = pa.timestamp("us", tz="UTC")


def hillstrom_tables(path: Path = DATASET) -> dict[str, pa.Table]:
    """contacts, promotions, orders and web_events of the Hillstrom CSV (plain or gzip).

    Raises ValueError naming a missing column or an unknown ``segment`` value.
    """
    table = pacsv.read_csv(path)
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not the Hillstrom CSV, columns {missing} are missing (has {table.column_names})")
    segment = table["segment"].to_pylist()
    kinds = {"Mens E-Mail": "mens", "Womens E-Mail": "womens", "No E-Mail": None}
    unknown = sorted({s for s in segment if s not in kinds}, key=str)
    if unknown:
        raise ValueError(f"{path}: segment must be one of {list(kinds)}, got {unknown[:5]}")
    n = table.num_rows
    ids = pa.array(np.arange(1, n + 1, dtype=np.int64))
    contacts = pa.table({"contact_id": ids, **{c: table[c] for c in CONTACT_COLUMNS}})
    email = pa.array([kinds[s] for s in segment], pa.string())
    promotions = pa.table({
        "contact_id": ids,
        "campaign_id": pa.array([CAMPAIGN_ID] * n, pa.string()),
        "ts": pa.array(np.full(n, as_us(SEND)), _TS),
        "treated": pc.is_valid(email),
        "email": email,
    })  # fmt: skip
    outcome = as_us(SEND + timedelta(days=OUTCOME_DAYS))
    bought = np.flatnonzero(table["conversion"].to_numpy() > 0)
    orders = pa.table({
        "contact_id": ids.take(pa.array(bought)),
        "ts": pa.array(np.full(len(bought), outcome), _TS),
        "amount": pc.cast(table["spend"], pa.float64()).take(pa.array(bought)),
    })  # fmt: skip
    visited = np.flatnonzero(table["visit"].to_numpy() > 0)
    web_events = pa.table({
        "contact_id": ids.take(pa.array(visited)),
        "ts": pa.array(np.full(len(visited), outcome), _TS),
        "page": pa.array(["visit"] * len(visited), pa.string()),
    })  # fmt: skip
    return {"contacts": contacts, "promotions": promotions, "orders": orders, "web_events": web_events}


def write_hillstrom_base(path: Path, out: Path, overwrite: bool = False) -> dict[str, int]:
    """Write the base (Parquet tables and base.json) into ``out``; the row count of each table."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (use --overwrite)")
    tables = hillstrom_tables(path)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    meta = {"as_of": AS_OF.isoformat(), "n_contacts": tables["contacts"].num_rows, "generator": "scorecast.training.simulate.hillstrom",
            "source": "datasets/PROVENANCE.md (Hillstrom MineThatData e-mail campaign)", "promo_window_days": WINDOW_DAYS}  # fmt: skip
    (out / "base.json").write_text(json.dumps(meta, indent=2))
    return {name: table.num_rows for name, table in tables.items()}
