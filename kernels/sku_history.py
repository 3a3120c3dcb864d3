"""Numba kernels over SKU events: each contact's most recent distinct SKUs (orders), its most
viewed ones (product-page views, time-decayed), and its promo share.

Private ``@njit`` loops over NumPy arrays and one checking wrapper each; ``sku_features`` is
the Arrow-facing family that calls the wrappers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import check_range, column, count_arg, int64_arg
from .errors import InputError
from .grouping import group_rows

__all__ = ["decayed_counts", "promo_share", "recent_distinct", "top_decayed"]



def recent_distinct(contact: np.ndarray, ts: np.ndarray, code: np.ndarray, n: int, as_of: int, slots: int) -> np.ndarray:
    """float32 ``[n, slots]``: column i is the code of contact c's (i+1)-th most recent distinct
    code among its orders with ``ts <= as_of`` and ``code >= 0``; -1 where it has fewer.

    Ties in ``ts`` go to the later row (the order log's own order). Memory: the output plus
    two int arrays of the orders' length.
    """
    n = count_arg(n, "n_contacts")
    slots = count_arg(slots, "slots")
    as_of = int64_arg(as_of, "as_of_us")
    contact = column(contact, "orders.contact_id codes", "iu", np.int64, np.asarray(contact).shape[0])
    check_range(contact, 0, n, "orders.contact_id codes")
    ts = column(ts, "orders.ts", "iu", np.int64, contact.shape[0])
    code = column(code, "orders.sku codes", "iu", np.int64, contact.shape[0])
    return _recent_distinct(contact, ts, code, n, as_of, slots)


@njit(cache=True)
def _recent_distinct(contact: np.ndarray, ts: np.ndarray, code: np.ndarray, n: int, as_of: int, slots: int) -> np.ndarray:
    out = np.full((n, slots), -1.0, np.float32)
    # counting sort of the orders by contact, rows in their original order within each
    rows, counts = group_rows(contact, n)
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


def decayed_counts(
    contact: np.ndarray, ts: np.ndarray, code: np.ndarray, history: np.ndarray, as_of: int, half_life: float
) -> np.ndarray:
    """float32 like ``history`` (``recent_distinct``'s output): for each slot, the orders of that
    slot's code with ``ts <= as_of``, each counted ``0.5 ** ((as_of - ts) / half_life)``
    (µs); 0 for an empty slot."""
    as_of = int64_arg(as_of, "as_of_us")
    history = np.ascontiguousarray(history, dtype=np.float32)
    if history.ndim != 2:
        raise InputError("history", f"expected a 2-D array (contacts x slots), got shape {history.shape}")
    if not half_life > 0:
        raise InputError("half_life", f"expected a positive duration in microseconds, got {half_life!r}")
    contact = column(contact, "orders.contact_id codes", "iu", np.int64, np.asarray(contact).shape[0])
    check_range(contact, 0, history.shape[0], "orders.contact_id codes")
    ts = column(ts, "orders.ts", "iu", np.int64, contact.shape[0])
    code = column(code, "orders.sku codes", "iu", np.int64, contact.shape[0])
    out = np.zeros(history.shape, np.float32)
    _decayed_counts(contact, ts, code, history, as_of, float(half_life), out)
    return out


@njit(cache=True)
def _decayed_counts(
    contact: np.ndarray, ts: np.ndarray, code: np.ndarray, history: np.ndarray, as_of: int, half_life: float, out: np.ndarray
) -> None:
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


def top_decayed(
    contact: np.ndarray, ts: np.ndarray, code: np.ndarray, n: int, as_of: int, half_life: float, slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per contact, the ``slots`` codes with the largest time-decayed event counts: float32
    ``[n, slots]`` codes (-1 where it has fewer) and their counts (0 there), each event with
    ``ts <= as_of`` and ``code >= 0`` counted ``0.5 ** ((as_of - ts) / half_life)`` (µs);
    by descending count, ties to the lower code. Memory: the outputs plus the events' length."""
    n = count_arg(n, "n_contacts")
    slots = count_arg(slots, "slots")
    as_of = int64_arg(as_of, "as_of_us")
    if not half_life > 0:
        raise InputError("half_life", f"expected a positive duration in microseconds, got {half_life!r}")
    contact = column(contact, "web_events.contact_id codes", "iu", np.int64, np.asarray(contact).shape[0])
    check_range(contact, 0, n, "web_events.contact_id codes")
    ts = column(ts, "web_events.ts", "iu", np.int64, contact.shape[0])
    code = column(code, "web_events SKU codes", "iu", np.int64, contact.shape[0])
    keep = (ts <= as_of) & (code >= 0)
    codes = np.full((n, slots), -1.0, np.float32)
    counts = np.zeros((n, slots), np.float32)
    _top_decayed(contact[keep], ts[keep], code[keep], as_of, float(half_life), codes, counts)
    return codes, counts


@njit(cache=True)
def _top_decayed(
    contact: np.ndarray, ts: np.ndarray, code: np.ndarray, as_of: int, half_life: float, codes: np.ndarray, counts: np.ndarray
) -> None:
    n, slots = codes.shape
    rows, offsets = group_rows(contact, n)
    for c in range(n):
        lo, hi = offsets[c], offsets[c + 1]
        if lo == hi:
            continue
        seg = rows[lo:hi]
        by_code = seg[np.argsort(code[seg], kind="mergesort")]  # stable: each code's rows in row order
        distinct = np.empty(seg.size, np.int64)
        weight = np.zeros(seg.size)
        m = -1
        for r in by_code:
            if m < 0 or distinct[m] != code[r]:
                m += 1
                distinct[m] = code[r]
            weight[m] += 0.5 ** ((as_of - ts[r]) / half_life)
        m += 1
        order = np.argsort(-weight[:m], kind="mergesort")  # stable: equal counts keep the lower code first
        for j in range(min(slots, m)):
            codes[c, j] = distinct[order[j]]
            counts[c, j] = weight[order[j]]


def promo_share(contact: np.ndarray, ts: np.ndarray, promo: np.ndarray, n: int, as_of: int) -> np.ndarray:
    """float64 per contact: share of its orders with ``ts <= as_of`` flagged promo (``promo``:
    1, 0, or -1 for unknown, which is left out); NaN without such orders."""
    n = count_arg(n, "n_contacts")
    as_of = int64_arg(as_of, "as_of_us")
    contact = column(contact, "orders.contact_id codes", "iu", np.int64, np.asarray(contact).shape[0])
    check_range(contact, 0, n, "orders.contact_id codes")
    ts = column(ts, "orders.ts", "iu", np.int64, contact.shape[0])
    promo = column(promo, "orders.promo", "iub", np.int8, contact.shape[0])
    return _promo_share(contact, ts, promo, n, as_of)


@njit(cache=True)
def _promo_share(contact: np.ndarray, ts: np.ndarray, promo: np.ndarray, n: int, as_of: int) -> np.ndarray:
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
