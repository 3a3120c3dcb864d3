"""kernels/repeat.py: the repeat-purchase kernel against the pandas reference and the published
CDNOW calibration summary (Fader, Hardie & Lee 2005), its validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scorecast.kernels import FeatureFrame, InputError, RepeatSummary, repeat_summary
from scorecast.kernels.time_units import US_PER_DAY

from . import reference

T0 = 1_700_006_400_000_000  # 2023-11-15T00:00Z, a UTC midnight, µs since the epoch
NAN = float("nan")
DATASETS = Path(__file__).resolve().parents[2] / "training" / "datasets"


def _case(
    codes: list[int],
    n_contacts: int,
    ts_days: list[float],
    amount: list[float] | None,
    as_of_days: float,
) -> dict[str, Any]:
    """repeat_summary keyword arguments, with times given in days after T0 (a UTC midnight)."""
    return dict(
        codes=np.array(codes, np.int64),
        n_contacts=n_contacts,
        ts_us=np.array([T0 + round(d * US_PER_DAY) for d in ts_days], np.int64),
        amount=None if amount is None else np.array(amount, np.float64),
        as_of_us=T0 + round(as_of_days * US_PER_DAY),
    )


CASES = {
    "no-orders": _case([], 3, [], [], 10),
    "no-contacts": _case([], 0, [], [], 10),
    "one-order": _case([0], 1, [2.5], [10.0], 10),
    "several-orders-one-day": _case([0, 0, 0], 1, [2.1, 2.9, 2.5], [1, 2, 3], 10),
    "same-day-then-repeat": _case([0, 0, 0, 0], 1, [2.1, 2.9, 5.0, 5.99], [1, 2, 3, 4], 10),
    "contact-without-orders-in-the-middle": _case([0, 2, 2], 3, [1, 2, 3], [1, 2, 3], 10),
    "orders-after-as-of": _case([0, 0, 0, 1], 2, [1, 4, 10.5, 10.25], [5, 7, 9, 1], 10),
    "order-exactly-at-as-of": _case([0, 0], 1, [10, 3], [1, 2], 10),
    "as-of-mid-day": _case([0, 0, 0], 1, [3, 10.25, 10.75], [1, 2, 4], 10.5),
    "nan-amounts": _case([0, 0, 0, 0, 1, 1], 2, [1, 2, 2, 3, 1, 2], [9, NAN, 4, NAN, 1, NAN], 10),
    "nan-first-day-amount": _case([0, 0], 1, [1, 2], [NAN, 5.0], 10),
    "no-amount-column": _case([0, 0, 1], 2, [1, 2, 3], None, 10),
    "unsorted": _case([1, 0, 1, 0, 1, 0], 2, [9, 4, 1, 2, 5, 4.5], [1, 2, 3, 4, 5, 6], 10),
    "before-1970": _case([0, 0], 1, [-20_000.5, -19_000.25], [1, 2], 0),
    "long-run-merge-sorted": _case(
        [0] * 100, 1, [float(d) for d in np.random.default_rng(1).permutation(100) % 37], None, 99
    ),
}


@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_matches_reference_on_edge_cases(kwargs: dict[str, Any]) -> None:
    """Every field equals the pandas reference, NaN where it has NaN."""
    got = repeat_summary(**kwargs)
    expected = reference.repeat_summary(**kwargs)
    for field in reference.REPEAT_FIELDS:
        assert_allclose(getattr(got, field), expected[field], rtol=1e-12, err_msg=field)


def test_values_of_a_small_case() -> None:
    """Hand-checked: days 2 (twice), 5 (twice, one NaN), 9; day 12 after as_of 10."""
    got = repeat_summary(
        **_case([0, 0, 0, 0, 0, 0], 1, [2.2, 2.7, 5.1, 5.5, 9, 12], [1, 2, 3, NAN, 8, 50], 10.5)
    )
    assert got.repeat_frequency.tolist() == [2.0]
    assert got.repeat_recency_days.tolist() == [7.0]
    assert got.age_days.tolist() == [8.0]  # as_of day 10 - first day 2
    assert got.repeat_monetary.tolist() == [5.5]  # (3 + 8) / 2: per day, first day left out


def test_conventions_without_orders_and_one_day_buyers() -> None:
    """No orders: 0, 0, NaN, NaN. One day: 0, 0, age, NaN. All-NaN repeat amounts: NaN."""
    got = repeat_summary(**_case([1, 1, 2, 2], 3, [1, 1.5, 1, 2], [4, 5, NAN, NAN], 10))
    assert_array_equal(got.repeat_frequency, [0, 0, 1])
    assert_array_equal(got.repeat_recency_days, [0, 0, 1])
    assert_array_equal(got.age_days, [NAN, 9, 9])
    assert_array_equal(got.repeat_monetary, [NAN, NAN, NAN])


def test_output_shapes_and_dtypes() -> None:
    got = repeat_summary(**CASES["unsorted"])
    assert isinstance(got, RepeatSummary)
    for field in reference.REPEAT_FIELDS:
        arr = getattr(got, field)
        assert arr.dtype == np.float64 and arr.shape == (2,) and arr.flags.c_contiguous


def _random_case(rng: np.random.Generator) -> dict[str, Any]:
    n_contacts = int(rng.integers(0, 300))
    n = int(rng.integers(0, 3_000)) if n_contacts else 0
    amount = rng.gamma(2.0, 20.0, n)
    amount[rng.random(n) < 0.1] = np.nan
    # Few distinct days and sub-day times: many same-day orders, some runs past 32 (merge).
    ts = T0 + rng.integers(-5, 60, n) * US_PER_DAY + rng.integers(0, US_PER_DAY, n)
    return dict(
        codes=rng.integers(0, max(n_contacts // int(rng.integers(1, 50)), 1), n),
        n_contacts=n_contacts,
        ts_us=ts,
        amount=None if rng.random() < 0.2 else amount,
        as_of_us=int(T0 + rng.integers(0, 60) * US_PER_DAY + rng.integers(0, US_PER_DAY)),
    )


def test_random_cases_match_reference(rng: np.random.Generator) -> None:
    kwargs = _random_case(rng)
    got = repeat_summary(**kwargs)
    expected = reference.repeat_summary(**kwargs)
    for field in reference.REPEAT_FIELDS:
        assert_allclose(getattr(got, field), expected[field], rtol=1e-12, err_msg=field)


def test_random_cases_hold_invariants(rng: np.random.Generator) -> None:
    """0 <= t_x <= T, x <= t_x, and x = 0 exactly where t_x = 0."""
    got = repeat_summary(**_random_case(rng))
    buyers = ~np.isnan(got.age_days)
    x, t_x, age = got.repeat_frequency, got.repeat_recency_days, got.age_days
    assert np.all((t_x[buyers] >= 0) & (t_x[buyers] <= age[buyers]) & (x[buyers] <= t_x[buyers]))
    assert_array_equal(x == 0, t_x == 0)
    assert np.all(np.isnan(got.repeat_monetary[x == 0]))


BAD = {
    "code-out-of-range": (dict(codes=[0, 3]), "codes", "value 3 at row 1"),
    "negative-code": (dict(codes=[-1, 0]), "codes", "value -1 at row 0"),
    "ts-length": (dict(ts_us=[1]), "ts_us", "one per order row"),
    "float-ts": (dict(ts_us=[1.0, 2.0]), "ts_us", "expected int64"),
    "amount-length": (dict(amount=[1.0]), "amount", "one per order row"),
    "negative-contacts": (dict(n_contacts=-1), "n_contacts", "non-negative"),
    "float-as-of": (dict(as_of_us=1.5), "as_of_us", "1.5"),
}


@pytest.mark.parametrize(("override", "field", "detail"), BAD.values(), ids=BAD.keys())
def test_bad_arguments_raise_input_error(override: dict[str, Any], field: str, detail: str) -> None:
    kwargs = dict(codes=[0, 1], n_contacts=3, ts_us=[1, 2], amount=[1.0, 2.0], as_of_us=5)
    kwargs |= {k: np.asarray(v) if isinstance(v, list) else v for k, v in override.items()}
    with pytest.raises(InputError, match=rf"^{field}: .*{detail}") as info:
        repeat_summary(**kwargs)
    assert info.value.field == field


# --- the published CDNOW calibration summary -----------------------------------------------

CDNOW_AS_OF = 875_577_600_000_000  # 1997-09-30T00:00Z: end of the 39-week calibration period


def _cdnow_orders() -> pa.Table:
    """CDNOW_sample.txt (master id, sample id, YYYYMMDD, CDs, dollars) as an orders table."""
    raw = np.loadtxt(
        DATASETS / "CDNOW_sample.txt",
        dtype=[("m", "i8"), ("id", "i8"), ("d", "U8"), ("n", "i8"), ("amount", "f8")],
    )
    dates = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in raw["d"]], "datetime64[D]").astype(
        "datetime64[us]"
    )
    return pa.table(
        {
            "contact_id": pa.array(raw["id"]),
            "ts": pa.array(dates).cast(pa.timestamp("us", "UTC")),
            "amount": pa.array(raw["amount"]),
        }
    )


def _published(name: str) -> dict[str, np.ndarray]:
    table = pacsv.read_csv(DATASETS / name)
    return {c: table.column(c).to_numpy() for c in table.column_names}


def test_cdnow_calibration_summary_matches_the_published_one() -> None:
    """(x, t_x / 7, T / 7) of all 2357 CDNOW customers as of 1997-09-30 equal the published
    cdnow_customers_summary.csv (weeks, 2 decimals); zbar equals the published Gamma-Gamma
    input, which is per purchase day (112 days hold several orders; per order it differs by
    up to $180 for 51 customers)."""
    published = _published("cdnow_customers_summary.csv")
    ids = pa.array(published["ID"])
    frame = FeatureFrame({"orders": _cdnow_orders()}, CDNOW_AS_OF, ids)
    got = frame.matrix(
        ["repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary"]
    ).astype(np.float64)
    assert len(frame) == 2357
    assert_array_equal(got[:, 0], published["frequency"])
    assert_allclose(np.round(got[:, 1] / 7, 2), published["recency"], atol=1e-9)
    assert_allclose(np.round(got[:, 2] / 7, 2), published["T"], atol=1e-9)
    assert got[0, 2] == 272  # customer 1: first purchase 1997-01-01

    zbar = _published("cdnow_customers_summary_with_transactions.csv")
    assert_array_equal(zbar["ID"], published["ID"])
    assert_array_equal(zbar["x"], published["frequency"])
    repeaters = published["frequency"] > 0
    assert repeaters.sum() == 946
    # float32 matrix: allow its rounding on top of the published 2-decimal rounding.
    assert_allclose(got[repeaters, 3], zbar["zbar"][repeaters], rtol=0, atol=0.005 + 1e-4)
    assert np.all(np.isnan(got[~repeaters, 3]))  # published as 0.00: we say NaN (no repeat)
