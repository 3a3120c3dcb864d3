"""RFM features three ways, scorecast FeatureFrame, DuckDB and polars, on synthetic orders.

    python benchmarks/rfm_engines.py --contacts 1000000 --orders-per-contact 4 --repeats 5

Every engine starts from the same Arrow table and computes the same columns per contact:
recency, frequency, monetary, total amount, tenure, and count and recency per product group.
Timed from the Arrow table to the engine's result (ours: factorising contact ids included,
a float32 matrix out; DuckDB: SQL GROUP BY fetched as Arrow; polars: from_arrow, group_by/agg,
to_arrow). Each engine runs once untimed first (numba compilation, caches), then the engines
take turns for ``--repeats`` rounds. The results are checked against each other on a sample
of contacts before any figure is printed.

``compare_rfm`` is importable by other benchmarks (benchmarks/ folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable

import duckdb
import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY

log = logging.getLogger("benchmarks.rfm_engines")

GROUPS = ("apparel", "beauty", "books", "electronics", "garden", "grocery", "shoes", "toys")
SAMPLE = 2_000

# A result: contact ids and one float64 column per feature name, in FEATURES order.
Result = tuple[pa.Array, np.ndarray]


def feature_names(groups: list[str]) -> list[str]:
    """The compared columns (FeatureFrame names; the other engines use the same aliases)."""
    return [
        "recency_days",
        "frequency",
        "monetary",
        "total_amount",
        "tenure_days",
        *(f"group_count:{g}" for g in groups),
        *(f"group_recency_days:{g}" for g in groups),
    ]


def make_orders(
    n_contacts: int, orders_per_contact: float, seed: int = 0, null_amounts: float = 0.01
) -> tuple[pa.Table, int]:
    """A synthetic orders table in time order (contacts interleaved) and an as_of 30 days
    before its last order, so some orders fall after it."""
    rng = np.random.default_rng(seed)
    n = int(n_contacts * orders_per_contact)
    contact_ids = rng.permutation(n_contacts).astype(np.int64) * 13 + 1_000_003
    start = 1_600_000_000_000_000
    ts = np.sort(rng.integers(start, start + 3 * 365 * US_PER_DAY, n))
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    table = pa.table(
        {
            "contact_id": contact_ids[rng.integers(0, n_contacts, n)],
            "ts": pa.array(ts, pa.timestamp("us", "UTC")),
            "amount": pa.array(amount, mask=rng.random(n) < null_amounts),
            "product_group": pa.array(np.array(GROUPS)[rng.integers(0, len(GROUPS), n)]),
            "sku": pa.array(rng.integers(0, 50_000, n)),
        }
    )
    return table, int(ts[-1]) - 30 * US_PER_DAY if n else start


def run_scorecast(orders: pa.Table, as_of_us: int, groups: list[str]) -> Result:
    frame = FeatureFrame({"orders": orders}, as_of_us)
    return frame.contact_ids, frame.matrix(feature_names(groups))


def run_duckdb(orders: pa.Table, as_of_us: int, groups: list[str]) -> Result:
    days = f"/ {US_PER_DAY}e0"
    columns = [
        f"({as_of_us} - max(epoch_us(ts))) {days} AS recency_days",
        "count(*)::DOUBLE AS frequency",
        "avg(amount) AS monetary",
        "coalesce(sum(amount), 0) AS total_amount",
        f"({as_of_us} - min(epoch_us(ts))) {days} AS tenure_days",
        *(
            f'count(*) FILTER (WHERE product_group = {_sql_str(g)})::DOUBLE AS "group_count:{g}"'
            for g in groups
        ),
        *(
            f"({as_of_us} - max(epoch_us(ts)) FILTER (WHERE product_group = {_sql_str(g)}))"
            f' {days} AS "group_recency_days:{g}"'
            for g in groups
        ),
    ]
    query = f"""
        SELECT contact_id, {", ".join(columns)}
        FROM orders WHERE epoch_us(ts) <= {as_of_us}
        GROUP BY contact_id"""
    with duckdb.connect() as con:
        con.register("orders", orders)
        relation = con.sql(query)
        # to_arrow_table() is the name from duckdb 1.4; older releases call it arrow().
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        result = fetch()
    return _from_table(result, groups)


def run_polars(orders: pa.Table, as_of_us: int, groups: list[str]) -> Result:
    df = pl.from_arrow(orders.select(["contact_id", "ts", "amount", "product_group"]))
    t = pl.col("ts").dt.epoch("us")
    result = (
        df.filter(t <= as_of_us)
        .group_by("contact_id")
        .agg(
            ((as_of_us - t.max()) / US_PER_DAY).alias("recency_days"),
            pl.len().cast(pl.Float64).alias("frequency"),
            pl.col("amount").mean().alias("monetary"),
            pl.col("amount").sum().alias("total_amount"),
            ((as_of_us - t.min()) / US_PER_DAY).alias("tenure_days"),
            *(
                (pl.col("product_group") == g).sum().cast(pl.Float64).alias(f"group_count:{g}")
                for g in groups
            ),
            *(
                ((as_of_us - t.filter(pl.col("product_group") == g).max()) / US_PER_DAY).alias(
                    f"group_recency_days:{g}"
                )
                for g in groups
            ),
        )
        .to_arrow()
    )
    return _from_table(result, groups)


ENGINES: dict[str, Callable[[pa.Table, int, list[str]], Result]] = {
    "scorecast": run_scorecast,
    "duckdb": run_duckdb,
    "polars": run_polars,
}


def compare_rfm(orders: pa.Table, as_of_us: int, repeats: int) -> list[dict[str, object]]:
    """Time every engine on ``orders`` (contact_id, ts, amount, product_group; other columns
    ignored) and check they agree first; one dict per engine: engine, median_s, min_s,
    ratio (engine median / scorecast median), rows (contacts in its result)."""
    groups = sorted(pc.unique(orders["product_group"]).drop_null().to_pylist())
    results = {}
    for name, run in ENGINES.items():
        log.info("warm-up: %s", name)
        results[name] = run(orders, as_of_us, groups)
    _check_agreement(results, groups)

    times: dict[str, list[float]] = {name: [] for name in ENGINES}
    for round_ in range(repeats):
        for name, run in ENGINES.items():
            start = time.perf_counter()
            run(orders, as_of_us, groups)
            times[name].append(time.perf_counter() - start)
        log.info(
            "round %d/%d: %s", round_ + 1, repeats, {k: f"{v[-1]:.3f}" for k, v in times.items()}
        )

    ours = statistics.median(times["scorecast"])
    return [
        {
            "engine": name,
            "median_s": statistics.median(t),
            "min_s": min(t),
            "ratio": statistics.median(t) / ours,
            "rows": len(results[name][0]),
        }
        for name, t in times.items()
    ]


def _check_agreement(results: dict[str, Result], groups: list[str]) -> None:
    """Assert every engine found the same contacts and, on a sample, the same values."""
    ids, ours = results["scorecast"]
    # Engines differ on contacts whose every order is after as_of: ours keeps them (no
    # orders yet), a filtered GROUP BY drops them. Compare on contacts with orders.
    has_orders = ours[:, 1] > 0
    rng = np.random.default_rng(1)
    sample = rng.choice(
        np.flatnonzero(has_orders), min(SAMPLE, int(has_orders.sum())), replace=False
    )
    sample_ids = ids.take(pa.array(sample))
    for name, (other_ids, values) in results.items():
        if name == "scorecast":
            continue
        if len(other_ids) != int(has_orders.sum()):
            raise AssertionError(
                f"{name}: {len(other_ids)} contacts, scorecast {int(has_orders.sum())}"
            )
        rows = pc.index_in(sample_ids, value_set=other_ids).to_numpy(zero_copy_only=False)
        # float32 matrix on our side: compare at float32 precision.
        np.testing.assert_allclose(
            values[rows.astype(np.int64)], ours[sample], rtol=2e-6, atol=1e-6, err_msg=name
        )


def _from_table(table: pa.Table, groups: list[str]) -> Result:
    columns = [table.column(name).to_numpy().astype(np.float64) for name in feature_names(groups)]
    return table.column("contact_id").combine_chunks(), np.column_stack(columns)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--orders-per-contact", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    orders, as_of_us = make_orders(args.contacts, args.orders_per_contact, args.seed)
    log.info("orders: %d rows, %d contacts", orders.num_rows, args.contacts)
    rows = compare_rfm(orders, as_of_us, args.repeats)

    print(
        f"\nRFM features, {orders.num_rows:,} orders of {args.contacts:,} contacts,"
        f" {len(GROUPS)} groups;"
        f" {os.cpu_count()} cores, numba {numba.__version__} ({numba.get_num_threads()} threads),"
        f" duckdb {duckdb.__version__}, polars {pl.__version__}; median of {args.repeats}"
    )
    print(f"{'engine':<10} {'median s':>9} {'min s':>9} {'x ours':>7}")
    for row in rows:
        print(
            f"{row['engine']:<10} {row['median_s']:>9.3f} {row['min_s']:>9.3f} {row['ratio']:>7.2f}"
        )


if __name__ == "__main__":
    main()
