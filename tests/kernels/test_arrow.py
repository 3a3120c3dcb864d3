"""kernels/arrow.py: Arrow columns to kernel inputs, copies avoided where promised, errors named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_array_equal

from scorecast.kernels import (
    InputError,
    category_codes,
    contact_codes,
    floats,
    timestamps_us,
    unique_contact_ids,
)
from scorecast.kernels import arrow
from scorecast.kernels.time_units import US_PER_DAY

T0 = 1_700_000_000_000_000  # µs since the epoch


def _shares_buffer(values: np.ndarray, arr: pa.Array) -> bool:
    return values.ctypes.data == arr.buffers()[1].address + arr.offset * values.itemsize


# --- contact_codes -------------------------------------------------------------------------

ID_COLUMNS = {
    "int64": pa.array([30, 10, 30, 20, 10], pa.int64()),
    "int32": pa.array([30, 10, 30, 20, 10], pa.int32()),
    "uint16": pa.array([30, 10, 30, 20, 10], pa.uint16()),
    "string": pa.array(["c", "a", "c", "b", "a"]),
    "large_string": pa.array(["c", "a", "c", "b", "a"], pa.large_string()),
    "string_view": pa.array(["c", "a", "c", "b", "a"], pa.string_view()),
    "dictionary": pa.array(["c", "a", "c", "b", "a"]).dictionary_encode(),
    "chunked": pa.chunked_array([pa.array([30, 10]), pa.array([30, 20, 10])]),
    "sliced": pa.array([99, 30, 10, 30, 20, 10]).slice(1),
}


@pytest.mark.parametrize("ids", ID_COLUMNS.values(), ids=ID_COLUMNS.keys())
def test_contact_codes_number_ids_in_first_appearance_order(ids: pa.Array) -> None:
    """Codes 0, 1, 2 go to ids in order of first appearance; the index lists them."""
    codes, index = contact_codes(ids)
    assert codes.dtype == np.int32
    assert_array_equal(codes, [0, 1, 0, 2, 1])
    expected = [30, 10, 20] if index.type == pa.int64() else ["c", "a", "b"]
    assert index.to_pylist() == expected


def test_contact_codes_widen_integer_ids_to_int64() -> None:
    """int32 ids come back with an int64 index, so ids from any table compare equal."""
    _, index = contact_codes(ID_COLUMNS["int32"])
    assert index.type == pa.int64()


@pytest.mark.parametrize(
    ("ids", "index"),
    [
        (pa.array([20, 99, 10, 20]), pa.array([10, 20, 30])),
        (pa.array([20, 99, 10, 20], pa.int32()), pa.array([10, 20, 30])),
        (pa.array(["b", "z", "a", "b"]), pa.array(["a", "b", "c"], pa.large_string())),
        (pa.chunked_array([pa.array(["b", "z"]), pa.array(["a", "b"])]), pa.array(["a", "b", "c"])),
    ],
    ids=["int64", "int32-ids", "string-vs-large-string", "chunked"],
)
def test_contact_codes_against_an_index_give_positions_and_minus_one(
    ids: pa.Array, index: pa.Array
) -> None:
    """With an index, each id's code is its position there; ids not in it get -1."""
    codes, returned = contact_codes(ids, index)
    assert_array_equal(codes, [1, -1, 0, 1])
    assert returned.to_pylist() == index.to_pylist()


def test_contact_codes_against_an_empty_index_are_all_minus_one() -> None:
    """Nothing matches an empty index."""
    codes, _ = contact_codes(pa.array([1, 2]), pa.array([], pa.int64()))
    assert_array_equal(codes, [-1, -1])


def test_contact_codes_of_no_ids() -> None:
    """Empty ids give empty codes and an empty index."""
    codes, index = contact_codes(pa.array([], pa.int64()))
    assert codes.shape == (0,) and len(index) == 0


CODE_ERRORS = {
    "null-id": (dict(ids=pa.array([1, None, None])), "orders.contact_id", "2 null contact ids"),
    "float-ids": (dict(ids=pa.array([1.5])), "orders.contact_id", "got type double"),
    "null-in-index": (
        dict(ids=pa.array([1]), index=pa.array([1, None])),
        "contacts.contact_id",
        "1 null contact ids",
    ),
    "duplicate-in-index": (
        dict(ids=pa.array([1]), index=pa.array([1, 2, 1])),
        "contacts.contact_id",
        "1 contact ids appear more than once, e.g. 1",
    ),
    "string-ids-int-index": (
        dict(ids=pa.array(["1"]), index=pa.array([1])),
        "orders.contact_id",
        "type string cannot match contacts.contact_id of type int64",
    ),
    "uint64-overflow": (
        dict(ids=pa.array([2**63], pa.uint64())),
        "orders.contact_id",
        "do not fit int64",
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "field", "detail"), CODE_ERRORS.values(), ids=CODE_ERRORS.keys()
)
def test_contact_codes_errors_name_the_field(kwargs: dict, field: str, detail: str) -> None:
    """Bad ids raise InputError naming the column and what was wrong with it."""
    with pytest.raises(InputError, match=rf"^{field}: .*{detail}") as info:
        contact_codes(**kwargs, field="orders.contact_id", index_field="contacts.contact_id")
    assert info.value.field == field


def test_unique_contact_ids_keep_order_and_widen_integers() -> None:
    """Distinct ids come back as one array in their order; int32 becomes int64."""
    ids = pa.chunked_array([pa.array([3, 1], pa.int32()), pa.array([2], pa.int32())])
    result = unique_contact_ids(ids, "contacts.contact_id")
    assert result.type == pa.int64() and result.to_pylist() == [3, 1, 2]


@pytest.mark.parametrize(
    ("ids", "detail"),
    [
        (pa.array(["a", "b", "a", "b", "c"]), "2 contact ids appear more than once, e.g. 'a'"),
        (pa.array([1, None]), "1 null contact ids of 2"),
        (pa.array([True]), "got type bool"),
    ],
    ids=["duplicates", "nulls", "bool"],
)
def test_unique_contact_ids_errors_name_the_field(ids: pa.Array, detail: str) -> None:
    """Duplicates, nulls and non-id types raise InputError naming the column."""
    with pytest.raises(InputError, match=rf"^contacts\.contact_id: .*{detail}"):
        unique_contact_ids(ids, "contacts.contact_id")


# --- timestamps_us -------------------------------------------------------------------------

_SECONDS = [T0 // 1_000_000, T0 // 1_000_000 + 1, 0, -86_400]

TIMESTAMPS = {
    "s": (pa.array(_SECONDS, pa.timestamp("s")), [s * 1_000_000 for s in _SECONDS]),
    "ms": (pa.array([1, -1], pa.timestamp("ms")), [1_000, -1_000]),
    "us-utc": (pa.array([T0, 5], pa.timestamp("us", "UTC")), [T0, 5]),
    "us-paris": (pa.array([T0], pa.timestamp("us", "Europe/Paris")), [T0]),
    "ns-floors": (pa.array([1_999, -1], pa.timestamp("ns", "UTC")), [1, -1]),
    "date32": (
        pa.array([dt.date(1970, 1, 2), dt.date(1969, 12, 31)], pa.date32()),
        [US_PER_DAY, -US_PER_DAY],
    ),
    "date64": (pa.array([dt.date(1970, 1, 3)], pa.date64()), [2 * US_PER_DAY]),
    "chunked": (
        pa.chunked_array([pa.array([1], pa.timestamp("us")), pa.array([2], pa.timestamp("us"))]),
        [1, 2],
    ),
    "empty": (pa.array([], pa.timestamp("us")), []),
}


@pytest.mark.parametrize(("column", "expected"), TIMESTAMPS.values(), ids=TIMESTAMPS.keys())
def test_timestamps_us_convert_every_temporal_type(column: pa.Array, expected: list[int]) -> None:
    """Any timestamp unit and zone, and dates, become int64 µs since the epoch in UTC."""
    values = timestamps_us(column, "orders.ts")
    assert values.dtype == np.int64
    assert_array_equal(values, np.array(expected, np.int64))


def test_timestamps_us_do_not_copy_microsecond_columns() -> None:
    """A null-free timestamp[us] column is read in place."""
    column = pa.array([T0, T0 + 1], pa.timestamp("us", "UTC"))
    assert _shares_buffer(timestamps_us(column, "orders.ts"), column)


TIMESTAMP_ERRORS = {
    "nulls": (pa.array([T0, None, None], pa.timestamp("us")), "2 null values of 3"),
    "int64": (pa.array([T0]), "got type int64"),
    "string": (pa.array(["2024-01-01"]), "got type string"),
    "seconds-overflow": (pa.array([2**62], pa.timestamp("s")), "out of the µs range"),
}


@pytest.mark.parametrize(
    ("column", "detail"), TIMESTAMP_ERRORS.values(), ids=TIMESTAMP_ERRORS.keys()
)
def test_timestamps_us_errors_name_the_field(column: pa.Array, detail: str) -> None:
    """Nulls and non-temporal types raise InputError naming the column."""
    with pytest.raises(InputError, match=rf"^orders\.ts: .*{detail}"):
        timestamps_us(column, "orders.ts")


# --- floats --------------------------------------------------------------------------------

FLOATS = {
    "float64": (pa.array([1.5, 2.5]), [1.5, 2.5]),
    "float64-nulls": (pa.array([1.5, None]), [1.5, np.nan]),
    "float32": (pa.array([1.5, None], pa.float32()), [1.5, np.nan]),
    "int64": (pa.array([3, None]), [3.0, np.nan]),
    "decimal": (pa.array([Decimal("1.25"), None], pa.decimal128(10, 2)), [1.25, np.nan]),
    "null-type": (pa.array([None, None], pa.null()), [np.nan, np.nan]),
    "chunked": (pa.chunked_array([pa.array([1.0]), pa.array([None], pa.float64())]), [1.0, np.nan]),
}


@pytest.mark.parametrize(("column", "expected"), FLOATS.values(), ids=FLOATS.keys())
def test_floats_convert_numeric_columns_with_nan_for_nulls(
    column: pa.Array, expected: list
) -> None:
    """Numbers of any numeric type become float64; nulls become NaN."""
    values = floats(column, "orders.amount")
    assert values.dtype == np.float64
    assert_array_equal(values, expected)


def test_floats_do_not_copy_float64_columns_without_nulls() -> None:
    """A null-free float64 column is read in place."""
    column = pa.array([1.0, 2.0, 3.0]).slice(1)
    assert _shares_buffer(floats(column, "orders.amount"), column)


@pytest.mark.parametrize(
    ("column", "detail"),
    [(pa.array(["1.5"]), "got type string"), (pa.array([True]), "got type bool")],
    ids=["string", "bool"],
)
def test_floats_errors_name_the_field(column: pa.Array, detail: str) -> None:
    """A non-numeric column raises InputError naming the column and its type."""
    with pytest.raises(InputError, match=rf"^orders\.amount: .*{detail}"):
        floats(column, "orders.amount")


# --- category_codes ------------------------------------------------------------------------

CATEGORIES = ["shoes", "bags"]
_GROUP_VALUES = ["bags", None, "toys", "shoes", "bags"]
_GROUP_CODES = [1, -1, -1, 0, 1]

GROUP_COLUMNS = {
    "string": pa.array(_GROUP_VALUES),
    "large_string": pa.array(_GROUP_VALUES, pa.large_string()),
    "string_view": pa.array(_GROUP_VALUES, pa.string_view()),
    "dictionary": pa.array(_GROUP_VALUES).dictionary_encode(),
    "dictionary-null-value": pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2, 3, 0]), pa.array(["bags", None, "toys", "shoes"])
    ),
    "chunked": pa.chunked_array([pa.array(_GROUP_VALUES[:2]), pa.array(_GROUP_VALUES[2:])]),
}


@pytest.mark.parametrize("column", GROUP_COLUMNS.values(), ids=GROUP_COLUMNS.keys())
def test_category_codes_give_positions_and_minus_one(column: pa.Array) -> None:
    """Each string's position in the categories; -1 for nulls and strings not listed."""
    codes = category_codes(column, CATEGORIES, "orders.product_group")
    assert codes.dtype == np.int32
    assert_array_equal(codes, _GROUP_CODES)


@pytest.mark.parametrize("column", GROUP_COLUMNS.values(), ids=GROUP_COLUMNS.keys())
def test_category_codes_of_long_columns(column: pa.Array) -> None:
    """Past the short columns looked up in a dict (Arrow's index_in then): the same codes."""
    long = pa.chunked_array(column.chunks * 40) if isinstance(column, pa.ChunkedArray) else pa.concat_arrays([column] * 40)
    assert len(long) > arrow._SMALL_LOOKUP
    assert_array_equal(category_codes(long, CATEGORIES, "orders.product_group"), _GROUP_CODES * 40)


def test_category_codes_of_a_long_dictionary() -> None:
    """A dictionary longer than the dict lookup's limit (many distinct strings) is looked up by Arrow."""
    names = [f"g{i}" for i in range(100)] + ["bags", "shoes"]
    column = pa.DictionaryArray.from_arrays(pa.array([100, 5, None, 101, 100]), pa.array(names))
    assert_array_equal(category_codes(column, CATEGORIES, "orders.product_group"), [1, -1, -1, 0, 1])


@pytest.mark.parametrize(
    ("column", "categories"),
    [
        (pa.array(_GROUP_VALUES), []),
        (pa.array([None, None], pa.null()), CATEGORIES),
        (pa.array([None, None]).cast(pa.dictionary(pa.int32(), pa.string())), CATEGORIES),
    ],
    ids=["no-categories", "null-type", "empty-dictionary"],
)
def test_category_codes_without_any_match(column: pa.Array, categories: list[str]) -> None:
    """No categories, or no values, give -1 everywhere."""
    codes = category_codes(column, categories, "orders.product_group")
    assert_array_equal(codes, np.full(len(column), -1))


def test_category_codes_reject_non_string_columns() -> None:
    """An integer column raises InputError naming the column and its type."""
    with pytest.raises(InputError, match=r"^orders\.product_group: .*got type int64"):
        category_codes(pa.array([1, 2]), CATEGORIES, "orders.product_group")


def test_category_codes_reject_duplicate_categories() -> None:
    """Duplicate categories are a caller bug (ValueError, not InputError)."""
    with pytest.raises(ValueError, match="duplicates") as info:
        category_codes(pa.array(["a"]), ["a", "a"], "orders.product_group")
    assert not isinstance(info.value, InputError)


# --- regressions found by tests/server/test_fuzz.py ------------------------------------------


def test_floats_take_int64_beyond_float64_precision() -> None:
    """int64 amounts beyond 2**53 round like any float64 (the safe cast raised ArrowInvalid)."""
    values = floats(pa.array([2**62 + 1, -(2**53) - 1], pa.int64()), "orders.amount")
    assert_array_equal(values, [2.0**62, -(2.0**53)])


@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["inf", "-inf"])
def test_floats_refuse_infinite_values(value: float) -> None:
    """±inf is no amount: refused naming the field (NaN and null stay 'unknown')."""
    with pytest.raises(InputError, match=r"^orders\.amount: 1 infinite values of 3"):
        floats(pa.array([1.0, value, np.nan]), "orders.amount")


@pytest.mark.parametrize(
    "column",
    [
        pa.array([0, 2**31 - 1], pa.int32()).cast(pa.date32()),
        pa.array([0, -(2**31)], pa.int32()).cast(pa.date32()),
        pa.array([0, 2**62], pa.int64()).cast(pa.date64()),
    ],
    ids=["date32-future", "date32-past", "date64"],
)
def test_timestamps_refuse_dates_beyond_the_us_range(column: pa.Array) -> None:
    """Dates whose µs overflow int64 are refused; they wrapped around silently (a far-future
    order counted as a past one)."""
    with pytest.raises(InputError, match=r"^orders\.ts: 1 dates of 2 out of the µs range"):
        timestamps_us(column, "orders.ts")
