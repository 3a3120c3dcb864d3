"""Web features three ways, scorecast FeatureFrame, DuckDB and polars, on simulated web events.

    python benchmarks/web.py --contacts 1000000 --repeats 3

The events come from the simulator (``training/simulate_web.py``: sessions, page categories,
heating converters, job seekers; ~10 events per contact at the defaults). Every engine starts
from the same Arrow table and computes the same 11 columns per contact (``WEB_FEATURES``):
views, seconds on site and sessions (30-minute gap) in the last 7 and 30 days, time-decayed
page points, hot and warm views and the eliminating flag over 30 days (pages mapped to the
bundled ``training/web_config.json``: exact pages, then the longest prefix), days since the
last visit. Timed from the Arrow table to the engine's result (ours: contact factorisation and
page mapping included, a float32 matrix out; DuckDB: one SQL query with window functions
fetched as Arrow; polars: from_arrow, sort, diff over contact, group_by/agg, to_arrow). Each
engine runs once untimed (numba compilation, caches), then the engines take turns for
``--repeats`` rounds. The results are checked against each other on a sample of contacts
before any figure is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.kernels.web_config import CATEGORIES, load_web_config
from scorecast.kernels.web_features import WEB_FEATURES
from scorecast.training.simulate.retail import SimulationConfig
from scorecast.training.simulate.web import simulate_web

log = logging.getLogger("benchmarks.web")

SAMPLE = 2_000
CONFIG = load_web_config(Path(__file__).parents[1] / "training" / "web_config.json")
FIELDS = [f.removeprefix("web_") for f in WEB_FEATURES]

Result = tuple[pa.Array, np.ndarray]


def make_events(n_contacts: int, seed: int = 0) -> tuple[pa.Table, int]:
    """Simulated web_events of ``n_contacts`` contacts (8 % converting) and the as_of (end)."""
    config = SimulationConfig(n_contacts=n_contacts, seed=seed)
    rng = np.random.default_rng(seed)
    ids = pa.array(rng.permutation(n_contacts).astype(np.int64) * 13 + 1_000_003)
    end_us = int(config.end.timestamp() * 1_000_000)
    events, _ = simulate_web(config, ids, rng.random(n_contacts) < 0.08, end_us)
    return events, end_us


def _ordered_entries() -> list[tuple[int, dict]]:
    """Config entries in matching order: exact pages, then prefixes longest first."""
    pages = list(enumerate(CONFIG["pages"]))
    exact = [(i, e) for i, e in pages if "page" in e]
    prefixes = sorted(((i, e) for i, e in pages if "prefix" in e), key=lambda ie: -len(ie[1]["prefix"]))
    return exact + prefixes


def run_scorecast(events: pa.Table, as_of_us: int) -> Result:
    frame = FeatureFrame({"web_events": events}, as_of_us)
    return frame.contact_ids, frame.matrix(list(WEB_FEATURES), {"web": CONFIG})


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run_duckdb(events: pa.Table, as_of_us: int) -> Result:
    whens = []
    for i, e in _ordered_entries():
        test = f"page = {_sql_str(e['page'])}" if "page" in e else f"starts_with(page, {_sql_str(e['prefix'])})"
        whens.append(f"WHEN {test} THEN {i}")
    entry = f"CASE {' '.join(whens)} ELSE -1 END"
    points = "[" + ", ".join(str(e["points"]) for e in CONFIG["pages"]) + "]"
    cats = "[" + ", ".join(str(CATEGORIES.index(e["category"])) for e in CONFIG["pages"]) + "]"
    gap = int(CONFIG["session_gap_minutes"] * 60_000_000)
    half_life = CONFIG["half_life_days"]
    start7, start30 = as_of_us - 7 * US_PER_DAY, as_of_us - 30 * US_PER_DAY
    query = f"""
        WITH e AS (
            SELECT contact_id, epoch_us(ts) AS t, coalesce(duration_s, 0) AS d, {entry} AS entry
            FROM web WHERE epoch_us(ts) <= {as_of_us}),
        last AS (SELECT contact_id, max(t) AS last FROM e GROUP BY contact_id),
        w AS (
            SELECT *, t > {start7} AS in7,
                t - lag(t) OVER (PARTITION BY contact_id ORDER BY t) AS gap30,
                t - lag(t) OVER (PARTITION BY contact_id, t > {start7} ORDER BY t) AS gap7,
                CASE WHEN entry >= 0 THEN {points}[entry + 1] ELSE 0 END AS pts,
                CASE WHEN entry >= 0 THEN {cats}[entry + 1] ELSE -1 END AS cat
            FROM e WHERE t > {start30})
        SELECT l.contact_id,
            count(w.t) FILTER (WHERE in7)::DOUBLE AS views_7d,
            count(w.t)::DOUBLE AS views_30d,
            coalesce(sum(d) FILTER (WHERE in7), 0) AS time_7d,
            coalesce(sum(d), 0) AS time_30d,
            count(w.t) FILTER (WHERE in7 AND (gap7 IS NULL OR gap7 > {gap}))::DOUBLE AS sessions_7d,
            count(w.t) FILTER (WHERE gap30 IS NULL OR gap30 > {gap})::DOUBLE AS sessions_30d,
            coalesce(sum(pts * pow(0.5, ({as_of_us} - w.t) / {US_PER_DAY}e0 / {half_life})), 0) AS points_30d,
            count(w.t) FILTER (WHERE cat = 2)::DOUBLE AS hot_views_30d,
            count(w.t) FILTER (WHERE cat = 1)::DOUBLE AS warm_views_30d,
            coalesce(max((cat = 3)::INT), 0)::DOUBLE AS eliminating_30d,
            ({as_of_us} - l.last) / {US_PER_DAY}e0 AS days_since_visit
        FROM last l LEFT JOIN w USING (contact_id)
        GROUP BY l.contact_id, l.last"""
    with duckdb.connect() as con:
        con.register("web", events)
        relation = con.sql(query)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        result = fetch()
    return _from_table(result)


def run_polars(events: pa.Table, as_of_us: int) -> Result:
    df = pl.from_arrow(events)
    page = pl.col("page")
    entry: pl.Expr = pl.lit(-1)
    for i, e in reversed(_ordered_entries()):  # inside out: the first entry is tested first
        test = (page == e["page"]) if "page" in e else page.str.starts_with(e["prefix"])
        entry = pl.when(test).then(pl.lit(i)).otherwise(entry)
    points = pl.Series([float(e["points"]) for e in CONFIG["pages"]])
    cats = pl.Series([CATEGORIES.index(e["category"]) for e in CONFIG["pages"]])
    gap = int(CONFIG["session_gap_minutes"] * 60_000_000)
    t = pl.col("ts").dt.epoch("us")
    start7, start30 = as_of_us - 7 * US_PER_DAY, as_of_us - 30 * US_PER_DAY
    seen = df.filter(t <= as_of_us)
    last = seen.group_by("contact_id").agg(((as_of_us - t.max()) / US_PER_DAY).alias("days_since_visit"))
    w = (
        seen.filter(t > start30)
        .with_columns(t.alias("t"), pl.col("duration_s").fill_null(0.0).alias("d"), entry.alias("entry"))
        .sort(["contact_id", "t"])
        .with_columns(
            (pl.col("t") > start7).alias("in7"),
            pl.when(pl.col("entry") >= 0).then(pl.col("entry")).otherwise(0).alias("e0"),
        )
        .with_columns(
            pl.col("t").diff().over("contact_id").alias("gap30"),
            pl.col("t").diff().over(["contact_id", "in7"]).alias("gap7"),
        )
    )
    w = w.with_columns(
        pl.when(pl.col("entry") >= 0).then(pl.lit(points).gather(pl.col("e0"))).otherwise(0.0).alias("pts"),
        pl.when(pl.col("entry") >= 0).then(pl.lit(cats).gather(pl.col("e0"))).otherwise(-1).alias("cat"),
    )
    new7 = pl.col("in7") & (pl.col("gap7").is_null() | (pl.col("gap7") > gap))
    new30 = pl.col("gap30").is_null() | (pl.col("gap30") > gap)
    decay = 0.5 ** ((as_of_us - pl.col("t")) / US_PER_DAY / CONFIG["half_life_days"])
    agg = w.group_by("contact_id").agg(
        pl.col("in7").sum().cast(pl.Float64).alias("views_7d"),
        pl.len().cast(pl.Float64).alias("views_30d"),
        pl.col("d").filter(pl.col("in7")).sum().alias("time_7d"),
        pl.col("d").sum().alias("time_30d"),
        new7.sum().cast(pl.Float64).alias("sessions_7d"),
        new30.sum().cast(pl.Float64).alias("sessions_30d"),
        (pl.col("pts") * decay).sum().alias("points_30d"),
        (pl.col("cat") == 2).sum().cast(pl.Float64).alias("hot_views_30d"),
        (pl.col("cat") == 1).sum().cast(pl.Float64).alias("warm_views_30d"),
        (pl.col("cat") == 3).any().cast(pl.Float64).alias("eliminating_30d"),
    )
    result = last.join(agg, on="contact_id", how="left").fill_null(0.0)
    return _from_table(result.to_arrow())


ENGINES: dict[str, Callable[[pa.Table, int], Result]] = {
    "scorecast": run_scorecast,
    "duckdb": run_duckdb,
    "polars": run_polars,
}


def _from_table(table: pa.Table) -> Result:
    columns = [table.column(name).to_numpy().astype(np.float64) for name in FIELDS]
    return table.column("contact_id").combine_chunks(), np.column_stack(columns)


def _check_agreement(results: dict[str, Result]) -> None:
    """Assert every engine found the same contacts and, on a sample, the same values."""
    ids, ours = results["scorecast"]
    rng = np.random.default_rng(1)
    sample = rng.choice(len(ids), min(SAMPLE, len(ids)), replace=False)
    sample_ids = ids.take(pa.array(sample))
    for name, (other_ids, values) in results.items():
        if name == "scorecast":
            continue
        if len(other_ids) != len(ids):
            raise AssertionError(f"{name}: {len(other_ids)} contacts, scorecast {len(ids)}")
        rows = pc.index_in(sample_ids, value_set=other_ids).to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(values[rows.astype(np.int64)], ours[sample], rtol=2e-6, atol=1e-5, err_msg=name)


def compare_web(events: pa.Table, as_of_us: int, repeats: int) -> list[dict[str, object]]:
    """Time every engine (checked to agree first); one dict per engine: engine, median_s,
    min_s, ratio (engine median / scorecast median)."""
    results = {}
    for name, run in ENGINES.items():
        log.info("warm-up: %s", name)
        results[name] = run(events, as_of_us)
    _check_agreement(results)
    times: dict[str, list[float]] = {name: [] for name in ENGINES}
    for round_ in range(repeats):
        for name, run in ENGINES.items():
            start = time.perf_counter()
            run(events, as_of_us)
            times[name].append(time.perf_counter() - start)
        log.info("round %d/%d: %s", round_ + 1, repeats, {k: f"{v[-1]:.3f}" for k, v in times.items()})
    ours = statistics.median(times["scorecast"])
    return [
        {"engine": name, "median_s": statistics.median(t), "min_s": min(t), "ratio": statistics.median(t) / ours}
        for name, t in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    events, as_of_us = make_events(args.contacts, args.seed)
    log.info("web_events: %d rows, %d contacts, simulated in %.1f s", events.num_rows, args.contacts, time.perf_counter() - start)
    rows = compare_web(events, as_of_us, args.repeats)
    print(
        f"\nweb features ({len(WEB_FEATURES)} columns), {events.num_rows:,} web events of {args.contacts:,} contacts;"
        f" {os.cpu_count()} cores, numba {numba.__version__} ({numba.get_num_threads()} threads),"
        f" duckdb {duckdb.__version__}, polars {pl.__version__}; median of {args.repeats}"
    )
    print(f"{'engine':<10} {'median s':>9} {'min s':>9} {'x ours':>7}")
    for row in rows:
        print(f"{row['engine']:<10} {row['median_s']:>9.3f} {row['min_s']:>9.3f} {row['ratio']:>7.2f}")


if __name__ == "__main__":
    main()
