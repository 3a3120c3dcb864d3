"""kernels/grouping.py: the counting-sort offsets against a NumPy reference."""

import numpy as np
import pytest

from scorecast.kernels.grouping import contact_offsets, group_rows


@pytest.mark.parametrize("lo, hi", [(-(2**63), 2**63 - 1), (10, 50), (51, 50)])
def test_offsets_and_cursor_match_bincount(lo: int, hi: int) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 7, 200).astype(np.int32)
    ts = rng.integers(0, 100, 200).astype(np.int64)
    offsets = np.zeros(8, np.int64)
    cursor = contact_offsets(codes, ts, lo, hi, offsets)
    kept = (ts >= lo) & (ts <= hi)
    expected = np.concatenate([[0], np.cumsum(np.bincount(codes[kept], minlength=7))])
    np.testing.assert_array_equal(offsets, expected)
    np.testing.assert_array_equal(cursor, expected[:-1])


def test_a_contact_without_rows_owns_an_empty_run() -> None:
    offsets = np.zeros(4, np.int64)
    contact_offsets(np.array([0, 2, 2], np.int32), np.zeros(3, np.int64), 0, 0, offsets)
    assert offsets.tolist() == [0, 1, 1, 3]


def test_group_rows_is_a_stable_sort_by_key() -> None:
    """``group_rows`` gives what a stable argsort by key and a bincount give."""
    keys = np.random.default_rng(3).integers(0, 7, 5_000)
    order, bounds = group_rows(keys, 9)  # keys 7 and 8 own empty runs
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(bounds, np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=9))]))
