"""What one ``scorecast train`` run shares among the score fitters.

A fitter (``fit(run, version) -> Fitted`` in each ``scores/`` module and ``lead/training``)
asks the run for the base's tables; they are read once, with only the columns the requested
scores use, and whatever several scores share (the clv/churn fit) is made once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import onnx
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.base import read_table

__all__ = ["MIN_BUYERS", "PRODUCT_SCORES", "WEB_FEATURE_SCORES", "Fitted", "Holdout", "TrainingRun", "as_us", "require_buyers"]

# Fewer buyers than this and quintiles / a holdout AUC are mostly noise (a 20 % holdout of
# 500 buyers leaves ~100 for the metrics).
MIN_BUYERS = 500
PRODUCT_SCORES = ("recommendations", "cross_sell", "promo_appetence")
"""Trained when named (``--scores``); not by default, so bases without SKUs or campaigns train.
When one is requested, the orders' sku and promo columns are read for every score of the run."""
WEB_FEATURE_SCORES = ("web_heat", "segments", "recommendations")
"""When one is requested, the base's web_events join the tables of every score of the run."""

T = TypeVar("T")


def as_us(value: datetime) -> int:
    """``value`` as integer microseconds since the epoch."""
    return int(value.timestamp() * 1_000_000)


def require_buyers(frequency: Any, what: str) -> int:
    """The number of contacts with orders; ValueError naming ``what`` below ``MIN_BUYERS``."""
    n = int((frequency > 0).sum())
    if n < MIN_BUYERS:
        raise ValueError(f"{what}: only {n} contacts with orders, need at least {MIN_BUYERS} to fit and validate")
    return n


@dataclass(frozen=True)
class Holdout:
    """The held-out contacts a score was validated on, as any model of the score can be scored
    on them: features computed from ``tables`` as of ``as_of_us`` for ``contact_ids``, request
    options set as in ``request`` (e.g. clv's horizon = the holdout's length), and the truth of
    each output named in ``labels``. ``metric``: what the promotion gate compares on them
    (``champion.METRICS``): "auc" (labels: bools), "mae" (labels: the true value),
    "silhouette" (labels: none; ``points`` are the contacts in the space the clusters are judged in),
    "ndcg" (labels: ``{"rec": the SKU names each contact bought}``, read through the ``rec_<i>``
    outputs) or "qini" (labels: ``{"uplift": bought}``, ``treated`` the arm of each row).
    ``times``, where given, are each row's own as-of (µs): promo_appetence's rows are contacts
    in campaigns, each as of its campaign, and a contact may be in several."""

    tables: dict[str, pa.Table]
    as_of_us: int
    contact_ids: pa.Array
    labels: dict[str, Any]  # output name -> array, one value per contact_ids
    metric: str = "auc"
    request: dict[str, float] = field(default_factory=dict)  # request option -> value
    points: Any = None  # silhouette: float [n, d], one row per contact_ids
    times: Any = None  # int64 µs per row, instead of as_of_us (rows as of different times)
    treated: Any = None  # qini: bool per row, the campaign's arm


@dataclass(frozen=True)
class Fitted:
    """A fitted score: its ONNX model with metadata, and the tables and as-of time its features
    were computed from (the parity probe recomputes a few rows from them); ``holdout``, where
    the score has one, lets a retrain be compared with the version it would replace."""

    model: onnx.ModelProto
    tables: dict[str, pa.Table]
    as_of: datetime
    holdout: Holdout | None = None


@dataclass
class TrainingRun:
    """One training run over the base folder ``data`` for the requested ``scores``."""

    data: Path
    scores: Sequence[str]
    as_of_given: datetime | None
    trained_at: str
    web_config: dict
    interest_k: int = 3
    lead_rules: Path | None = None
    tier_thresholds: Sequence[int] | None = None
    promo_outcome: str = "order"  # promo_appetence: "order" or "visit" (web_events)
    promo_window_days: int = 30  # promo_appetence: days after a campaign its outcome is counted
    _shared: dict[str, Any] = field(default_factory=dict)

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, computed on first use and kept for the other scores of the run."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def times(self, version: str, as_of: datetime) -> dict[str, str]:
        """The version, training time and data as-of a model's metadata records."""
        return {"version": version, "trained_at": self.trained_at, "data_as_of": as_of.isoformat()}

    @property
    def tables(self) -> dict[str, pa.Table]:
        """orders (only the columns features read), contacts and, for web scores, web_events."""
        return self.shared("tables", self._read_tables)

    @property
    def as_of(self) -> datetime:
        """The given as-of time, else the base's last order."""
        return self.shared("as_of", self._orders_as_of)

    def email_tables(self) -> dict[str, pa.Table]:
        """``tables`` plus email_events and campaigns; ValueError if the base has no e-mail events."""
        return self.shared("email_tables", self._read_email_tables)

    def read(self, name: str, columns: Sequence[str]) -> pa.Table | None:
        """Another table of the base (contact_id plus ``columns``), None when absent."""
        return read_table(self.data, name, list(columns))

    def _read_tables(self) -> dict[str, pa.Table]:
        extra = ["sku", "promo"] if set(self.scores) & set(PRODUCT_SCORES) else []
        orders = read_table(self.data, "orders", ["ts", "amount", "product_group", *extra])  # only what features read
        if orders is None or orders.num_rows == 0:
            raise ValueError(f"base {self.data} has no orders (orders.parquet missing or empty): every score needs them")
        contacts = read_table(self.data, "contacts", [])
        tables = {"orders": orders} if contacts is None else {"orders": orders, "contacts": contacts}
        if set(WEB_FEATURE_SCORES) & set(self.scores):
            web = read_table(self.data, "web_events", ["ts", "page", "duration_s"])
            if web is not None:
                tables["web_events"] = web
        return tables

    def _orders_as_of(self) -> datetime:
        if self.as_of_given is not None:
            return self.as_of_given
        as_of = pc.max(self.tables["orders"]["ts"]).as_py()
        return as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of

    def _read_email_tables(self) -> dict[str, pa.Table]:
        events = read_table(self.data, "email_events", ["ts", "campaign_id", "event"])
        if events is None or events.num_rows == 0:
            raise ValueError(f"base {self.data} has no email_events (email_events.parquet missing or empty): the e-mail scores need them")
        out = {**self.tables, "email_events": events}
        campaigns = read_table(self.data, "campaigns", ["campaign_id", "keywords"])
        if campaigns is not None:
            out["campaigns"] = campaigns
        return out
