"""The filter language of TopN: clauses ``column op value``, all of which must hold (AND).

    affinity.shoes >= 0.2
    features.group_count:shoes == 0
    contacts.country in ["FR", "BE"]
    churn.lapse_date < "2026-03-01"
    rfm.segment not_null

``column`` is ``<score>.<output>`` (a result column of a served score), ``contacts.<attribute>``
(a column of the contacts table) or ``features.<name>`` (a pipeline feature, e.g.
``group_count:shoes``: orders in that group before as-of). ``op`` is one of ``== != < <= > >=
in is_null not_null``, with spaces around it. ``value`` is one JSON literal: a number, a
"string" (also for category and timestamp columns: ISO dates/times, UTC unless they say
otherwise), ``true``/``false``; ``in`` takes a JSON list; ``is_null``/``not_null`` take none.

A null (or NaN) matches no comparison and no ``in`` list, ``!=`` included: only ``is_null``.
Clauses are parsed here, with no schema (so a client can see which columns a query reads),
and compiled to one ``pyarrow.compute`` expression against a batch's schema — never
evaluated as Python. Every error names the clause: ``where[i] '<clause>': <reason>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CONTACTS", "FEATURES", "OPS", "Clause", "FilterError", "compile_filter", "parse_column", "parse_filter"]

CONTACTS = "contacts"
FEATURES = "features"
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "is_null", "not_null")
MAX_CLAUSES = 100
MAX_CLAUSE_CHARS = 1000  # errors echo the clause; gRPC status details must stay under 8 KiB
MAX_IN_VALUES = 10_000

_CLAUSE = re.compile(r"^\s*(?P<column>\S+)\s+(?P<op>==|!=|<=|>=|<|>|in|is_null|not_null)(?:\s+(?P<value>.*?))?\s*$", re.DOTALL)
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\.\S+$")
_COMPARE = {"==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}


class FilterError(ValueError):
    """A clause that cannot be parsed or does not fit its column; ``field`` is ``where[i]``."""

    def __init__(self, field: str, clause: str, reason: str) -> None:
        self.field, self.clause, self.reason = field, clause, reason
        super().__init__(f"{field} {clause!r}: {reason}")

    def __reduce__(self) -> tuple[type[FilterError], tuple[str, str, str]]:
        return (type(self), (self.field, self.clause, self.reason))


@dataclass(frozen=True)
class Clause:
    """One parsed clause: ``column op value`` (value None for is_null / not_null)."""

    column: str
    op: str
    value: Any
    text: str
    field: str

    @property
    def namespace(self) -> str:
        """``contacts``, ``features`` or the score name."""
        return self.column.split(".", 1)[0]

    def error(self, reason: str) -> FilterError:
        """A FilterError naming this clause."""
        return FilterError(self.field, self.text, reason)


def parse_column(column: str, field: str, text: str | None = None) -> str:
    """Check a ``<namespace>.<name>`` column name; FilterError naming ``field`` if it is not one."""
    if not _COLUMN.match(column):
        raise FilterError(
            field,
            text if text is not None else column,
            f"column {column!r} is not <score>.<output>, contacts.<attribute> or features.<name>",
        )
    return column


def parse_filter(clauses: Sequence[str]) -> tuple[Clause, ...]:
    """Parse clauses strictly (no schema needed); FilterError names the first bad one."""
    if len(clauses) > MAX_CLAUSES:
        raise FilterError("where", f"{len(clauses)} clauses", f"at most {MAX_CLAUSES}")
    return tuple(_parse_clause(text, f"where[{i}]") for i, text in enumerate(clauses))


def _parse_clause(text: str, field: str) -> Clause:
    if len(text) > MAX_CLAUSE_CHARS:
        raise FilterError(field, text[:60] + "…", f"clauses are at most {MAX_CLAUSE_CHARS} chars")
    match = _CLAUSE.match(text)
    if match is None:
        raise FilterError(field, text, f"expected 'column op value' with op one of {' '.join(OPS)} (spaces around op)")
    column, op, raw = match["column"], match["op"], match["value"]
    parse_column(column, field, text)
    if op in ("is_null", "not_null"):
        if raw:
            raise FilterError(field, text, f"{op} takes no value, got {raw!r}")
        return Clause(column, op, None, text, field)
    if not raw:
        raise FilterError(
            field, text, f'{op} needs a value (a JSON number, "string", true/false{" or list" if op == "in" else ""})'
        )
    try:
        value = json.loads(raw)
    except ValueError:
        raise FilterError(field, text, f"value {raw!r} is not a JSON literal (strings need double quotes)") from None
    if op == "in":
        if not isinstance(value, list) or not value:
            raise FilterError(field, text, 'in needs a non-empty JSON list, e.g. ["FR", "BE"]')
        if len(value) > MAX_IN_VALUES:
            raise FilterError(field, text, f"in takes at most {MAX_IN_VALUES} values, got {len(value)}")
        kinds = {_kind(v) for v in value}
        if None in kinds or len(kinds) > 1:
            raise FilterError(field, text, "in needs a list of numbers, of strings or of booleans (one kind)")
    elif _kind(value) is None:
        raise FilterError(field, text, f"value must be a number, a string or true/false, got {raw!r}")
    elif isinstance(value, bool) and op not in ("==", "!="):
        raise FilterError(field, text, f"booleans compare with == or != only, not {op}")
    return Clause(column, op, value, text, field)


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def compile_filter(clauses: Sequence[Clause], schema: pa.Schema) -> pc.Expression | None:
    """The AND of the clauses as one expression over ``schema`` (columns named as in the clauses)."""
    expression: pc.Expression | None = None
    for clause in clauses:
        part = _compile(clause, schema)
        expression = part if expression is None else expression & part
    return expression


def _compile(clause: Clause, schema: pa.Schema) -> pc.Expression:
    index = schema.get_field_index(clause.column)
    if index < 0:
        raise clause.error(f"no column {clause.column!r} here")
    dtype = schema.field(index).type
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    field = pc.field(clause.column)
    if clause.op == "is_null":
        return _missing(field, dtype)
    if clause.op == "not_null":
        return ~_missing(field, dtype)
    values = clause.value if clause.op == "in" else [clause.value]
    try:
        scalars = [_scalar(clause, v, dtype) for v in values]
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise clause.error(f"value does not fit column {clause.column} ({dtype}): {exc}") from None
    if clause.op == "in":
        expression = field.isin(pa.array([s.as_py() for s in scalars], type=scalars[0].type))
    else:
        expression = getattr(pc, _COMPARE[clause.op])(field, scalars[0])
    # isin/comparisons give false or null on nulls; NaN must not match `!=` either.
    return expression & ~pc.is_nan(field) if pa.types.is_floating(dtype) else expression


def _missing(field: pc.Expression, dtype: pa.DataType) -> pc.Expression:
    return pc.is_null(field, nan_is_null=True) if pa.types.is_floating(dtype) else pc.is_null(field)


def _scalar(clause: Clause, value: Any, dtype: pa.DataType) -> pa.Scalar:
    """The literal as a scalar of the column's type; FilterError if it does not fit."""
    if pa.types.is_boolean(dtype):
        if not isinstance(value, bool):
            raise clause.error(f"column {clause.column} is boolean: compare it with true or false")
        if clause.op not in ("==", "!=", "in"):
            raise clause.error(f"column {clause.column} is boolean: use == or != (or in)")
        return pa.scalar(value)
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        if _kind(value) != "number":
            raise clause.error(f"column {clause.column} is {dtype}: the value must be a number, got {value!r}")
        if pa.types.is_floating(dtype):  # in the column's precision: float32 0.6 == 0.6
            return pa.scalar(float(value), pa.float64()).cast(dtype)
        if clause.op == "in" and not float(value).is_integer():
            raise clause.error(f"column {clause.column} is {dtype}: in takes whole numbers, got {value!r}")
        return pa.scalar(int(value) if clause.op == "in" else value)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        if not isinstance(value, str):
            raise clause.error(f'column {clause.column} is a string/category column: the value must be a "string", got {value!r}')
        return pa.scalar(value, pa.string())
    if pa.types.is_timestamp(dtype):
        if not isinstance(value, str):
            raise clause.error(f'column {clause.column} is a timestamp: give an ISO date or time as a "string", got {value!r}')
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise clause.error(f'{value!r} is not an ISO date or time (e.g. "2026-01-01")') from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return pa.scalar(when, pa.timestamp("us", tz="UTC")).cast(dtype)
    raise clause.error(f"column {clause.column} has type {dtype}, which filters do not support")
