"""The e-mail kernel: per-contact sends, opens, clicks, bounces, recency and keyword weights.

NumPy in, NumPy out: ``sort_events`` groups the rows by contact once, then ``email_summary``
and ``keyword_weights`` (run again for more keywords or other parameters, not the sort) walk
them; ``email_features`` turns Arrow tables into their inputs.
Only events with ``ts <= as_of`` count. An event of one type on one campaign counts once
however many rows repeat it (ESPs log re-opens and retries), at its earliest time; rows
without a campaign (null campaign code) each count. Definitions, per contact:

- ``counts[:, e]``: distinct campaigns with an event of type e (sent, open, click, bounce);
  ``window_counts[:, e, w]``: those whose earliest such event is within ``WINDOWS_DAYS[w]``
  days (``ts > as_of - W days``);
- ``days_since[:, e]`` (sent, open, click): days from the latest such row to ``as_of``, NaN
  if none;
- ``unsubscribed``: an unsubscribe row; ``hard_bounced``: a bounce row at or after the
  latest send row (a bounce that later sends got through is soft);
- ``mean_send_gap_days``: (last - first distinct send) / (sends - 1), NaN under 2 sends;
- ``opens_last5_sends`` / ``clicks_last5_sends``: campaigns opened / clicked among the
  latest 5 distinct sends (every send tied with the 5th latest included);
- ``keyword_weights[:, k]``: over distinct opens (weight 1) and clicks (weight
  ``click_weight``) of campaigns with keyword k, ``weight * 0.5 ** (age_days / half_life_days)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .grouping import contact_offsets
from .time_units import US_PER_DAY

__all__ = ["EVENT_TYPES", "WINDOWS_DAYS", "ContactEmails", "EmailSummary", "email_summary", "keyword_weights", "sort_events"]

EVENT_TYPES = ("sent", "open", "click", "bounce", "unsubscribe")
"""Event type codes are positions in this tuple."""
WINDOWS_DAYS = (7, 30, 90, 365)
_SENT, _OPEN, _CLICK, _BOUNCE, _UNSUB = range(5)
_LAST_SENDS = 5
_NONE = np.iinfo(np.int64).min
_EVENT = np.dtype([("ts", np.int64), ("camp", np.int32), ("type", np.int32)], align=True)


@dataclass(frozen=True)
class EmailSummary:
    """Per-contact e-mail summary (rows = contacts); see the module docstring."""

    counts: np.ndarray  # (n, 4) float64: sent, open, click, bounce
    window_counts: np.ndarray  # (n, 4, len(WINDOWS_DAYS)) float64
    days_since: np.ndarray  # (n, 3) float64: sent, open, click
    unsubscribed: np.ndarray  # (n,) float64 0/1
    hard_bounced: np.ndarray  # (n,) float64 0/1
    mean_send_gap_days: np.ndarray
    opens_last5_sends: np.ndarray
    clicks_last5_sends: np.ndarray

    @property
    def open_rate(self) -> np.ndarray:
        """Distinct opens / distinct sends; NaN without sends."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.counts[:, 0] > 0, self.counts[:, 1] / self.counts[:, 0], np.nan)

    @property
    def click_rate(self) -> np.ndarray:
        """Distinct clicks / distinct sends; NaN without sends."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.counts[:, 0] > 0, self.counts[:, 2] / self.counts[:, 0], np.nan)


@njit(cache=True, nogil=True)
def _sort_by_contact(
    codes: np.ndarray,
    ts: np.ndarray,
    camp: np.ndarray,
    etype: np.ndarray,
    as_of: int,
    offsets: np.ndarray,
    events: np.ndarray,
) -> None:
    """Counting sort of the rows with ts <= as_of by contact; ``offsets`` arrives zeroed."""
    cursor = contact_offsets(codes, ts, _NONE, as_of, offsets)
    for i in range(codes.shape[0]):
        if ts[i] <= as_of:
            c = codes[i]
            p = cursor[c]
            cursor[c] = p + 1
            events[p]["ts"] = ts[i]
            events[p]["camp"] = camp[i]
            events[p]["type"] = etype[i]


@njit(cache=True, nogil=True)
def _before(t: int, k: int, kind: int, other: np.ndarray) -> bool:
    """Order of a contact's events: campaign, type, time."""
    if k != other["camp"]:
        return k < other["camp"]
    if kind != other["type"]:
        return kind < other["type"]
    return t < other["ts"]


@njit(cache=True, nogil=True, parallel=True)
def _order_each_contact(offsets: np.ndarray, events: np.ndarray) -> None:
    """Sort each contact's events (few: insertion sort) by campaign, type, time."""
    for c in prange(offsets.shape[0] - 1):
        lo, hi = offsets[c], offsets[c + 1]
        for i in range(lo + 1, hi):
            t, k, kind = events[i]["ts"], events[i]["camp"], events[i]["type"]
            j = i - 1
            while j >= lo and _before(t, k, kind, events[j]):
                events[j + 1] = events[j]
                j -= 1
            events[j + 1]["ts"], events[j + 1]["camp"], events[j + 1]["type"] = t, k, kind


@njit(cache=True, nogil=True, parallel=True)
def _summarise(
    offsets: np.ndarray,
    events: np.ndarray,
    as_of: int,
    windows_us: np.ndarray,
    counts: np.ndarray,
    window_counts: np.ndarray,
    last_ts: np.ndarray,
    flags: np.ndarray,
) -> None:
    """One walk over each contact's events, in campaign, type, time order."""
    n = offsets.shape[0] - 1
    n_windows = windows_us.shape[0]
    for c in prange(n):
        lo, hi = offsets[c], offsets[c + 1]
        latest = np.full(4, _NONE)  # latest row per type (before-1970 times are valid)
        first_send, last_send = np.int64(0), np.int64(0)
        top = np.full(_LAST_SENDS, np.iinfo(np.int64).min)  # the 5 latest distinct sends, descending
        has_unsub = False
        for i in range(lo, hi):
            e = events[i]
            t, k, kind = e["ts"], e["camp"], e["type"]
            if kind == _UNSUB:
                has_unsub = True
                continue
            if kind < 4 and t > latest[kind]:
                latest[kind] = t
            if i > lo and k >= 0 and events[i - 1]["camp"] == k and events[i - 1]["type"] == kind:
                continue  # a repeat: its earliest row came first
            counts[c, kind] += 1.0
            for w in range(n_windows):
                if t > as_of - windows_us[w]:
                    window_counts[c, kind, w] += 1.0
            if kind == _SENT:
                if counts[c, 0] == 1.0 or t < first_send:
                    first_send = t
                if counts[c, 0] == 1.0 or t > last_send:
                    last_send = t
                if t > top[_LAST_SENDS - 1]:
                    p = _LAST_SENDS - 1
                    while p > 0 and top[p - 1] < t:
                        top[p] = top[p - 1]
                        p -= 1
                    top[p] = t
        # reactions to the latest sends: a send's open and click rows follow it in the order
        fifth = top[min(_LAST_SENDS, int(counts[c, 0])) - 1] if counts[c, 0] > 0 else 0
        opens5, clicks5 = 0.0, 0.0
        for i in range(lo, hi):
            e = events[i]
            if e["type"] != _SENT or e["camp"] < 0 or e["ts"] < fifth:
                continue
            if i > lo and events[i - 1]["camp"] == e["camp"] and events[i - 1]["type"] == _SENT:
                continue
            for j in range(i + 1, hi):
                if events[j]["camp"] != e["camp"]:
                    break
                if events[j]["type"] == _OPEN and (j == i + 1 or events[j - 1]["type"] != _OPEN):
                    opens5 += 1.0
                elif events[j]["type"] == _CLICK and events[j - 1]["type"] != _CLICK:
                    clicks5 += 1.0
        # null-campaign sends count among the latest but cannot be linked to a reaction
        for kind in range(3):
            last_ts[c, kind] = (as_of - latest[kind]) / US_PER_DAY if latest[kind] != _NONE else np.nan
        flags[c, 0] = 1.0 if has_unsub else 0.0
        flags[c, 1] = 1.0 if latest[_BOUNCE] != _NONE and latest[_BOUNCE] >= latest[_SENT] else 0.0
        sends = counts[c, 0]
        flags[c, 2] = (last_send - first_send) / US_PER_DAY / (sends - 1.0) if sends >= 2 else np.nan
        flags[c, 3] = opens5
        flags[c, 4] = clicks5


@njit(cache=True, nogil=True, parallel=True)
def _keyword_weights(
    offsets: np.ndarray,
    events: np.ndarray,
    as_of: int,
    kw_offsets: np.ndarray,
    kw_index: np.ndarray,
    half_life_days: float,
    click_weight: float,
    out: np.ndarray,
) -> None:
    n_camp = kw_offsets.shape[0] - 1
    for c in prange(offsets.shape[0] - 1):
        for i in range(offsets[c], offsets[c + 1]):
            e = events[i]
            t, k, kind = e["ts"], e["camp"], e["type"]
            if not ((kind == _OPEN or kind == _CLICK) and 0 <= k < n_camp):
                continue
            if i > offsets[c] and events[i - 1]["camp"] == k and events[i - 1]["type"] == kind:
                continue  # a repeat: its earliest row came first
            weight = 1.0 if kind == _OPEN else click_weight
            decay = 0.5 ** ((as_of - t) / US_PER_DAY / half_life_days)
            for q in range(kw_offsets[k], kw_offsets[k + 1]):
                out[c, kw_index[q]] += weight * decay


@dataclass(frozen=True)
class ContactEmails:
    """Event rows with ``ts <= as_of`` grouped by contact (contact c owns ``events[offsets[c]:
    offsets[c + 1]]``), each contact's in campaign, type, time order: what the kernels walk."""

    offsets: np.ndarray  # (n_contacts + 1,) int64
    events: np.ndarray  # structured: ts int64, camp int32 (-1: none), type int32
    as_of_us: int


def sort_events(
    codes: np.ndarray,
    n_contacts: int,
    ts_us: np.ndarray,
    event_codes: np.ndarray,
    campaign_codes: np.ndarray,
    as_of_us: int,
) -> ContactEmails:
    """Group event rows by contact, dropping those after ``as_of_us``.

    ``codes``: contact code per row (0 .. n_contacts - 1); ``event_codes``: position in
    ``EVENT_TYPES``; ``campaign_codes``: dense campaign code per row, -1 for none.
    """
    codes = np.ascontiguousarray(codes, np.int32)
    ts_us = np.ascontiguousarray(ts_us, np.int64)
    event_codes = np.ascontiguousarray(event_codes, np.int32)
    campaign_codes = np.ascontiguousarray(campaign_codes, np.int32)
    offsets = np.zeros(n_contacts + 1, np.int64)
    events = np.empty(codes.shape[0], _EVENT)
    _sort_by_contact(codes, ts_us, campaign_codes, event_codes, np.int64(as_of_us), offsets, events)
    events = events[: offsets[-1]]
    _order_each_contact(offsets, events)
    return ContactEmails(offsets, events, int(as_of_us))


def email_summary(emails: ContactEmails) -> EmailSummary:
    """Per-contact e-mail summary (see the module docstring), keyword weights aside."""
    n_contacts = emails.offsets.shape[0] - 1
    counts = np.zeros((n_contacts, 4))
    window_counts = np.zeros((n_contacts, 4, len(WINDOWS_DAYS)))
    last_ts = np.empty((n_contacts, 3))
    flags = np.empty((n_contacts, 5))
    windows = np.array(WINDOWS_DAYS, np.int64) * US_PER_DAY
    _summarise(emails.offsets, emails.events, np.int64(emails.as_of_us), windows, counts, window_counts, last_ts, flags)
    return EmailSummary(
        counts=counts,
        window_counts=window_counts,
        days_since=last_ts,
        unsubscribed=flags[:, 0].copy(),
        hard_bounced=flags[:, 1].copy(),
        mean_send_gap_days=flags[:, 2].copy(),
        opens_last5_sends=flags[:, 3].copy(),
        clicks_last5_sends=flags[:, 4].copy(),
    )


def keyword_weights(
    emails: ContactEmails,
    kw_offsets: np.ndarray,
    kw_index: np.ndarray,
    n_keywords: int,
    half_life_days: float = 90.0,
    click_weight: float = 3.0,
) -> np.ndarray:
    """(n_contacts, n_keywords) float64 time-decayed keyword weights (module docstring).

    ``kw_offsets`` (n_campaigns + 1) and ``kw_index`` list each campaign code's keywords
    (positions 0 .. n_keywords - 1); campaign codes beyond them have none.
    """
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days!r}")
    if not click_weight >= 0:
        raise ValueError(f"click_weight must be >= 0, got {click_weight!r}")
    out = np.zeros((emails.offsets.shape[0] - 1, n_keywords))
    _keyword_weights(
        emails.offsets, emails.events, np.int64(emails.as_of_us),
        np.ascontiguousarray(kw_offsets, np.int64), np.ascontiguousarray(kw_index, np.int32),
        float(half_life_days), float(click_weight), out,
    )  # fmt: skip
    return out
