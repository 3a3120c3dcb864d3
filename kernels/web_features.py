"""The web_events feature family: visit density, page value and categories, recency.

    web_views_7d, web_views_30d, web_time_7d, web_time_30d, web_sessions_7d, web_sessions_30d
    web_points_30d, web_hot_views_30d, web_warm_views_30d, web_eliminating_30d
    web_days_since_visit

See ``web.WebSummary`` for each feature's definition. Page points and categories, the
session gap and the points' half-life come from the web config (``web_config``) in the
model's ``params["feature_params"]["web"]``; without one, every page scores 0 and has no
category. Pages are mapped to config entries once per frame, on the distinct pages (Arrow
``dictionary_encode`` + ``index_in`` / ``starts_with``), not per event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow import floats
from .errors import InputError
from .family import Frame, MakeFrame
from .web import WEB_FIELDS, WebSummary, check_durations, web_summary
from .web_config import CATEGORIES, DEFAULT_WEB_CONFIG, parse_web_config

__all__ = ["WEB", "WEB_FEATURES", "WebFeatures", "page_entries"]

TABLE = "web_events"
WEB_FEATURES: tuple[str, ...] = tuple(f"web_{f}" for f in WEB_FIELDS)
"""Every web feature name, in ``WebSummary`` field order."""

_PAGE_FIELDS = {"points_30d", "hot_views_30d", "warm_views_30d", "eliminating_30d"}
_DURATION_FIELDS = {"time_7d", "time_30d"}


def page_entries(column: pa.Array | pa.ChunkedArray, config: Mapping[str, Any], field: str = "web_events.page") -> np.ndarray:
    """int32 config entry of each page (``config["pages"]`` position; -1: none matches, or null).

    An exact ``page`` entry wins over prefixes, and the longest matching ``prefix`` over
    shorter ones. The match runs on the distinct pages, not on every row.

    Raises
    ------
    InputError
        A column that is not strings; named ``field``.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, np.int32)
    if not pa.types.is_dictionary(arr.type):
        if not _is_string(arr.type):
            raise InputError(field, f"expected a string column (page id or URL path), got type {arr.type}")
        if pa.types.is_string_view(arr.type):
            arr = arr.cast(pa.string())
        arr = pc.dictionary_encode(arr)
    elif not _is_string(arr.type.value_type):
        raise InputError(field, f"expected dictionary-encoded strings, got type {arr.type}")
    dictionary = arr.dictionary
    if not pa.types.is_string(dictionary.type):  # index_in wants the value set's type
        dictionary = dictionary.cast(pa.string())
    lookup = np.full(len(dictionary), -1, np.int32)
    pages = config["pages"]
    prefixes = sorted((i for i, e in enumerate(pages) if "prefix" in e), key=lambda i: len(pages[i]["prefix"]))
    for i in prefixes:  # shortest first, so a longer prefix overwrites it
        hit = pc.starts_with(dictionary, pages[i]["prefix"]).fill_null(False).to_numpy(zero_copy_only=False)
        lookup[hit] = i
    exact = [i for i, e in enumerate(pages) if "page" in e]
    if exact:
        value_set = pa.array([pages[i]["page"] for i in exact], pa.string())
        pos = pc.index_in(dictionary, value_set=value_set).fill_null(-1).to_numpy(zero_copy_only=False)
        found = pos >= 0
        lookup[found] = np.asarray(exact, np.int32)[pos[found]]
    if len(lookup) == 0:
        return np.full(len(arr), -1, np.int32)
    codes = lookup[arr.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    if arr.null_count:
        codes[~arr.is_valid().to_numpy(zero_copy_only=False)] = -1
    return codes


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def web_config_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """The web config in feature params (checked), or the default one."""
    raw = params.get("web")
    if raw is None:
        return DEFAULT_WEB_CONFIG
    try:
        return parse_web_config(raw, "feature_params.web")
    except ValueError as err:
        raise InputError("feature_params.web", str(err)) from None


class WebFeatures:
    """The web_events family; one summary per frame and config, widened when later calls
    need pages or durations the first did not read."""

    table = TABLE
    patterns: tuple[str, ...] = WEB_FEATURES

    def knows(self, name: str) -> bool:
        return name in WEB_FEATURES

    def columns(self, name: str) -> set[str]:
        field = name.removeprefix("web_")
        extra = {"page"} if field in _PAGE_FIELDS else {"duration_s"} if field in _DURATION_FIELDS else set()
        return {f"{TABLE}.contact_id", f"{TABLE}.ts"} | {f"{TABLE}.{c}" for c in extra}

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        config = web_config_of(params)
        fields = [name.removeprefix("web_") for name in names]
        needs_page = any(f in _PAGE_FIELDS for f in fields)
        needs_duration = any(f in _DURATION_FIELDS for f in fields)
        summary = _summary(frame, config, needs_page, needs_duration, names)
        return [getattr(summary, f) for f in fields]

    def warm_up(self, make_frame: MakeFrame) -> None:
        events = pa.table(
            {
                "contact_id": pa.array([2, 1, 2], pa.int64()),
                "ts": pa.array([3, 1, 2], pa.timestamp("us", "UTC")),
                "page": pa.array(["/a", None, "/b"]),
                "duration_s": pa.array([1.0, None, 2.0]),
            }
        )
        config = {"half_life_days": 1, "pages": [{"page": "/a", "points": 1, "category": "hot"}, {"prefix": "/", "points": 1}]}
        make_frame({TABLE: events}, 3).matrix(list(WEB_FEATURES), {"web": config})


WEB = WebFeatures()


def _summary(
    frame: Frame, config: Mapping[str, Any], needs_page: bool, needs_duration: bool, names: Sequence[str]
) -> WebSummary:
    """The summary for this config covering pages / durations as needed, computed once."""
    key = f"{TABLE}.summary:" + json.dumps(config, sort_keys=True)
    done = frame.cache.get(key)
    if done is not None and (done[1] or not needs_page) and (done[2] or not needs_duration):
        return done[0]
    use_page = needs_page or (done is not None and done[1])
    use_duration = needs_duration or (done is not None and done[2])
    n = len(frame)
    points = np.array([e["points"] for e in config["pages"]], np.float64)
    category = np.array([CATEGORIES.index(e["category"]) for e in config["pages"]], np.int32)
    gap_us = int(round(config["session_gap_minutes"] * 60_000_000))
    half_life = float(config["half_life_days"])
    codes = frame.codes(TABLE)
    if codes is None:
        empty = np.empty(0, np.int64)
        summary = web_summary(empty, n, empty, None, None, points, category, frame.as_of_us, gap_us, half_life)
    else:
        needed_by = ", ".join(names)
        entry = None
        if use_page:
            entry = page_entries(frame.column(TABLE, "page", f"features {needed_by}"), config)
        duration = None
        if use_duration:
            duration = _durations(frame, needed_by)
        ts = frame.timestamps(TABLE)
        summary = web_summary(codes, n, ts, duration, entry, points, category, frame.as_of_us, gap_us, half_life)
    frame.cache[key] = (summary, use_page, use_duration)
    return summary


def _durations(frame: Frame, needed_by: str) -> np.ndarray:
    """web_events.duration_s as float64 (NaN for nulls), checked >= 0, once per frame."""
    key = f"{TABLE}.duration_s"
    if key not in frame.cache:
        values = floats(frame.column(TABLE, "duration_s", f"features {needed_by}"), f"{TABLE}.duration_s")
        check_durations(values, f"{TABLE}.duration_s")
        frame.cache[key] = values
    return frame.cache[key]
