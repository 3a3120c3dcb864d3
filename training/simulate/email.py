"""The e-mail side of a simulated base: campaigns, e-mail events and the truth behind them.

The generative process (all per contact, vectorised over the whole base):

- **Campaigns.** Sent at random times, ``campaigns_per_week`` on average, from
  ``history_days`` before ``end`` to ``future_days`` after it. Each has 1–3 keywords drawn
  from a Zipf-popular vocabulary of ``n_keywords`` and is a promotion with probability
  ``promo_share``.
- **Targeting.** A share ``subscribed_share`` of contacts is on the list. A subscribed
  contact gets each campaign sent after its signup with probability ``q ~ Beta(send_a,
  send_b)``: high-``q`` contacts get mails a day or two apart, which tires them.
- **Opens.** At a send at time ``t`` (years from ``end``), ``P(open) = sigmoid(a + b t) *
  fatigue * (1 - relevance_open + relevance_open * rel)`` with ``a ~ N(open_logit_mean,
  open_logit_sd)`` the contact's propensity, ``b ~ N(0, drift_sd)`` its drift per year,
  ``fatigue = fatigue_factor`` when the previous send was less than ``fatigue_days`` before
  (else 1), and ``rel = min(1, 2 * sum of the contact's interests over the campaign's
  keywords)``. Interests are ``Dirichlet(interest_concentration * popularity)`` over the
  vocabulary: small concentration, so most contacts care about one or two keywords.
- **Clicks.** Given an open, ``P(click) = c * rel`` with ``c ~ Beta(click_a, click_b)``.
- **Unsubscribes.** Given an open, the contact unsubscribes with probability ``u ~
  Beta(unsub_a, unsub_b)``, times ``fatigue_unsubscribe`` when fatigued; no sends after.
- **Bounces.** A share ``bad_address_share`` of subscribed contacts has a bad address: its
  first send bounces and nothing is sent to it again.
- **Event times.** ``sent`` at the campaign time, ``bounce`` a minute later, ``open`` an
  exponential delay (mean ``open_delay_hours``) after, ``click`` and ``unsubscribe`` minutes
  after the open.

:func:`simulate_email` returns the tables ``campaigns`` and ``email_events`` (up to ``end``)
and the truth: ``truth/email_contacts`` (row-aligned with contacts: interests, the true
P(open) and P(click) at each contact's first send after ``end`` and whether it reacted, the
fatigue state) and ``truth/future_email_events``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scorecast.kernels.time_units import US_PER_DAY

__all__ = ["EMAIL_EVENTS", "KEYWORDS", "EmailConfig", "simulate_email"]

EMAIL_EVENTS = ("sent", "open", "click", "bounce", "unsubscribe")
"""The ``email_events.event`` values."""
KEYWORDS = (
    "running", "fashion", "beauty", "home", "garden", "kitchen", "tech", "gaming",
    "books", "travel", "kids", "pets", "wellness", "outdoor", "music", "sale",
)  # fmt: skip
_MINUTE_US = 60_000_000
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class EmailConfig:
    """The e-mail simulation's parameters (see the module docstring for the process)."""

    history_days: int = 365
    """Campaigns sent before ``end`` (capped by the base's history)."""
    future_days: int = 60
    """Campaigns after ``end``, for the truth of the next send."""
    campaigns_per_week: float = 3.5
    n_keywords: int = 16
    keyword_zipf: float = 0.3
    promo_share: float = 0.3
    subscribed_share: float = 0.9
    send_a: float = 2.0
    send_b: float = 11.0
    open_logit_mean: float = -1.0
    open_logit_sd: float = 1.2
    drift_sd: float = 1.0
    relevance_open: float = 0.8
    click_a: float = 3.0
    click_b: float = 3.0
    interest_concentration: float = 1.5
    fatigue_days: float = 3.0
    fatigue_factor: float = 0.5
    unsub_a: float = 1.0
    unsub_b: float = 150.0
    fatigue_unsubscribe: float = 4.0
    bad_address_share: float = 0.02
    open_delay_hours: float = 8.0

    def __post_init__(self) -> None:
        for name in ("history_days", "future_days", "n_keywords"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"email {name} must be an integer >= 1, got {value!r}")
        if self.n_keywords > len(KEYWORDS):
            raise ValueError(f"email n_keywords must be <= {len(KEYWORDS)}, got {self.n_keywords}")
        for name in ("promo_share", "subscribed_share", "relevance_open", "fatigue_factor", "bad_address_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"email {name} must be in [0, 1], got {value!r}")
        for name in (
            "campaigns_per_week", "send_a", "send_b", "click_a", "click_b", "interest_concentration",
            "unsub_a", "unsub_b", "open_delay_hours", "fatigue_unsubscribe",
        ):  # fmt: skip
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"email {name} must be > 0, got {value!r}")
        for name in ("open_logit_sd", "drift_sd", "fatigue_days"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"email {name} must be >= 0, got {getattr(self, name)!r}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _campaigns(cfg: EmailConfig, start_us: int, stop_us: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    days = (stop_us - start_us) / US_PER_DAY
    n = max(1, int(rng.poisson(cfg.campaigns_per_week / 7 * days)))
    ts = np.sort(start_us + (rng.random(n) * (stop_us - start_us)).astype(np.int64))
    popularity = 1.0 / np.arange(1, cfg.n_keywords + 1) ** cfg.keyword_zipf
    popularity /= popularity.sum()
    n_kw = 1 + rng.binomial(2, 0.4, size=n)
    keywords = np.full((n, 3), -1, np.int64)  # padded with -1
    for i in range(n):
        keywords[i, : n_kw[i]] = rng.choice(cfg.n_keywords, size=n_kw[i], replace=False, p=popularity)
    return {
        "ts": ts,
        "keywords": keywords,
        "promo": rng.random(n) < cfg.promo_share,
        "popularity": popularity,
    }


def simulate_email(
    cfg: EmailConfig,
    ids: pa.Array,
    signup_us: np.ndarray,
    end_us: int,
    history_days: int,
    seed: int,
) -> dict[str, pa.Table]:
    """The e-mail tables of a base with these contacts (``ids``, signup times in µs).

    Returns ``campaigns``, ``email_events`` (ts <= end) and the truth tables
    ``truth/email_contacts`` and ``truth/future_email_events``, keyed by their file name.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE3A1]))
    n = len(ids)
    vocab = np.array(KEYWORDS[: cfg.n_keywords])
    start_us = end_us - min(cfg.history_days, history_days) * US_PER_DAY
    stop_us = end_us + cfg.future_days * US_PER_DAY
    camp = _campaigns(cfg, start_us, stop_us, rng)
    n_camp = camp["ts"].size

    # per-contact latent parameters
    subscribed = rng.random(n) < cfg.subscribed_share
    bad = subscribed & (rng.random(n) < cfg.bad_address_share)
    q = rng.beta(cfg.send_a, cfg.send_b, n)
    a = rng.normal(cfg.open_logit_mean, cfg.open_logit_sd, n)
    b = rng.normal(0.0, cfg.drift_sd, n)
    c = rng.beta(cfg.click_a, cfg.click_b, n)
    u = rng.beta(cfg.unsub_a, cfg.unsub_b, n)
    theta = rng.dirichlet(cfg.interest_concentration * camp["popularity"], n)

    # sends: k ~ Binomial(campaigns after signup, q) campaigns, drawn uniformly, deduplicated;
    # the unique keys come out sorted by contact, then by campaign (= time) order
    first = np.searchsorted(camp["ts"], signup_us, side="left")
    avail = n_camp - first
    k = np.where(subscribed, rng.binomial(avail, q), 0)
    contact = np.repeat(np.arange(n, dtype=np.int64), k)
    pick = first[contact] + (rng.random(contact.size) * avail[contact]).astype(np.int64)
    key = np.sort(contact * n_camp + pick)  # np.unique hashes first: 20x slower here
    key = key[np.append(True, key[1:] != key[:-1])] if key.size else key
    contact, cid = key // n_camp, key % n_camp
    del key, pick
    send_ts = camp["ts"][cid]
    same = np.zeros(contact.size, bool)
    same[1:] = contact[1:] == contact[:-1]
    gap_days = np.full(contact.size, np.inf)
    gap_days[1:] = np.where(same[1:], (send_ts[1:] - send_ts[:-1]) / US_PER_DAY, np.inf)
    fatigued = gap_days < cfg.fatigue_days

    r = np.zeros(contact.size)
    for j in range(3):
        kw = camp["keywords"][cid, j]
        r += np.where(kw >= 0, theta[contact, np.maximum(kw, 0)], 0.0)
    rel = np.minimum(1.0, 2.0 * r)
    years = (send_ts - end_us) / (365.0 * US_PER_DAY)
    p_open = (
        _sigmoid(a[contact] + b[contact] * years)
        * np.where(fatigued, cfg.fatigue_factor, 1.0)
        * (1.0 - cfg.relevance_open + cfg.relevance_open * rel)
    )
    p_click = c[contact] * rel  # given an open
    opened = rng.random(contact.size) < p_open
    clicked = opened & (rng.random(contact.size) < p_click)
    unsub = opened & (rng.random(contact.size) < u[contact] * np.where(fatigued, cfg.fatigue_unsubscribe, 1.0))

    # no sends after an unsubscribe; one (bounced) send to a bad address
    starts = np.flatnonzero(~same)
    sizes = np.diff(np.append(starts, contact.size))
    before = np.cumsum(unsub) - unsub
    unsub_before = before - np.repeat(before[starts], sizes)
    bounced = bad[contact] & ~same
    keep = (unsub_before == 0) & (~bad[contact] | bounced)
    opened &= ~bounced
    clicked &= ~bounced
    unsub &= ~bounced

    # events
    open_ts = send_ts + (rng.exponential(cfg.open_delay_hours, contact.size) * 3_600_000_000).astype(np.int64)
    click_ts = open_ts + (rng.exponential(5.0, contact.size) * _MINUTE_US).astype(np.int64) + _MINUTE_US
    unsub_ts = np.maximum(open_ts, click_ts) + (rng.exponential(2.0, contact.size) * _MINUTE_US).astype(np.int64)
    parts = [
        (keep, send_ts, 0),
        (keep & opened, open_ts, 1),
        (keep & clicked, click_ts, 2),
        (keep & bounced, send_ts + _MINUTE_US, 3),
        (keep & unsub, unsub_ts, 4),
    ]
    ev_contact = np.concatenate([contact[m] for m, _, _ in parts])
    ev_camp = np.concatenate([cid[m] for m, _, _ in parts])
    ev_ts = np.concatenate([t[m] for m, t, _ in parts])
    ev_type = np.concatenate([np.full(int(m.sum()), e, np.int8) for m, _, e in parts])
    order = np.argsort(ev_ts, kind="stable")  # a log in time order, as an ESP exports it
    split = int(np.searchsorted(ev_ts[order], end_us, side="right"))
    campaign_ids = np.arange(1, n_camp + 1, dtype=np.int64) + 70_000

    def events(rows: np.ndarray) -> pa.Table:
        return pa.table(
            {
                "contact_id": ids.take(pa.array(ev_contact[rows])),
                "ts": pa.array(ev_ts[rows], _TS),
                "campaign_id": pa.array(campaign_ids[ev_camp[rows]]),
                "event": pa.array(EMAIL_EVENTS, pa.string()).take(pa.array(ev_type[rows])),
            }
        )

    offsets = np.concatenate([[0], np.cumsum((camp["keywords"] >= 0).sum(axis=1))])
    flat = camp["keywords"][camp["keywords"] >= 0]
    campaigns = pa.table(
        {
            "campaign_id": pa.array(campaign_ids),
            "ts": pa.array(camp["ts"], _TS),
            "keywords": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(vocab[flat], pa.string())),
            "promo": pa.array(camp["promo"]),
        }
    )

    # truth: the first kept send after end, per contact
    future = keep & (send_ts > end_us)
    rows = np.flatnonzero(future)
    nxt = np.full(n, -1, np.int64)
    who, where = np.unique(contact[rows], return_index=True)  # rows run by contact, then time
    nxt[who] = rows[where]
    has_next = nxt >= 0
    pick_next = np.maximum(nxt, 0)

    def at_next(values: np.ndarray) -> np.ndarray:
        return np.where(has_next, values[pick_next], np.nan) if contact.size else np.full(n, np.nan)

    past = keep & (send_ts <= end_us)
    recent = past & (send_ts > end_us - 30 * US_PER_DAY)
    unsubscribed = np.zeros(n, bool)
    unsubscribed[contact[keep & unsub & (unsub_ts <= end_us)]] = True
    truth = {
        "contact_id": ids,
        "email_subscribed": pa.array(subscribed),
        "email_bad_address": pa.array(bad),
        "email_unsubscribed": pa.array(unsubscribed),
        "open_logit": pa.array(a),
        "open_drift": pa.array(b),
        "click_propensity": pa.array(c),
        "p_open_now": pa.array(_sigmoid(a)),
        "next_send_ts": pa.array(np.where(has_next, at_next(send_ts.astype(float)), 0).astype(np.int64), _TS, mask=~has_next),
        "p_open_next": pa.array(at_next(p_open)),
        "p_click_next": pa.array(at_next(p_open * p_click)),
        "opened_next": pa.array(at_next(opened.astype(float))),
        "clicked_next": pa.array(at_next(clicked.astype(float))),
        "fatigued_next": pa.array(at_next(fatigued.astype(float))),
        "sends_30d": pa.array(np.bincount(contact[recent], minlength=n)),
        "fatigued_sends_30d": pa.array(np.bincount(contact[recent & fatigued], minlength=n)),
        "top_keyword": pa.array(vocab[theta.argmax(axis=1)], pa.string()),
        **{f"interest:{kw}": pa.array(np.ascontiguousarray(theta[:, j])) for j, kw in enumerate(vocab)},
    }
    return {
        "campaigns": campaigns,
        "email_events": events(order[:split]),
        "truth/email_contacts": pa.table(truth),
        "truth/future_email_events": events(order[split:]),
    }
