"""The TopN filter language: strict parsing, compilation to Arrow expressions, null semantics."""

from __future__ import annotations

import pyarrow as pa
import pytest

from scorecast.filters import compile_filter, parse_filter
from scorecast.kernels.time_units import US_PER_DAY

TABLE = pa.table(
    {
        "spend.value": pa.array([0.1, 0.6, float("nan"), 0.9, None], pa.float32()),
        "contacts.country": ["FR", "BE", "FR", None, "DE"],
        "contacts.vip": [True, False, True, False, None],
        "contacts.age": pa.array([30, 41, None, 25, 60], pa.int64()),
        "churn.lapse": pa.array([0, US_PER_DAY, None, 3 * US_PER_DAY, 0], pa.timestamp("us", tz="UTC")),
        "rfm.segment": pa.array(["a", "b", "a", None, "b"]).dictionary_encode(),
    }
)


def rows(*clauses: str) -> list[int]:
    """Row positions of TABLE matching every clause."""
    expression = compile_filter(parse_filter(list(clauses)), TABLE.schema)
    indexed = TABLE.append_column("i", pa.array(range(TABLE.num_rows)))
    return indexed.filter(expression)["i"].to_pylist() if expression is not None else list(range(TABLE.num_rows))


@pytest.mark.parametrize(
    ("clauses", "expected"),
    [
        ((), [0, 1, 2, 3, 4]),
        (("spend.value >= 0.6",), [1, 3]),
        (("spend.value != 0.6",), [0, 3]),  # NaN and null match no comparison, != included
        (("spend.value is_null",), [2, 4]),  # NaN counts as null
        (("spend.value not_null", "contacts.age < 40"), [0, 3]),
        (('contacts.country in ["FR", "DE"]',), [0, 2, 4]),
        (('contacts.country != "FR"',), [1, 4]),
        (("contacts.vip == true",), [0, 2]),
        (('churn.lapse < "1970-01-02"',), [0, 4]),
        (('churn.lapse >= "1970-01-02T00:00:00+00:00"',), [1, 3]),
        (('rfm.segment == "b"',), [1, 4]),
        (("contacts.age in [25, 60]",), [3, 4]),
    ],
)
def test_clauses_select_rows(clauses: tuple[str, ...], expected: list[int]) -> None:
    """Each operator on each column type selects the rows a reader would expect."""
    assert rows(*clauses) == expected


@pytest.mark.parametrize(
    ("clause", "reason"),
    [
        ("spend.value>0.5", "expected 'column op value'"),
        ("spend.value ~ 0.5", "expected 'column op value'"),
        ("value > 0.5", "is not <score>.<output>"),
        ("spend.value > 'x'", "not a JSON literal"),
        ("spend.value >", "needs a value"),
        ("spend.value is_null 3", "takes no value"),
        ("spend.value in 3", "non-empty JSON list"),
        ('spend.value in [1, "a"]', "one kind"),
        ("spend.value > [1]", "must be a number, a string"),
        ("contacts.vip < true", "booleans compare with == or !="),
        ("spend.value > __import__('os')", "not a JSON literal"),
    ],
)
def test_parse_errors_name_the_clause(clause: str, reason: str) -> None:
    """A malformed clause fails at parse time with its index, its text and the reason."""
    with pytest.raises(ValueError, match=r"where\[1\]") as info:
        parse_filter(["spend.value > 0", clause])
    assert clause in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize(
    ("clause", "reason"),
    [
        ('spend.value > "high"', "must be a number"),
        ("contacts.country == 3", 'must be a "string"'),
        ("churn.lapse < 3", "ISO date"),
        ('churn.lapse < "soon"', "not an ISO date"),
        ("contacts.vip == 1", "true or false"),
        ("contacts.nope == 1", "no column 'contacts.nope'"),
    ],
)
def test_type_errors_name_the_clause(clause: str, reason: str) -> None:
    """A value that does not fit its column fails at compile time, naming the clause."""
    with pytest.raises(ValueError, match=r"where\[0\]") as info:
        compile_filter(parse_filter([clause]), TABLE.schema)
    assert clause in str(info.value) and reason in str(info.value)
