"""Argument checks shared by the kernel wrappers; each failure is an InputError naming the
column or argument and the value that was wrong."""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = ["check_range", "column", "count_arg", "int64_arg", "read_only"]

_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
_SMALL = 32
"""Up to this many values are compared in Python: two NumPy reductions cost more for a few."""


def column(values: object, name: str, kinds: str, dtype: np.dtype | type, n: int) -> np.ndarray:
    """``values`` as a read-only contiguous 1-D array of ``dtype`` and length ``n``, or InputError."""
    arr = np.asarray(values)
    if arr.dtype.kind not in kinds:
        raise InputError(name, f"expected {np.dtype(dtype).name} values, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(name, f"expected a 1-D array of {n} values (one per order row), got shape {arr.shape}")
    return read_only(np.ascontiguousarray(arr, dtype=dtype))


def read_only(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr``."""
    # Arrow hands out read-only arrays and numba types them apart from writable ones: making
    # every kernel input read-only keeps one compiled signature whatever the source.
    view = arr.view()
    view.flags.writeable = False
    return view


def int64_arg(value: int, name: str) -> int:
    """``value`` as an int64 microsecond count, or InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(name, f"expected integer microseconds, got {value!r}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InputError(name, f"{value} is outside the int64 range")
    return int(value)


def count_arg(value: int, name: str) -> int:
    """``value`` as a non-negative int, or InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(name, f"expected a non-negative integer, got {value!r}")
    return int(value)


def check_range(values: np.ndarray, low: int, high: int, name: str) -> None:
    """Raise InputError naming the first value outside ``low .. high - 1``."""
    if values.shape[0] == 0:
        return
    if values.shape[0] <= _SMALL:
        listed = values.tolist()
        vmin, vmax = min(listed), max(listed)
    else:
        vmin, vmax = values.min(), values.max()
    if vmin >= low and vmax < high:
        return
    bad = np.flatnonzero((values < low) | (values >= high))[0]
    raise InputError(name, f"value {values[bad]} at row {bad} is outside the allowed range {low} .. {high - 1}")
