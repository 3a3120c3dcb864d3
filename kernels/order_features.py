"""The orders feature family: RFM, repeat-purchase (BG/NBD inputs) and per-product-group features.

    recency_days, frequency, monetary, total_amount, tenure_days, repeat_count
    repeat_frequency, repeat_recency_days, age_days, repeat_monetary
    group_count:<product_group>, group_recency_days:<product_group>

Only orders with ``ts <= as_of`` count; see ``rfm.RfmSummary`` and ``repeat.RepeatSummary``
(the BG/NBD and Gamma-Gamma inputs x, t_x, T, zbar, on UTC purchase days) for each feature's
definition. The repeat kernel runs only for frames that ask for a repeat feature.
"""

from __future__ import annotations

import functools

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .arrow import category_codes, floats
from .errors import InputError
from .family import Frame, MakeFrame
from .repeat import RepeatSummary, repeat_summary
from .rfm import FEW_CONTACTS, FEW_ORDERS, RFM_COLUMNS, RfmSummary, few_contacts_columns, rfm_summary

__all__ = ["ORDERS", "OrderFeatures", "order_feature_names"]

_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)

_RFM_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "total_amount",
    "tenure_days",
    "repeat_count",
)
_REPEAT_FEATURES = ("repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary")
_GROUP_FEATURES = ("group_count", "group_recency_days")

# The orders column each feature reads besides contact_id and ts.
_EXTRA_COLUMN = {"monetary": "amount", "total_amount": "amount", "repeat_monetary": "amount"} | {
    f: "product_group" for f in _GROUP_FEATURES
}


def order_feature_names(groups: Sequence[str]) -> list[str]:
    """Every orders feature for these product groups: RFM, then count and recency per group.

    The repeat features (``repeat_frequency`` …) are not among them: models ask for those by
    name, and the names this returns are fixed in existing models' metadata.
    """
    return [
        *_RFM_FEATURES,
        *(f"group_count:{g}" for g in groups),
        *(f"group_recency_days:{g}" for g in groups),
    ]


@functools.lru_cache(maxsize=8192)  # parsed once per name, not once per request
def _parse(name: str) -> tuple[str, str | None] | None:
    """(feature, group) for an orders feature name (group None if per contact); None if not ours."""
    if name in _RFM_FEATURES or name in _REPEAT_FEATURES:
        return name, None
    feature, sep, group = name.partition(":")
    if sep and group and feature in _GROUP_FEATURES:
        return feature, group
    return None


@dataclass(frozen=True)
class _Wanted:
    """What a list of orders feature names needs: worked out once per list, not per request."""

    parsed: tuple[tuple[str, str | None], ...]
    groups: tuple[str, ...]
    first_reader: dict[str, str]
    """Each column read, named after the first feature that reads it (for the error message)."""
    rfm_amount: bool
    summary: bool
    repeat: bool
    repeat_amount: bool
    picks: np.ndarray
    """Each feature's ``[RFM_COLUMNS position, position in groups]`` (``few_contacts_columns``)."""


@functools.lru_cache(maxsize=1024)
def _wanted(names: tuple[str, ...]) -> _Wanted:
    parsed = tuple(_parse(name) for name in names)
    features = [f for f, _ in parsed]  # type: ignore[misc]
    first_reader: dict[str, str] = {}
    for feature, name in zip(features, names, strict=True):
        for col in ("ts", _EXTRA_COLUMN.get(feature)):
            if col is not None:
                first_reader.setdefault(col, name)
    groups = tuple(dict.fromkeys(g for _, g in parsed if g is not None))  # type: ignore[misc]
    # [RFM_COLUMNS position, group position] per feature ([-1, 0]: a repeat feature, not picked there)
    picks = [[RFM_COLUMNS.index(f), groups.index(g) if g else 0] if f in RFM_COLUMNS else [-1, 0] for f, g in parsed]  # type: ignore[misc]
    return _Wanted(
        parsed=parsed,  # type: ignore[arg-type]
        groups=groups,
        first_reader=first_reader,
        rfm_amount=any(_EXTRA_COLUMN.get(f) == "amount" for f in features if f in _RFM_FEATURES),
        summary=any(f not in _REPEAT_FEATURES for f in features),
        repeat=any(f in _REPEAT_FEATURES for f in features),
        repeat_amount="repeat_monetary" in features,
        picks=np.array(picks, np.int64).reshape(-1, 2),
    )


class OrderFeatures:
    """The orders family; its summaries are cached on the frame and widened, never recomputed
    back and forth, when later calls ask for more groups or for amounts."""

    table = "orders"
    patterns: tuple[str, ...] = _RFM_FEATURES + _REPEAT_FEATURES + tuple(f"{f}:<group>" for f in _GROUP_FEATURES)

    def knows(self, name: str) -> bool:
        return _parse(name) is not None

    def columns(self, name: str) -> set[str]:
        parsed = _parse(name)
        assert parsed is not None
        extra = _EXTRA_COLUMN.get(parsed[0])
        return {"orders.contact_id", "orders.ts"} | ({f"orders.{extra}"} if extra else set())

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        wanted = _wanted(tuple(names))
        if frame.table("orders") is not None:
            for col, name in wanted.first_reader.items():
                frame.column("orders", col, f"feature {name}")
        if wanted.summary and not wanted.repeat and "orders.rfm" not in frame.cache:
            few = _few_contacts(frame, wanted)
            if few is not None:
                return list(few.T)
        summary = _summary(frame, wanted.groups, wanted.rfm_amount) if wanted.summary else None
        repeat = _repeat_summary(frame, wanted.repeat_amount) if wanted.repeat else None
        columns = []
        for feature, group in wanted.parsed:
            if feature in _REPEAT_FEATURES:
                columns.append(getattr(repeat, feature))
            elif group is None:
                columns.append(getattr(summary, feature))
            else:
                assert summary is not None
                position = frame.cache["orders.rfm_groups"].index(group)
                table = summary.group_count if feature == "group_count" else summary.group_recency_days
                columns.append(table[:, position])
        return columns

    def warm_up(self, make_frame: MakeFrame) -> None:
        orders = pa.table(
            {
                "contact_id": pa.array([2, 1, 2], pa.int64()),
                "ts": pa.array([1, 2, 3], pa.timestamp("us", "UTC")),
                "amount": pa.array([1.0, None, 2.0]),
                "product_group": pa.array(["a", None, "b"]),
            }
        )
        make_frame({"orders": orders}, 2).matrix([*order_feature_names(["a", "b"]), *_REPEAT_FEATURES])
        make_frame({"orders": orders}, 2).matrix(order_feature_names(["a", "b"]))  # a few contacts: one kernel


ORDERS = OrderFeatures()


def _amounts(frame: Frame) -> np.ndarray:
    """orders.amount as float64 (NaN for nulls), converted once per frame."""
    if "orders.amount" not in frame.cache:
        frame.cache["orders.amount"] = floats(frame.column("orders", "amount", "amount features"), "orders.amount")
    return frame.cache["orders.amount"]


def _group_codes(frame: Frame, groups: tuple[str, ...]) -> np.ndarray:
    """Each order's position in ``groups`` (-1: none of them), from orders.product_group."""
    return category_codes(frame.column("orders", "product_group", "group features"), groups, "orders.product_group")


def _few_contacts(frame: Frame, wanted: _Wanted) -> np.ndarray | None:
    """The wanted columns of a frame of a few int64 contacts in one kernel call (a real-time
    request: the general path's dozen calls cost several times more); None where the general
    path must run: more contacts or orders, other id types, or any bad input (it names the
    error as it always has)."""
    orders = frame.table("orders")
    if orders is None or len(frame) > FEW_CONTACTS or orders.num_rows > FEW_ORDERS:
        return None
    rows = frame.contact_ids
    ids = frame.column("orders", "contact_id", "every feature")
    if rows.type != pa.int64() or ids.type != pa.int64() or ids.num_chunks != 1 or ids.null_count:
        return None
    if not _INT64_MIN <= frame.as_of_us <= _INT64_MAX:  # rfm_summary's error
        return None
    try:
        amount = _amounts(frame) if wanted.rfm_amount else None
        groups = _group_codes(frame, wanted.groups) if wanted.groups else None
        ts = frame.timestamps("orders")
    except InputError:
        return None
    return few_contacts_columns(rows.to_numpy(), ids.chunk(0).to_numpy(), ts, amount, groups, len(wanted.groups), frame.as_of_us, wanted.picks)


def _summary(frame: Frame, groups: tuple[str, ...], needs_amount: bool) -> RfmSummary:
    """The RFM summary covering these groups (and amounts), computed again only if not."""
    cache = frame.cache
    done: RfmSummary | None = cache.get("orders.rfm")
    done_groups: tuple[str, ...] = cache.get("orders.rfm_groups", ())
    done_amount: bool = cache.get("orders.rfm_amount", False)
    if done is not None and set(groups) <= set(done_groups) and (done_amount or not needs_amount):
        return done
    # The union, so alternating calls do not recompute back and forth.
    groups = tuple(dict.fromkeys(done_groups + groups))
    use_amount = done_amount or needs_amount
    n = len(frame)
    codes = frame.codes("orders")
    if codes is None:
        empty = np.empty(0, np.int64)
        summary = rfm_summary(empty, n, empty, np.empty(0), np.empty(0, np.int32), len(groups), frame.as_of_us)
    else:
        amount = _amounts(frame) if use_amount else None
        group_codes = _group_codes(frame, groups) if groups else None
        ts = frame.timestamps("orders")
        summary = rfm_summary(codes, n, ts, amount, group_codes, len(groups), frame.as_of_us)
    cache["orders.rfm"], cache["orders.rfm_groups"], cache["orders.rfm_amount"] = (
        summary,
        groups,
        use_amount,
    )
    return summary


def _repeat_summary(frame: Frame, needs_amount: bool) -> RepeatSummary:
    """The repeat-purchase summary (with amounts if asked), computed again only if not."""
    cache = frame.cache
    done: RepeatSummary | None = cache.get("orders.repeat")
    done_amount: bool = cache.get("orders.repeat_amount", False)
    if done is not None and (done_amount or not needs_amount):
        return done
    use_amount = done_amount or needs_amount
    n = len(frame)
    codes = frame.codes("orders")
    if codes is None:
        empty = np.empty(0, np.int64)
        summary = repeat_summary(empty, n, empty, np.empty(0), frame.as_of_us)
    else:
        amount = _amounts(frame) if use_amount else None
        summary = repeat_summary(codes, n, frame.timestamps("orders"), amount, frame.as_of_us)
    cache["orders.repeat"], cache["orders.repeat_amount"] = summary, use_amount
    return summary
