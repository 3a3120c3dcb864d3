"""The SKU feature family (orders table): what each contact bought, for recommendations and uplift.

    sku_history:<slot>   vocabulary code (as a float) of the contact's (slot+1)-th most recent
                         distinct SKU, slot = 0, 1, …; -1 when it bought fewer distinct SKUs
                         (or none) of the vocabulary
    sku_weight:<slot>    the orders of that slot's SKU, each weighted by
                         ``0.5 ** (age / params["half_life_days"])``: a time-decayed personal
                         frequency; 0 for an empty slot
    promo_share          share of the contact's orders flagged promo; NaN without orders (or
                         without a known promo flag)

Only orders with ``ts <= as_of`` count. The vocabulary is the model's: ``params["skus"]``, the
SKU names in code order (a model's ``feature_params``); SKUs not in it are skipped. SKUs may be
strings or integers (integers are matched by their decimal text). Memory per frame: one
``rows x slots`` float32 block, never a contacts x SKUs matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow import category_codes
from .errors import InputError
from .family import Frame, MakeFrame
from .sku_history import decayed_counts, promo_share, recent_distinct
from .time_units import US_PER_DAY

__all__ = ["SKUS", "SkuFeatures", "sku_history_names", "sku_strings", "sku_weight_names"]

_HISTORY = "sku_history"
_WEIGHT = "sku_weight"
_PROMO = "promo_share"
MAX_SLOTS = 1000
"""Most history slots a model may ask for (a bound on the per-frame block)."""


def sku_history_names(slots: int) -> list[str]:
    """``sku_history:0`` … ``sku_history:<slots-1>``."""
    return [f"{_HISTORY}:{i}" for i in range(slots)]


def sku_weight_names(slots: int) -> list[str]:
    """``sku_weight:0`` … ``sku_weight:<slots-1>``."""
    return [f"{_WEIGHT}:{i}" for i in range(slots)]


def _slot(name: str, family: str = _HISTORY) -> int | None:
    feature, sep, slot = name.partition(":")
    if feature != family or not sep or not slot.isdigit() or (len(slot) > 1 and slot[0] == "0"):
        return None
    value = int(slot)
    return value if value < MAX_SLOTS else None


def sku_strings(column: pa.ChunkedArray | pa.Array, field: str) -> pa.Array:
    """The SKU column as strings (integers as their decimal text); InputError for other types."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_integer(kind):
        return pc.cast(arr, pa.string())
    if pa.types.is_null(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return arr
    raise InputError(field, f"expected SKUs as strings or integers, got type {kind}")


class SkuFeatures:
    """The SKU family; the vocabulary codes of a frame's orders are computed once per vocabulary."""

    table = "orders"
    patterns: tuple[str, ...] = (f"{_HISTORY}:<slot>", f"{_WEIGHT}:<slot>", _PROMO)

    def knows(self, name: str) -> bool:
        return name == _PROMO or _slot(name) is not None or _slot(name, _WEIGHT) is not None

    def columns(self, name: str) -> set[str]:
        extra = "promo" if name == _PROMO else "sku"
        return {"orders.contact_id", "orders.ts", f"orders.{extra}"}

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        columns: list[np.ndarray] = []
        slots = [_slot(name) for name in names]
        weight_slots = [_slot(name, _WEIGHT) for name in names]
        history = weights = None
        wanted = [s for s in (*slots, *weight_slots) if s is not None]
        if wanted:
            history = self._history(frame, max(wanted) + 1, params)
        if any(s is not None for s in weight_slots):
            weights = self._weights(frame, history, params)
        share = self._promo_share(frame) if _PROMO in names else None
        for slot, weight_slot in zip(slots, weight_slots, strict=True):
            if slot is not None:
                assert history is not None
                columns.append(history[:, slot])
            elif weight_slot is not None:
                assert weights is not None
                columns.append(weights[:, weight_slot])
            else:
                assert share is not None
                columns.append(share)
        return columns

    def _history(self, frame: Frame, slots: int, params: Mapping[str, Any]) -> np.ndarray:
        skus = params.get("skus")
        if not isinstance(skus, list) or not skus:
            raise ValueError("sku_history features need the model's SKU vocabulary: params['skus'], a non-empty list")
        key = f"orders.sku_history:{id(skus)}"
        done = frame.cache.get(key)
        if done is not None and done[0] is skus and done[1].shape[1] >= slots:
            return done[1]
        n = len(frame)
        codes = frame.codes("orders")
        if codes is None:
            out = np.full((n, slots), -1.0, np.float32)
        else:
            ts = frame.timestamps("orders")
            names = sku_strings(frame.column("orders", "sku", "feature sku_history"), "orders.sku")
            sku_codes = category_codes(names, skus, "orders.sku")
            out = recent_distinct(codes, ts, sku_codes, n, frame.as_of_us, slots)
        frame.cache[key] = (skus, out)  # the list is kept so its id() is never reused
        return out

    def _weights(self, frame: Frame, history: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        half_life = params.get("half_life_days")
        if not isinstance(half_life, (int, float)) or not half_life > 0:
            raise ValueError(f"sku_weight features need params['half_life_days'] > 0, got {half_life!r}")
        codes = frame.codes("orders")
        if codes is None:
            return np.zeros(history.shape, np.float32)
        names = sku_strings(frame.column("orders", "sku", "feature sku_weight"), "orders.sku")
        sku_codes = category_codes(names, params["skus"], "orders.sku")
        return decayed_counts(
            codes, frame.timestamps("orders"), sku_codes, history, frame.as_of_us, float(half_life) * US_PER_DAY
        )

    def _promo_share(self, frame: Frame) -> np.ndarray:
        if "orders.promo_share" in frame.cache:
            return frame.cache["orders.promo_share"]
        codes = frame.codes("orders")
        if codes is None:
            out = np.full(len(frame), np.nan)
        else:
            column = frame.column("orders", "promo", "feature promo_share")
            arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            if not (pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type)):
                raise InputError("orders.promo", f"expected a bool column, got type {arr.type}")
            flags = pc.fill_null(pc.cast(arr, pa.int8()), -1).to_numpy(zero_copy_only=False)
            out = promo_share(codes, frame.timestamps("orders"), flags, len(frame), frame.as_of_us)
        frame.cache["orders.promo_share"] = out
        return out

    def warm_up(self, make_frame: MakeFrame) -> None:
        orders = pa.table(
            {
                "contact_id": pa.array([2, 1, 2], pa.int64()),
                "ts": pa.array([1, 2, 3], pa.timestamp("us", "UTC")),
                "sku": pa.array(["a", None, "b"]),
                "promo": pa.array([True, None, False]),
            }
        )
        make_frame({"orders": orders}, 2).matrix(
            [*sku_history_names(2), *sku_weight_names(2), _PROMO], {"skus": ["a", "b"], "half_life_days": 30.0}
        )


SKUS = SkuFeatures()
