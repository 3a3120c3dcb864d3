"""Arrow columns to the NumPy arrays the kernels take: contact codes, µs timestamps, floats, codes.

Each helper accepts an ``Array`` or a ``ChunkedArray`` and copies only where the types require
it (nulls to fill, a unit to convert, several chunks to join). ``field`` (``"orders.ts"``) is
the name bad data is reported under.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .factorise import factorise_int64
from .time_units import US_PER_DAY

__all__ = ["category_codes", "contact_codes", "floats", "timestamps_us", "unique_contact_ids"]

Column: TypeAlias = pa.Array | pa.ChunkedArray

_MAX_DAYS = np.iinfo(np.int64).max // US_PER_DAY  # date32 days that fit int64 µs
_MAX_MS = np.iinfo(np.int64).max // 1_000  # date64 ms that fit int64 µs


def contact_codes(
    ids: Column,
    index: Column | None = None,
    *,
    field: str = "contact_id",
    index_field: str = "index",
) -> tuple[np.ndarray, pa.Array]:
    """Dense int32 codes for contact ids (int64 or string), and the ids each code stands for.

    Without ``index``, codes number the distinct ids in order of first appearance and the
    returned index lists them. With ``index`` (distinct ids), ``codes[i]`` is the position of
    ``ids[i]`` in it, -1 where absent, and the returned index is ``index`` as one array.
    Integer ids of any width become int64; string ids keep their type.

    Raises
    ------
    InputError
        Null ids, an id type other than integer or string, or ids whose type cannot match the
        index's, named ``field``; nulls or duplicates in the index, named ``index_field``.
    """
    values = _ids(ids, field)
    if index is None:
        return _encode(values)
    known = _ids(index, index_field)
    n = len(known)
    if len(values) == 0 or n == 0:
        return np.full(len(values), -1, np.int32), unique_contact_ids(known, index_field)
    if pa.types.is_integer(known.type) != pa.types.is_integer(values.type):
        raise InputError(
            field,
            f"contact ids of type {values.type} cannot match {index_field} of type {known.type}",
        )
    # One hash pass over index + ids (codes in first-appearance order): with Arrow's own
    # hashing this was ~40% faster than hashing the index then probing it with pc.index_in
    # (1M index, 4M int64 ids). The index's codes are its positions iff it has no duplicates.
    if known.type == pa.int64() and values.type == pa.int64():
        codes, _ = factorise_int64(np.concatenate([known.to_numpy(), values.to_numpy()]))
    else:
        codes, _ = _encode(pa.concat_arrays([known if known.type == values.type else known.cast(values.type), values]))
    if codes[n - 1] != n - 1:
        unique_contact_ids(known, index_field)  # raises, naming a duplicate
    codes = codes[n:]
    # Ids absent from the index were numbered after it.
    return np.where(codes < n, codes, np.int32(-1)), known


def unique_contact_ids(ids: Column, field: str = "contact_id") -> pa.Array:
    """The ids as one array (integers as int64, strings as given), checked distinct.

    Raises
    ------
    InputError
        Null or duplicate ids, or an id type other than integer or string; named ``field``.
    """
    values = _ids(ids, field)
    if values.type == pa.int64():  # distinct ids as Arrow only for the error
        codes, uniques = factorise_int64(values.to_numpy())
        duplicates = len(uniques) < len(values)
        distinct = pa.array(uniques) if duplicates else values
    else:
        codes, distinct = _encode(values)
        duplicates = len(distinct) < len(values)
    if duplicates:
        counts = np.bincount(codes, minlength=len(distinct))
        duplicated = np.flatnonzero(counts > 1)
        example = distinct[int(duplicated[0])].as_py()
        raise InputError(
            field, f"{duplicated.size} contact ids appear more than once, e.g. {example!r}"
        )
    return values


def timestamps_us(column: Column, field: str) -> np.ndarray:
    """int64 microseconds since the epoch (UTC) from a timestamp (any unit, any or no time
    zone: tz-naive values are taken as UTC), date32 or date64 column.

    Raises
    ------
    InputError
        Nulls (their count) or a non-temporal type; named ``field``.
    """
    arr = _single(column)
    kind = arr.type
    if arr.null_count:
        raise InputError(
            field, f"{arr.null_count} null values of {len(arr)}; every row needs a time"
        )
    if pa.types.is_null(kind):  # empty, see _ids
        return np.empty(0, np.int64)
    if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        raise InputError(field, f"expected a timestamp or date column, got type {kind}")
    if pa.types.is_date32(kind):
        days = arr.cast(pa.int32()).to_numpy().astype(np.int64)
        _check_us_range(days, _MAX_DAYS, field)  # else the product wraps around silently
        return days * US_PER_DAY
    if pa.types.is_date64(kind):
        ms = arr.cast(pa.int64()).to_numpy()
        _check_us_range(ms, _MAX_MS, field)
        return ms * 1_000
    if kind.unit == "ns":
        # Floor (not truncate) so sub-µs times before 1970 still round down in time.
        return np.floor_divide(arr.cast(pa.int64()).to_numpy(), 1_000)
    if kind.unit != "us":
        try:
            arr = arr.cast(pa.timestamp("us", kind.tz))
        except pa.ArrowInvalid as err:
            raise InputError(field, f"timestamps out of the µs range: {err}") from None
    return arr.view(pa.int64()).to_numpy()  # no nulls: the same buffer, read as int64


def _check_us_range(values: np.ndarray, limit: int, field: str) -> None:
    out = np.count_nonzero((values > limit) | (values < -limit))
    if out:
        raise InputError(
            field, f"{out} dates of {len(values)} out of the µs range (years 1677..2262 or so)"
        )


def floats(column: Column, field: str) -> np.ndarray:
    """float64 values from a numeric (integer, floating, decimal) column, NaN for nulls.

    Raises
    ------
    InputError
        A non-numeric type, or infinite values; named ``field``.
    """
    arr = _single(column)
    kind = arr.type
    if pa.types.is_null(kind):
        return np.full(len(arr), np.nan)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        raise InputError(field, f"expected a numeric column, got type {kind}")
    if kind != pa.float64():
        # Unsafe only in precision: integers beyond 2**53 round to the nearest float64.
        arr = arr.cast(pa.float64(), safe=False)
    values = arr.to_numpy(zero_copy_only=False)
    infinite = np.count_nonzero(np.isinf(values))
    if infinite:
        raise InputError(
            field, f"{infinite} infinite values of {len(values)}; use null or NaN for unknown"
        )
    return values


def category_codes(column: Column, categories: Sequence[str], field: str) -> np.ndarray:
    """int32 position of each string in ``categories``; -1 for nulls and strings not listed.

    Raises
    ------
    InputError
        A column that is not strings (or dictionary-encoded strings); named ``field``.
    ValueError
        ``categories`` holds duplicates.
    """
    value_set = _CategorySet.of(tuple(categories))
    arr = _single(column)
    kind = arr.type
    if pa.types.is_null(kind):
        return np.full(len(arr), -1, np.int32)
    if pa.types.is_dictionary(kind) and _is_string(kind.value_type):
        # Look up the (small) dictionary once instead of every row.
        lookup = value_set.positions(arr.dictionary)
        if len(lookup) == 0:
            return np.full(len(arr), -1, np.int32)
        indices = arr.indices.fill_null(0) if arr.indices.null_count else arr.indices
        codes = lookup[indices.to_numpy()]
        if arr.null_count:
            codes[~arr.is_valid().to_numpy(zero_copy_only=False)] = -1
        return codes
    if not _is_string(kind):
        raise InputError(field, f"expected a string column, got type {kind}")
    return value_set.positions(arr)


_SMALL_LOOKUP = 64
"""Strings up to this many are looked up in a dict: Arrow's index_in costs ~15 µs a call
whatever the size (a real-time request's product groups are a handful)."""


class _CategorySet:
    """The categories as an Arrow value set and as a dict, made once per process."""

    def __init__(self, categories: tuple[str, ...]) -> None:
        if len(set(categories)) != len(categories):
            raise ValueError(f"categories hold duplicates: {list(categories)!r}")
        self.values = pa.array(categories, pa.string())
        self.index = {name: i for i, name in enumerate(categories)}

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(categories: tuple[str, ...]) -> _CategorySet:
        return _CategorySet(categories)

    def positions(self, values: pa.Array) -> np.ndarray:
        """int32 position of each string, -1 for nulls and strings not listed."""
        if len(values) <= _SMALL_LOOKUP:
            get = self.index.get
            return np.fromiter((get(v, -1) for v in values.to_pylist()), np.int32, len(values))
        if pa.types.is_string_view(values.type):
            values = values.cast(pa.string())  # index_in has no string_view kernel (pyarrow 26)
        found = pc.index_in(values, value_set=self.values)
        if found.null_count:
            found = found.fill_null(-1)
        return found.to_numpy().astype(np.int32)


def _is_string(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _single(column: Column) -> pa.Array:
    """One contiguous Array; joining chunks is the only copy."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            return column.chunk(0)
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(column).__name__}")


def _encode(ids: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """First-appearance int32 codes of ids from ``_ids`` and the distinct ids."""
    if ids.type == pa.int64():
        codes, distinct = factorise_int64(ids.to_numpy())
        return codes, pa.array(distinct)
    encoded = pc.dictionary_encode(ids)
    return encoded.indices.to_numpy(), encoded.dictionary


def _ids(column: Column, field: str) -> pa.Array:
    """Contact ids as int64 or a string type, without nulls."""
    arr = _single(column)
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.dictionary_decode()
        kind = arr.type
    if arr.null_count:
        raise InputError(field, f"{arr.null_count} null contact ids of {len(arr)}")
    if pa.types.is_null(kind):
        # An empty column written without a type (an empty DataFrame to Parquet).
        return pa.array([], pa.int64())
    if pa.types.is_integer(kind):
        if kind == pa.int64():
            return arr
        try:
            return arr.cast(pa.int64())
        except pa.ArrowInvalid as err:
            raise InputError(field, f"contact ids do not fit int64: {err}") from None
    if pa.types.is_string_view(kind):
        return arr.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return arr
    raise InputError(field, f"contact ids must be integers or strings, got type {kind}")
