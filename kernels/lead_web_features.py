"""The lead family's B2B web features, from ``web_events`` (contact_id, ts, page, duration_s).

    lead_web_visits:<page>:<days>        page views in (as_of - days, as_of]
    lead_web_duration_s:<page>:<days>    seconds on those pages in that window (null durations: 0)
    lead_web_recency_days:<page>         days since the last view (NaN: none)

``<page>`` is a value of ``web_events.page`` or ``*`` for every page. The prefix keeps these
apart from the web-heat family's features, which read the same table.
"""

from __future__ import annotations

from .interaction_features import EventWindowFamily

__all__ = ["LEAD_WEB"]

LEAD_WEB = EventWindowFamily(
    "web_events",
    "page",
    "lead_web_",
    {"visits": "count", "duration_s": "sum", "recency_days": "recency"},
    weight_column="duration_s",
)
