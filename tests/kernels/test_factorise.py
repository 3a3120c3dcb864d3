"""kernels/factorise.py: the int64 factoriser (hash table, or lookup array for keys in a
narrow range) gives exactly Arrow's dictionary_encode."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from numpy.testing import assert_array_equal

from scorecast.kernels.factorise import _SMALL_KEYS, _factorise, _factorise_range, _factorise_small, factorise_int64

INT64 = np.iinfo(np.int64)

KEYS = {
    "empty": np.array([], np.int64),
    "one": np.array([42]),
    "repeats": np.array([5, 5, 5, 1, 5]),
    "extremes": np.array([INT64.max, INT64.min, 0, -1, INT64.max, INT64.min]),
    # Enough distinct keys to grow the table several times (spread out: the hash table).
    "sequential-grows": np.arange(200_000)[::-1] * 3,
    "strided": np.arange(50_000, dtype=np.int64) << 32,
    # Spans of at most twice the keys' count: the lookup array.
    "range-sequential": np.arange(200_000)[::-1],
    "range-negative": np.tile(np.arange(-700, 300), 3)[::-2],
    "range-campaigns": np.random.default_rng(3).integers(1, 236, 100_000),
    "range-just-wide-enough": np.array([7, 10, 7, 8]),  # span 4 < 2 * 4
    "range-just-too-wide": np.array([7, 15, 7, 8]),  # span 9: hash table
    # Up to _SMALL_KEYS keys: the linear search, and one key more: the hash table.
    "small-most": np.array([INT64.max, 3, INT64.min, 3, -8] * 6 + [9, INT64.max]),
    "small-one-over": np.array([INT64.max, 3, INT64.min, 3, -8] * 6 + [9, INT64.max, 9]),
}


def _assert_like_arrow(keys: np.ndarray) -> None:
    codes, uniques = factorise_int64(keys)
    expected = pc.dictionary_encode(pa.array(keys, pa.int64()))
    assert codes.dtype == np.int32 and uniques.dtype == np.int64
    assert_array_equal(codes, expected.indices.to_numpy())
    assert_array_equal(uniques, expected.dictionary.to_numpy())


@pytest.mark.parametrize("keys", KEYS.values(), ids=KEYS.keys())
def test_matches_dictionary_encode(keys: np.ndarray) -> None:
    """Codes and uniques equal pc.dictionary_encode's indices and dictionary."""
    _assert_like_arrow(keys)


def test_random_keys_match_dictionary_encode(rng: np.random.Generator) -> None:
    """Random keys, from few distinct values to nearly all distinct, match Arrow."""
    n = int(rng.integers(0, 100_000))
    pool = rng.integers(INT64.min, INT64.max, int(rng.integers(1, 50_000)), endpoint=True)
    _assert_like_arrow(pool[rng.integers(0, len(pool), n)])


def test_random_small_key_sets_match_dictionary_encode(rng: np.random.Generator) -> None:
    """Every size up to just past the linear search's, few or all keys distinct, matches Arrow."""
    for n in range(_SMALL_KEYS + 2):
        pool = rng.integers(INT64.min, INT64.max, int(rng.integers(1, n + 2)), endpoint=True)
        _assert_like_arrow(pool[rng.integers(0, len(pool), n)])


def test_random_keys_in_a_narrow_range_match_dictionary_encode(rng: np.random.Generator) -> None:
    """Random keys in a range of up to twice their count (the lookup array) match Arrow."""
    n = int(rng.integers(1, 100_000))
    low = int(rng.integers(INT64.min, INT64.max - 2 * n))
    _assert_like_arrow(rng.integers(low, low + int(rng.integers(1, 2 * n + 1)), n))


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no signatures without the JIT")
def test_read_only_and_writable_inputs_share_one_signature() -> None:
    """Arrow's read-only buffers and writable arrays share one compiled signature, per kernel."""
    big = list(range(_SMALL_KEYS + 1))
    for keys in ([1, 2], big, [*big, 1 << 40]):  # the linear search, the lookup array, the hash table
        factorise_int64(np.array(keys))
        factorise_int64(pa.array(keys).to_numpy())
    assert all(len(kernel.signatures) == 1 for kernel in (_factorise_small, _factorise, _factorise_range))
