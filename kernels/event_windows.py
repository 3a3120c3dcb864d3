"""Windowed event counts per contact and category: the kernel of the lead behaviour families.

For each event (contact code, time, category code, optional weight) with ``ts <= as_of`` it
adds one (and its weight) to every window ``(as_of - days, as_of]`` that holds it, for its own
category and for the "all" slot (the last one), and keeps the last event time per category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

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


@njit(cache=True)
def _window_counts(codes, ts, categories, weights, use_weights, n_contacts, n_categories, as_of, starts):  # noqa: ANN001, ANN202
    n_windows = starts.shape[0]
    counts = np.zeros((n_contacts, n_categories + 1, n_windows), np.float64)
    sums = np.zeros((n_contacts, n_categories + 1, n_windows), np.float64)
    last = np.full((n_contacts, n_categories + 1), _NEVER, np.int64)
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
    return counts, sums, last


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
    starts = np.int64(as_of_us) - np.asarray(window_days, np.int64) * US_PER_DAY
    use_weights = weights is not None
    w = np.asarray(weights, np.float64) if use_weights else np.empty(0, np.float64)
    counts, sums, last = _window_counts(
        np.asarray(codes, np.int32),
        np.asarray(ts_us, np.int64),
        np.asarray(category_codes, np.int32),
        w,
        use_weights,
        int(n_contacts),
        int(n_categories),
        np.int64(as_of_us),
        starts,
    )
    recency = np.where(last == _NEVER, np.nan, (as_of_us - last.astype(np.float64)) / US_PER_DAY)
    return WindowCounts(counts, sums, recency)
