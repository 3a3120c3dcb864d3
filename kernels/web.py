"""Web-visit summary per contact: density, page value, hot/warm/eliminating visits, recency.

The caller gives one dense contact code per web event (see ``arrow.contact_codes``), the
event's time, its visit duration in seconds (NaN: unknown, counts as 0 s) and its page's
config entry (``web_config``: -1 for a page no entry matches) with the entries' points and
category codes. Only events with ``ts <= as_of`` count. Windows are half-open on the left:
"last 7 days" is ``as_of - 7 d < ts <= as_of``. Duplicate events count as separate views.

One pass counts each contact's events of the last 30 days (and its last visit); a stable
counting sort then gives each contact a contiguous run of them, which a parallel loop sorts
by time (insertion sort: runs arrive nearly always in time order) and reduces. Only the
30-day window is sorted, so a long history costs one sequential pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .checks import check_range, column, count_arg, int64_arg, read_only
from .errors import InputError
from .grouping import contact_offsets
from .time_units import US_PER_DAY

__all__ = ["WEB_FIELDS", "WebSummary", "web_summary"]

_INT32_MAX = int(np.iinfo(np.int32).max)
_INT64_MIN = int(np.iinfo(np.int64).min)
# category codes, as web_config.CATEGORIES
_WARM, _HOT, _ELIMINATING = 1, 2, 3

WEB_FIELDS = (
    "views_7d",
    "views_30d",
    "time_7d",
    "time_30d",
    "sessions_7d",
    "sessions_30d",
    "points_30d",
    "hot_views_30d",
    "warm_views_30d",
    "eliminating_30d",
    "days_since_visit",
)


@dataclass(frozen=True, eq=False)
class WebSummary:
    """Per-contact web arrays (float64, row ``c`` is contact code ``c``), as of one time."""

    views_7d: np.ndarray
    """Page views in the last 7 days."""
    views_30d: np.ndarray
    """Page views in the last 30 days."""
    time_7d: np.ndarray
    """Seconds on site in the last 7 days (sum of known durations)."""
    time_30d: np.ndarray
    """Seconds on site in the last 30 days."""
    sessions_7d: np.ndarray
    """Sessions among the last 7 days' views: a gap above the session gap starts a new one."""
    sessions_30d: np.ndarray
    """Sessions among the last 30 days' views."""
    points_30d: np.ndarray
    """Sum of page points over the last 30 days, each weighted ``0.5 ** (age_days / half_life)``
    (weight 1 without a half-life)."""
    hot_views_30d: np.ndarray
    """Views of hot pages in the last 30 days."""
    warm_views_30d: np.ndarray
    """Views of warm pages in the last 30 days."""
    eliminating_30d: np.ndarray
    """1 if an eliminating page (careers …) was viewed in the last 30 days, else 0."""
    days_since_visit: np.ndarray
    """Days from the last view to as_of; NaN without any."""


@njit(cache=True, nogil=True)
def _window_sort(
    codes: np.ndarray,
    ts: np.ndarray,
    duration: np.ndarray,
    entry: np.ndarray,
    as_of: int,
    start: int,
    offsets: np.ndarray,
    last: np.ndarray,
    out_ts: np.ndarray,
    out_duration: np.ndarray,
    out_entry: np.ndarray,
) -> int:
    """Counting sort by contact of the events in ``(start, as_of]``; also each contact's
    last event time up to as_of. ``offsets`` arrives zeroed, ``last`` filled with INT64_MIN.
    Returns the number of events in the window."""
    for i in range(codes.shape[0]):
        t = ts[i]
        if t <= as_of and t > last[codes[i]]:
            last[codes[i]] = t
    # start < as_of here, so start + 1 cannot overflow
    cursor = contact_offsets(codes, ts, start + 1, as_of, offsets)
    for i in range(codes.shape[0]):
        t = ts[i]
        if start < t <= as_of:
            c = codes[i]
            p = cursor[c]
            cursor[c] = p + 1
            out_ts[p] = t
            out_duration[p] = duration[i]
            out_entry[p] = entry[i]
    return offsets[offsets.shape[0] - 1]


@njit(cache=True, nogil=True, parallel=True)
def _summarise(
    offsets: np.ndarray,
    ts: np.ndarray,
    duration: np.ndarray,
    entry: np.ndarray,
    last: np.ndarray,
    entry_points: np.ndarray,
    entry_category: np.ndarray,
    as_of: int,
    start7: int,
    session_gap: int,
    half_life_days: float,
    out: np.ndarray,
) -> None:
    """Sort each contact's run by time and reduce it into ``out`` (11, n_contacts), rows
    in ``WEB_FIELDS`` order; every cell is written."""
    n_contacts = offsets.shape[0] - 1
    for c in prange(n_contacts):
        lo = offsets[c]
        hi = offsets[c + 1]
        # insertion sort of the run by ts (stable); the three arrays move together
        for j in range(lo + 1, hi):
            t = ts[j]
            if t >= ts[j - 1]:
                continue
            d = duration[j]
            e = entry[j]
            k = j - 1
            while k >= lo and ts[k] > t:
                ts[k + 1] = ts[k]
                duration[k + 1] = duration[k]
                entry[k + 1] = entry[k]
                k -= 1
            ts[k + 1] = t
            duration[k + 1] = d
            entry[k + 1] = e
        views7 = 0.0
        time7 = 0.0
        time30 = 0.0
        sessions7 = 0.0
        sessions30 = 0.0
        points = 0.0
        hot = 0.0
        warm = 0.0
        eliminating = 0.0
        prev30 = np.iinfo(np.int64).min
        prev7 = np.iinfo(np.int64).min
        for j in range(lo, hi):
            t = ts[j]
            d = duration[j]
            if np.isnan(d):
                d = 0.0
            time30 += d
            if j == lo or t - prev30 > session_gap:
                sessions30 += 1.0
            prev30 = t
            if t > start7:
                views7 += 1.0
                time7 += d
                if prev7 == np.iinfo(np.int64).min or t - prev7 > session_gap:
                    sessions7 += 1.0
                prev7 = t
            e = entry[j]
            if e >= 0:
                w = 1.0
                if half_life_days > 0.0:
                    w = 0.5 ** ((as_of - t) / US_PER_DAY / half_life_days)
                points += entry_points[e] * w
                cat = entry_category[e]
                if cat == _HOT:
                    hot += 1.0
                elif cat == _WARM:
                    warm += 1.0
                elif cat == _ELIMINATING:
                    eliminating = 1.0
        out[0, c] = views7
        out[1, c] = hi - lo
        out[2, c] = time7
        out[3, c] = time30
        out[4, c] = sessions7
        out[5, c] = sessions30
        out[6, c] = points
        out[7, c] = hot
        out[8, c] = warm
        out[9, c] = eliminating
        if last[c] == np.iinfo(np.int64).min:
            out[10, c] = np.nan
        else:
            out[10, c] = (as_of - last[c]) / US_PER_DAY


def web_summary(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    duration_s: np.ndarray | None,
    entry: np.ndarray | None,
    entry_points: np.ndarray,
    entry_category: np.ndarray,
    as_of_us: int,
    session_gap_us: int = 30 * 60_000_000,
    half_life_days: float = 0.0,
) -> WebSummary:
    """Per-contact web summary of event rows, counting only events with ``ts_us <= as_of_us``.

    Parameters
    ----------
    codes
        Dense contact code of each event, int32 or int64 in ``0 .. n_contacts - 1``.
    n_contacts
        Number of contacts (rows of the result).
    ts_us
        Event time, int64 microseconds since the epoch (UTC).
    duration_s
        Seconds spent on the page (NaN: unknown, counts 0); None: no durations.
    entry
        Config entry of each event's page, ``0 .. len(entry_points) - 1``; -1: no entry (0
        points, no category). None: no pages.
    entry_points, entry_category
        Each entry's points and category code (``web_config.CATEGORIES`` position).
    as_of_us
        Reference time, int64 microseconds since the epoch (UTC).
    session_gap_us
        Views further apart than this start a new session (> 0).
    half_life_days
        Half-life of the points' time decay; 0 for none.

    Raises
    ------
    InputError
        A length mismatch, a code out of range, a negative or infinite duration, a bad
        argument; the message names the argument and the value.
    """
    n_contacts = count_arg(n_contacts, "n_contacts")
    if n_contacts > _INT32_MAX:
        raise InputError("n_contacts", f"{n_contacts} contacts exceed the int32 code range")
    as_of = int64_arg(as_of_us, "as_of_us")
    gap = int64_arg(session_gap_us, "session_gap_us")
    if gap <= 0:
        raise InputError("session_gap_us", f"expected a positive gap, got {gap}")
    if isinstance(half_life_days, bool) or not isinstance(half_life_days, (int, float)) or not half_life_days >= 0:
        raise InputError("half_life_days", f"expected a number >= 0, got {half_life_days!r}")
    codes_in = np.asarray(codes)
    n = codes_in.shape[0] if codes_in.ndim == 1 else -1
    codes_arr = column(codes_in, "codes", "iu", codes_in.dtype, n)
    check_range(codes_arr, 0, n_contacts, "codes")
    codes_arr = read_only(codes_arr.astype(np.int32, copy=False))
    ts = column(ts_us, "ts_us", "iu", np.int64, n)
    points_arr = read_only(np.ascontiguousarray(entry_points, dtype=np.float64))
    category_arr = read_only(np.ascontiguousarray(entry_category, dtype=np.int32))
    if points_arr.shape != category_arr.shape or points_arr.ndim != 1:
        raise InputError("entry_points", f"shape {points_arr.shape} does not match entry_category {category_arr.shape}")
    if duration_s is None:
        duration = read_only(np.zeros(n))
    else:
        duration = column(duration_s, "duration_s", "fiu", np.float64, n)
        check_durations(duration, "duration_s")
    if entry is None:
        entry_arr = read_only(np.full(n, -1, np.int32))
    else:
        entry_in = np.asarray(entry)
        entry_arr = column(entry_in, "entry", "iu", entry_in.dtype, n)
        check_range(entry_arr, -1, len(points_arr), "entry")
        entry_arr = read_only(entry_arr.astype(np.int32, copy=False))

    offsets = np.zeros(n_contacts + 1, np.int64)
    last = np.full(n_contacts, np.iinfo(np.int64).min, np.int64)
    w_ts = np.empty(n, np.int64)
    w_duration = np.empty(n, np.float64)
    w_entry = np.empty(n, np.int32)
    # window starts in Python ints, clamped: as_of - 30 days must not wrap around in int64
    start = max(as_of - 30 * US_PER_DAY, _INT64_MIN)
    start7 = max(as_of - 7 * US_PER_DAY, _INT64_MIN)
    _window_sort(codes_arr, ts, duration, entry_arr, as_of, start, offsets, last, w_ts, w_duration, w_entry)
    out = np.empty((len(WEB_FIELDS), n_contacts))
    _summarise(offsets, w_ts, w_duration, w_entry, last, points_arr, category_arr, as_of, start7, gap, float(half_life_days), out)
    return WebSummary(*out)


def check_durations(duration: np.ndarray, field: str) -> None:
    """InputError naming ``field`` and the first negative or infinite duration (NaN is allowed)."""
    bad = ~(np.isnan(duration) | ((duration >= 0) & np.isfinite(duration)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(field, f"value {duration[row]!r} at row {row} is not a duration in seconds (>= 0)")
