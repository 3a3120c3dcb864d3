"""The partition of a contact: a hash of its id, the same in every table, block and process.

Both rescoring engines group a contact's rows by it: the local one splits a base on disk into
partitions (``scorecast/base.py``), the Ray one shuffles blocks into buckets
(``server/rescore_ray.py``). Integer ids: MurmurHash3's 64-bit finaliser, its top 32 bits
scaled to ``0..n-1`` by a multiply-shift (no division). String (or binary) ids: 64-bit FNV-1a
of their bytes, modulo ``n``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .errors import InputError

__all__ = ["partition_bytes", "partition_int64", "partition_of"]


@njit(cache=True, nogil=True)
def partition_int64(ids: np.ndarray, n: int, out: np.ndarray) -> None:
    """``out[i]``: the partition (0 .. n - 1, n < 2**32) of the int64 id ``ids[i]``."""
    # MurmurHash3's finaliser, not a golden-ratio multiply: the kernels' hash tables
    # (factorise) slot ids by the top bits of id * golden ratio, and a partition's ids sharing
    # those bits would all collide there
    for i in range(ids.shape[0]):
        h = np.uint64(ids[i])
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
        h = (h ^ (h >> np.uint64(33))) >> np.uint64(32)
        out[i] = np.int64((h * np.uint64(n)) >> np.uint64(32))  # h * n / 2**32


@njit(cache=True, nogil=True)
def partition_bytes(offsets: np.ndarray, data: np.ndarray, n: int, out: np.ndarray) -> None:
    """``out[i]``: the partition (0 .. n - 1) of the id whose bytes are
    ``data[offsets[i]:offsets[i + 1]]`` (Arrow's string layout, 32- or 64-bit offsets)."""
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = np.int64(h % np.uint64(n))


def partition_of(ids: pa.Array | pa.ChunkedArray, n_partitions: int, field: str = "contact_id") -> np.ndarray:
    """int64 partition (0 .. ``n_partitions`` - 1) of each id: integer, string or binary ids
    without nulls; ``InputError`` naming ``field`` otherwise.

    >>> partition_of(pa.array(["a", "a", "b"]), 4).tolist()
    [0, 0, 1]
    """
    if not 1 <= n_partitions < 2**32:
        raise ValueError(f"n_partitions must be in 1 .. 2**32 - 1, got {n_partitions}")
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    kind = ids.type
    strings = (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    )
    if not (pa.types.is_integer(kind) or strings):
        raise InputError(field, f"contact ids must be integers or strings, got {kind}")
    if ids.null_count:
        raise InputError(field, f"{ids.null_count} null ids")
    out = np.empty(len(ids), np.int64)
    if not strings:
        partition_int64(ids.cast(pa.int64()).to_numpy(zero_copy_only=False), n_partitions, out)
        return out
    _, offsets_buf, data_buf = ids.buffers()
    width = np.int64 if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) else np.int32
    offsets = np.frombuffer(offsets_buf, width)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    partition_bytes(offsets, data, n_partitions, out)
    return out
