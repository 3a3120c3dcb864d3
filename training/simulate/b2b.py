"""A synthetic B2B lead base with a known conversion process: who buys within 21 days.

- **Firmographics** (``contacts``): country, ip_country (where the contact's visits come
  from; 10 % differ from country), industry, employees (log-normal), annual_volume (scaled
  to employees), job_role and email_domain (business / free / education / competitor).
- **Behaviour.** Each contact has a latent interest ``z ~ N(0, 1)`` (correlated 0.3 with fit)
  that scales the Poisson rates of its interactions (email_open, email_click, form,
  demo_request, webinar) and web visits over the 180 days before the cutoff and until
  ``end``; a quarter of the contacts have a burst of activity in the 21 days before the
  cutoff. Job seekers (4 %) visit /careers.
- **Conversion.** At the cutoff ``end - 21 days`` every contact converts within the next 21
  days with probability ``sigmoid(logit)``, where ``logit`` is a fit part (industry, role,
  company size, e-mail domain, country) plus a behaviour part computed from what is
  *observed* up to the cutoff (counts of clicks, forms, demo requests, pricing-page visits in
  trailing windows), with negative signals: competitors, students, careers-page visitors and
  excluded countries. Conversions are written as interactions of kind ``conversion``.

Since the label depends on the observed data only through ``p_true``, ranking by ``p_true``
is Bayes-optimal: ``truth/metadata.json`` holds its AUC (``bayes_auc``; ``bayes_auc_holdout``
on the leads the lead model holds out) and
``truth/leads.parquet`` each contact's ``p_true`` and label.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from scorecast.atomic import new_dir
from scorecast.kernels.time_units import US_PER_DAY

from ..evaluation import roc_auc
from .retail import write_parquet

__all__ = ["B2BConfig", "SimulatedLeads", "read_lead_truth", "simulate_b2b", "write_b2b"]

GENERATOR = "scorecast.simulate_b2b"
CONVERSION_KIND = "conversion"
WINDOW_DAYS = 21
HISTORY_DAYS = 180
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS = pa.timestamp("us", tz="UTC")

COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IN", "BR", "RU", "IR")
COUNTRY_SHARES = (0.30, 0.14, 0.12, 0.10, 0.06, 0.06, 0.08, 0.06, 0.05, 0.03)
EXCLUDED_COUNTRIES = ("RU", "IR")  # the seller cannot sell there: such leads (almost) never convert
INDUSTRIES = ("software", "finance", "manufacturing", "retail", "healthcare", "education", "government", "consulting")
INDUSTRY_EFFECT = (0.8, 0.6, 0.3, 0.0, 0.2, -0.8, -0.5, 0.1)
ROLES = ("c_level", "vp", "manager", "engineer", "analyst", "student", "other")
ROLE_SHARES = (0.06, 0.10, 0.25, 0.25, 0.17, 0.07, 0.10)
ROLE_EFFECT = (0.9, 0.7, 0.4, 0.0, -0.1, -2.0, -0.3)
DOMAINS = ("business", "free", "education", "competitor")
DOMAIN_SHARES = (0.72, 0.18, 0.06, 0.04)
DOMAIN_EFFECT = (0.0, -0.5, -1.0, -3.0)
# interaction kinds and web pages, with base rates per day at z = 0
KIND_RATES = {"email_open": 0.05, "email_click": 0.012, "form": 0.002, "demo_request": 0.0007, "webinar": 0.002}
PAGE_RATES = {
    "/home": 0.03,
    "/product": 0.02,
    "/pricing": 0.006,
    "/blog": 0.02,
    "/docs": 0.01,
    "/case-studies": 0.004,
    "/careers": 0.001,
}

# The true logit's behaviour part: (feature as the lead family names it, transform, weight).
TRUE_BEHAVIOUR = (
    ("lead_int_count:email_open:21", "log1p", 0.35),
    ("lead_int_count:email_click:21", "log1p", 0.7),
    ("lead_int_count:form:90", "any", 1.0),
    ("lead_int_count:demo_request:21", "any", 2.0),
    ("lead_web_visits:/pricing:21", "log1p", 0.6),
    ("lead_web_visits:*:90", "log1p", 0.25),
    ("lead_web_visits:/careers:90", "any", -1.5),
)
INTERCEPT = -5.2
SIZE_EFFECT = 0.35  # per decade of employees
EXCLUDED_EFFECT = -4.0


@dataclass(frozen=True)
class B2BConfig:
    """Parameters of :func:`simulate_b2b`; ``end`` is the last moment of the data (UTC)."""

    n_contacts: int = 20_000
    seed: int = 0
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    burst_share: float = 0.25
    job_seeker_share: float = 0.04

    def __post_init__(self) -> None:
        if isinstance(self.n_contacts, bool) or not isinstance(self.n_contacts, int) or self.n_contacts < 1:
            raise ValueError(f"n_contacts must be a positive integer, got {self.n_contacts!r}")
        for name in ("burst_share", "job_seeker_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    @property
    def cutoff(self) -> datetime:
        """The moment the conversion probabilities are drawn at: ``end - 21 days``."""
        return self.end - timedelta(days=WINDOW_DAYS)


@dataclass(frozen=True)
class SimulatedLeads:
    """The observed tables (``contacts``, ``interactions``, ``web_events``) and the truth."""

    config: B2BConfig
    contacts: pa.Table
    interactions: pa.Table
    web_events: pa.Table
    truth: pa.Table  # contact_id, p_true, logit_true, converted, fit_true, behaviour_true

    @property
    def bayes_auc(self) -> float:
        """AUC of ``p_true`` against the drawn labels: the best any model can do on this base."""
        return roc_auc(self.truth["converted"].to_numpy(), self.truth["p_true"].to_numpy())

    @property
    def bayes_auc_holdout(self) -> float:
        """The same on the leads ``scorecast train`` holds out for lead (``lead.holdout_mask``,
        seed 0, over the contacts in table order: no lead here converted before the cutoff)."""
        from ..lead.scorecard import holdout_mask

        test = holdout_mask(self.truth.num_rows, 0)
        return roc_auc(self.truth["converted"].to_numpy()[test], self.truth["p_true"].to_numpy()[test])

    def metadata(self) -> dict[str, Any]:
        """What ``truth/metadata.json`` holds."""
        converted = self.truth["converted"].to_numpy()
        return {
            "generator": GENERATOR,
            "config": {**asdict(self.config), "end": self.config.end.isoformat()},
            "as_of": self.config.end.isoformat(),
            "cutoff": self.config.cutoff.isoformat(),
            "window_days": WINDOW_DAYS,
            "conversion_kind": CONVERSION_KIND,
            "conversion_rate": float(converted.mean()),
            "bayes_auc": self.bayes_auc,
            "bayes_auc_holdout": self.bayes_auc_holdout,
            "excluded_countries": list(EXCLUDED_COUNTRIES),
            "true_behaviour": [list(t) for t in TRUE_BEHAVIOUR],
        }


def _events(
    rng: np.random.Generator,
    rates: dict[str, float],
    scale: np.ndarray,
    burst: np.ndarray,
    start_us: int,
    cutoff_us: int,
    end_us: int,
):  # noqa: ANN202
    """Poisson events per contact and category: (contact, ts, category index)."""
    n = len(scale)
    contacts, times, cats = [], [], []
    span = (end_us - start_us) / US_PER_DAY
    for c, rate in enumerate(rates.values()):
        k = rng.poisson(rate * scale * span)
        who = np.repeat(np.arange(n), k)
        contacts.append(who)
        times.append(rng.integers(start_us, end_us, who.size))
        cats.append(np.full(who.size, c))
        # the burst: four times the rate over the 21 days before the cutoff
        k = rng.poisson(4 * rate * scale * WINDOW_DAYS * burst)
        who = np.repeat(np.arange(n), k)
        contacts.append(who)
        times.append(rng.integers(cutoff_us - WINDOW_DAYS * US_PER_DAY, cutoff_us, who.size))
        cats.append(np.full(who.size, c))
    contact, ts, cat = (np.concatenate(a) for a in (contacts, times, cats))
    order = np.argsort(ts, kind="stable")
    return contact[order], ts[order], cat[order]


def _observed(
    contact: np.ndarray, ts: np.ndarray, cat: np.ndarray, names: tuple[str, ...], n: int, cutoff_us: int, name: str
) -> np.ndarray:
    """One lead feature at the cutoff (``<prefix><kind>:<category>:<days>``) by NumPy counting."""
    category, _, days = name.split(":", 1)[1].rpartition(":")
    keep = (ts <= cutoff_us) & (ts > cutoff_us - int(days) * US_PER_DAY)
    if category != "*":
        keep &= cat == names.index(category)
    return np.bincount(contact[keep], minlength=n).astype(np.float64)


def simulate_b2b(config: B2BConfig) -> SimulatedLeads:
    """Draw a B2B base from ``config``: firmographics, interactions, web visits, conversions."""
    rng_attr, rng_events, rng_web, rng_label, rng_ids = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5)
    )
    n = config.n_contacts
    end_us = (config.end - _EPOCH) // timedelta(microseconds=1)
    cutoff_us = end_us - WINDOW_DAYS * US_PER_DAY
    start_us = cutoff_us - HISTORY_DAYS * US_PER_DAY

    country = rng_attr.choice(len(COUNTRIES), n, p=COUNTRY_SHARES)
    ip_country = np.where(rng_attr.random(n) < 0.1, rng_attr.choice(len(COUNTRIES), n, p=COUNTRY_SHARES), country)
    industry = rng_attr.integers(0, len(INDUSTRIES), n)
    role = rng_attr.choice(len(ROLES), n, p=ROLE_SHARES)
    domain = rng_attr.choice(len(DOMAINS), n, p=DOMAIN_SHARES)
    domain = np.where(
        role == ROLES.index("student"), np.where(rng_attr.random(n) < 0.7, DOMAINS.index("education"), domain), domain
    )
    employees = np.maximum(1, np.rint(np.exp(rng_attr.normal(4.0, 1.6, n)))).astype(np.int64)
    volume = np.round(employees * np.exp(rng_attr.normal(11.0, 0.8, n)), -3)
    size = np.log10(employees)
    excluded = np.isin(np.array(COUNTRIES)[country], EXCLUDED_COUNTRIES)
    fit = (
        np.array(INDUSTRY_EFFECT)[industry]
        + np.array(ROLE_EFFECT)[role]
        + np.array(DOMAIN_EFFECT)[domain]
        + SIZE_EFFECT * size
        + EXCLUDED_EFFECT * excluded
    )

    z = 0.3 * (fit - fit.mean()) / fit.std() + np.sqrt(1 - 0.09) * rng_events.normal(size=n)
    scale = np.exp(0.8 * z - 0.32)  # mean 1
    burst = rng_events.random(n) < config.burst_share
    kinds = tuple(KIND_RATES)
    i_contact, i_ts, i_kind = _events(rng_events, KIND_RATES, scale, burst, start_us, cutoff_us, end_us)
    pages = tuple(PAGE_RATES)
    page_rates = dict(PAGE_RATES)
    w_contact, w_ts, w_page = _events(rng_web, page_rates, scale, burst, start_us, cutoff_us, end_us)
    seekers = np.flatnonzero(rng_web.random(n) < config.job_seeker_share)
    k = rng_web.poisson(3.0, seekers.size) + 1
    extra = np.repeat(seekers, k)
    w_contact = np.concatenate([w_contact, extra])
    w_ts = np.concatenate([w_ts, rng_web.integers(start_us, end_us, extra.size)])
    w_page = np.concatenate([w_page, np.full(extra.size, pages.index("/careers"))])
    order = np.argsort(w_ts, kind="stable")
    w_contact, w_ts, w_page = w_contact[order], w_ts[order], w_page[order]

    behaviour = np.zeros(n)
    for name, transform, weight in TRUE_BEHAVIOUR:
        if name.startswith("lead_int_"):
            x = _observed(i_contact, i_ts, i_kind, kinds, n, cutoff_us, name)
        else:
            x = _observed(w_contact, w_ts, w_page, pages, n, cutoff_us, name)
        behaviour += weight * (np.log1p(x) if transform == "log1p" else (x > 0))
    logit = INTERCEPT + fit + behaviour
    p = 1 / (1 + np.exp(-logit))
    converted = rng_label.random(n) < p
    conv_who = np.flatnonzero(converted)
    conv_ts = rng_label.integers(cutoff_us + 1, end_us, conv_who.size)

    ids = pa.array(1_000_000 + rng_ids.permutation(n).astype(np.int64) * 7)
    contacts = pa.table(
        {
            "contact_id": ids,
            "country": pa.array(np.array(COUNTRIES)[country]),
            "ip_country": pa.array(np.array(COUNTRIES)[ip_country]),
            "industry": pa.array(np.array(INDUSTRIES)[industry]),
            "employees": pa.array(employees),
            "annual_volume": pa.array(volume),
            "job_role": pa.array(np.array(ROLES)[role]),
            "email_domain": pa.array(np.array(DOMAINS)[domain]),
        }
    )
    all_kinds = np.array([*kinds, CONVERSION_KIND])
    i_contact = np.concatenate([i_contact, conv_who])
    i_ts = np.concatenate([i_ts, conv_ts])
    i_kind = np.concatenate([i_kind, np.full(conv_who.size, len(kinds))])
    order = np.argsort(i_ts, kind="stable")
    interactions = pa.table(
        {
            "contact_id": ids.take(pa.array(i_contact[order])),
            "ts": pa.array(i_ts[order], _TS),
            "kind": pa.array(all_kinds[i_kind[order]]),
        }
    )
    duration = np.round(rng_web.gamma(1.5, 40.0, w_contact.size), 1)
    web_events = pa.table(
        {
            "contact_id": ids.take(pa.array(w_contact)),
            "ts": pa.array(w_ts, _TS),
            "page": pa.array(np.array(pages)[w_page]),
            "duration_s": pa.array(duration),
        }
    )
    truth = pa.table(
        {
            "contact_id": ids,
            "p_true": pa.array(p),
            "logit_true": pa.array(logit),
            "fit_true": pa.array(fit),
            "behaviour_true": pa.array(behaviour),
            "converted": pa.array(converted),
        }
    )
    return SimulatedLeads(config, contacts, interactions, web_events, truth)


def write_b2b(base: SimulatedLeads, out_dir: Path | str, *, progress: bool = False, overwrite: bool = False) -> None:
    """Write ``base`` as a base folder with ``truth/leads.parquet`` and ``truth/metadata.json``, atomically."""
    out_dir = Path(out_dir)
    files = {
        "contacts.parquet": base.contacts,
        "interactions.parquet": base.interactions,
        "web_events.parquet": base.web_events,
        "truth/leads.parquet": base.truth,
    }
    with new_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "truth").mkdir()
        with tqdm(
            total=sum(t.num_rows for t in files.values()), unit="row", unit_scale=True, desc="writing base", disable=not progress
        ) as bar:
            for name, table in files.items():
                write_parquet(table, tmp / name, bar)
        (tmp / "truth" / "metadata.json").write_text(json.dumps(base.metadata(), indent=2) + "\n")
        # like a retail base, the folder says its own as-of (the default of score / rescore / top)
        (tmp / "base.json").write_text(json.dumps({"kind": "b2b", "as_of": base.metadata()["as_of"]}, indent=2) + "\n")


def read_lead_truth(out_dir: Path | str) -> tuple[pa.Table, dict[str, Any]]:
    """``truth/leads.parquet`` and ``truth/metadata.json`` of a written B2B base."""
    truth = Path(out_dir) / "truth"
    if not (truth / "leads.parquet").is_file():
        raise FileNotFoundError(f"{truth / 'leads.parquet'} does not exist: not a simulated B2B base?")
    return pq.read_table(truth / "leads.parquet"), json.loads((truth / "metadata.json").read_text())
