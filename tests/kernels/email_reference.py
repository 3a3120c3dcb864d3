"""A slow, obviously correct pandas version of the e-mail features, for the tests to compare against.

Imports nothing of scorecast: it reads the Arrow tables its own way (pandas, Python sets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scorecast.kernels.time_units import US_PER_DAY

KINDS = {"sent": "sends", "open": "opens", "click": "clicks", "bounce": "bounces"}
WINDOWS = (7, 30, 90, 365)


def _firsts(rows: pd.DataFrame) -> list[tuple[object, int]]:
    """(campaign, earliest ts) per distinct campaign, and one entry per row without a campaign."""
    named = rows[rows.campaign_id.notna()].groupby("campaign_id").t.min()
    out: list[tuple[object, int]] = [(k, int(v)) for k, v in named.items()]
    out += [(None, int(t)) for t in rows[rows.campaign_id.isna()].t]
    return out


def email_features(
    events: pa.Table,
    campaigns: pa.Table | None,
    contact_ids: Sequence[object],
    as_of_us: int,
    keywords: Sequence[str] = (),
    half_life_days: float = 90.0,
    click_weight: float = 3.0,
) -> dict[str, np.ndarray]:
    """Every e-mail feature (``kernels.email_features`` names) per contact, in row order."""
    df = pd.DataFrame(
        {
            "contact_id": events["contact_id"].to_pylist(),
            "t": events["ts"].cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist(),
            "campaign_id": events["campaign_id"].to_pylist(),
            "event": events["event"].to_pylist(),
        }
    )
    df["campaign_id"] = df["campaign_id"].astype(object)
    df = df[df.t <= as_of_us]
    kw_of: dict[object, set[str]] = {}
    if campaigns is not None:
        for cid, kws in zip(campaigns["campaign_id"].to_pylist(), campaigns["keywords"].to_pylist(), strict=True):
            kw_of[cid] = set(kws or []) & set(keywords)
    out: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        out.setdefault(name, []).append(float(value))

    for contact in contact_ids:
        rows = df[df.contact_id == contact]
        firsts = {kind: _firsts(rows[rows.event == kind]) for kind in KINDS}
        for kind, plural in KINDS.items():
            put(f"email_{plural}", len(firsts[kind]))
        for kind, plural in KINDS.items():
            for w in WINDOWS:
                put(f"email_{plural}_{w}d", sum(t > as_of_us - w * US_PER_DAY for _, t in firsts[kind]))
        for kind in ("send", "open", "click"):
            sub = rows[rows.event == ("sent" if kind == "send" else kind)]
            put(f"email_days_since_{kind}", (as_of_us - sub.t.max()) / US_PER_DAY if len(sub) else np.nan)
        put("email_unsubscribed", bool((rows.event == "unsubscribe").any()))
        bounces, sends = rows[rows.event == "bounce"], rows[rows.event == "sent"]
        put("email_hard_bounced", len(bounces) > 0 and (len(sends) == 0 or bounces.t.max() >= sends.t.max()))
        n_sent = len(firsts["sent"])
        put("email_open_rate", len(firsts["open"]) / n_sent if n_sent else np.nan)
        put("email_click_rate", len(firsts["click"]) / n_sent if n_sent else np.nan)
        send_ts = sorted((t for _, t in firsts["sent"]), reverse=True)
        put("email_mean_send_gap_days", (send_ts[0] - send_ts[-1]) / US_PER_DAY / (n_sent - 1) if n_sent >= 2 else np.nan)
        fifth = send_ts[min(5, n_sent) - 1] if n_sent else 0
        latest = {k for k, t in firsts["sent"] if k is not None and t >= fifth}
        opened = {k for k, _ in firsts["open"] if k is not None}
        clicked = {k for k, _ in firsts["click"] if k is not None}
        put("email_opens_last5_sends", len(latest & opened))
        put("email_clicks_last5_sends", len(latest & clicked))
        weights = dict.fromkeys(keywords, 0.0)
        for kind, weight in (("open", 1.0), ("click", click_weight)):
            for k, t in firsts[kind]:
                for kw in kw_of.get(k, set()) if k is not None else set():
                    weights[kw] += weight * 0.5 ** ((as_of_us - t) / US_PER_DAY / half_life_days)
        for kw in keywords:
            put(f"keyword_weight:{kw}", weights[kw])
    return {name: np.array(values) for name, values in out.items()}
