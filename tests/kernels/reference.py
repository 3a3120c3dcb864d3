"""Slow, obviously correct pandas versions of the kernels, for the tests to compare against.

Nothing here imports scorecast: each reference reads its inputs its own way (pandas
conversions, Python sets), so a shared bug cannot hide on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scorecast.kernels.time_units import US_PER_DAY

RFM_FIELDS = (
    "recency_days",
    "frequency",
    "monetary",
    "total_amount",
    "tenure_days",
    "repeat_count",
)

REPEAT_FIELDS = ("repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary")


def rfm_summary(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    amount: np.ndarray | None,
    group_codes: np.ndarray | None,
    n_groups: int,
    as_of_us: int,
) -> dict[str, np.ndarray]:
    """``kernels.rfm.rfm_summary`` as a dict of arrays (same names as ``RfmSummary``)."""
    n = len(codes)
    df = pd.DataFrame(
        {
            "contact": np.asarray(codes, np.int64),
            "ts": np.asarray(ts_us, np.int64),
            "amount": np.full(n, np.nan) if amount is None else np.asarray(amount, np.float64),
            "group": np.full(n, -1) if group_codes is None else np.asarray(group_codes, np.int64),
        }
    )
    return _summarise(df, pd.RangeIndex(n_contacts), list(range(n_groups)), as_of_us)


def repeat_summary(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    amount: np.ndarray | None,
    as_of_us: int,
) -> dict[str, np.ndarray]:
    """``kernels.repeat.repeat_summary`` as a dict of arrays (same names as ``RepeatSummary``)."""
    df = pd.DataFrame(
        {
            "contact": np.asarray(codes, np.int64),
            "ts": np.asarray(ts_us, np.int64),
            "amount": np.nan if amount is None else np.asarray(amount, np.float64),
        }
    )
    return _repeat(df, pd.RangeIndex(n_contacts), as_of_us)


def _repeat(df: pd.DataFrame, rows: pd.Index, as_of_us: int) -> dict[str, np.ndarray]:
    """(x, t_x, T, zbar) of ``df`` (contact, ts, amount) on UTC calendar days, for ``rows``.

    Per day: the day's amount is the sum of its known amounts (unknown if none is known);
    zbar is the mean of the known day amounts over the days after the first.
    """
    df = df[df["ts"] <= as_of_us]
    day_us = int(US_PER_DAY)
    daily = (
        df.assign(day=df["ts"] // day_us)  # floor division, like pandas' dt.floor("D") in UTC
        .groupby(["contact", "day"])["amount"]
        .sum(min_count=1)
        .reset_index()
    )
    first = daily.groupby("contact")["day"].min()
    repeat = daily[daily["day"] > daily["contact"].map(first)]
    by = repeat.groupby("contact")
    frequency = by.size().reindex(rows, fill_value=0).astype(np.float64)
    recency = (by["day"].max() - first).reindex(rows).fillna(0.0).where(frequency > 0, 0.0)
    out = {
        "repeat_frequency": frequency,
        "repeat_recency_days": recency,
        "age_days": (as_of_us // day_us - first).reindex(rows),
        "repeat_monetary": by["amount"].mean().reindex(rows),
    }
    return {k: v.to_numpy(np.float64) for k, v in out.items()}


def _summarise(
    df: pd.DataFrame, rows: pd.Index, groups: list, as_of_us: int
) -> dict[str, np.ndarray]:
    """The RFM summary of ``df`` (contact, ts, amount, group) for ``rows`` and ``groups``."""

    def days_since(ts: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
        return (as_of_us - ts) / US_PER_DAY

    df = df[df["ts"] <= as_of_us]
    by = df.groupby("contact")
    frequency = by.size().reindex(rows, fill_value=0).astype(np.float64)
    per_contact = {
        "recency_days": days_since(by["ts"].max()).reindex(rows),
        "frequency": frequency,
        "monetary": by["amount"].mean().reindex(rows),
        "total_amount": by["amount"].sum().reindex(rows, fill_value=0.0),
        "tenure_days": days_since(by["ts"].min()).reindex(rows),
        "repeat_count": (frequency - 1).clip(lower=0),
    }
    out = {k: v.to_numpy(np.float64) for k, v in per_contact.items()}

    in_group = df[df["group"].isin(groups)]
    if len(in_group):
        by_group = in_group.groupby(["contact", "group"])["ts"]
        counts = by_group.size().unstack()
        recency = days_since(by_group.max()).unstack()
    else:
        counts = recency = pd.DataFrame()
    shape = (len(rows), len(groups))
    counts = counts.reindex(index=rows, columns=groups).fillna(0.0)
    recency = recency.reindex(index=rows, columns=groups)
    out["group_count"] = counts.to_numpy(np.float64).reshape(shape)
    out["group_recency_days"] = recency.to_numpy(np.float64).reshape(shape)
    return out


def feature_matrix(
    tables: Mapping[str, pa.Table],
    as_of_us: int,
    names: Sequence[str],
    contact_ids: pa.Array | None = None,
) -> tuple[list, np.ndarray]:
    """``FeatureFrame(tables, as_of_us, contact_ids)``: (ids as Python values, float32 matrix)."""
    orders = tables.get("orders")
    if contact_ids is not None:
        rows = contact_ids.to_pylist()
    elif "contacts" in tables:
        rows = tables["contacts"].column("contact_id").to_pylist()
    elif orders is not None:
        rows = list(pd.unique(pd.Series(orders.column("contact_id").to_pylist(), dtype=object)))
    else:
        rows = []

    groups = list(dict.fromkeys(n.partition(":")[2] for n in names if ":" in n))
    if orders is None or orders.num_rows == 0:
        df = pd.DataFrame({"contact": [], "ts": [], "amount": [], "group": []})
        df = df.astype({"ts": np.int64, "amount": np.float64})
    else:
        columns = orders.column_names
        df = pd.DataFrame(
            {
                "contact": orders.column("contact_id").to_pylist(),
                "ts": _micros(orders.column("ts")),
                "amount": (
                    orders.column("amount").to_pandas().astype(np.float64).to_numpy()
                    if "amount" in columns
                    else np.nan
                ),
                "group": (
                    orders.column("product_group").to_pylist()
                    if "product_group" in columns
                    else None
                ),
            }
        )
    index = pd.Index(rows, dtype=object)
    summary = _summarise(df, index, groups, as_of_us) | _repeat(df, index, as_of_us)

    out = np.empty((len(rows), len(names)), np.float32)
    for j, name in enumerate(names):
        feature, _, group = name.partition(":")
        if group:
            out[:, j] = summary[feature][:, groups.index(group)]
        else:
            out[:, j] = summary[feature]
    return rows, out


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """int64 µs since the epoch, UTC, through pandas' own datetime conversion."""
    values = pd.to_datetime(column.to_pandas(), utc=True)
    return values.astype("datetime64[ns, UTC]").astype(np.int64).to_numpy() // 1000


def window_features(
    events: pd.DataFrame, rows: Sequence[object], as_of_us: int, category: str, weight: str | None, name: str
) -> np.ndarray:
    """One lead behaviour feature (``<what>:<category value>[:<days>]``) by plain pandas filtering.

    ``events`` has contact_id, ts (int64 µs) and the category (and weight) column; ``name`` is
    ``count:<value>:<days>``, ``sum:<value>:<days>`` or ``recency:<value>``, ``*`` for every value.
    """
    what, rest = name.split(":", 1)
    if what == "recency":
        value, days = rest, None
    else:
        value, days = rest.rsplit(":", 1)
    df = events[events["ts"] <= as_of_us]
    if value != "*":
        df = df[df[category] == value]
    if days is not None:
        df = df[df["ts"] > as_of_us - int(days) * US_PER_DAY]
    out = []
    for row in rows:
        mine = df[df["contact_id"] == row]
        if what == "count":
            out.append(float(len(mine)))
        elif what == "sum":
            out.append(float(mine[weight].fillna(0.0).sum()))
        else:
            out.append((as_of_us - mine["ts"].max()) / US_PER_DAY if len(mine) else np.nan)
    return np.array(out)


WEB_FIELDS = (
    "views_7d",
    "views_30d",
    "time_7d",
    "time_30d",
    "sessions_7d",
    "sessions_30d",
    "points_30d",
    "hot_views_30d",
    "warm_views_30d",
    "eliminating_30d",
    "days_since_visit",
)


def web_page_entry(page: object, pages: Sequence[Mapping]) -> int:
    """Position of the config entry matching ``page``: exact first, then the longest prefix."""
    if not isinstance(page, str):
        return -1
    for i, entry in enumerate(pages):
        if entry.get("page") == page:
            return i
    best, best_len = -1, -1
    for i, entry in enumerate(pages):
        prefix = entry.get("prefix")
        if prefix is not None and page.startswith(prefix) and len(prefix) > best_len:
            best, best_len = i, len(prefix)
    return best


def web_features(events: pa.Table, contact_ids: Sequence, as_of_us: int, config: Mapping) -> dict[str, np.ndarray]:
    """``kernels.web.WebSummary`` fields from a web_events table (contact_id, ts, page,
    duration_s) for the rows ``contact_ids``, with the page config ``config``."""
    df = events.to_pandas()
    rows = pd.Index(list(contact_ids))
    day = int(US_PER_DAY)
    if len(df):
        df["ts"] = (pd.to_datetime(df["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    else:
        df["ts"] = pd.Series([], dtype=np.int64)
    pages = config.get("pages", [])
    df["entry"] = [web_page_entry(p, pages) for p in df["page"]] if "page" in df else -1
    df["duration"] = df["duration_s"].astype(float).fillna(0.0) if "duration_s" in df else 0.0
    df = df[df["ts"] <= as_of_us].sort_values(["contact_id", "ts"], kind="stable")
    gap = config.get("session_gap_minutes", 30) * 60_000_000
    half_life = config.get("half_life_days", 0)
    category = {i: e.get("category", "cold") for i, e in enumerate(pages)}
    points = {i: float(e["points"]) for i, e in enumerate(pages)}

    def window(days: int) -> pd.DataFrame:
        return df[df["ts"] > as_of_us - days * day]

    def sessions(w: pd.DataFrame) -> pd.Series:
        step = w.groupby("contact_id")["ts"].diff()
        return (step.isna() | (step > gap)).groupby(w["contact_id"]).sum()

    w7, w30 = window(7), window(30)
    age_days = (as_of_us - w30["ts"]) / US_PER_DAY
    weight = 0.5 ** (age_days / half_life) if half_life else 1.0
    value = w30["entry"].map(lambda e: points.get(e, 0.0)) * weight
    cat = w30["entry"].map(lambda e: category.get(e, "none"))
    out = {
        "views_7d": w7.groupby("contact_id").size(),
        "views_30d": w30.groupby("contact_id").size(),
        "time_7d": w7.groupby("contact_id")["duration"].sum(),
        "time_30d": w30.groupby("contact_id")["duration"].sum(),
        "sessions_7d": sessions(w7),
        "sessions_30d": sessions(w30),
        "points_30d": value.groupby(w30["contact_id"]).sum(),
        "hot_views_30d": (cat == "hot").groupby(w30["contact_id"]).sum(),
        "warm_views_30d": (cat == "warm").groupby(w30["contact_id"]).sum(),
        "eliminating_30d": (cat == "eliminating").groupby(w30["contact_id"]).max(),
    }
    result = {k: v.astype(np.float64).reindex(rows, fill_value=0.0).to_numpy(np.float64) for k, v in out.items()}
    last = df.groupby("contact_id")["ts"].max()
    result["days_since_visit"] = ((as_of_us - last) / US_PER_DAY).reindex(rows).to_numpy(np.float64)
    return result


def contact_partition(ids: Sequence[int | str | bytes], n: int) -> np.ndarray:
    """``kernels.partition.partition_of`` in Python integers: integer ids through MurmurHash3's
    64-bit finaliser, its top 32 bits times ``n`` over 2**32; string ids (UTF-8) and binary ids
    through 64-bit FNV-1a, modulo ``n``."""
    mask = 2**64 - 1
    out = []
    for x in ids:
        if isinstance(x, str | bytes):
            h = 14695981039346656037
            for byte in x.encode() if isinstance(x, str) else x:
                h = ((h ^ byte) * 1099511628211) & mask
            out.append(h % n)
        else:
            h = x & mask  # two's complement, as a uint64 view of the int64
            h = ((h ^ (h >> 33)) * 0xFF51AFD7ED558CCD) & mask
            h = ((h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53) & mask
            h = (h ^ (h >> 33)) >> 32
            out.append((h * n) >> 32)
    return np.array(out, np.int64)
