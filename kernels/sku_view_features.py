"""The SKU view feature family (web_events table): the product pages each contact viewed.

    sku_viewed:<slot>        vocabulary code (as a float) of the contact's SKU with the
                             (slot+1)-th largest time-decayed view count; -1 when it viewed
                             fewer distinct SKUs of the vocabulary (or none)
    sku_view_weight:<slot>   that count: its views, each weighted
                             ``0.5 ** (age / params["view_half_life_days"])``; 0 for an empty slot

Only views with ``ts <= as_of`` count; ties go to the lower code. A page is a view of a SKU
when it matches ``params["product_page"]`` (a ``/products/{sku}`` pattern, the web config's
``product_page``, see ``web_config``) and the text in place of ``{sku}`` is in the vocabulary
``params["skus"]``; pages are matched on their distinct values, not per event. A frame
without web_events has no views: every slot empty. Memory per frame: one ``rows x slots``
block of each, never a contacts x SKUs matrix.
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
from .sku_features import MAX_SLOTS
from .sku_history import top_decayed
from .time_units import US_PER_DAY
from .web_config import product_page_parts

__all__ = ["SKU_VIEWS", "SkuViewFeatures", "product_page_skus", "sku_view_weight_names", "sku_viewed_names"]

TABLE = "web_events"
_VIEWED = "sku_viewed"
_WEIGHT = "sku_view_weight"


def sku_viewed_names(slots: int) -> list[str]:
    """``sku_viewed:0`` … ``sku_viewed:<slots-1>``."""
    return [f"{_VIEWED}:{i}" for i in range(slots)]


def sku_view_weight_names(slots: int) -> list[str]:
    """``sku_view_weight:0`` … ``sku_view_weight:<slots-1>``."""
    return [f"{_WEIGHT}:{i}" for i in range(slots)]


def _slot(name: str) -> tuple[str, int] | None:
    feature, sep, slot = name.partition(":")
    if feature not in (_VIEWED, _WEIGHT) or not sep or not slot.isdigit() or (len(slot) > 1 and slot[0] == "0"):
        return None
    value = int(slot)
    return (feature, value) if value < MAX_SLOTS else None


def product_page_skus(
    column: pa.Array | pa.ChunkedArray, pattern: str, skus: Sequence[str], field: str = "web_events.page"
) -> np.ndarray:
    """int32 vocabulary code of each page's SKU under ``pattern`` (``/products/{sku}``); -1 for
    a page that is no product page, a SKU not in ``skus``, or a null.

    Raises
    ------
    InputError
        A column that is not strings; named ``field``.
    """
    prefix, suffix = product_page_parts(pattern)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, np.int32)
    if not pa.types.is_dictionary(arr.type):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type)):
            raise InputError(field, f"expected a string column (page id or URL path), got type {arr.type}")
        arr = pc.dictionary_encode(arr.cast(pa.string()))
    pages = arr.dictionary
    if not pa.types.is_string(pages.type):
        try:
            pages = pages.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(field, f"expected dictionary-encoded strings, got type {arr.type}") from None
    path = pc.replace_substring_regex(pages, r"[?#].*", "")  # the query string and fragment
    lengths = pc.utf8_length(path).to_numpy(zero_copy_only=False)
    matches = (
        pc.and_(pc.starts_with(path, prefix), pc.ends_with(path, suffix)).fill_null(False).to_numpy(zero_copy_only=False)
        & (lengths > len(prefix) + len(suffix))
    )
    lookup = np.full(len(pages), -1, np.int32)
    if matches.any():
        hits = path.filter(pa.array(matches))
        names = pc.utf8_slice_codeunits(hits, len(prefix), -len(suffix) if suffix else None)
        lookup[matches] = category_codes(names, skus, field)
    codes = lookup[arr.indices.fill_null(0).to_numpy(zero_copy_only=False)] if len(lookup) else np.full(len(arr), -1, np.int32)
    if arr.null_count:
        codes[~arr.is_valid().to_numpy(zero_copy_only=False)] = -1
    return codes


class SkuViewFeatures:
    """The SKU view family; one kernel run per frame, vocabulary, pattern and half-life."""

    table = TABLE
    patterns: tuple[str, ...] = (f"{_VIEWED}:<slot>", f"{_WEIGHT}:<slot>")

    def knows(self, name: str) -> bool:
        return _slot(name) is not None

    def columns(self, name: str) -> set[str]:
        return {f"{TABLE}.contact_id", f"{TABLE}.ts", f"{TABLE}.page"}

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        slots = [_slot(name) for name in names]
        codes, counts = self._views(frame, max(s for _, s in slots) + 1, params, names)  # type: ignore[misc]
        return [(codes if feature == _VIEWED else counts)[:, slot] for feature, slot in slots]  # type: ignore[misc]

    def _views(
        self, frame: Frame, slots: int, params: Mapping[str, Any], names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        skus, pattern, half_life = params.get("skus"), params.get("product_page"), params.get("view_half_life_days")
        if not isinstance(skus, list) or not skus:
            raise ValueError("sku_viewed features need the model's SKU vocabulary: params['skus'], a non-empty list")
        if not isinstance(pattern, str):
            raise ValueError(f"sku_viewed features need params['product_page'], a /products/{{sku}} pattern, got {pattern!r}")
        if isinstance(half_life, bool) or not isinstance(half_life, (int, float)) or not half_life > 0:
            raise ValueError(f"sku_viewed features need params['view_half_life_days'] > 0, got {half_life!r}")
        key = f"{TABLE}.sku_views:{id(skus)}:{pattern}:{half_life}"
        done = frame.cache.get(key)
        if done is not None and done[0] is skus and done[1].shape[1] >= slots:
            return done[1], done[2]
        n = len(frame)
        contact = frame.codes(TABLE)
        if contact is None:
            codes, counts = np.full((n, slots), -1.0, np.float32), np.zeros((n, slots), np.float32)
        else:
            page = frame.column(TABLE, "page", f"features {', '.join(names[:2])}…")
            sku = product_page_skus(page, pattern, skus)
            codes, counts = top_decayed(
                contact, frame.timestamps(TABLE), sku, n, frame.as_of_us, float(half_life) * US_PER_DAY, slots
            )
        frame.cache[key] = (skus, codes, counts)  # the list is kept so its id() is never reused
        return codes, counts

    def warm_up(self, make_frame: MakeFrame) -> None:
        events = pa.table(
            {
                "contact_id": pa.array([2, 1, 2], pa.int64()),
                "ts": pa.array([1, 2, 3], pa.timestamp("us", "UTC")),
                "page": pa.array(["/p/a", None, "/p/b?x=1"]),
            }
        )
        params = {"skus": ["a", "b"], "product_page": "/p/{sku}", "view_half_life_days": 7.0}
        make_frame({TABLE: events}, 2).matrix([*sku_viewed_names(2), *sku_view_weight_names(2)], params)


SKU_VIEWS = SkuViewFeatures()
