"""What a feature family is, and what it may read from a frame: the contract between
``frame.FeatureFrame`` and the family modules (``order_features`` …).

A family is an object with ``table`` (the event table it reads), ``patterns`` (its feature
names, ``<…>`` for a parameter), ``knows(name)``, ``columns(name)`` (the ``table.column``
inputs a feature reads), ``compute(frame, names, params)`` (one NumPy column per name) and
``warm_up(make_frame)``, and optionally ``reference_tables``: tables without contact_id it
looks things up in (``campaigns``), sent whole with every chunk. It gets from the frame the
table's dense contact codes (``frame.codes``), its columns checked (``frame.column``), its
timestamps in µs (``frame.timestamps``) and a per-frame ``cache`` for its summaries.
``params`` are the model's feature parameters (``ModelMetadata.params["feature_params"]``),
for families whose features depend on a fitted vocabulary or a configuration.

Families type their frame as ``Frame``, not ``FeatureFrame``: the frame imports the registry
of families (``features``), so a family importing the frame would close a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

__all__ = ["FeatureFamily", "Frame", "MakeFrame"]


class Frame(Protocol):
    """What a family reads from a ``FeatureFrame``."""

    as_of_us: int
    cache: dict[str, Any]

    def __len__(self) -> int: ...

    def table(self, name: str) -> pa.Table | None: ...

    def column(self, table: str, column: str, needed_by: str) -> pa.ChunkedArray: ...

    def codes(self, table: str) -> np.ndarray | None: ...

    def timestamps(self, table: str) -> np.ndarray: ...

    def matrix(self, names: Sequence[str], params: Mapping[str, Any] | None = None) -> np.ndarray: ...


MakeFrame = Callable[[Mapping[str, pa.Table], int], Frame]
"""``FeatureFrame`` itself, as a family's ``warm_up`` receives it: tables and as_of_us to a frame."""


class FeatureFamily(Protocol):
    """What ``FeatureFrame`` needs of a feature family (see the module docstring)."""

    table: str
    patterns: tuple[str, ...]

    def knows(self, name: str) -> bool: ...

    def columns(self, name: str) -> set[str]: ...

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]: ...

    def warm_up(self, make_frame: MakeFrame) -> None: ...
