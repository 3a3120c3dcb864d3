"""Tests of training/simulate.py: shapes, invariants, the truth, the generative parameters, writing.

Statistical checks compare an empirical mean with its model value within 4-5 standard errors
estimated from the same sample (cluster-robust where orders of one contact are correlated):
with fixed seeds they are deterministic, and a real bias of that size would be a bug.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy.special import hyp2f1

from scorecast.kernels.time_units import US_PER_DAY
from scorecast.tables import TABLES
from scorecast.training.simulate import retail as sim
from scorecast.training.simulate.products import ProductConfig
from scorecast.training.simulate.retail import SimulationConfig, group_names, read_truth, simulate_base, write_base

N = 20_000
TS = pa.timestamp("us", tz="UTC")
ORDER_SCHEMA = pa.schema(
    [
        ("contact_id", pa.int64()),
        ("ts", TS),
        ("amount", pa.float64()),
        ("sku", pa.string()),
        ("product_group", pa.string()),
        ("promo", pa.bool_()),
    ]
)


@pytest.fixture(scope="module")
def config() -> SimulationConfig:
    return SimulationConfig(n_contacts=N, seed=11)


@pytest.fixture(scope="module")
def base(config: SimulationConfig) -> sim.SimulatedBase:
    return simulate_base(config)


@pytest.fixture(scope="module")
def small_base() -> sim.SimulatedBase:
    return simulate_base(SimulationConfig(n_contacts=2_000, seed=5))


def _rows(base: sim.SimulatedBase, table: pa.Table) -> np.ndarray:
    """Row of each of ``table``'s contacts in ``base.contacts`` (and ``truth_contacts``)."""
    rows = pc.index_in(table.column("contact_id"), value_set=base.contacts.column("contact_id"))
    assert rows.null_count == 0
    return rows.to_numpy()


def _us(table: pa.Table, column: str) -> np.ndarray:
    """A timestamp column as int64 microseconds, nulls as 0."""
    return pc.fill_null(table.column(column).cast(pa.int64()), 0).to_numpy()


def _end_us(config: SimulationConfig) -> int:
    return (config.end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --- determinism -------------------------------------------------------------------------


def test_same_seed_same_base(small_base: sim.SimulatedBase) -> None:
    """A config and seed always give the very same tables."""
    again = simulate_base(small_base.config)
    for name in ("contacts", "orders", "truth_contacts", "future_orders", "catalogue"):
        assert getattr(again, name).equals(getattr(small_base, name)), name


def test_different_seed_different_base(small_base: sim.SimulatedBase) -> None:
    """Another seed gives other ids, other orders and other latent parameters."""
    other = simulate_base(SimulationConfig(n_contacts=2_000, seed=6))
    assert not other.contacts.column("contact_id").equals(small_base.contacts.column("contact_id"))
    assert not other.orders.column("amount").equals(small_base.orders.column("amount"))
    assert not other.truth_contacts.column("lam").equals(small_base.truth_contacts.column("lam"))


# --- schemas -----------------------------------------------------------------------------


def test_orders_schema(base: sim.SimulatedBase) -> None:
    """orders and future_orders have the orders table's columns with exact Arrow types."""
    assert base.orders.schema == ORDER_SCHEMA
    assert base.future_orders.schema == ORDER_SCHEMA
    assert set(TABLES["orders"].columns) == set(ORDER_SCHEMA.names)


def test_contacts_schema(base: sim.SimulatedBase) -> None:
    """contacts has an id and plausible attributes; age has some nulls, nothing else does."""
    assert base.contacts.schema == pa.schema(
        [
            ("contact_id", pa.int64()),
            ("country", pa.string()),
            ("signup_ts", TS),
            ("channel", pa.string()),
            ("age", pa.int32()),
        ]
    )
    assert base.contacts.num_rows == N
    for name in ("contact_id", "country", "signup_ts", "channel"):
        assert base.contacts.column(name).null_count == 0, name
    assert 0.03 < base.contacts.column("age").null_count / N < 0.07
    ages = base.contacts.column("age").drop_null().to_numpy()
    assert ages.min() >= 18 and ages.max() <= 90
    countries = base.contacts.column("country").value_counts().to_pylist()
    shares = {c["values"]: c["counts"] / N for c in countries}
    assert set(shares) == set(sim.COUNTRIES) and max(shares, key=shares.get) == "FR"


def test_truth_schema(base: sim.SimulatedBase) -> None:
    """truth_contacts: latent parameters, dropout, future counts and preferences per group."""
    groups = base.groups
    expected = pa.schema(
        [
            ("contact_id", pa.int64()),
            ("is_buyer", pa.bool_()),
            ("first_order_ts", TS),
            ("lam", pa.float64()),
            ("p", pa.float64()),
            ("nu", pa.float64()),
            ("promo_sensitivity", pa.float64()),
            ("dropout_ts", TS),
            ("alive_at_end", pa.bool_()),
            ("n_orders", pa.int64()),
            ("n_future_orders_90d", pa.int64()),
            ("n_future_orders_365d", pa.int64()),
            ("future_spend_365d", pa.float64()),
            *[(f"future_orders_90d:{g}", pa.int64()) for g in groups],
            *[(f"pref:{g}", pa.float64()) for g in groups],
            *[(name, pa.bool_()) for name in ("web_visitor", "web_heating", "job_seeker", "converts_30d")],
        ]
    )
    assert base.truth_contacts.schema == expected
    assert base.truth_contacts.column("contact_id").equals(base.contacts.column("contact_id"))
    assert base.catalogue.schema == pa.schema(
        [
            ("sku", pa.string()),
            ("product_group", pa.string()),
            ("base_price", pa.float64()),
            ("popularity", pa.float64()),
            ("group_popularity", pa.float64()),
        ]
    )


def test_int_ids_are_distinct_large_and_shuffled(base: sim.SimulatedBase) -> None:
    """int64 ids are unique, not 0..n-1, and not in increasing order."""
    ids = base.contacts.column("contact_id").to_numpy()
    assert np.unique(ids).size == N
    assert ids.min() > N
    assert not np.all(np.diff(ids) > 0)


def test_string_ids() -> None:
    """id_type='string' gives unique ids like C0001234 in every table."""
    base = simulate_base(SimulationConfig(n_contacts=3_000, seed=2, id_type="string"))
    ids = base.contacts.column("contact_id")
    assert ids.type == pa.string()
    assert pc.all(pc.match_substring_regex(ids, r"^C\d{7}$")).as_py()
    assert pc.count_distinct(ids).as_py() == 3_000
    for table in (base.orders, base.future_orders, base.truth_contacts):
        assert table.schema.field("contact_id").type == pa.string()
        assert pc.all(pc.is_in(table.column("contact_id"), value_set=ids)).as_py()


def test_catalogue_and_group_names(base: sim.SimulatedBase) -> None:
    """SKUs are SKU-00042 strings grouped by product group; orders only use catalogue pairs."""
    assert base.groups == ("shoes", "apparel", "beauty", "home", "sports", "electronics", "books", "toys")
    cat = base.catalogue
    assert cat.num_rows == 8 * 50
    assert cat.column("sku").to_pylist()[:2] == ["SKU-00001", "SKU-00002"]
    assert cat.column("product_group").to_pylist()[49:51] == ["shoes", "apparel"]
    assert pc.min(cat.column("base_price")).as_py() > 0
    pairs = set(zip(cat.column("sku").to_pylist(), cat.column("product_group").to_pylist(), strict=True))
    for table in (base.orders, base.future_orders):
        seen = table.group_by(["sku", "product_group"]).aggregate([]).to_pylist()
        assert {(r["sku"], r["product_group"]) for r in seen} <= pairs
    assert group_names(10)[8:] == ("shoes_2", "apparel_2")


# --- time invariants ---------------------------------------------------------------------


def test_orders_in_time_order_and_windows(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """orders stop at end, future_orders lie in (end, end + future_days], both sorted by ts."""
    end = _end_us(config)
    past, future = _us(base.orders, "ts"), _us(base.future_orders, "ts")
    assert past.max() <= end
    assert past.min() >= end - config.history_days * US_PER_DAY
    assert future.min() > end and future.max() <= end + config.future_days * US_PER_DAY
    assert np.all(np.diff(past) >= 0) and np.all(np.diff(future) >= 0)
    # a real order log, not grouped by contact
    ids = base.orders.column("contact_id").to_numpy()
    assert np.mean(ids[1:] == ids[:-1]) < 0.01


def test_orders_between_signup_and_dropout(base: sim.SimulatedBase) -> None:
    """Every order is at or after signup, the first one is first_order_ts, none after dropout."""
    truth = base.truth_contacts
    signup = _us(base.contacts, "signup_ts")
    first = _us(truth, "first_order_ts")
    dropout = _us(truth, "dropout_ts")
    both = pa.concat_tables([base.orders, base.future_orders])
    rows, ts = _rows(base, both), _us(both, "ts")
    assert np.all(ts >= signup[rows])
    assert np.all(ts <= dropout[rows])
    earliest = np.full(N, np.iinfo(np.int64).max)
    np.minimum.at(earliest, rows, ts)
    buyer = truth.column("is_buyer").to_numpy(zero_copy_only=False)
    assert np.array_equal(earliest[buyer], first[buyer])
    assert np.all(earliest[~buyer] == np.iinfo(np.int64).max)  # non-buyers never order


def test_dropout_and_alive_consistent(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """dropout_ts is null exactly for non-buyers; alive_at_end means dropout after end."""
    truth = base.truth_contacts
    buyer = truth.column("is_buyer").to_numpy(zero_copy_only=False)
    assert np.array_equal(truth.column("dropout_ts").is_null().to_numpy(zero_copy_only=False), ~buyer)
    assert np.array_equal(truth.column("first_order_ts").is_null().to_numpy(zero_copy_only=False), ~buyer)
    dropout = _us(truth, "dropout_ts")
    alive = truth.column("alive_at_end").to_numpy(zero_copy_only=False)
    assert np.array_equal(alive, buyer & (dropout > _end_us(config)))
    # contacts who drop out before the horizon do so at their last order
    both = pa.concat_tables([base.orders, base.future_orders])
    last = np.zeros(N, dtype=np.int64)
    np.maximum.at(last, _rows(base, both), _us(both, "ts"))
    horizon = _end_us(config) + config.future_days * US_PER_DAY
    gone = buyer & (dropout <= horizon)
    assert gone.sum() > 0.1 * buyer.sum()
    assert np.array_equal(dropout[gone], last[gone])


# --- truth consistent with the future orders ---------------------------------------------


def test_truth_counts_match_future_orders(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """Future counts, spend and per-group counts recompute from future_orders; n_orders from orders."""
    truth, fut = base.truth_contacts, base.future_orders
    rows = _rows(base, fut)
    days = (_us(fut, "ts") - _end_us(config)) / US_PER_DAY
    for window in (90, 365):
        got = np.bincount(rows[days <= window], minlength=N)
        assert np.array_equal(got, truth.column(f"n_future_orders_{window}d").to_numpy()), window
    spend = np.bincount(rows[days <= 365], weights=fut.column("amount").to_numpy()[days <= 365], minlength=N)
    np.testing.assert_allclose(truth.column("future_spend_365d").to_numpy(), spend, atol=0.006)
    group = fut.column("product_group").to_numpy(zero_copy_only=False)
    for g in base.groups:
        sel = (days <= 90) & (group == g)
        assert np.array_equal(np.bincount(rows[sel], minlength=N), truth.column(f"future_orders_90d:{g}").to_numpy()), g
    assert np.array_equal(np.bincount(_rows(base, base.orders), minlength=N), truth.column("n_orders").to_numpy())


# --- the generative parameters -----------------------------------------------------------


def test_buyer_share(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """The share of contacts who ever buy is buyer_share within 4 binomial standard errors."""
    share = pc.mean(base.truth_contacts.column("is_buyer").cast(pa.float64())).as_py()
    se = np.sqrt(config.buyer_share * (1 - config.buyer_share) / N)
    assert abs(share - config.buyer_share) < 4 * se


def test_latent_parameters_match_their_priors(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """lam, p, nu are drawn from Gamma(r, alpha), Beta(a, b), Gamma(q, gamma): means within 5 SE."""
    truth = base.truth_contacts
    for name, mean in (
        ("lam", config.r / config.alpha),
        ("p", config.a / (config.a + config.b)),
        ("nu", config.q / config.gamma),
    ):
        x = truth.column(name).to_numpy()
        assert abs(x.mean() - mean) < 5 * x.std() / np.sqrt(N), name


def test_bg_nbd_repeat_purchases_match_closed_form() -> None:
    """Repeat purchases in the first year after the first one follow BG/NBD (Fader et al. 2005).

    P(X(t) = 0) = (alpha / (alpha + t))^r holds whatever a and b (no dropout before the first
    repeat); E[X(t)] is their eq. (9), which needs a > 1, hence this config. Both within 4 SE.
    """
    # promotion campaigns add and remove purchases: the pure BG/NBD process has none
    config = SimulationConfig(
        n_contacts=30_000, seed=21, buyer_share=1.0, r=0.8, alpha=60.0, a=2.5, b=4.0, products=ProductConfig(n_campaigns=0)
    )
    base = simulate_base(config)
    t = 365.0
    first = _us(base.truth_contacts, "first_order_ts")
    both = pa.concat_tables([base.orders, base.future_orders])
    rows, ts = _rows(base, both), _us(both, "ts")
    repeat = (ts > first[rows]) & (ts <= first[rows] + int(t * US_PER_DAY))
    x = np.bincount(rows[repeat], minlength=config.n_contacts)
    n = x.size
    r, alpha, a, b = config.r, config.alpha, config.a, config.b
    p0 = (alpha / (alpha + t)) ** r
    assert abs(np.mean(x == 0) - p0) < 4 * np.sqrt(p0 * (1 - p0) / n)
    expected = (a + b - 1) / (a - 1) * (1 - p0 * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    assert abs(x.mean() - expected) < 4 * x.std() / np.sqrt(n)


def test_alive_at_end_matches_bg_nbd_p_alive(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """The alive share among buyers matches the mean BG/NBD P(alive | x, t_x, T) within 4 SE.

    P(alive) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x)),
    Fader, Hardie & Lee (2005) eq. (11), from each buyer's observed history up to end.
    """
    truth, orders = base.truth_contacts, base.orders
    buyer = truth.column("is_buyer").to_numpy(zero_copy_only=False)
    rows, ts = _rows(base, orders), _us(orders, "ts")
    last = np.zeros(N, dtype=np.int64)
    np.maximum.at(last, rows, ts)
    day = US_PER_DAY
    first = _us(truth, "first_order_ts")[buyer]
    x = truth.column("n_orders").to_numpy()[buyer] - 1
    t_x = (last[buyer] - first) / day
    big_t = (_end_us(config) - first) / day
    r, alpha, a, b = config.r, config.alpha, config.a, config.b
    with np.errstate(divide="ignore"):  # x = 0 terms are masked out below
        odds = a / (b + x - 1) * ((alpha + big_t) / (alpha + t_x)) ** (r + x)
    p_alive = 1 / (1 + np.where(x > 0, odds, 0.0))
    alive = truth.column("alive_at_end").to_numpy(zero_copy_only=False)[buyer]
    se = np.sqrt(np.sum(p_alive * (1 - p_alive))) / p_alive.size
    assert abs(alive.mean() - p_alive.mean()) < 4 * se


def test_gamma_gamma_spend(base: sim.SimulatedBase, config: SimulationConfig) -> None:
    """Amounts: E[amount | nu] = p / nu per order, and the mean order is p * gamma / (q - 1).

    amount * nu / p is independent across orders given nu, so its plain SE applies; the
    population mean uses a cluster-robust SE because one contact's orders share nu.
    """
    orders = base.orders
    amount = orders.column("amount").to_numpy()
    assert amount.min() >= 0.01
    assert np.array_equal(np.round(amount, 2), amount)
    rows = _rows(base, orders)
    nu = base.truth_contacts.column("nu").to_numpy()
    ratio = amount * nu[rows] / config.p
    assert abs(ratio.mean() - 1) < 5 * ratio.std() / np.sqrt(ratio.size)
    mean = config.p * config.gamma / (config.q - 1)
    got = amount.mean()
    sums, counts = np.bincount(rows, weights=amount, minlength=N), np.bincount(rows, minlength=N)
    se = np.sqrt(np.sum((sums - got * counts) ** 2)) / amount.size
    assert abs(got - mean) < 5 * se
    assert 30 < np.median(amount) < 50  # retail-plausible, below the mean: right-skewed


def test_group_shares_follow_preferences(base: sim.SimulatedBase) -> None:
    """A contact's share of orders per group tracks pref:<group>, and past groups predict future ones."""
    truth, orders = base.truth_contacts, base.orders
    rows = _rows(base, orders)
    index = {g: i for i, g in enumerate(base.groups)}
    group = np.vectorize(index.__getitem__)(orders.column("product_group").to_numpy(zero_copy_only=False))
    k = len(base.groups)
    counts = np.bincount(rows * k + group, minlength=N * k).reshape(N, k)
    total = counts.sum(axis=1)
    pref = np.column_stack([truth.column(f"pref:{g}").to_numpy() for g in base.groups])
    np.testing.assert_allclose(pref.sum(axis=1), 1.0)
    many = total >= 5
    share = counts[many] / total[many, None]
    assert np.corrcoef(share.ravel(), pref[many].ravel())[0, 1] > 0.9
    # future 90-day orders land in a group the contact already bought in far more often than
    # another buyer's future orders would (the baseline: rows shuffled among past buyers)
    future = np.column_stack([truth.column(f"future_orders_90d:{g}").to_numpy() for g in base.groups])
    past_buyers = np.flatnonzero(total > 0)
    bought, future = counts[past_buyers] > 0, future[past_buyers]
    in_bought = future[bought].sum() / future.sum()
    shuffled = future[np.random.default_rng(0).permutation(past_buyers.size)]
    baseline = shuffled[bought].sum() / shuffled.sum()
    assert in_bought > baseline + 0.2


def test_promo_follows_sensitivity(base: sim.SimulatedBase) -> None:
    """An order is a promo with its contact's promo_sensitivity: mean residual within 5 SE.

    Contacts ever treated by a campaign are left out: their extra campaign orders are promos.
    """
    treated = base.promotions.filter(base.promotions.column("treated")).column("contact_id")
    untreated = base.orders.filter(pc.invert(pc.is_in(base.orders.column("contact_id"), value_set=treated)))
    rows = _rows(base, untreated)
    s = base.truth_contacts.column("promo_sensitivity").to_numpy()[rows]
    promo = untreated.column("promo").to_numpy(zero_copy_only=False)
    se = np.sqrt(np.sum(s * (1 - s))) / s.size
    assert abs(np.mean(promo - s)) < 5 * se
    high, low = s > 0.5, s < 0.1
    assert promo[high].mean() > 3 * promo[low].mean()


def test_retail_volume(base: sim.SimulatedBase) -> None:
    """Most buyers buy 1-3 times in the history, a tail buys a lot: about 3-6 orders per contact."""
    n_orders = base.truth_contacts.column("n_orders").to_numpy()
    buyers = n_orders[n_orders > 0]
    assert 2.5 < base.orders.num_rows / N < 6
    assert np.mean(buyers <= 3) > 0.6
    assert np.quantile(buyers, 0.99) > 20


# --- edge configs and validation ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"buyer_share": 0.0}, {"n_contacts": 1, "buyer_share": 1.0}, {"n_groups": 1, "skus_per_group": 1}],
    ids=["no-buyers", "one-contact", "one-sku"],
)
def test_edge_configs(kwargs: dict[str, object]) -> None:
    """Degenerate but valid configs still give well-typed tables."""
    base = simulate_base(SimulationConfig(**{"n_contacts": 200, "seed": 1, **kwargs}))
    assert base.orders.schema == ORDER_SCHEMA
    assert base.future_orders.schema == ORDER_SCHEMA
    if kwargs.get("buyer_share") == 0.0:
        assert base.orders.num_rows == 0 and base.future_orders.num_rows == 0
    else:
        assert base.orders.num_rows > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_contacts": -3}, ValueError, r"n_contacts must be > 0, got -3"),
        ({"n_contacts": 2.5}, TypeError, r"n_contacts must be an integer, got 2.5"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"future_days": 100}, ValueError, r"future_days must be >= 365, got 100"),
        ({"buyer_share": 1.5}, ValueError, r"buyer_share must be in \[0, 1\], got 1.5"),
        ({"id_type": "uuid"}, ValueError, r"id_type must be one of \('int64', 'string'\), got 'uuid'"),
        ({"alpha": 0.0}, ValueError, r"alpha must be > 0, got 0.0"),
        ({"q": 1.0}, ValueError, r"q must be > 1 \(finite mean spend\), got 1.0"),
        ({"end": "2026-01-01"}, TypeError, r"end must be a datetime, got '2026-01-01'"),
    ],
    ids=[
        "negative-contacts", "float-contacts", "negative-seed", "short-future", "share", "id-type", "alpha", "q",
        "end-str",
    ],  # fmt: skip
)
def test_config_errors_name_the_value(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    """A bad config value raises at construction with the field and the value in the message."""
    with pytest.raises(error, match=match):
        SimulationConfig(**kwargs)  # type: ignore[arg-type]


def test_end_is_normalised_to_utc() -> None:
    """A naive end is taken as UTC; an aware one is converted to UTC."""
    assert SimulationConfig(end=datetime(2025, 6, 1)).end == datetime(2025, 6, 1, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    assert SimulationConfig(end=datetime(2025, 6, 1, 2, tzinfo=paris)).end.tzinfo == UTC


# --- writing -------------------------------------------------------------------------------


def test_write_and_read_back(small_base: sim.SimulatedBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_base lays out the base folder, truth/ and base.json; tables round-trip exactly."""
    monkeypatch.setattr(sim, "ROW_GROUP_SIZE", 1_000)  # several row groups, as at full scale
    out = tmp_path / "base"
    write_base(small_base, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "base.json",
        "campaigns.parquet",
        "contacts.parquet",
        "email_events.parquet",
        "orders.parquet",
        "promotions.parquet",
        "truth/catalogue.parquet",
        "truth/contacts.parquet",
        "truth/email_contacts.parquet",
        "truth/future_email_events.parquet",
        "truth/future_orders.parquet",
        "truth/promotions.parquet",
        "web_events.parquet",
    ]
    assert pq.read_table(out / "orders.parquet").equals(small_base.orders)
    assert pq.read_table(out / "web_events.parquet").equals(small_base.web_events)
    assert pq.read_table(out / "contacts.parquet").equals(small_base.contacts)
    assert pq.ParquetFile(out / "orders.parquet").metadata.num_row_groups == -(-small_base.orders.num_rows // 1_000)
    truth = read_truth(out)
    assert truth["contacts"].equals(small_base.truth_contacts)
    assert truth["future_orders"].equals(small_base.future_orders)
    assert truth["catalogue"].equals(small_base.catalogue)
    meta = json.loads((out / "base.json").read_text())
    assert meta["as_of"] == "2026-01-01T00:00:00+00:00"
    assert meta["seed"] == 5 and meta["n_contacts"] == 2_000
    assert meta["generator"] == "scorecast.simulate"
    assert meta["groups"] == list(small_base.groups)
    end = datetime.fromisoformat(meta["config"]["end"])
    assert SimulationConfig(**{**meta["config"], "end": end}) == small_base.config  # the config round-trips
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temp sibling left behind
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # the umask's, not a temp dir's 0700


def test_write_refuses_non_empty_dir(small_base: sim.SimulatedBase, tmp_path: Path) -> None:
    """An existing non-empty out_dir is refused, naming it, and left untouched."""
    out = tmp_path / "base"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(out)):
        write_base(small_base, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_write_into_empty_dir_and_overwrite(small_base: sim.SimulatedBase, tmp_path: Path) -> None:
    """An empty out_dir is used; overwrite=True replaces a non-empty one entirely."""
    out = tmp_path / "base"
    out.mkdir()
    write_base(small_base, out)
    (out / "stale.txt").write_text("old")
    write_base(small_base, out, progress=True, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert (out / "orders.parquet").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["base"]


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "overwrite"])
def test_failed_write_leaves_nothing(
    small_base: sim.SimulatedBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """A write that fails midway leaves no out_dir (or the old one intact) and no temp folder."""
    out = tmp_path / "base"
    if existing:
        out.mkdir()
        (out / "old.txt").write_text("old")
    real = sim.write_parquet
    calls = []

    def failing(table: pa.Table, path: Path, bar: object) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(table, path, bar)  # type: ignore[arg-type]

    monkeypatch.setattr(sim, "write_parquet", failing)
    with pytest.raises(OSError, match="disk full"):
        write_base(small_base, out, overwrite=existing)
    if existing:
        assert [p.name for p in out.iterdir()] == ["old.txt"]
        assert [p.name for p in tmp_path.iterdir()] == ["base"]
    else:
        assert list(tmp_path.iterdir()) == []


def test_read_truth_missing(tmp_path: Path) -> None:
    """read_truth on a folder without truth/ names the folder it looked for."""
    with pytest.raises(FileNotFoundError, match="truth"):
        read_truth(tmp_path)
