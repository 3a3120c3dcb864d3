"""Dense codes for int64 keys in order of first appearance (what ``pc.dictionary_encode`` gives).

An open-addressing hash table in one serial pass. Measured against pyarrow 26's
``dictionary_encode`` on 4M shuffled int64 contact ids (1M distinct, 2-core machine): about
0.12 s against 0.25 s, the largest single step of the feature pipeline. Keys spanning a range
at most twice their count (campaign ids, a chunk's contact ids in a base of sequential ids)
index a lookup array instead: one read per key, no hashing or probing (1M keys: 1.0 against
5.4 ms). String ids stay on Arrow's hashing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["factorise_int64"]

# Fibonacci hashing: multiply by 2**64 / golden ratio and keep the top bits. Spreads
# sequential and strided ids (the usual contact ids) evenly at the cost of one multiply.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAX_FIRST_BITS = 16
_INT32_MAX = int(np.iinfo(np.int32).max)


@njit(cache=True, nogil=True)
def _slot(key: np.int64, shift: np.uint64) -> np.int64:
    return np.int64((np.uint64(key) * _GOLDEN) >> shift)


@njit(cache=True, nogil=True)
def _factorise(keys: np.ndarray, codes: np.ndarray, uniques: np.ndarray, bits: int) -> int:
    """Write each key's code into ``codes`` and each new key into ``uniques``; return the
    number of distinct keys. ``uniques`` has room for ``len(keys)``; the table starts with
    ``2**bits`` slots and doubles as it fills."""
    table = np.full(1 << bits, -1, np.int32)  # slot -> code, -1 = empty
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    n_unique = 0
    for i in range(keys.shape[0]):
        key = keys[i]
        s = _slot(key, shift)
        while True:
            code = table[s]
            if code < 0:
                table[s] = n_unique
                uniques[n_unique] = key
                codes[i] = n_unique
                n_unique += 1
                break
            if uniques[code] == key:
                codes[i] = code
                break
            s = (s + 1) & mask
        # Keep the load under 1/2 so probe runs stay short; rehash from uniques.
        if 2 * n_unique > mask:
            bits += 1
            table = np.full(1 << bits, -1, np.int32)
            mask = (1 << bits) - 1
            shift = np.uint64(64 - bits)
            for c in range(n_unique):
                s = _slot(uniques[c], shift)
                while table[s] >= 0:
                    s = (s + 1) & mask
                table[s] = c
    return n_unique


_SMALL_KEYS = 32
"""Up to this many keys are compared with each distinct key found so far: no table to fill,
no min/max pass (a real-time request is one contact and a handful of its events)."""


@njit(cache=True, nogil=True)
def _factorise_small(keys: np.ndarray, codes: np.ndarray, uniques: np.ndarray) -> int:
    """``_factorise`` by linear search among the distinct keys so far (for a few keys)."""
    n_unique = 0
    for i in range(keys.shape[0]):
        key = keys[i]
        code = -1
        for c in range(n_unique):
            if uniques[c] == key:
                code = c
                break
        if code < 0:
            code = n_unique
            uniques[code] = key
            n_unique += 1
        codes[i] = code
    return n_unique


@njit(cache=True, nogil=True)
def _factorise_range(keys: np.ndarray, low: np.int64, codes: np.ndarray, uniques: np.ndarray, lookup: np.ndarray) -> int:
    """``_factorise`` for keys in ``low .. low + len(lookup) - 1``: ``lookup`` (all -1) maps
    key - low to its code."""
    n_unique = 0
    for i in range(keys.shape[0]):
        slot = keys[i] - low
        code = lookup[slot]
        if code < 0:
            code = n_unique
            lookup[slot] = code
            uniques[code] = keys[i]
            n_unique += 1
        codes[i] = code
    return n_unique


def factorise_int64(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques): int32 code of each key, numbering distinct keys in order of first
    appearance, and the distinct int64 keys in that order."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.shape[0] > _INT32_MAX:
        raise ValueError(f"{keys.shape[0]} keys exceed the int32 code range")
    view = keys.view()
    view.flags.writeable = False  # one compiled signature for Arrow's read-only buffers too
    codes = np.empty(keys.shape[0], np.int32)
    uniques = np.empty(keys.shape[0], np.int64)
    if keys.shape[0] <= _SMALL_KEYS:
        return codes, uniques[: _factorise_small(view, codes, uniques)]
    low, high = (int(keys.min()), int(keys.max())) if keys.shape[0] else (0, -1)
    if high - low < 2 * keys.shape[0]:  # the lookup array is at most as large as codes + uniques
        n_unique = _factorise_range(view, np.int64(low), codes, uniques, np.full(high - low + 1, -1, np.int32))
    else:
        # A table sized to the keys (at most 2**16 slots to start): filling 64k slots was most
        # of the cost of a one-contact request.
        bits = min(_MAX_FIRST_BITS, max(3, (2 * keys.shape[0]).bit_length()))
        # The hash multiply wraps by design; only NUMBA_DISABLE_JIT runs (NumPy scalars) notice.
        with np.errstate(over="ignore"):
            n_unique = _factorise(view, codes, uniques, bits)
    return codes, uniques[:n_unique].copy()
