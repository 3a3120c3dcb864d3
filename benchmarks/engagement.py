"""E-mail features three ways, scorecast FeatureFrame, DuckDB and polars, on simulated e-mail events.

    python benchmarks/engagement.py --contacts 1000000 --repeats 3

The events come from the simulator (``training/simulate_email.py``: about 30 per contact with
``--campaigns-per-week 4.5``). Every engine starts from the same Arrow tables (email_events,
campaigns) and computes the same columns per contact: distinct sends, opens, clicks and
bounces (all time and within 7/30/90/365 days), days since the last send, open and click,
the unsubscribed and hard-bounced flags, and the time-decayed weight of every keyword
(opens 1, clicks 3, half-life 90 days; campaigns' keyword lists joined in). Timed from the
Arrow tables to the engine's result (ours: factorising contact and campaign ids included, a
float32 matrix out; DuckDB: SQL fetched as Arrow; polars: from_arrow, group_by/agg/join,
to_arrow). Each engine runs once untimed first, then the engines take turns for
``--repeats`` rounds. The results are checked against each other on a sample of contacts
before any figure is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.training.simulate.email import KEYWORDS, EmailConfig, simulate_email

log = logging.getLogger("benchmarks.engagement")

END_US = 1_767_225_600_000_000  # 2026-01-01
SAMPLE = 2_000
KINDS = {"sent": "sends", "open": "opens", "click": "clicks", "bounce": "bounces"}
WINDOWS = (7, 30, 90, 365)
HALF_LIFE, CLICK_WEIGHT = 90.0, 3.0
Result = tuple[pa.Array, np.ndarray]


def feature_names(keywords: list[str]) -> list[str]:
    """The compared columns (FeatureFrame names; the other engines use the same aliases)."""
    return [
        *(f"email_{k}" for k in KINDS.values()),
        *(f"email_{k}_{w}d" for k in KINDS.values() for w in WINDOWS),
        "email_days_since_send",
        "email_days_since_open",
        "email_days_since_click",
        "email_unsubscribed",
        "email_hard_bounced",
        *(f"keyword_weight:{k}" for k in keywords),
    ]


def make_tables(n_contacts: int, campaigns_per_week: float, seed: int) -> dict[str, pa.Table]:
    """Simulated campaigns and e-mail events of contacts who all signed up before the window."""
    rng = np.random.default_rng(seed)
    ids = pa.array(rng.permutation(n_contacts).astype(np.int64) * 13 + 1_000_003)
    signup = np.full(n_contacts, END_US - 400 * US_PER_DAY, np.int64)
    config = EmailConfig(campaigns_per_week=campaigns_per_week)
    tables = simulate_email(config, ids, signup, END_US, 365, seed)
    return {"email_events": tables["email_events"], "campaigns": tables["campaigns"]}


def run_scorecast(tables: dict[str, pa.Table], as_of_us: int, keywords: list[str]) -> Result:
    frame = FeatureFrame(tables, as_of_us)
    return frame.contact_ids, frame.matrix(feature_names(keywords))


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run_duckdb(tables: dict[str, pa.Table], as_of_us: int, keywords: list[str]) -> Result:
    days = f"/ {US_PER_DAY}e0"
    counts = [f"count(*) FILTER (WHERE event = '{e}')::DOUBLE AS email_{k}" for e, k in KINDS.items()]
    counts += [
        f"count(*) FILTER (WHERE event = '{e}' AND first_us > {as_of_us - w * US_PER_DAY})::DOUBLE AS email_{k}_{w}d"
        for e, k in KINDS.items()
        for w in WINDOWS
    ]
    since = [
        f"({as_of_us} - max(last_us) FILTER (WHERE event = '{e}')) {days} AS email_days_since_{n}"
        for e, n in (("sent", "send"), ("open", "open"), ("click", "click"))
    ]
    flags = [
        "bool_or(event = 'unsubscribe')::DOUBLE AS email_unsubscribed",
        "coalesce(max(last_us) FILTER (WHERE event = 'bounce') >= coalesce(max(last_us) FILTER (WHERE event = 'sent'), -1), false)::DOUBLE"
        " AS email_hard_bounced",
    ]
    weights = ", ".join(f'coalesce(sum(w) FILTER (WHERE kw = {_sql_str(k)}), 0) AS "keyword_weight:{k}"' for k in keywords)
    kw_columns = ", ".join(f'coalesce(k."keyword_weight:{kw}", 0) AS "keyword_weight:{kw}"' for kw in keywords)
    query = f"""
        WITH e AS (
            SELECT contact_id, campaign_id, event, min(epoch_us(ts)) AS first_us, max(epoch_us(ts)) AS last_us
            FROM email_events WHERE epoch_us(ts) <= {as_of_us} GROUP BY ALL
        ), per AS (
            SELECT contact_id, {", ".join(counts + since + flags)} FROM e GROUP BY contact_id
        ), kws AS (
            SELECT DISTINCT campaign_id, unnest(keywords) AS kw FROM campaigns
        ), k AS (
            SELECT contact_id, {weights} FROM (
                SELECT e.contact_id, kws.kw,
                    (CASE WHEN e.event = 'open' THEN 1.0 ELSE {CLICK_WEIGHT} END)
                    * pow(0.5, ({as_of_us} - e.first_us) {days} / {HALF_LIFE}) AS w
                FROM e JOIN kws USING (campaign_id) WHERE e.event IN ('open', 'click')
            ) GROUP BY contact_id
        )
        SELECT per.*, {kw_columns} FROM per LEFT JOIN k USING (contact_id)"""
    with duckdb.connect() as con:
        con.register("email_events", tables["email_events"])
        con.register("campaigns", tables["campaigns"])
        relation = con.sql(query)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        result = fetch()
    return _from_table(result, keywords)


def run_polars(tables: dict[str, pa.Table], as_of_us: int, keywords: list[str]) -> Result:
    events = pl.from_arrow(tables["email_events"])
    campaigns = pl.from_arrow(tables["campaigns"].select(["campaign_id", "keywords"]))
    t = pl.col("ts").dt.epoch("us")
    e = (
        events.filter(t <= as_of_us)
        .group_by(["contact_id", "campaign_id", "event"])
        .agg(t.min().alias("first_us"), t.max().alias("last_us"))
    )
    is_ = {k: pl.col("event") == k for k in ("sent", "open", "click", "bounce", "unsubscribe")}
    per = e.group_by("contact_id").agg(
        *(is_[ev].sum().cast(pl.Float64).alias(f"email_{k}") for ev, k in KINDS.items()),
        *(
            (is_[ev] & (pl.col("first_us") > as_of_us - w * US_PER_DAY)).sum().cast(pl.Float64).alias(f"email_{k}_{w}d")
            for ev, k in KINDS.items()
            for w in WINDOWS
        ),
        *(
            ((as_of_us - pl.col("last_us").filter(is_[ev]).max()) / US_PER_DAY).alias(f"email_days_since_{n}")
            for ev, n in (("sent", "send"), ("open", "open"), ("click", "click"))
        ),
        is_["unsubscribe"].any().cast(pl.Float64).alias("email_unsubscribed"),
        (pl.col("last_us").filter(is_["bounce"]).max() >= pl.col("last_us").filter(is_["sent"]).max().fill_null(-1))
        .fill_null(False)
        .cast(pl.Float64)
        .alias("email_hard_bounced"),
    )
    kws = campaigns.explode("keywords").rename({"keywords": "kw"}).unique()
    weighted = (
        e.filter(is_["open"] | is_["click"])
        .join(kws, on="campaign_id")
        .with_columns(
            (
                pl.when(is_["open"]).then(1.0).otherwise(CLICK_WEIGHT)
                * 0.5 ** ((as_of_us - pl.col("first_us")) / US_PER_DAY / HALF_LIFE)
            ).alias("w")
        )
        .group_by("contact_id")
        .agg(*(pl.col("w").filter(pl.col("kw") == k).sum().alias(f"keyword_weight:{k}") for k in keywords))
    )
    result = per.join(weighted, on="contact_id", how="left").with_columns(
        *(pl.col(f"keyword_weight:{k}").fill_null(0.0) for k in keywords)
    )
    return _from_table(result.to_arrow(), keywords)


ENGINES: dict[str, Callable[[dict[str, pa.Table], int, list[str]], Result]] = {
    "scorecast": run_scorecast,
    "duckdb": run_duckdb,
    "polars": run_polars,
}


def _from_table(table: pa.Table, keywords: list[str]) -> Result:
    columns = [table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in feature_names(keywords)]
    return table.column("contact_id").combine_chunks(), np.column_stack(columns)


def _check_agreement(results: dict[str, Result]) -> None:
    """Every engine has the same values on a sample of the contacts with events up to as_of."""
    ids, ours = results["scorecast"]
    for name, (other_ids, values) in results.items():
        if name == "scorecast":
            continue
        rng = np.random.default_rng(1)
        sample = rng.choice(len(other_ids), min(SAMPLE, len(other_ids)), replace=False)
        rows = pc.index_in(other_ids.take(pa.array(sample)), value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)
        np.testing.assert_allclose(values[sample], ours[rows], rtol=2e-6, atol=1e-5, equal_nan=True, err_msg=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--campaigns-per-week", type=float, default=4.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of engines")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    tables = make_tables(args.contacts, args.campaigns_per_week, args.seed)
    events = tables["email_events"]
    log.info("simulated %d e-mail events of %d contacts in %.1f s", events.num_rows, args.contacts, time.perf_counter() - start)
    keywords = list(KEYWORDS)
    as_of_us = END_US - 30 * US_PER_DAY  # some events after as_of
    engines = {name: ENGINES[name] for name in args.engines.split(",")}
    results = {}
    for name, run in engines.items():
        log.info("warm-up: %s", name)
        results[name] = run(tables, as_of_us, keywords)
    _check_agreement(results)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for round_ in range(args.repeats):
        for name, run in engines.items():
            t0 = time.perf_counter()
            run(tables, as_of_us, keywords)
            times[name].append(time.perf_counter() - t0)
        log.info("round %d/%d: %s", round_ + 1, args.repeats, {k: f"{v[-1]:.3f}" for k, v in times.items()})
    ours = statistics.median(times["scorecast"])
    print(
        f"\ne-mail features ({len(feature_names(keywords))} columns, {len(keywords)} keywords), {events.num_rows:,} events of"
        f" {args.contacts:,} contacts; {os.cpu_count()} cores, numba {numba.__version__} ({numba.get_num_threads()} threads),"
        f" duckdb {duckdb.__version__}, polars {pl.__version__}; median of {args.repeats}"
    )
    print(f"{'engine':<10} {'median s':>9} {'min s':>9} {'x ours':>7}")
    for name, t in times.items():
        print(f"{name:<10} {statistics.median(t):>9.3f} {min(t):>9.3f} {statistics.median(t) / ours:>7.2f}")


if __name__ == "__main__":
    main()
