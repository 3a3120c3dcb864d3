"""The e-mail feature family (table ``email_events``, keywords from ``campaigns``).

    email_sends, email_opens, email_clicks, email_bounces          distinct campaigns, all time
    email_<sends|opens|clicks|bounces>_<7|30|90|365>d              same, earliest event in window
    email_days_since_send, email_days_since_open, email_days_since_click
    email_unsubscribed, email_hard_bounced                          0/1
    email_open_rate, email_click_rate                               opens / sends, clicks / sends
    email_mean_send_gap_days, email_opens_last5_sends, email_clicks_last5_sends
    keyword_weight:<keyword>                                        time-decayed open/click weight

See ``email.email_summary`` for each definition. ``campaigns`` is a reference table (no
contact_id): ``campaign_id`` and ``keywords`` (list<string>), read only for keyword weights.
Feature params: ``keyword_half_life_days`` (default 90) and ``keyword_click_weight`` (3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow import category_codes, contact_codes
from .email import EVENT_TYPES, WINDOWS_DAYS, ContactEmails, EmailSummary, email_summary, keyword_weights, sort_events
from .errors import InputError
from .family import Frame, MakeFrame

__all__ = ["EMAIL", "EMAIL_FEATURES", "EmailFeatures"]

_KINDS = ("sends", "opens", "clicks", "bounces")
EMAIL_FEATURES: tuple[str, ...] = (
    *(f"email_{k}" for k in _KINDS),
    *(f"email_{k}_{w}d" for k in _KINDS for w in WINDOWS_DAYS),
    "email_days_since_send",
    "email_days_since_open",
    "email_days_since_click",
    "email_unsubscribed",
    "email_hard_bounced",
    "email_open_rate",
    "email_click_rate",
    "email_mean_send_gap_days",
    "email_opens_last5_sends",
    "email_clicks_last5_sends",
)
"""Every per-contact e-mail feature (the keyword weights aside)."""
KEYWORD_PREFIX = "keyword_weight:"
DEFAULT_HALF_LIFE_DAYS = 90.0
DEFAULT_CLICK_WEIGHT = 3.0
_TABLE = "email_events"


def _column_of(summary: EmailSummary, name: str) -> np.ndarray:
    """One feature column of a summary."""
    kind, _, rest = name.removeprefix("email_").partition("_")
    if kind in _KINDS and not rest:
        return summary.counts[:, _KINDS.index(kind)]
    if kind in _KINDS and rest.endswith("d") and rest[:-1].isdigit():
        return summary.window_counts[:, _KINDS.index(kind), WINDOWS_DAYS.index(int(rest[:-1]))]
    if name.startswith("email_days_since_"):
        return summary.days_since[:, ("send", "open", "click").index(name.rsplit("_", 1)[1])]
    return getattr(summary, name.removeprefix("email_"))


class EmailFeatures:
    """The e-mail family; one kernel run per frame covers every feature asked so far."""

    table = _TABLE
    reference_tables = ("campaigns",)
    patterns: tuple[str, ...] = (*EMAIL_FEATURES, f"{KEYWORD_PREFIX}<keyword>")

    def knows(self, name: str) -> bool:
        return name in EMAIL_FEATURES or (name.startswith(KEYWORD_PREFIX) and len(name) > len(KEYWORD_PREFIX))

    def columns(self, name: str) -> set[str]:
        base = {f"{_TABLE}.contact_id", f"{_TABLE}.ts", f"{_TABLE}.event", f"{_TABLE}.campaign_id"}
        if name.startswith(KEYWORD_PREFIX):
            base |= {"campaigns.campaign_id", "campaigns.keywords"}
        return base

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        keywords = tuple(dict.fromkeys(n.removeprefix(KEYWORD_PREFIX) for n in names if n.startswith(KEYWORD_PREFIX)))
        half_life = float(params.get("keyword_half_life_days", DEFAULT_HALF_LIFE_DAYS))
        click_weight = float(params.get("keyword_click_weight", DEFAULT_CLICK_WEIGHT))
        if not half_life > 0:
            raise InputError("feature_params.keyword_half_life_days", f"must be > 0, got {half_life!r}")
        if not click_weight >= 0:
            raise InputError("feature_params.keyword_click_weight", f"must be >= 0, got {click_weight!r}")
        weights = _keyword_weights(frame, keywords, half_life, click_weight) if keywords else {}
        return [
            weights[n.removeprefix(KEYWORD_PREFIX)] if n.startswith(KEYWORD_PREFIX) else _column_of(_summary(frame), n)
            for n in names
        ]

    def warm_up(self, make_frame: MakeFrame) -> None:
        events = pa.table(
            {
                "contact_id": pa.array([2, 1, 2, 2], pa.int64()),
                "ts": pa.array([1, 2, 3, 4], pa.timestamp("us", "UTC")),
                "campaign_id": pa.array([7, 7, 7, None], pa.int64()),
                "event": pa.array(["sent", "sent", "open", "unsubscribe"]),
            }
        )
        campaigns = pa.table({"campaign_id": pa.array([7], pa.int64()), "keywords": pa.array([["a", "b"]])})
        make_frame({"email_events": events, "campaigns": campaigns}, 4).matrix([*EMAIL_FEATURES, f"{KEYWORD_PREFIX}a"])


EMAIL = EmailFeatures()


def _events(frame: Frame) -> tuple[ContactEmails, pa.Array]:
    """The frame's e-mail events grouped by contact and the campaign ids their codes stand
    for, once per frame: the summary and every keyword set walk the same sorted events."""
    key = f"{_TABLE}.sorted"
    if key not in frame.cache:
        n = len(frame)
        codes = frame.codes(_TABLE)
        if codes is None:
            empty = np.empty(0, np.int64)
            frame.cache[key] = sort_events(empty, n, empty, empty, empty, frame.as_of_us), pa.array([], pa.int64())
        else:
            events = _event_codes(frame.column(_TABLE, "event", "every e-mail feature"))
            campaign_codes, campaign_ids = _campaign_codes(frame.column(_TABLE, "campaign_id", "every e-mail feature"))
            emails = sort_events(codes, n, frame.timestamps(_TABLE), events, campaign_codes, frame.as_of_us)
            frame.cache[key] = emails, campaign_ids
    return frame.cache[key]


def _summary(frame: Frame) -> EmailSummary:
    """The per-contact summary (keyword weights aside), computed once per frame."""
    key = f"{_TABLE}.summary"
    if key not in frame.cache:
        frame.cache[key] = email_summary(_events(frame)[0])
    return frame.cache[key]


def _keyword_weights(
    frame: Frame, keywords: tuple[str, ...], half_life: float, click_weight: float
) -> dict[str, np.ndarray]:
    """Each keyword's weight column with these params; only keywords not asked before (with
    the same params) run the kernel."""
    done: dict[str, np.ndarray] = frame.cache.setdefault(f"{_TABLE}.keyword_weights:{half_life!r},{click_weight!r}", {})
    missing = tuple(k for k in keywords if k not in done)
    if missing:
        emails, campaign_ids = _events(frame)
        if frame.codes(_TABLE) is None:  # no e-mail table: no campaign has keywords
            kw_offsets, kw_index = np.zeros(1, np.int64), np.empty(0, np.int32)
        else:
            kw_offsets, kw_index = _keyword_lists(frame, campaign_ids, missing)
        weights = keyword_weights(emails, kw_offsets, kw_index, len(missing), half_life, click_weight)
        done.update((k, weights[:, j]) for j, k in enumerate(missing))
    return {k: done[k] for k in keywords}


def _event_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Position of each event in EVENT_TYPES; InputError naming a null or unknown value."""
    field = f"{_TABLE}.event"
    codes = category_codes(column, EVENT_TYPES, field)
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        value = column[int(bad[0])].as_py()
        if value is None:
            raise InputError(field, f"{column.null_count} null event types")
        raise InputError(field, f"unknown event type {value!r} ({bad.size} rows); expected one of {list(EVENT_TYPES)}")
    return codes


def _campaign_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dense codes of the events' campaign ids (-1 for null) and the ids they stand for."""
    field = f"{_TABLE}.campaign_id"
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count == 0:
        return contact_codes(arr, field=field)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    out = np.full(len(arr), -1, np.int32)
    if pa.types.is_null(arr.type):
        return out, pa.array([], pa.int64())
    codes, ids = contact_codes(arr.filter(pa.array(valid)), field=field)
    out[valid] = codes
    return out, ids


def _check_distinct(ids: pa.ChunkedArray, field: str) -> None:
    """InputError naming a null or repeated campaign id."""
    if ids.null_count:
        raise InputError(field, f"{ids.null_count} null campaign ids")
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        example = repeated[0]["values"].as_py()
        raise InputError(field, f"{len(repeated)} campaign ids appear more than once, e.g. {example!r}")


def _keyword_lists(frame: Frame, campaign_ids: pa.Array, keywords: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each event campaign code's keyword positions, as CSR offsets and indices."""
    campaigns = frame.table("campaigns")
    if campaigns is None:
        raise InputError("campaigns", "table campaigns is missing, needed by keyword_weight features")
    ids = frame.column("campaigns", "campaign_id", "keyword_weight features")
    _check_distinct(ids, "campaigns.campaign_id")
    lists = frame.column("campaigns", "keywords", "keyword_weight features")
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    if not (pa.types.is_list(lists.type) or pa.types.is_large_list(lists.type)):
        example = next((v for v in lists.to_pylist() if v is not None), None)
        raise InputError(
            "campaigns.keywords", f"expected a list of strings per campaign, got type {lists.type} (e.g. {example!r})"
        )
    n_camp = len(campaign_ids)
    rows, _ = contact_codes(ids, campaign_ids, field="campaigns.campaign_id", index_field=f"{_TABLE}.campaign_id")
    values = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    kw = category_codes(values, keywords, "campaigns.keywords")  # refuses non-string items
    camp = rows[parent] if parent.size else np.empty(0, np.int32)
    keep = (kw >= 0) & (camp >= 0)
    # one entry per (campaign, keyword): a keyword listed twice weighs once
    pairs = np.unique(camp[keep].astype(np.int64) * len(keywords) + kw[keep])
    camp, kw = pairs // len(keywords), pairs % len(keywords)
    offsets = np.zeros(n_camp + 1, np.int64)
    np.cumsum(np.bincount(camp, minlength=n_camp), out=offsets[1:])
    return offsets, kw.astype(np.int32)
