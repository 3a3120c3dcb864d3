"""Fitting the e-mail scores (engagement, pressure, interests) from a base's tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from scorecast.base import read_table
from scorecast.kernels import FeatureFrame

from .scores.email_events import email_rows, next_send, open_rate_by_gap
from .scores.engagement import ENGAGEMENT_FEATURES, EngagementModel, fit_engagement
from .scores.interests import InterestsModel, fit_interests, keyword_features
from .scores.pressure import PRESSURE_FEATURES, PressureModel, fit_pressure

__all__ = ["EMAIL_HORIZON_DAYS", "EMAIL_SCORES", "MAX_KEYWORDS", "email_tables", "fit_email_score", "keyword_vocabulary"]

EMAIL_SCORES = ("engagement", "pressure", "interests")
EMAIL_HORIZON_DAYS = 30
MAX_KEYWORDS = 50


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def email_tables(data: Path, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """``tables`` plus the base's email_events and campaigns; ValueError if it has no e-mail events."""
    events = read_table(data, "email_events", ["ts", "campaign_id", "event"])
    if events is None or events.num_rows == 0:
        raise ValueError(f"base {data} has no email_events (email_events.parquet missing or empty): the e-mail scores need them")
    out = {**tables, "email_events": events}
    campaigns = read_table(data, "campaigns", ["campaign_id", "keywords"])
    if campaigns is not None:
        out["campaigns"] = campaigns
    return out


def keyword_vocabulary(campaigns: pa.Table | None, limit: int = MAX_KEYWORDS) -> list[str]:
    """The campaigns' keywords, most frequent first (ties by name), at most ``limit``."""
    if campaigns is None or "keywords" not in campaigns.column_names:
        raise ValueError("interests need campaigns.keywords, which this base does not have")
    counts = pc.value_counts(pc.list_flatten(campaigns["keywords"].combine_chunks()).drop_null())
    ranked = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    if not ranked:
        raise ValueError("interests: no campaign has a keyword")
    return [k for k, _ in ranked[:limit]]


def fit_email_score(
    score: str, tables: dict[str, pa.Table], as_of: datetime, *, interest_k: int = 3
) -> EngagementModel | PressureModel | InterestsModel:
    """Fit one e-mail score on ``tables`` (with email_events) as of ``as_of``."""
    now = FeatureFrame(tables, _us(as_of))
    if score == "engagement":
        cutoff = as_of - timedelta(days=EMAIL_HORIZON_DAYS)
        before = FeatureFrame(tables, _us(cutoff), contact_ids=now.contact_ids)
        labels = next_send(email_rows(now), len(now), _us(cutoff), _us(as_of))
        names = list(ENGAGEMENT_FEATURES)
        return fit_engagement(
            now.matrix(names),
            before.matrix(names),
            names,
            labels.sent,
            labels.opened,
            labels.clicked,
            horizon_days=EMAIL_HORIZON_DAYS,
        )
    if score == "pressure":
        sends, rates = open_rate_by_gap(email_rows(now), _us(as_of))
        return fit_pressure(now.matrix(list(PRESSURE_FEATURES)), list(PRESSURE_FEATURES), sends, rates)
    if score == "interests":
        keywords = keyword_vocabulary(tables.get("campaigns"))
        model = InterestsModel(keywords, k=interest_k)
        names = keyword_features(keywords)
        return fit_interests(now.matrix(names, model.feature_params), names, keywords, k=interest_k)
    raise ValueError(f"unknown e-mail score {score!r}; known: {list(EMAIL_SCORES)}")
