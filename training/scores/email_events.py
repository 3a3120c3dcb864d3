"""What the e-mail scores learn from besides features: next-send labels and opens by send gap.

Both read ``email_events`` through the frame (its contact codes, checked timestamps) and count
an event once per (contact, campaign) like the feature kernel; rows without a campaign are left
out (they cannot be tied to a send).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scorecast.kernels import FeatureFrame, InputError, category_codes, contact_codes
from scorecast.kernels.email import EVENT_TYPES, US_PER_DAY

__all__ = ["EmailRows", "NextSend", "email_rows", "next_send", "open_rate_by_gap"]

_SENT, _OPEN, _CLICK = 0, 1, 2


@dataclass(frozen=True)
class EmailRows:
    """The rows of ``email_events`` with a campaign, as NumPy: contact code, ts (µs), event
    code (position in ``EVENT_TYPES``), dense campaign code."""

    contact: np.ndarray
    ts: np.ndarray
    event: np.ndarray
    campaign: np.ndarray
    n_campaigns: int


def email_rows(frame: FeatureFrame) -> EmailRows:
    """The frame's e-mail events with a campaign; InputError if the frame has none."""
    codes = frame.codes("email_events")
    if codes is None:
        raise InputError("email_events", "the base has no email_events table, which the e-mail scores need")
    ts = frame.timestamps("email_events")
    event_col = frame.column("email_events", "event", "e-mail labels")
    event = category_codes(event_col, EVENT_TYPES, "email_events.event")
    if (event < 0).any():
        raise InputError("email_events.event", f"unknown or null event {event_col[int(np.flatnonzero(event < 0)[0])].as_py()!r}")
    campaign_col = frame.column("email_events", "campaign_id", "e-mail labels").combine_chunks()
    valid = campaign_col.is_valid().to_numpy(zero_copy_only=False)
    campaign = np.full(len(campaign_col), -1, np.int32)
    n_campaigns = 0
    if valid.any():
        campaign[valid], uniques = contact_codes(campaign_col.filter(pa.array(valid)), field="email_events.campaign_id")
        n_campaigns = len(uniques)
    return EmailRows(codes[valid], ts[valid], event[valid], campaign[valid], n_campaigns)


@dataclass(frozen=True)
class NextSend:
    """Per contact: whether it was sent a campaign in (cutoff, as_of], and whether it opened
    and clicked the first one (by any time up to as_of)."""

    sent: np.ndarray
    opened: np.ndarray
    clicked: np.ndarray


def next_send(rows: EmailRows, n_contacts: int, cutoff_us: int, as_of_us: int) -> NextSend:
    """The reaction of each contact to its first send after ``cutoff_us`` (the labels of P(open))."""
    window = np.flatnonzero((rows.event == _SENT) & (rows.ts > cutoff_us) & (rows.ts <= as_of_us))
    window = window[np.lexsort((rows.ts[window], rows.contact[window]))]
    contact = rows.contact[window]
    first = window[np.append(True, contact[1:] != contact[:-1])] if window.size else window
    next_campaign = np.full(n_contacts, -1, np.int64)
    next_campaign[rows.contact[first]] = rows.campaign[first]
    sent = next_campaign >= 0
    reacted = []
    for kind in (_OPEN, _CLICK):
        hit = (rows.event == kind) & (rows.ts <= as_of_us) & (rows.campaign == next_campaign[rows.contact])
        flag = np.zeros(n_contacts, bool)
        flag[rows.contact[hit]] = True
        reacted.append(flag & sent)
    return NextSend(sent, reacted[0], reacted[1])


def open_rate_by_gap(rows: EmailRows, as_of_us: int, max_days: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Sends (to contacts with an earlier send) and their open rate, by whole days since that
    earlier send: index d is a gap in [d, d + 1) days, the last index max_days or more."""
    keys = rows.contact.astype(np.int64) * max(rows.n_campaigns, 1) + rows.campaign
    sent = (rows.event == _SENT) & (rows.ts <= as_of_us)
    opened_keys = np.unique(keys[(rows.event == _OPEN) & (rows.ts <= as_of_us)])
    idx = np.flatnonzero(sent)
    idx = idx[np.lexsort((rows.ts[idx], rows.contact[idx]))]
    contact, ts = rows.contact[idx], rows.ts[idx]
    same = np.zeros(idx.size, bool)
    same[1:] = contact[1:] == contact[:-1]
    gap = np.zeros(idx.size, np.int64)
    gap[1:] = (ts[1:] - ts[:-1]) // US_PER_DAY
    opened = np.isin(keys[idx], opened_keys)
    # a repeated send row of one campaign (gap 0, same campaign) is not a new send
    new = same & np.append(False, keys[idx][1:] != keys[idx][:-1])
    bucket = np.minimum(gap[new], max_days)
    n = np.bincount(bucket, minlength=max_days + 1).astype(np.float64)
    hits = np.bincount(bucket, weights=opened[new], minlength=max_days + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n, np.where(n > 0, hits / n, np.nan)
