"""Windowed event counts per contact and category: the kernel of the lead behaviour families.

For each event (contact code, time, category code, optional weight) with ``ts <= as_of`` it
adds one (and its weight) to every window ``(as_of - days, as_of]`` that holds it, for its own
category and for the "all" slot (the last one), and keeps the last event time per category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .checks import check_range, column, count_arg, int64_arg, read_only
from .errors import InputError
from .time_units import US_PER_DAY

__all__ = ["WindowCounts", "window_counts"]

_NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True)
class WindowCounts:
    """Per contact: counts and weight sums by category and window, and days since the last event.

    ``counts`` and ``sums``: float64 ``(n_contacts, n_categories + 1, n_windows)``; the last
    category slot counts every event (categories not listed included). ``recency_days``:
    float64 ``(n_contacts, n_categories + 1)``, NaN for none.
    """

    counts: np.ndarray
    sums: np.ndarray
    recency_days: np.ndarray


@njit(cache=True, nogil=True)
def _window_counts(
    codes: np.ndarray,
    ts: np.ndarray,
    categories: np.ndarray,
    weights: np.ndarray,
    use_weights: bool,
    as_of: int,
    starts: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    last: np.ndarray,
) -> None:
    """Fill the zeroed ``counts``/``sums`` and the ``_NEVER``-filled ``last`` (see ``window_counts``)."""
    n_windows = starts.shape[0]
    n_categories = counts.shape[1] - 1
    for i in range(codes.shape[0]):
        t = ts[i]
        if t > as_of:
            continue
        row = codes[i]
        c = categories[i]
        w = weights[i] if use_weights else 0.0
        w_ok = use_weights and np.isfinite(w)
        for s in range(2):
            slot = n_categories if s == 1 else c
            if slot < 0:
                continue
            if t > last[row, slot]:
                last[row, slot] = t
            for k in range(n_windows):
                if t > starts[k]:
                    counts[row, slot, k] += 1.0
                    if w_ok:
                        sums[row, slot, k] += w


def window_counts(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    category_codes: np.ndarray,
    n_categories: int,
    as_of_us: int,
    window_days: np.ndarray,
    weights: np.ndarray | None = None,
) -> WindowCounts:
    """Counts (and ``weights`` sums, NaN weights skipped) of events in each trailing window.

    ``category_codes``: int32 in ``[-1, n_categories)``; -1 counts only in the "all" slot.
    """
    n_contacts = count_arg(n_contacts, "n_contacts")
    n_categories = count_arg(n_categories, "n_categories")
    as_of = int64_arg(as_of_us, "as_of_us")
    n = np.asarray(codes).shape[0]
    codes_arr = column(codes, "codes", "iu", np.int32, n)
    check_range(codes_arr, 0, n_contacts, "codes")
    ts = column(ts_us, "ts_us", "iu", np.int64, n)
    cats = column(category_codes, "category_codes", "iu", np.int32, n)
    check_range(cats, -1, n_categories, "category_codes")
    days = np.asarray(window_days, np.int64)
    if days.ndim != 1 or (days <= 0).any():
        raise InputError("window_days", f"expected positive whole days, got {days.tolist()}")
    use_weights = weights is not None
    w = column(weights, "weights", "fiu", np.float64, n) if use_weights else read_only(np.empty(0, np.float64))
    starts = as_of - days * US_PER_DAY
    counts = np.zeros((n_contacts, n_categories + 1, days.shape[0]), np.float64)
    sums = np.zeros_like(counts)
    last = np.full((n_contacts, n_categories + 1), _NEVER, np.int64)
    _window_counts(codes_arr, ts, cats, w, use_weights, as_of, starts, counts, sums, last)
    recency = np.where(last == _NEVER, np.nan, (as_of_us - last.astype(np.float64)) / US_PER_DAY)
    return WindowCounts(counts, sums, recency)
