"""Repeat-purchase summary per contact: the (x, t_x, T, zbar) input of the BG/NBD, Pareto/NBD
and Gamma-Gamma models, on purchase days.

A purchase day is a UTC calendar day, ``floor(ts_us / 86_400_000_000)``: several orders on one
day are one purchase (as in the published CDNOW calibration summary of Fader, Hardie & Lee).
Only orders with ``ts <= as_of`` count; the as_of day is ``floor(as_of_us / 86_400_000_000)``.

Same layout as ``rfm``: a counting sort by contact code gives each contact a contiguous run of
(day, amount) records; a parallel loop over contacts then sorts each (short) run by day and
reduces it. It runs apart from the RFM kernel so that frames which ask for no repeat feature
never pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .checks import check_range, column, count_arg, int64_arg, read_only
from .errors import InputError
from .grouping import contact_offsets
from .time_units import US_PER_DAY

__all__ = ["RepeatSummary", "repeat_summary"]


_INT32_MAX = int(np.iinfo(np.int32).max)
_INT64_MIN = int(np.iinfo(np.int64).min)
# Runs up to this length are sorted by insertion (in place, no allocation; linear when the
# orders already come in time order); longer ones by a merge argsort.
_INSERTION_MAX = 32


@dataclass(frozen=True, eq=False)
class RepeatSummary:
    """Per-contact repeat-purchase arrays (float64, row ``c`` is contact code ``c``).

    Days are whole UTC calendar days, so every duration is an integer number of days.
    Contacts without orders (up to as_of): frequency 0, recency 0, age NaN, monetary NaN.
    """

    repeat_frequency: np.ndarray
    """x: distinct purchase days after the first purchase day; 0 for one-day buyers."""
    repeat_recency_days: np.ndarray
    """t_x: last purchase day - first purchase day; 0 when x = 0."""
    age_days: np.ndarray
    """T: as_of day - first purchase day; NaN without orders."""
    repeat_monetary: np.ndarray
    """zbar: mean over the repeat days (first day excluded) of each day's summed amount.

    Null (NaN) amounts are skipped in a day's sum; a repeat day whose amounts are all null has
    no known total and is left out of the mean. NaN when x = 0, when no repeat day has a known
    amount, or without amounts. Matches the CDNOW published zbar (per day, not per order)."""


@njit(cache=True, nogil=True)
def _sort_days_by_contact(
    codes: np.ndarray,
    ts: np.ndarray,
    amount: np.ndarray,
    has_amount: bool,
    as_of: int,
    offsets: np.ndarray,
    days: np.ndarray,
    amounts: np.ndarray,
) -> None:
    """Counting sort of the rows with ts <= as_of by contact code, as (UTC day, amount):
    contact c owns ``[offsets[c], offsets[c + 1])``. ``offsets`` arrives zeroed."""
    cursor = contact_offsets(codes, ts, _INT64_MIN, as_of, offsets)
    for i in range(codes.shape[0]):
        if ts[i] <= as_of:
            c = codes[i]
            p = cursor[c]
            cursor[c] = p + 1
            days[p] = ts[i] // US_PER_DAY  # floor division: days before 1970 round down
            amounts[p] = amount[i] if has_amount else np.nan


@njit(cache=True, nogil=True)
def _sort_run(days: np.ndarray, amounts: np.ndarray, lo: int, hi: int) -> None:
    """Sort ``days[lo:hi]`` ascending in place, carrying ``amounts`` along."""
    if hi - lo <= _INSERTION_MAX:
        for j in range(lo + 1, hi):
            d = days[j]
            a = amounts[j]
            k = j - 1
            while k >= lo and days[k] > d:
                days[k + 1] = days[k]
                amounts[k + 1] = amounts[k]
                k -= 1
            days[k + 1] = d
            amounts[k + 1] = a
        return
    order = np.argsort(days[lo:hi], kind="mergesort")
    d_sorted = days[lo:hi][order]
    a_sorted = amounts[lo:hi][order]
    days[lo:hi] = d_sorted
    amounts[lo:hi] = a_sorted


@njit(cache=True, nogil=True, parallel=True)
def _summarise_repeat(
    offsets: np.ndarray,
    days: np.ndarray,
    amounts: np.ndarray,
    as_of_day: int,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    monetary: np.ndarray,
) -> None:
    """Sort each contact's run by day, then reduce it into the outputs (every cell written)."""
    n_contacts = offsets.shape[0] - 1
    for c in prange(n_contacts):
        lo = offsets[c]
        hi = offsets[c + 1]
        if hi == lo:
            frequency[c] = 0.0
            recency[c] = 0.0
            age[c] = np.nan
            monetary[c] = np.nan
            continue
        _sort_run(days, amounts, lo, hi)
        first = days[lo]
        prev = first
        x = 0
        known_days = 0  # repeat days with at least one non-null amount
        day_known = False
        repeat_sum = 0.0
        for j in range(lo, hi):
            d = days[j]
            if d != prev:  # a new (later) day starts: close the previous one
                if day_known:
                    known_days += 1
                x += 1
                prev = d
                day_known = False
            a = amounts[j]
            if d != first and not np.isnan(a):
                repeat_sum += a
                day_known = True
        if day_known:
            known_days += 1
        frequency[c] = x
        recency[c] = prev - first
        age[c] = as_of_day - first
        monetary[c] = repeat_sum / known_days if known_days > 0 else np.nan


def repeat_summary(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    amount: np.ndarray | None = None,
    as_of_us: int = 0,
) -> RepeatSummary:
    """Per-contact repeat-purchase summary, counting only orders with ``ts_us <= as_of_us``.

    Parameters
    ----------
    codes
        Dense contact code of each order row, int32 or int64 in ``0 .. n_contacts - 1``.
    n_contacts
        Number of contacts (rows of the result).
    ts_us
        Order time, int64 microseconds since the epoch (UTC); its UTC day is the purchase day.
    amount
        Order amount (NaN = unknown, see ``RepeatSummary.repeat_monetary``); None = no
        amounts (repeat_monetary all NaN).
    as_of_us
        Reference time, int64 microseconds since the epoch (UTC).

    Returns
    -------
    RepeatSummary

    Raises
    ------
    InputError
        A length mismatch, a code out of range or a negative count; the message names the
        argument and the value.
    """
    n_contacts = count_arg(n_contacts, "n_contacts")
    if n_contacts > _INT32_MAX:
        raise InputError("n_contacts", f"{n_contacts} contacts exceed the int32 code range")
    as_of = int64_arg(as_of_us, "as_of_us")
    codes_in = np.asarray(codes)
    n = codes_in.shape[0] if codes_in.ndim == 1 else -1
    codes_arr = column(codes_in, "codes", "iu", codes_in.dtype, n)
    check_range(codes_arr, 0, n_contacts, "codes")
    codes_arr = read_only(codes_arr.astype(np.int32, copy=False))
    ts = column(ts_us, "ts_us", "iu", np.int64, n)
    amount_arr = read_only(np.empty(0))
    if amount is not None:
        amount_arr = column(amount, "amount", "fiu", np.float64, n)

    offsets = np.zeros(n_contacts + 1, np.int64)
    days = np.empty(n, np.int64)
    amounts = np.empty(n, np.float64)
    _sort_days_by_contact(
        codes_arr, ts, amount_arr, amount is not None, as_of, offsets, days, amounts
    )
    out = RepeatSummary(
        repeat_frequency=np.empty(n_contacts),
        repeat_recency_days=np.empty(n_contacts),
        age_days=np.empty(n_contacts),
        repeat_monetary=np.empty(n_contacts),
    )
    _summarise_repeat(
        offsets,
        days,
        amounts,
        as_of // US_PER_DAY,
        out.repeat_frequency,
        out.repeat_recency_days,
        out.age_days,
        out.repeat_monetary,
    )
    return out
