"""Simulated web visits (``web_events``) whose behaviour heats before a conversion.

Called by :func:`scorecast.training.simulate.retail.simulate_base` when ``SimulationConfig.web``:

- **Visitors.** A share ``web_visitor_share`` of contacts browse the site; each has a session
  rate ``~ Gamma(1, web_session_rate)`` per day and makes ``Poisson(rate * web_days)``
  *browsing* sessions at uniform times over the last ``web_days`` days.
- **Heating.** A contact who will order within 30 days after ``end`` (the truth's future
  orders) *heats* with probability ``web_heat_share``; any other contact with probability
  ``web_false_heat_share`` (tyre-kickers). A heating contact adds ``Poisson(web_heat_sessions)``
  sessions in the last ``web_heat_days`` days, denser towards ``end`` (density rising
  linearly), with more pages, longer visits and far more product, pricing, demo and contact
  pages.
- **Job seekers.** A share ``web_job_seeker_share`` of the contacts who do not convert make
  ``Poisson(3)`` sessions in the same window, mostly on careers pages but also on product
  and pricing pages: a page-view count mistakes them for hot leads.
- **Pages and visits.** A session has ``1 + Poisson(m)`` page views (m = 1.8 browsing, 3.5
  heating, 3 job seeking); each view's page category is drawn from the session type's mix,
  then a page of that category uniformly (``/products/p-017``, ``/blog/post-042``,
  ``/pricing`` …); durations are log-normal (median 40 s browsing, 75 s heating), 2 %
  unknown (null); views follow each other within the session. Views after ``end`` are dropped.
- **Product pages before a purchase.** Given the purchases (``Purchases``: past and future
  orders), a web visitor views the page of an order's SKU (``/products/<sku>``, the web
  config's ``product_page``) before buying it with probability ``web_product_view_share``:
  ``1 + Poisson(0.5)`` views, each ``Exp(web_product_view_days)`` days before the order (at
  least a minute), within the web history (median 75 s). Recommendations learn from these
  what a contact is about to buy; the draws use their own stream, so the other views stay
  as they are.

Returns the table (time order, as a real log) and truth columns per contact: ``web_visitor``,
``web_heating``, ``job_seeker`` and ``converts_30d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels.time_units import US_PER_DAY

if TYPE_CHECKING:
    from .retail import SimulationConfig

__all__ = ["PAGE_CATEGORIES", "Purchases", "page_catalogue", "simulate_web"]

_US_PER_S = 1_000_000
_TS = pa.timestamp("us", tz="UTC")

# The site's own taxonomy (the web config maps its pages to points and heat categories).
PAGE_CATEGORIES = ("home", "blog", "product", "support", "case_study", "pricing", "demo", "contact", "careers")
_PAGES = {
    "home": ["/"],
    "blog": [f"/blog/post-{i:03d}" for i in range(1, 301)],
    "product": [f"/products/p-{i:03d}" for i in range(1, 201)],
    "support": [f"/support/article-{i:02d}" for i in range(1, 51)],
    "case_study": [f"/case-studies/cs-{i:02d}" for i in range(1, 21)],
    "pricing": ["/pricing"],
    "demo": ["/demo"],
    "contact": ["/contact"],
    "careers": ["/careers"] + [f"/careers/job-{i:02d}" for i in range(1, 16)],
}
# Session types: 0 browsing, 1 heating, 2 job seeking. Mixes over PAGE_CATEGORIES.
_MIX = np.array(
    [
        [0.15, 0.35, 0.25, 0.12, 0.04, 0.05, 0.01, 0.02, 0.01],
        [0.05, 0.08, 0.35, 0.04, 0.12, 0.20, 0.08, 0.08, 0.00],
        [0.15, 0.10, 0.15, 0.00, 0.05, 0.05, 0.00, 0.00, 0.50],
    ]
)
_PAGES_PER_SESSION = np.array([1.8, 2.5, 3.0])  # mean views beyond the first
_DURATION_MEDIAN_S = np.array([40.0, 75.0, 60.0])
_DURATION_SIGMA = 0.9
_NULL_DURATION_SHARE = 0.02
_JOB_SEEKER_SESSIONS = 3.0
_PRODUCT_PAGE = "/products/"
_EXTRA_PRODUCT_VIEWS = 0.5  # Poisson mean of the views of a purchased SKU beyond the first
_PRODUCT_VIEW_MEDIAN_S = 75.0


class Purchases(NamedTuple):
    """Orders for the product-page views: contact row, µs time, SKU index into ``sku_names``."""

    contact: np.ndarray
    ts: np.ndarray
    sku: np.ndarray
    sku_names: pa.Array


def page_catalogue() -> tuple[list[str], np.ndarray]:
    """Every page of the simulated site and its category (index into ``PAGE_CATEGORIES``)."""
    pages = [p for c in PAGE_CATEGORIES for p in _PAGES[c]]
    category = np.repeat(np.arange(len(PAGE_CATEGORIES)), [len(_PAGES[c]) for c in PAGE_CATEGORIES])
    return pages, category


def simulate_web(
    config: SimulationConfig, ids: pa.Array, converts: np.ndarray, end_us: int, purchases: Purchases | None = None
) -> tuple[pa.Table, dict[str, pa.Array]]:
    """The ``web_events`` table up to ``end`` and the per-contact truth columns.

    ``converts``: bool per contact (row-aligned with ``ids``), orders within 30 days after end;
    ``purchases``: the orders whose product pages visitors view first (None: no such views).
    """
    # its own stream, so adding web visits leaves every other draw of the base unchanged
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x57EB]))
    n = config.n_contacts
    visitor = rng.random(n) < config.web_visitor_share
    heat_p = np.where(converts, config.web_heat_share, config.web_false_heat_share)
    heating = rng.random(n) < heat_p
    job_seeker = ~converts & ~heating & (rng.random(n) < config.web_job_seeker_share)
    visitor |= heating | job_seeker

    rate = rng.gamma(1.0, config.web_session_rate, n) * visitor
    n_browse = rng.poisson(rate * config.web_days)
    n_heat = rng.poisson(config.web_heat_sessions * heating)
    n_job = rng.poisson(_JOB_SEEKER_SESSIONS * job_seeker)
    counts = np.stack([n_browse, n_heat, n_job])  # (type, contact)
    kind = np.repeat(np.repeat(np.arange(3), n), counts.ravel())
    contact = np.repeat(np.tile(np.arange(n), 3), counts.ravel())
    n_sessions = kind.size
    # session start, days before end: uniform over web_days when browsing; a linear ramp
    # towards end (density 2(1 - x)) when heating or job seeking
    days_before = np.where(
        kind == 0,
        config.web_days * rng.random(n_sessions),
        config.web_heat_days * (1.0 - np.sqrt(rng.random(n_sessions))),
    )
    start_us = end_us - np.rint(days_before * US_PER_DAY).astype(np.int64)

    views = 1 + rng.poisson(_PAGES_PER_SESSION[kind])
    session = np.repeat(np.arange(n_sessions), views)
    v_kind = kind[session]
    total = session.size
    # category by inverse CDF of the session type's mix
    cdf = np.cumsum(_MIX, axis=1)
    u = rng.random(total)
    category = np.zeros(total, np.int64)
    for c in range(len(PAGE_CATEGORIES) - 1):
        category += u >= cdf[v_kind, c]
    pages, page_category = page_catalogue()
    first = np.searchsorted(page_category, np.arange(len(PAGE_CATEGORIES)))
    size = np.bincount(page_category, minlength=len(PAGE_CATEGORIES))
    page = first[category] + (rng.random(total) * size[category]).astype(np.int64)
    duration = np.round(_DURATION_MEDIAN_S[v_kind] * np.exp(_DURATION_SIGMA * rng.standard_normal(total)), 1)
    # a view starts when the previous one of its session ends (+ 2 s to click)
    step = np.rint((duration + 2.0) * _US_PER_S).astype(np.int64)
    csum = np.cumsum(step)
    session_first = np.cumsum(views) - views
    offset = csum - step - (csum - step)[session_first][session]
    ts = start_us[session] + offset
    who = contact[session]
    page_names = pa.array(pages, pa.string())
    if purchases is not None and config.web_product_view_share > 0:
        more = _product_views(config, visitor, purchases, end_us, len(pages))
        who, ts, page, duration = (np.concatenate([a, b]) for a, b in zip((who, ts, page, duration), more, strict=True))
        page_names = pa.concat_arrays([page_names, pc.binary_join_element_wise(_PRODUCT_PAGE, purchases.sku_names, "")])
    keep = ts <= end_us
    order = np.flatnonzero(keep)[np.argsort(ts[keep], kind="stable")]
    null_duration = rng.random(order.size) < _NULL_DURATION_SHARE
    table = pa.table(
        {
            "contact_id": ids.take(pa.array(who[order].astype(np.int64))),
            "ts": pa.array(ts[order], type=_TS),
            "page": page_names.take(pa.array(page[order])),
            "duration_s": pa.array(duration[order], mask=null_duration),
        }
    )
    truth = {
        "web_visitor": pa.array(visitor),
        "web_heating": pa.array(heating),
        "job_seeker": pa.array(job_seeker),
        "converts_30d": pa.array(converts),
    }
    return table, truth


def _product_views(
    config: SimulationConfig, visitor: np.ndarray, purchases: Purchases, end_us: int, first_page: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views of purchased SKUs' pages before the purchase (module docstring): contact, µs time,
    page index (``first_page`` + SKU index) and duration, in their own random stream."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x57EB, 1]))
    viewed = visitor[purchases.contact] & (rng.random(purchases.contact.size) < config.web_product_view_share)
    rows = np.flatnonzero(viewed)
    rows = np.repeat(rows, 1 + rng.poisson(_EXTRA_PRODUCT_VIEWS, rows.size))
    lead = rng.exponential(config.web_product_view_days, rows.size) * US_PER_DAY + 60 * _US_PER_S
    ts = purchases.ts[rows] - np.rint(lead).astype(np.int64)
    keep = ts > end_us - config.web_days * US_PER_DAY
    rows, ts = rows[keep], ts[keep]
    duration = np.round(_PRODUCT_VIEW_MEDIAN_S * np.exp(_DURATION_SIGMA * rng.standard_normal(rows.size)), 1)
    return purchases.contact[rows].astype(np.int64), ts, first_page + purchases.sku[rows].astype(np.int64), duration
