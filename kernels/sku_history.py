"""Numba kernels over orders: each contact's most recent distinct SKUs, and its promo share.

Pure NumPy in, NumPy out; ``sku_features`` is the Arrow-facing family that calls them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["decayed_counts", "promo_share", "recent_distinct"]


@njit(cache=True)
def recent_distinct(contact: np.ndarray, ts: np.ndarray, code: np.ndarray, n: int, as_of: int, slots: int) -> np.ndarray:
    """float32 ``[n, slots]``: column i is the code of contact c's (i+1)-th most recent distinct
    code among its orders with ``ts <= as_of`` and ``code >= 0``; -1 where it has fewer.

    Ties in ``ts`` go to the later row (the order log's own order). Memory: the output plus
    two int arrays of the orders' length.
    """
    out = np.full((n, slots), -1.0, np.float32)
    # counting sort of the orders by contact, rows in their original order within each
    counts = np.zeros(n + 1, np.int64)
    for i in range(contact.size):
        counts[contact[i] + 1] += 1
    for c in range(n):
        counts[c + 1] += counts[c]
    fill = counts[:-1].copy()
    rows = np.empty(contact.size, np.int64)
    for i in range(contact.size):
        c = contact[i]
        rows[fill[c]] = i
        fill[c] += 1
    for c in range(n):
        lo, hi = counts[c], counts[c + 1]
        if lo == hi:
            continue
        seg = rows[lo:hi]
        order = np.argsort(ts[seg], kind="mergesort")  # stable: ties keep row order
        taken = 0
        for k in range(seg.size - 1, -1, -1):  # most recent first; ties: the later row
            r = seg[order[k]]
            if ts[r] > as_of or code[r] < 0:
                continue
            value = code[r]
            seen = False
            for j in range(taken):
                if out[c, j] == value:
                    seen = True
                    break
            if not seen:
                out[c, taken] = value
                taken += 1
                if taken == slots:
                    break
    return out


@njit(cache=True)
def decayed_counts(
    contact: np.ndarray, ts: np.ndarray, code: np.ndarray, history: np.ndarray, as_of: int, half_life: float
) -> np.ndarray:
    """float32 like ``history`` (``recent_distinct``'s output): for each slot, the orders of that
    slot's code with ``ts <= as_of``, each counted ``0.5 ** ((as_of - ts) / half_life)``
    (µs); 0 for an empty slot."""
    out = np.zeros(history.shape, np.float32)
    for i in range(contact.size):
        c = contact[i]
        if ts[i] > as_of or code[i] < 0:
            continue
        value = np.float32(code[i])
        for j in range(history.shape[1]):
            if history[c, j] < 0:
                break
            if history[c, j] == value:
                out[c, j] += np.float32(0.5 ** ((as_of - ts[i]) / half_life))
                break
    return out


@njit(cache=True)
def promo_share(contact: np.ndarray, ts: np.ndarray, promo: np.ndarray, n: int, as_of: int) -> np.ndarray:
    """float64 per contact: share of its orders with ``ts <= as_of`` flagged promo (``promo``:
    1, 0, or -1 for unknown, which is left out); NaN without such orders."""
    hits = np.zeros(n)
    total = np.zeros(n)
    for i in range(contact.size):
        if ts[i] <= as_of and promo[i] >= 0:
            total[contact[i]] += 1.0
            hits[contact[i]] += promo[i]
    out = np.full(n, np.nan)
    for c in range(n):
        if total[c] > 0:
            out[c] = hits[c] / total[c]
    return out
