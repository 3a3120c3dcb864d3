"""The contact-attribute family: firmographic columns of the ``contacts`` table as features.

    attr:<column>            the column's value as a number (numeric or bool columns; null: NaN)
    attr:<column>=<value>    1 where a string column equals <value>, else 0 (null: 0)

Without a contacts table every row is unknown: NaN, and 0 for the indicators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow import category_codes
from .errors import InputError
from .family import Frame, MakeFrame

__all__ = ["CONTACT_ATTRIBUTES", "ContactFeatures"]

PREFIX = "attr:"


def _parse(name: str) -> tuple[str, str | None] | None:
    """(column, value or None) of an attribute feature; None if not ours."""
    if not name.startswith(PREFIX):
        return None
    column, sep, value = name[len(PREFIX) :].partition("=")
    if not column or column == "contact_id" or (sep and not value):
        return None
    return column, (value if sep else None)


class ContactFeatures:
    """Attribute features; values are scattered onto the frame's rows by the contact codes."""

    table = "contacts"
    patterns: tuple[str, ...] = ("attr:<column>", "attr:<column>=<value>")

    def knows(self, name: str) -> bool:
        return _parse(name) is not None

    def columns(self, name: str) -> set[str]:
        column, _ = _parse(name)  # type: ignore[misc]
        return {f"contacts.{column}"}

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        n = len(frame)
        codes = frame.codes("contacts")
        out = []
        for name in names:
            column, value = _parse(name)  # type: ignore[misc]
            if codes is None:
                out.append(np.full(n, np.nan) if value is None else np.zeros(n))
                continue
            data = frame.column("contacts", column, f"feature {name}")
            values = _indicator(data, value, f"contacts.{column}") if value is not None else _numbers(data, f"contacts.{column}")
            row = np.full(n, np.nan) if value is None else np.zeros(n)
            row[codes] = values
            out.append(row)
        return out

    def warm_up(self, make_frame: MakeFrame) -> None:
        contacts = pa.table({"contact_id": pa.array([1, 2]), "a": pa.array(["x", None]), "b": pa.array([1.5, None])})
        make_frame({"contacts": contacts}, 0).matrix(["attr:a=x", "attr:b"])


def _numbers(column: pa.ChunkedArray, field: str) -> np.ndarray:
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
        raise InputError(field, f"expected a numeric or bool column for attr:{field.split('.', 1)[1]}, got type {kind}")
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _indicator(column: pa.ChunkedArray, value: str, field: str) -> np.ndarray:
    try:
        codes = category_codes(column, [value], field)
    except InputError:
        raise InputError(
            field, f"expected a string column for attr:{field.split('.', 1)[1]}={value}, got type {column.type}"
        ) from None
    return (codes == 0).astype(np.float64)


CONTACT_ATTRIBUTES = ContactFeatures()
