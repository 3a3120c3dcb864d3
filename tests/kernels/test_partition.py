"""kernels/partition.py against the plain-Python reference: every id type and layout, an even
spread, ids spread over the kernels' hash slots, bad ids refused naming the field."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_array_equal

from scorecast.kernels.errors import InputError
from scorecast.kernels.partition import partition_of

from .reference import contact_partition


@pytest.mark.parametrize("n", [1, 2, 23, 256, 70_000])
def test_integer_ids_equal_the_reference(rng: np.random.Generator, n: int) -> None:
    ids = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 2_000, dtype=np.int64), [0, -1, 2**63 - 1, -(2**63)]])
    expected = contact_partition(ids.tolist(), n)
    assert_array_equal(partition_of(pa.array(ids), n), expected)
    assert_array_equal(
        partition_of(pa.array(ids.astype(np.int32), pa.int32()), n), contact_partition(ids.astype(np.int32).tolist(), n)
    )
    assert ((expected >= 0) & (expected < n)).all()


@pytest.mark.parametrize("n", [1, 7, 200])
def test_string_and_binary_ids_equal_the_reference(rng: np.random.Generator, n: int) -> None:
    ids = [f"c-{i}" for i in rng.integers(0, 10**9, 1_000)] + ["", "é", "名前", "a" * 300]
    expected = contact_partition(ids, n)
    for kind in (pa.string(), pa.large_string()):
        assert_array_equal(partition_of(pa.array(ids, kind), n), expected)
    raw = [s.encode() for s in ids]
    for kind in (pa.binary(), pa.large_binary()):
        assert_array_equal(partition_of(pa.array(raw, kind), n), expected)


def test_the_same_id_lands_in_the_same_partition_whatever_the_array() -> None:
    """Slices and chunked arrays (Arrow offsets into shared buffers) give the ids' own partitions."""
    ids = np.arange(100_000, dtype=np.int64)
    parts = partition_of(pa.array(ids), 10)
    assert_array_equal(partition_of(pa.array(ids).slice(5_000, 1_000), 10), parts[5_000:6_000])
    names = pa.array([f"c-{i}" for i in range(20_000)])
    by_name = partition_of(names, 7)
    assert_array_equal(partition_of(names.slice(100, 50), 7), by_name[100:150])
    assert_array_equal(partition_of(pa.chunked_array([names.slice(0, 10), names.slice(10, 5)]), 7), by_name[:15])


def test_partitions_are_even() -> None:
    assert np.bincount(partition_of(pa.array(np.arange(100_000, dtype=np.int64)), 10), minlength=10).min() > 9_000
    assert np.bincount(partition_of(pa.array([f"c-{i}" for i in range(20_000)]), 7), minlength=7).min() > 2_500


def test_partitions_do_not_share_hash_slots() -> None:
    """A partition's ids spread over the slots of the kernels' hash table (``factorise``): a
    partition hash on the same bits put every id of a chunk in a few slots (100x slower)."""
    from scorecast.kernels.factorise import _slot

    ids = np.arange(1_000_000, dtype=np.int64)
    mine = ids[partition_of(pa.array(ids), 23) == 0]
    assert 0.9 < len(mine) * 23 / len(ids) < 1.1  # an even split
    bits = 17
    slots = {int(_slot(k, np.uint64(64 - bits))) for k in mine[:40_000]}
    assert len(slots) > 0.5 * min(len(mine), 40_000)  # random: ~26k of 40k distinct in 131k slots


def test_bad_ids_are_refused_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"orders.contact_id: contact ids must be integers or strings, got double"):
        partition_of(pa.array([1.5]), 3, field="orders.contact_id")
    with pytest.raises(InputError, match=r"contact_id: 1 null ids"):
        partition_of(pa.array(["a", None]), 3)
    with pytest.raises(InputError, match=r"contact_id: 1 null ids"):
        partition_of(pa.array([1, None]), 3)
    with pytest.raises(ValueError, match="n_partitions"):
        partition_of(pa.array([1]), 0)
