"""The product side of the simulator: per-contact taste for SKUs, repeat purchases, promotions.

Called by :func:`scorecast.training.simulate.retail.simulate_base`; kept apart so the purchase-time
and spend processes stay as they are.

- **Taste.** Each contact has a latent vector ``u ~ N(0, I / dim)`` and each SKU a vector
  ``v ~ N(0, I)``. Within the group drawn from the contact's preference, the SKU is drawn
  with probability proportional to ``popularity * exp(taste_scale * u . v)`` (Gumbel-max), so
  that who bought what predicts what they buy next beyond global popularity.
- **Repeat purchases.** Each contact has a repeat tendency ``rho ~ Beta(repeat_a,
  repeat_b)``: each order after the first re-buys, with probability ``rho``, a SKU of a
  uniformly drawn earlier order of the same contact (its group follows). ``GROCERY`` is a
  repeat-heavy base (mean ``rho`` 0.8). With ``no_repeat`` (a catalogue: films, books) there
  are no repeats and each draw leaves out the SKUs the contact already has: the first of its
  ``NO_REPEAT_CANDIDATES`` Gumbel top draws (a sample without replacement from the same taste
  distribution) it has not bought, else the group's first SKU it has not bought, else (it
  has bought the whole group) the first draw: a repeat, only then.
- **Promotion campaigns.** ``n_campaigns`` past campaigns at ``end - k * campaign_spacing_days``
  (k = 1…); each targets a random ``target_share`` of the contacts who bought before it and
  treats half of them at random (the others are the control group), recorded in the
  ``promotions`` table (contact_id, campaign_id, ts, treated). Within ``window_days`` after
  the campaign a treated contact still alive (a) drops its organic purchases with
  probability ``d`` (do-not-disturb: ``d = annoyance`` when its promo sensitivity ``s`` is
  below ``annoy_below``, else 0) and (b) makes one extra promo purchase with probability
  ``a = persuasion * s``. The truth is the same for a campaign at ``end``: P(buy within the
  window | control) = ``q = alive * (1 - exp(-lam * window))`` (exact: BG/NBD drops out
  only after a purchase), P(buy | treated) = ``alive * (1 - (1 - (1 - d) q)(1 - a))``, their
  difference the uplift, and the segment from :func:`uplift_segments`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from scorecast.kernels.time_units import US_PER_DAY

__all__ = ["GROCERY", "NO_REPEAT", "ProductConfig", "SEGMENTS", "promotion_campaigns", "taste_skus", "uplift_segments"]

SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")
"""Promotion segments, in the order of their integer codes."""

NO_REPEAT_CANDIDATES = 16
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class ProductConfig:
    """Parameters of taste, repeat purchases and promotion campaigns (module docstring)."""

    taste_dim: int = 8
    taste_scale: float = 1.5
    repeat_a: float = 1.0
    repeat_b: float = 4.0
    no_repeat: bool = False
    """A catalogue base: nobody buys a SKU twice (module docstring)."""
    n_campaigns: int = 3
    campaign_spacing_days: int = 60
    window_days: int = 30
    target_share: float = 0.6
    persuasion: float = 0.6
    annoyance: float = 0.7
    annoy_below: float = 0.1
    uplift_threshold: float = 0.05
    """Truth segments: |uplift| above it is persuadable / do-not-disturb."""
    buy_threshold: float = 0.5
    """Truth segments: otherwise P(buy | control) at least this is a sure thing, else a lost cause."""

    def __post_init__(self) -> None:
        for name in ("taste_dim", "n_campaigns", "campaign_spacing_days", "window_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.window_days < 1 or self.campaign_spacing_days < self.window_days:
            raise ValueError(
                f"need 1 <= window_days <= campaign_spacing_days, got {self.window_days}, {self.campaign_spacing_days}"
            )
        for name in ("target_share", "persuasion", "annoyance", "annoy_below", "buy_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("taste_scale", "repeat_a", "repeat_b", "uplift_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


GROCERY = ProductConfig(repeat_a=8.0, repeat_b=2.0)
"""A repeat-heavy grocery-like base: most orders re-buy an earlier SKU."""
NO_REPEAT = ProductConfig(no_repeat=True)
"""A catalogue base (films, books): nobody buys a SKU twice."""


def uplift_segments(p_treated: np.ndarray, p_control: np.ndarray, uplift_threshold: float, buy_threshold: float) -> np.ndarray:
    """Segment codes (``SEGMENTS`` order) from the two purchase probabilities."""
    uplift = p_treated - p_control
    return np.where(
        uplift > uplift_threshold,
        0,
        np.where(uplift < -uplift_threshold, 3, np.where(p_control >= buy_threshold, 1, 2)),
    ).astype(np.int8)


def taste_skus(
    config: ProductConfig,
    sku_popularity: np.ndarray,
    group: np.ndarray,
    contact: np.ndarray,
    t: np.ndarray,
    n_contacts: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each event's SKU (global index) and group after taste and repeats; and ``rho`` per contact.

    ``sku_popularity``: (groups, skus per group), rows summing to 1; ``group``, ``contact``,
    ``t``: per event.
    """
    n_groups, per_group = sku_popularity.shape
    dim = max(config.taste_dim, 1)
    u = rng.normal(0.0, 1.0 / np.sqrt(dim), (n_contacts, dim)).astype(np.float32)
    v = rng.normal(0.0, 1.0, (n_groups, per_group, dim)).astype(np.float32)
    rho = rng.beta(config.repeat_a, config.repeat_b, n_contacts)
    log_pop = np.log(np.maximum(sku_popularity, 1e-300)).astype(np.float32)
    m = min(NO_REPEAT_CANDIDATES, per_group) if config.no_repeat else 1
    sku = np.empty((group.size, m), np.int64)
    # bounded memory: at most ~4M logits at once whatever the catalogue
    step = max(1, 4_000_000 // per_group)
    for g in range(n_groups):
        rows = np.flatnonzero(group == g)
        for lo in range(0, rows.size, step):
            part = rows[lo : lo + step]
            logits = log_pop[g] + config.taste_scale * (u[contact[part]] @ v[g].T)
            logits += rng.gumbel(size=logits.shape).astype(np.float32)
            if m == 1:
                sku[part, 0] = g * per_group + np.argmax(logits, axis=1)
            else:
                best = np.argpartition(-logits, m - 1, axis=1)[:, :m]
                ranked = np.take_along_axis(best, np.argsort(-np.take_along_axis(logits, best, axis=1), axis=1), axis=1)
                sku[part] = g * per_group + ranked
    order = np.lexsort((t, contact))
    if config.no_repeat:
        rho = np.zeros(n_contacts)
        chosen = _first_unbought(sku, order, contact, per_group)
    else:
        chosen = sku[:, 0]
        _repeat(chosen, order, contact, rho, rng.random(group.size), rng.random(group.size))
    return chosen, chosen // per_group, rho


@njit(cache=True)
def _bought(out, order, start, k, value):  # noqa: ANN001, ANN202
    for q in range(start, k):
        if out[order[q]] == value:
            return True
    return False


@njit(cache=True)
def _first_unbought(candidates, order, contact, per_group):  # noqa: ANN001, ANN202
    """In each contact's time order, the first candidate it has not bought yet (module docstring)."""
    out = np.full(candidates.shape[0], -1, np.int64)
    start = 0
    n = order.size
    while start < n:
        c = contact[order[start]]
        end = start
        while end < n and contact[order[end]] == c:
            end += 1
        for k in range(start, end):
            e = order[k]
            for j in range(candidates.shape[1]):
                if not _bought(out, order, start, k, candidates[e, j]):
                    out[e] = candidates[e, j]
                    break
            if out[e] < 0:
                first = (candidates[e, 0] // per_group) * per_group
                for value in range(first, first + per_group):
                    if not _bought(out, order, start, k, value):
                        out[e] = value
                        break
            if out[e] < 0:
                out[e] = candidates[e, 0]
        start = end
    return out


@njit(cache=True)
def _repeat(sku, order, contact, rho, coin, pick):  # noqa: ANN001, ANN202
    """In each contact's time order, re-buy an earlier order's SKU with probability rho."""
    start = 0
    n = order.size
    while start < n:
        c = contact[order[start]]
        end = start
        while end < n and contact[order[end]] == c:
            end += 1
        for k in range(start + 1, end):
            e = order[k]
            if coin[e] < rho[c]:
                j = order[start + int(pick[e] * (k - start))]
                sku[e] = sku[j]
        start = end


def promotion_campaigns(
    config: ProductConfig,
    events: dict[str, np.ndarray],
    latent: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Apply the past campaigns to the purchase events (days relative to ``end``).

    Returns the new ``contact``/``t`` event arrays (first purchases still lead), ``extra``
    (bool per event: a promo purchase caused by a campaign) and the campaign rows
    (``contact``, ``campaign``, ``day``, ``treated``).
    """
    contact, t = events["contact"], events["t"]
    buyers = events["buyers"]
    n = latent["lam"].size
    first_day = np.full(n, np.inf)
    first_day[buyers] = t[: buyers.size]
    dropout = np.full(n, -np.inf)
    dropout[buyers] = events["dropout"]
    s = latent["promo"]
    persuade = config.persuasion * s
    annoy = np.where(s < config.annoy_below, config.annoyance, 0.0)
    keep = np.ones(t.size, bool)
    # first purchases are never removed, nor the purchase at dropout (BG/NBD's dropout is at
    # the last purchase; the truth's dropout times stay right)
    is_repeat = (np.arange(t.size) >= buyers.size) & (t < dropout[contact])
    rows: dict[str, list[np.ndarray]] = {"contact": [], "campaign": [], "day": [], "treated": []}
    extra_contact, extra_t = [], []
    w = float(config.window_days)
    for k in range(config.n_campaigns, 0, -1):
        day = -float(k * config.campaign_spacing_days)
        eligible = np.flatnonzero(first_day < day)
        targeted = eligible[rng.random(eligible.size) < config.target_share]
        treated = rng.random(targeted.size) < 0.5
        rows["contact"].append(targeted)
        rows["campaign"].append(np.full(targeted.size, config.n_campaigns - k, np.int64))
        rows["day"].append(np.full(targeted.size, day))
        rows["treated"].append(treated)
        alive = np.zeros(n, bool)
        hit = targeted[treated]
        alive[hit] = dropout[hit] > day
        annoyed = alive & (rng.random(n) < annoy)
        in_window = (t > day) & (t <= day + w) & is_repeat
        keep &= ~(in_window & annoyed[contact])
        persuaded = np.flatnonzero(alive & (rng.random(n) < persuade))
        when = day + w * rng.random(persuaded.size)
        ok = when < dropout[persuaded]  # nobody buys after dropping out
        extra_contact.append(persuaded[ok])
        extra_t.append(when[ok])
    added_c = np.concatenate([np.empty(0, contact.dtype), *extra_contact])
    added_t = np.concatenate([np.empty(0), *extra_t])
    return {
        "contact": np.concatenate((contact[keep], added_c.astype(contact.dtype))),
        "t": np.concatenate((t[keep], added_t)),
        "extra": np.concatenate((np.zeros(int(keep.sum()), bool), np.ones(added_c.size, bool))),
        "rows": {key: np.concatenate(parts) if parts else np.empty(0) for key, parts in rows.items()},
    }


def promotions_table(campaigns: dict[str, Any], ids: pa.Array, end_us: int) -> pa.Table:
    """The observed ``promotions`` table: one row per targeted contact and campaign."""
    rows = campaigns["rows"]
    contact = rows["contact"].astype(np.int64)
    return pa.table(
        {
            "contact_id": ids.take(pa.array(contact)),
            "campaign_id": pa.array([f"promo-{int(c) + 1}" for c in rows["campaign"]], pa.string()),
            "ts": pa.array(end_us + np.rint(rows["day"] * US_PER_DAY).astype(np.int64), type=_TS),
            "treated": pa.array(rows["treated"].astype(bool)),
        }
    )


def promotion_truth(
    config: ProductConfig, ids: pa.Array, latent: dict[str, np.ndarray], alive_at_end: np.ndarray, rho: np.ndarray
) -> pa.Table:
    """Per contact: the true effect of a campaign at ``end`` (module docstring) and ``rho``."""
    s = latent["promo"]
    persuade = config.persuasion * s
    annoy = np.where(s < config.annoy_below, config.annoyance, 0.0)
    q = alive_at_end * -np.expm1(-latent["lam"] * config.window_days)
    p_treated = alive_at_end * (1.0 - (1.0 - (1.0 - annoy) * q) * (1.0 - persuade))
    segment = uplift_segments(p_treated, q, config.uplift_threshold, config.buy_threshold)
    return pa.table(
        {
            "contact_id": ids,
            "p_buy_treated": pa.array(p_treated),
            "p_buy_control": pa.array(q),
            "uplift": pa.array(p_treated - q),
            "segment": pa.array(np.array(SEGMENTS, dtype=object)[segment], pa.string()),
            "repeat_tendency": pa.array(rho),
        }
    )
