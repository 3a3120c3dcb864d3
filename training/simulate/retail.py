"""A synthetic retail customer base with known truth: contacts, orders and what happened next.

The generative process is the one the CLV, churn and affinity models try to recover:

- **Acquisition.** Contacts sign up uniformly over the history window; a share
  ``buyer_share`` of them make a first purchase, an exponential delay after signup (truncated
  so that it falls before ``end``). The others never buy. Attributes (country, channel, age)
  carry no behavioural signal.
- **Purchases: BG/NBD** (Fader, Hardie & Lee 2005). Each contact has a purchase rate
  ``lam ~ Gamma(r, rate=alpha)`` per day and a dropout probability ``p ~ Beta(a, b)``. While
  alive, repeat purchases follow a Poisson process of rate ``lam``; after each repeat purchase
  the contact drops out with probability ``p`` (not after the first purchase: BG/NBD's
  likelihood has P(alive | no repeat) = 1). The true dropout time is the time of the last
  purchase. Simulated through ``end + future_days``.
- **Spend: Gamma-Gamma** (Fader, Hardie & Lee 2005b). Each contact has ``nu ~ Gamma(q,
  rate=gamma)``; an order's base amount is ``Gamma(p, rate=nu)``, mean ``p / nu``. It is then
  multiplied by a SKU price factor whose popularity-weighted mean is 1 in every group, so the
  mean spend per order given ``nu`` stays ``p / nu``; amounts are rounded to cents.
- **Product groups.** Each contact's group preference is ``Dirichlet(group_concentration *
  popularity)``: small concentration, so a contact's past groups predict future ones. An
  order's group is drawn from it, then a SKU within the group by Zipf popularity.
- **Promotions.** Each contact has a promo sensitivity ``s ~ Beta(promo_a, promo_b)``; an order
  is flagged ``promo`` with probability ``s``.

:func:`simulate_base` returns the observed tables (``contacts``, ``orders`` up to ``end``) and
the truth (per-contact latent parameters and future counts, the future orders, the catalogue);
:func:`write_base` writes them as a base folder (DESIGN.md) with the truth under ``truth/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from scorecast.atomic import new_dir
from scorecast.kernels.time_units import US_PER_DAY

from .email import EmailConfig, simulate_email
from .products import ProductConfig, promotion_campaigns, promotion_truth, promotions_table, taste_skus
from .web import Purchases, simulate_web

__all__ = [
    "GENERATOR",
    "ID_TYPES",
    "SimulatedBase",
    "SimulationConfig",
    "group_names",
    "read_truth",
    "simulate_base",
    "write_base",
]

GENERATOR = "scorecast.simulate"
ID_TYPES = ("int64", "string")
DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
TRUTH_DIR = "truth"
ROW_GROUP_SIZE = 1_000_000
# the truth table's future windows, in days after `end`
FUTURE_WINDOWS = (90, 365)
# a dropout this far out is "never" for any horizon that matters; the cap keeps timestamps
# inside what pandas' nanosecond datetimes can hold
MAX_DROPOUT = datetime(2200, 1, 1, tzinfo=UTC)

GROUP_NAMES = ("shoes", "apparel", "beauty", "home", "sports", "electronics", "books", "toys")
COUNTRIES = ("FR", "DE", "GB", "ES", "IT", "BE", "NL", "CH")
COUNTRY_SHARES = (0.34, 0.20, 0.15, 0.11, 0.09, 0.05, 0.04, 0.02)
CHANNELS = ("web", "store", "app", "marketplace", "referral")
CHANNEL_SHARES = (0.45, 0.25, 0.15, 0.10, 0.05)

_TS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated base; the same config and seed give the same base."""

    n_contacts: int = 100_000
    """Contacts in the base, buyers or not."""
    seed: int = 0
    """Seed of every random draw (a non-negative integer)."""
    end: datetime = DEFAULT_END
    """The base's as-of: orders up to it are observed, later ones are the future (naive = UTC)."""
    history_days: int = 3 * 365
    """Length of the observed history before ``end``; signups fall within it."""
    future_days: int = 365
    """How far past ``end`` the future orders are simulated (at least 365: the truth windows)."""
    n_groups: int = 8
    """Product groups; named shoes, apparel, … and cycled with a suffix beyond eight."""
    skus_per_group: int = 50
    """SKUs in each product group."""
    buyer_share: float = 0.7
    """Share of contacts who ever buy (all of them buy first within the history)."""
    id_type: str = "int64"
    """``contact_id`` type: ``int64`` (random distinct large ids) or ``string`` ("C0001234")."""
    first_purchase_days: float = 30.0
    """Mean delay from signup to first purchase (exponential, truncated at ``end``)."""
    r: float = 0.45
    """BG/NBD: shape of the Gamma heterogeneity of purchase rates ``lam``."""
    alpha: float = 30.0
    """BG/NBD: rate (in days) of that Gamma; mean ``lam`` is ``r / alpha`` purchases per day."""
    a: float = 0.6
    """BG/NBD: first shape of the Beta heterogeneity of dropout probabilities ``p``."""
    b: float = 3.0
    """BG/NBD: second shape of that Beta; mean dropout probability is ``a / (a + b)``."""
    p: float = 6.0
    """Gamma-Gamma: shape of an order's amount (not the dropout probability)."""
    q: float = 4.0
    """Gamma-Gamma: shape of the Gamma heterogeneity of ``nu`` (> 1 for a finite mean spend)."""
    gamma: float = 25.0
    """Gamma-Gamma: rate of that Gamma; mean amount per order is ``p * gamma / (q - 1)``."""
    group_concentration: float = 1.0
    """Dirichlet total concentration of group preferences; small means focused contacts."""
    group_zipf: float = 0.8
    """Zipf exponent of the global popularity of groups (in name order)."""
    sku_zipf: float = 1.1
    """Zipf exponent of SKU popularity within a group."""
    price_median: float = 40.0
    """Median SKU base price over the catalogue."""
    group_price_sigma: float = 0.5
    """Log-scale spread of group median prices around ``price_median``."""
    sku_price_sigma: float = 0.6
    """Log-scale spread of SKU base prices around their group's median."""
    price_weight: float = 0.0
    """Exponent of the SKU price factor on amounts. 0 (default) keeps amounts pure Gamma-Gamma,
    the spend process the clv model assumes; at 0.3 the Gamma-Gamma fit degenerates
    (p -> inf, gamma -> 0), so a base with it tests robustness, not recovery."""
    promo_a: float = 1.0
    """First shape of the Beta of per-contact promo sensitivity (P(an order is a promo))."""
    promo_b: float = 3.0
    """Second shape of that Beta; mean promo share is ``promo_a / (promo_a + promo_b)``."""
    age_missing_share: float = 0.05
    """Share of contacts whose age is unknown (null), as in real CRMs."""
    web: bool = True
    """Simulate ``web_events`` (see ``simulate_web``; the ``web_*`` fields shape them)."""
    web_days: int = 180
    """Web history before ``end``, in days."""
    web_visitor_share: float = 0.5
    """Share of contacts who browse the site (besides heating contacts and job seekers)."""
    web_session_rate: float = 0.03
    """Mean browsing sessions per day of a visitor (Gamma(1) heterogeneity)."""
    web_heat_share: float = 0.6
    """P(heat) for a contact who orders within 30 days after ``end``."""
    web_false_heat_share: float = 0.04
    """P(heat) for any other contact."""
    web_heat_sessions: float = 3.0
    """Mean extra sessions of a heating contact in the last ``web_heat_days``."""
    web_heat_days: int = 21
    """Window before ``end`` in which contacts heat (and job seekers visit)."""
    web_job_seeker_share: float = 0.03
    """Share of non-converting contacts who are job seekers (careers pages)."""
    web_product_view_share: float = 0.5
    """P(a web visitor views an order's product page before buying it)."""
    web_product_view_days: float = 10.0
    """Mean days from such a view to the purchase (exponential)."""
    email: bool = True
    """Simulate campaigns and e-mail events too (``simulate_email``)."""
    email_config: EmailConfig = EmailConfig()
    """The e-mail simulation's parameters."""
    products: ProductConfig = field(default_factory=ProductConfig)
    """SKU taste, repeat purchases and promotion campaigns (``simulate_products``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.end, datetime):
            raise TypeError(f"end must be a datetime, got {self.end!r}")
        end = self.end.replace(tzinfo=UTC) if self.end.tzinfo is None else self.end.astimezone(UTC)
        object.__setattr__(self, "end", end)
        if isinstance(self.email_config, dict):  # as to_json wrote it
            object.__setattr__(self, "email_config", EmailConfig(**self.email_config))
        if isinstance(self.products, dict):  # from to_json(): the config round-trips
            object.__setattr__(self, "products", ProductConfig(**self.products))
        _check_int(self, "n_contacts", 1)
        _check_int(self, "seed", 0)
        _check_int(self, "history_days", 1)
        _check_int(self, "future_days", max(FUTURE_WINDOWS))
        _check_int(self, "n_groups", 1)
        _check_int(self, "skus_per_group", 1)
        if self.id_type not in ID_TYPES:
            raise ValueError(f"id_type must be one of {ID_TYPES}, got {self.id_type!r}")
        for name in ("buyer_share", "age_missing_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in (
            "first_purchase_days", "r", "alpha", "a", "b", "p", "gamma", "group_concentration",
            "price_median", "promo_a", "promo_b",
        ):  # fmt: skip
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not self.q > 1:
            raise ValueError(f"q must be > 1 (finite mean spend), got {self.q!r}")
        for name in ("group_zipf", "sku_zipf", "group_price_sigma", "sku_price_sigma", "price_weight"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        _check_int(self, "web_days", 1)
        _check_int(self, "web_heat_days", 1)
        shares = ("web_visitor_share", "web_heat_share", "web_false_heat_share", "web_job_seeker_share", "web_product_view_share")
        for name in shares:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not self.web_product_view_days > 0:
            raise ValueError(f"web_product_view_days must be > 0, got {self.web_product_view_days!r}")
        for name in ("web_session_rate", "web_heat_sessions"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.end + timedelta(days=self.future_days) > MAX_DROPOUT:
            raise ValueError(f"end + future_days must be before {MAX_DROPOUT:%Y-%m-%d}, got end={self.end}")

    def to_json(self) -> dict[str, Any]:
        """The config as JSON-ready values (``end`` as an ISO string)."""
        out = asdict(self)
        out["end"] = self.end.isoformat()
        return out


def _check_int(config: SimulationConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        bound = "> 0" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class SimulatedBase:
    """A simulated base: the observed tables and the truth behind them (all Arrow tables).

    ``truth_contacts`` is row-aligned with ``contacts``; ``future_orders`` has the columns of
    ``orders`` with ``ts`` in ``(end, end + future_days]``; ``catalogue`` lists every SKU with
    its group, base price and within-group popularity.
    """

    config: SimulationConfig
    groups: tuple[str, ...]
    contacts: pa.Table
    orders: pa.Table
    truth_contacts: pa.Table
    future_orders: pa.Table
    catalogue: pa.Table = field(repr=False)
    web_events: pa.Table | None = field(default=None, repr=False)
    extra: dict[str, pa.Table] = field(default_factory=dict, repr=False)
    """More tables by file name without ``.parquet`` (``"campaigns"``, ``"truth/email_contacts"``)."""
    promotions: pa.Table | None = None
    """Promotion campaigns: contact_id, campaign_id, ts, treated (``simulate_products``)."""
    promotion_truth: pa.Table | None = field(default=None, repr=False)
    """Per contact: the true effect of a campaign at ``end`` and the repeat tendency."""

    def metadata(self) -> dict[str, Any]:
        """What ``base.json`` holds: as-of, seed, groups, generator, full config, row counts."""
        return {
            "as_of": self.config.end.isoformat(),
            "seed": self.config.seed,
            "n_contacts": self.config.n_contacts,
            "groups": list(self.groups),
            "generator": GENERATOR,
            "config": self.config.to_json(),
            "rows": {
                "contacts": self.contacts.num_rows,
                "orders": self.orders.num_rows,
                "truth/contacts": self.truth_contacts.num_rows,
                "truth/future_orders": self.future_orders.num_rows,
                "truth/catalogue": self.catalogue.num_rows,
                **({"web_events": self.web_events.num_rows} if self.web_events is not None else {}),
                **{name: table.num_rows for name, table in self.extra.items()},
                **({"promotions": self.promotions.num_rows} if self.promotions is not None else {}),
            },
        }


def group_names(n_groups: int) -> tuple[str, ...]:
    """``n_groups`` readable product-group names: the eight base names, then ``shoes_2``, …"""
    base = len(GROUP_NAMES)
    return tuple(
        GROUP_NAMES[i % base] if i < base else f"{GROUP_NAMES[i % base]}_{i // base + 1}" for i in range(n_groups)
    )


def simulate_base(config: SimulationConfig) -> SimulatedBase:
    """Draw a whole base from ``config``: contacts, orders up to ``end`` and the truth."""
    # one independent stream per stage, so changing one stage's draws leaves the others alone
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(7)]
    rng_contacts, rng_catalogue, rng_latent, rng_times, rng_orders, rng_ids, rng_products = streams
    end_us = (config.end - _EPOCH) // timedelta(microseconds=1)
    groups = group_names(config.n_groups)

    contacts_cols, signup_us = _draw_contacts(config, rng_contacts)
    signup_days = (signup_us - end_us) / US_PER_DAY
    catalogue = _draw_catalogue(config, groups, rng_catalogue)
    latent = _draw_latent(config, catalogue["group_popularity"], rng_latent)
    events = _draw_purchase_times(config, signup_days, latent, rng_times)
    campaigns = promotion_campaigns(config.products, events, latent, rng_products)
    events = {**events, "contact": campaigns["contact"], "t": campaigns["t"]}
    attrs = _draw_order_attributes(config, catalogue, latent, events["contact"], rng_orders)
    popularity = np.diff(catalogue["sku_cdf"], axis=1, prepend=0.0)
    attrs["sku"], attrs["group"], rho = taste_skus(
        config.products, popularity, attrs["group"], events["contact"], events["t"], config.n_contacts, rng_products
    )
    attrs["promo"] |= campaigns["extra"]

    ids = _draw_ids(config, rng_ids)
    ev_us = end_us + np.rint(events["t"] * US_PER_DAY).astype(np.int64)
    horizon_us = end_us + config.future_days * US_PER_DAY
    ev_us = np.minimum(ev_us, horizon_us)  # rounding must not push a window-edge order past it
    first = slice(0, events["buyers"].size)  # first purchases lead the event arrays
    ev_us[first] = np.maximum(ev_us[first], signup_us[events["buyers"]])  # nor one before signup
    # the order log is in time order, as a real one; stable, so ties keep a fixed order
    order = np.argsort(ev_us, kind="stable")
    split = int(np.searchsorted(ev_us[order], end_us, side="right"))
    past, future = order[:split], order[split:]

    def orders_table(rows: np.ndarray) -> pa.Table:
        return pa.table(
            {
                "contact_id": ids.take(pa.array(events["contact"][rows])),
                "ts": pa.array(ev_us[rows], type=_TS),
                "amount": pa.array(attrs["amount"][rows]),
                "sku": catalogue["sku_names"].take(pa.array(attrs["sku"][rows])),
                "product_group": pa.array(groups, pa.string()).take(pa.array(attrs["group"][rows])),
                "promo": pa.array(attrs["promo"][rows]),
            }
        )

    contacts = pa.table({"contact_id": ids, **contacts_cols})
    truth = _truth_table(config, groups, ids, latent, events, attrs, ev_us, future, end_us)
    web_events = None
    if config.web:
        soon = ev_us[future] <= end_us + 30 * US_PER_DAY
        converts = np.bincount(events["contact"][future][soon], minlength=config.n_contacts) > 0
        purchases = Purchases(events["contact"], ev_us, attrs["sku"], catalogue["sku_names"])
        web_events, web_truth = simulate_web(config, ids, converts, end_us, purchases)
        for name, column in web_truth.items():
            truth = truth.append_column(name, column)
    extra: dict[str, pa.Table] = {}
    if config.email:
        extra |= simulate_email(config.email_config, ids, signup_us, end_us, config.history_days, config.seed)
    alive_at_end = truth.column("alive_at_end").to_numpy(zero_copy_only=False)
    return SimulatedBase(
        config=config,
        groups=groups,
        contacts=contacts,
        orders=orders_table(past),
        truth_contacts=truth,
        future_orders=orders_table(future),
        catalogue=catalogue["table"],
        web_events=web_events,
        extra=extra,
        promotions=promotions_table(campaigns, ids, end_us) if config.products.n_campaigns else None,
        promotion_truth=promotion_truth(config.products, ids, latent, alive_at_end, rho),
    )


def _draw_ids(config: SimulationConfig, rng: np.random.Generator) -> pa.Array:
    n = config.n_contacts
    if config.id_type == "int64":
        # distinct by construction (strictly increasing), large, then shuffled so neither the
        # value nor the row order says anything about the contact
        ids = 1_000_000_000 + np.cumsum(rng.integers(1, 10_000, size=n, dtype=np.int64))
        return pa.array(rng.permutation(ids))
    numbers = np.cumsum(rng.integers(1, 8, size=n, dtype=np.int64))
    width = max(7, len(str(int(numbers[-1]))))
    text = np.strings.add("C", np.strings.zfill(rng.permutation(numbers).astype(str), width))
    return pa.array(text, pa.string())


def _draw_contacts(config: SimulationConfig, rng: np.random.Generator) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Attribute columns and signup times (int64 microseconds since the epoch)."""
    n = config.n_contacts
    end_us = (config.end - _EPOCH) // timedelta(microseconds=1)
    # signup in days relative to end, in [-history_days, 0)
    signup_days = -config.history_days * rng.random(n)
    signup_us = end_us + np.floor(signup_days * US_PER_DAY).astype(np.int64)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARES)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARES)
    age = np.clip(np.rint(rng.normal(41.0, 13.0, n)), 18, 90).astype(np.int32)
    age_missing = rng.random(n) < config.age_missing_share
    cols = {
        "country": pa.array(COUNTRIES, pa.string()).take(pa.array(country)),
        "signup_ts": pa.array(signup_us, type=_TS),
        "channel": pa.array(CHANNELS, pa.string()).take(pa.array(channel)),
        "age": pa.array(age, mask=age_missing),
    }
    return cols, signup_us


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return weights / weights.sum()


def _draw_catalogue(config: SimulationConfig, groups: tuple[str, ...], rng: np.random.Generator) -> dict[str, Any]:
    n_groups, per_group = config.n_groups, config.skus_per_group
    group_popularity = _zipf(n_groups, config.group_zipf)
    # within-group popularity: Zipf over ranks, the ranks shuffled over a group's SKUs so a
    # SKU's number says nothing about its popularity
    ranks = rng.permuted(np.tile(np.arange(per_group), (n_groups, 1)), axis=1)
    sku_popularity = _zipf(per_group, config.sku_zipf)[ranks]  # (groups, skus), rows sum to 1
    group_median = config.price_median * np.exp(rng.normal(0.0, config.group_price_sigma, n_groups))
    price = np.round(group_median[:, None] * np.exp(rng.normal(0.0, config.sku_price_sigma, (n_groups, per_group))), 2)
    price = np.maximum(price, 0.5)
    # a SKU's amount factor: (price / group median)^w scaled so its popularity-weighted mean is
    # 1 within every group, which keeps E[amount | nu] = p / nu whatever the group
    factor = (price / group_median[:, None]) ** config.price_weight
    factor /= (sku_popularity * factor).sum(axis=1, keepdims=True)
    width = max(5, len(str(n_groups * per_group)))
    sku_names = np.strings.add("SKU-", np.strings.zfill(np.arange(1, n_groups * per_group + 1).astype(str), width))
    table = pa.table(
        {
            "sku": pa.array(sku_names, pa.string()),
            "product_group": pa.array(np.repeat(np.array(groups, dtype=object), per_group), pa.string()),
            "base_price": pa.array(price.ravel()),
            "popularity": pa.array(sku_popularity.ravel()),
            "group_popularity": pa.array(np.repeat(group_popularity, per_group)),
        }
    )
    return {
        "table": table,
        "sku_names": table.column("sku").combine_chunks(),
        "group_popularity": group_popularity,
        "sku_cdf": np.cumsum(sku_popularity, axis=1),
        "factor": factor.ravel(),
    }


def _draw_latent(
    config: SimulationConfig, group_popularity: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    n = config.n_contacts
    return {
        "buyer": rng.random(n) < config.buyer_share,
        "lam": rng.gamma(config.r, 1.0 / config.alpha, n),
        "p": rng.beta(config.a, config.b, n),
        "nu": rng.gamma(config.q, 1.0 / config.gamma, n),
        "promo": rng.beta(config.promo_a, config.promo_b, n),
        "pref": rng.dirichlet(config.group_concentration * group_popularity, n),
    }


def _draw_purchase_times(
    config: SimulationConfig, signup_days: np.ndarray, latent: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every purchase up to end + future_days, in days relative to end, and dropout times.

    Exact and loop-free: for a buyer whose first purchase is at ``t0``, the repeat purchases
    of an always-alive contact in the window ``(t0, t0 + A]`` are a Poisson process: ``N ~
    Poisson(lam * A)`` events at sorted uniform positions. The contact makes ``K ~ Geometric``
    repeats before dropping out, so it makes the first ``m = min(K, N)`` of those events. The
    first ``m`` of ``N`` sorted uniforms are ``S_i / (S_m + R)`` with ``S_i`` a cumulative
    sum of standard exponentials and ``R ~ Gamma(N - m + 1)``: a grouped cumsum, no sort.
    """
    buyers = np.flatnonzero(latent["buyer"])
    lam = latent["lam"][buyers]
    # a Beta draw can underflow to 0; the geometric needs p > 0 and the clip only matters
    # past ~1e12 repeats, which the horizon cuts off anyway
    p = np.clip(latent["p"][buyers], 1e-12, 1.0)
    signup = signup_days[buyers]
    avail = -signup
    mean = config.first_purchase_days
    u = rng.random(buyers.size)
    # inverse CDF of Exp(mean) truncated to [0, avail)
    t0 = signup - mean * np.log1p(-u * -np.expm1(-avail / mean))
    t0 = np.minimum(t0, 0.0)
    window = config.future_days - t0
    n_events = rng.poisson(lam * window)
    # BG/NBD drops out only after a repeat purchase (its likelihood has P(alive | x = 0) = 1),
    # so the repeats made before dropout are K >= 1 with P(K = k) = (1 - p)^(k - 1) p
    repeats = rng.geometric(p)
    m = np.minimum(repeats, n_events)

    total = int(m.sum())
    owner = np.repeat(np.arange(buyers.size), m)
    csum = np.cumsum(rng.standard_exponential(total))
    starts = np.cumsum(m) - m
    before = np.concatenate(([0.0], csum))[starts]  # cumsum just before each buyer's run
    spacing = csum - before[owner]  # S_i within each buyer
    s_m = np.zeros(buyers.size)
    has = m > 0
    s_m[has] = spacing[starts[has] + m[has] - 1]
    denom = s_m + rng.standard_gamma((n_events - m + 1).astype(np.float64))
    repeat_t = t0[owner] + window[owner] * (spacing / denom[owner])

    # dropout: at the last purchase when it falls in the window (K <= N); otherwise the
    # remaining K - N purchases happen after the horizon, memoryless from there
    dropout = t0 + window * (s_m / denom)
    beyond = repeats > n_events
    cap = (MAX_DROPOUT - config.end) / timedelta(days=1)
    extra = rng.standard_gamma((repeats[beyond] - n_events[beyond]).astype(np.float64))
    with np.errstate(over="ignore", divide="ignore"):  # a rate that underflowed to 0: never
        dropout[beyond] = np.minimum(config.future_days + extra / lam[beyond], cap)

    return {
        "contact": np.concatenate((buyers, buyers[owner])),
        "t": np.concatenate((t0, repeat_t)),
        "buyers": buyers,
        "dropout": dropout,
    }


def _draw_order_attributes(
    config: SimulationConfig,
    catalogue: dict[str, Any],
    latent: dict[str, np.ndarray],
    contact: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n_events = contact.size
    # group by inverse CDF of the contact's preference; a loop over groups, not contacts
    cdf = np.cumsum(latent["pref"], axis=1)
    u = rng.random(n_events)
    group = np.zeros(n_events, dtype=np.int64)
    for g in range(config.n_groups - 1):
        group += u >= cdf[contact, g]
    # SKU: searchsorted over per-group CDFs laid end to end, shifted by the group index
    sku_cdf = catalogue["sku_cdf"]
    sku_cdf = sku_cdf / sku_cdf[:, -1:]  # exact 1 at each group's end
    flat = (np.arange(config.n_groups)[:, None] + sku_cdf).ravel()
    sku = np.searchsorted(flat, group + rng.random(n_events), side="right")
    sku = np.clip(sku, group * config.skus_per_group, (group + 1) * config.skus_per_group - 1)
    base = rng.standard_gamma(config.p, n_events) / latent["nu"][contact]
    amount = np.maximum(np.round(base * catalogue["factor"][sku], 2), 0.01)
    promo = rng.random(n_events) < latent["promo"][contact]
    return {"group": group, "sku": sku, "amount": amount, "promo": promo}


def _truth_table(
    config: SimulationConfig,
    groups: tuple[str, ...],
    ids: pa.Array,
    latent: dict[str, np.ndarray],
    events: dict[str, np.ndarray],
    attrs: dict[str, np.ndarray],
    ev_us: np.ndarray,
    future: np.ndarray,
    end_us: int,
) -> pa.Table:
    n, n_groups = config.n_contacts, config.n_groups
    buyer = latent["buyer"]
    first_us = np.zeros(n, dtype=np.int64)
    first_us[events["buyers"]] = ev_us[: events["buyers"].size]
    dropout_us = np.zeros(n, dtype=np.int64)
    dropout_us[events["buyers"]] = end_us + np.rint(events["dropout"] * US_PER_DAY).astype(np.int64)
    # dropout at the last purchase: the same rounding as that purchase's ts, so never before it
    last_us = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_us, events["contact"], ev_us)
    dropout_us = np.where(buyer, np.maximum(dropout_us, last_us), 0)

    contact = events["contact"]
    n_orders = np.bincount(contact[ev_us <= end_us], minlength=n)
    cols: dict[str, pa.Array] = {
        "contact_id": ids,
        "is_buyer": pa.array(buyer),
        "first_order_ts": pa.array(first_us, type=_TS, mask=~buyer),
        "lam": pa.array(latent["lam"]),
        "p": pa.array(latent["p"]),
        "nu": pa.array(latent["nu"]),
        "promo_sensitivity": pa.array(latent["promo"]),
        "dropout_ts": pa.array(dropout_us, type=_TS, mask=~buyer),
        "alive_at_end": pa.array(buyer & (dropout_us > end_us)),
        "n_orders": pa.array(n_orders),
    }
    fut_contact = contact[future]
    fut_days = ev_us[future] - end_us
    for days in FUTURE_WINDOWS:
        cols[f"n_future_orders_{days}d"] = pa.array(
            np.bincount(fut_contact[fut_days <= days * US_PER_DAY], minlength=n)
        )
    in_year = fut_days <= 365 * US_PER_DAY
    spend = np.bincount(fut_contact[in_year], weights=attrs["amount"][future][in_year], minlength=n)
    cols["future_spend_365d"] = pa.array(np.round(spend, 2))
    in_90 = fut_days <= 90 * US_PER_DAY
    by_group = np.bincount(
        fut_contact[in_90] * n_groups + attrs["group"][future][in_90], minlength=n * n_groups
    ).reshape(n, n_groups)
    for g, name in enumerate(groups):
        cols[f"future_orders_90d:{name}"] = pa.array(by_group[:, g])
    for g, name in enumerate(groups):
        cols[f"pref:{name}"] = pa.array(np.ascontiguousarray(latent["pref"][:, g]))
    return pa.table(cols)


def write_base(base: SimulatedBase, out_dir: Path | str, *, progress: bool = False, overwrite: bool = False) -> None:
    """Write ``base`` as a base folder (DESIGN.md) with ``truth/`` and ``base.json``, atomically.

    Raises ``FileExistsError`` if ``out_dir`` exists and is not empty, unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    files = {
        "contacts.parquet": base.contacts,
        "orders.parquet": base.orders,
        f"{TRUTH_DIR}/contacts.parquet": base.truth_contacts,
        f"{TRUTH_DIR}/future_orders.parquet": base.future_orders,
        f"{TRUTH_DIR}/catalogue.parquet": base.catalogue,
        **{f"{name}.parquet": table for name, table in base.extra.items()},
    }
    if base.web_events is not None:
        files["web_events.parquet"] = base.web_events
    if base.promotions is not None:
        files["promotions.parquet"] = base.promotions
    if base.promotion_truth is not None:
        files[f"{TRUTH_DIR}/promotions.parquet"] = base.promotion_truth
    with new_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / TRUTH_DIR).mkdir()
        total = sum(t.num_rows for t in files.values())
        with tqdm(total=total, unit="row", unit_scale=True, desc="writing base", disable=not progress) as bar:
            for name, table in files.items():
                write_parquet(table, tmp / name, bar)
        (tmp / "base.json").write_text(json.dumps(base.metadata(), indent=2) + "\n")


def write_parquet(table: pa.Table, path: Path, bar: tqdm) -> None:
    """Write ``table`` as zstd Parquet in row groups of ``ROW_GROUP_SIZE``, advancing ``bar``."""
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for start in range(0, max(table.num_rows, 1), ROW_GROUP_SIZE):
            chunk = table.slice(start, ROW_GROUP_SIZE)
            writer.write_table(chunk, row_group_size=ROW_GROUP_SIZE)
            bar.update(chunk.num_rows)


def read_truth(out_dir: Path | str) -> dict[str, pa.Table]:
    """The truth tables of a written base: ``contacts``, ``future_orders`` and ``catalogue``."""
    truth_dir = Path(out_dir) / TRUTH_DIR
    if not truth_dir.is_dir():
        raise FileNotFoundError(f"{truth_dir} does not exist: not a simulated base?")
    names = ("contacts", "future_orders", "catalogue")
    missing = [name for name in names if not (truth_dir / f"{name}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"{truth_dir} lacks {', '.join(f'{m}.parquet' for m in missing)}")
    truth = {name: pq.read_table(truth_dir / f"{name}.parquet") for name in names}
    if (truth_dir / "promotions.parquet").is_file():  # bases from before simulate_products lack it
        truth["promotions"] = pq.read_table(truth_dir / "promotions.parquet")
    return truth
