"""kernels/rfm.py: the RFM kernel against the pandas reference, its validation, its disk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scorecast.kernels import InputError, RfmSummary, rfm_summary
from scorecast.kernels.time_units import US_PER_DAY

from . import reference

T0 = 1_700_000_000_000_000  # 2023-11-14, µs since the epoch


def _case(
    codes: list[int],
    n_contacts: int,
    ts_days: list[float],
    amount: list[float] | None,
    groups: list[int] | None,
    n_groups: int,
    as_of_days: float,
) -> dict[str, Any]:
    """rfm_summary keyword arguments, with times given in days after T0."""
    return dict(
        codes=np.array(codes, np.int64),
        n_contacts=n_contacts,
        ts_us=np.array([T0 + round(d * US_PER_DAY) for d in ts_days], np.int64),
        amount=None if amount is None else np.array(amount, np.float64),
        group_codes=None if groups is None else np.array(groups, np.int32),
        n_groups=n_groups,
        as_of_us=T0 + round(as_of_days * US_PER_DAY),
    )


NAN = float("nan")

CASES = {
    "no-orders": _case([], 3, [], [], [], 2, 10),
    "no-contacts": _case([], 0, [], [], [], 2, 10),
    "one-order": _case([0], 1, [2.5], [10.0], [1], 2, 10),
    "contact-without-orders-in-the-middle": _case(
        [0, 2, 2], 3, [1, 2, 3], [1, 2, 3], [0, 0, 1], 2, 10
    ),
    "orders-after-as-of": _case([0, 0, 1, 1], 2, [1, 20, 2, 3], [5, 7, 1, 1], [0, 1, 1, 1], 2, 10),
    "all-orders-after-as-of": _case([0, 1], 2, [11, 12], [5, 6], [0, 1], 2, 10),
    "order-exactly-at-as-of": _case([0, 0], 1, [10, 3], [1, 2], [0, 0], 1, 10),
    "nan-amounts": _case([0, 0, 1], 2, [1, 2, 3], [NAN, 4.0, NAN], [0, 0, 0], 1, 10),
    "no-amount-column": _case([0, 0, 1], 2, [1, 2, 3], None, [0, 1, 0], 2, 10),
    "no-group-column": _case([0, 0, 1], 2, [1, 2, 3], [1, 2, 3], None, 0, 10),
    "no-groups-requested": _case([0, 0, 1], 2, [1, 2, 3], [1, 2, 3], [-1, -1, -1], 0, 10),
    "unknown-groups": _case([0, 0, 0], 1, [1, 2, 3], [1, 2, 3], [-1, 0, -1], 2, 10),
    "unsorted-rows": _case(
        [1, 0, 1, 0, 1], 2, [9, 1, 2, 8, 5], [1, 2, 3, 4, 5], [1, 0, 1, 1, 0], 2, 10
    ),
    "duplicate-timestamps": _case([0, 0, 0, 1], 2, [5, 5, 5, 5], [1, 1, 2, 3], [0, 0, 1, 0], 2, 10),
    "fractional-days": _case([0, 0], 1, [0.3, 1e-6], [1, 1], [0, 0], 1, 0.5),
    "before-1970": _case([0, 0], 1, [-20_000, -19_000], [1, 1], [0, 0], 1, -18_000),
}


def _assert_matches_reference(result: RfmSummary, expected: dict[str, np.ndarray]) -> None:
    for name, values in expected.items():
        assert_allclose(getattr(result, name), values, rtol=1e-12, atol=0, err_msg=name)


@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_matches_reference_on_edge_cases(kwargs: dict[str, Any]) -> None:
    """Every summary field equals the pandas reference, NaN where it has NaN."""
    _assert_matches_reference(rfm_summary(**kwargs), reference.rfm_summary(**kwargs))


def test_values_of_a_small_case() -> None:
    """Hand-computed values: recency/tenure in days, NaN amounts skipped, late orders ignored."""
    kwargs = CASES["orders-after-as-of"]
    result = rfm_summary(**kwargs)
    assert_array_equal(result.recency_days, [9.0, 7.0])
    assert_array_equal(result.tenure_days, [9.0, 8.0])
    assert_array_equal(result.frequency, [1.0, 2.0])
    assert_array_equal(result.repeat_count, [0.0, 1.0])
    assert_array_equal(result.total_amount, [5.0, 2.0])
    assert_array_equal(result.monetary, [5.0, 1.0])
    assert_array_equal(result.group_count, [[1.0, 0.0], [0.0, 2.0]])
    assert_array_equal(result.group_recency_days, [[9.0, NAN], [NAN, 7.0]])


def test_output_shapes_and_dtypes() -> None:
    """Every field is float64, one row per contact; group fields have one column per group."""
    result = rfm_summary(**CASES["unsorted-rows"])
    for name in reference.RFM_FIELDS:
        assert getattr(result, name).dtype == np.float64
        assert getattr(result, name).shape == (2,)
    assert result.group_count.shape == result.group_recency_days.shape == (2, 2)


def _random_case(rng: np.random.Generator) -> dict[str, Any]:
    n_contacts = int(rng.integers(1, 300))
    n = int(rng.integers(0, 2_000))
    n_groups = int(rng.integers(0, 6))
    amount = rng.gamma(2.0, 20.0, n)
    amount[rng.random(n) < 0.1] = np.nan
    return dict(
        codes=rng.integers(0, n_contacts, n),
        n_contacts=n_contacts,
        # whole days, so duplicate timestamps are common
        ts_us=T0 + rng.integers(0, 400, n) * US_PER_DAY + rng.integers(0, 2, n) * 1_000,
        amount=amount,
        group_codes=rng.integers(-1, n_groups, n).astype(np.int32),
        n_groups=n_groups,
        as_of_us=T0 + int(rng.integers(0, 450)) * US_PER_DAY,
    )


def test_random_cases_match_reference(rng: np.random.Generator) -> None:
    """Random orders (unsorted, NaN amounts, unknown groups, late orders) match the reference."""
    kwargs = _random_case(rng)
    _assert_matches_reference(rfm_summary(**kwargs), reference.rfm_summary(**kwargs))


def test_random_cases_hold_invariants(rng: np.random.Generator) -> None:
    """Group counts never exceed the total, recency never exceeds tenure or a group's recency."""
    result = rfm_summary(**_random_case(rng))
    has_orders = result.frequency > 0
    assert (result.group_count.sum(axis=1) <= result.frequency).all()
    assert (result.recency_days[has_orders] <= result.tenure_days[has_orders]).all()
    assert np.isnan(result.recency_days[~has_orders]).all()
    with np.errstate(invalid="ignore"):
        assert not (result.group_recency_days < result.recency_days[:, None]).any()


def test_int32_and_int64_codes_agree() -> None:
    """The code dtype does not change the result."""
    kwargs = CASES["unsorted-rows"]
    as_int32 = rfm_summary(**{**kwargs, "codes": kwargs["codes"].astype(np.int32)})
    _assert_matches_reference(as_int32, reference.rfm_summary(**kwargs))


def _with(**changes: Any) -> dict[str, Any]:
    return {**CASES["unsorted-rows"], **changes}


ERRORS = {
    "code-too-large": (_with(codes=np.array([1, 0, 1, 0, 2])), "codes", "value 2 at row 4"),
    "code-negative": (_with(codes=np.array([1, 0, -1, 0, 1])), "codes", "value -1 at row 2"),
    # would wrap to 0 if cast to int32 before the range check
    "code-beyond-int32": (_with(codes=np.array([1, 0, 1, 0, 2**32])), "codes", str(2**32)),
    "float-codes": (_with(codes=np.zeros(5)), "codes", "float64"),
    "codes-2d": (_with(codes=np.zeros((5, 1), np.int64)), "codes", r"shape \(5, 1\)"),
    "negative-n-contacts": (_with(n_contacts=-1), "n_contacts", "-1"),
    "ts-too-short": (_with(ts_us=np.zeros(4, np.int64)), "ts_us", "5 values"),
    "float-ts": (_with(ts_us=np.zeros(5)), "ts_us", "float64"),
    "amount-too-long": (_with(amount=np.zeros(6)), "amount", r"shape \(6,\)"),
    "group-too-large": (_with(group_codes=np.array([0, 0, 2, 0, 0])), "group_codes", "value 2"),
    "group-below-minus-one": (
        _with(group_codes=np.array([0, -2, 0, 0, 0])),
        "group_codes",
        "value -2",
    ),
    "groups-too-short": (_with(group_codes=np.zeros(3, np.int32)), "group_codes", "5 values"),
    "float-as-of": (_with(as_of_us=1.5), "as_of_us", "1.5"),
}


@pytest.mark.parametrize(("kwargs", "field", "detail"), ERRORS.values(), ids=ERRORS.keys())
def test_bad_arguments_raise_input_error(kwargs: dict[str, Any], field: str, detail: str) -> None:
    """Each bad argument raises InputError naming the argument and the offending value."""
    with pytest.raises(InputError, match=rf"^{field}: .*{detail}") as info:
        rfm_summary(**kwargs)
    assert info.value.field == field


_CACHE_SCRIPT = textwrap.dedent(
    """
    import json
    import pyarrow as pa
    from scorecast.kernels import FeatureFrame, factorise, rfm

    orders = pa.table({"contact_id": [5, 3, 5], "ts": pa.array([5, 6, 7], pa.timestamp("us"))})
    frequency = FeatureFrame({"orders": orders}, 7).matrix(["frequency"])[:, 0]  # a few contacts: one kernel
    many = pa.table({"contact_id": list(range(rfm.FEW_CONTACTS + 1)), "ts": pa.array([5] * (rfm.FEW_CONTACTS + 1), pa.timestamp("us"))})
    FeatureFrame({"orders": many}, 7).matrix(["frequency"])  # more: the general path
    many = list(range(factorise._SMALL_KEYS + 1))  # past the linear search's few keys
    factorise.factorise_int64(pa.array(many).to_numpy())  # a narrow range: the lookup array
    factorise.factorise_int64(pa.array([*many, 1 << 40]).to_numpy())  # spread out: the hash table
    kernels = (factorise._factorise_small, factorise._factorise, factorise._factorise_range, rfm._sort_by_contact, rfm._summarise, rfm._few_contacts)
    stats = {k.__name__: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())] for k in kernels}
    print(json.dumps({"stats": stats, "frequency": frequency.tolist()}))
    """
)


def test_disk_cache_is_written_then_loaded_by_a_fresh_process(tmp_path: Any) -> None:
    """A first process compiles every kernel and writes numba's cache; a second loads them all
    and gets the same result (cache=True breaks silently, e.g. on get_num_threads in a kernel)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _CACHE_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,  # a first compile on a loaded 2-core machine has taken > 120 s
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert all(misses > 0 and hits == 0 for hits, misses in first["stats"].values()), first
    assert all(hits > 0 and misses == 0 for hits, misses in second["stats"].values()), second
    assert first["frequency"] == second["frequency"] == [2.0, 1.0]
    assert list(tmp_path.rglob("*.nbi"))
