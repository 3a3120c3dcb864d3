"""kernels/checks.py: each check names the argument and the wrong value."""

import numpy as np
import pytest

from scorecast.kernels import InputError
from scorecast.kernels.checks import check_range, column, count_arg, int64_arg, read_only


def test_column_casts_and_is_read_only() -> None:
    out = column([1, 2, 3], "orders.ts", "iu", np.int64, 3)
    assert out.dtype == np.int64 and not out.flags.writeable


@pytest.mark.parametrize(
    "values, n, message",
    [(["a", "b"], 2, "got dtype <U1"), ([1, 2, 3], 2, "expected a 1-D array of 2 values")],
)
def test_column_refuses_wrong_kind_or_length(values: list, n: int, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        column(values, "orders.ts", "iu", np.int64, n)
    assert "orders.ts" in str(err.value)


def test_check_range_names_the_first_bad_row() -> None:
    check_range(np.array([0, 1, 2]), 0, 3, "codes")
    with pytest.raises(InputError, match="value 5 at row 1 is outside the allowed range 0 .. 2") as err:
        check_range(np.array([0, 5, -1]), 0, 3, "codes")
    assert "codes" in str(err.value)


def test_scalar_arguments() -> None:
    assert int64_arg(np.int64(5), "as_of_us") == 5
    assert count_arg(0, "n") == 0
    with pytest.raises(InputError, match="expected integer microseconds, got True"):
        int64_arg(True, "as_of_us")
    with pytest.raises(InputError, match="outside the int64 range"):
        int64_arg(2**63, "as_of_us")
    with pytest.raises(InputError, match="non-negative integer, got -1"):
        count_arg(-1, "n")


def test_read_only_leaves_the_source_writable() -> None:
    source = np.zeros(3)
    view = read_only(source)
    assert source.flags.writeable and not view.flags.writeable
