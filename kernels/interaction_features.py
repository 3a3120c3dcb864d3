"""The lead behaviour families: windowed counts of interactions (and of B2B web visits).

    lead_int_count:<kind>:<days>       interactions of that kind in (as_of - days, as_of]
    lead_int_recency_days:<kind>       days since the last interaction of that kind (NaN: none)

``<kind>`` is a value of ``interactions.kind`` (email_open, email_click, form, demo_request, …)
or ``*`` for every kind. Only events with ``ts <= as_of`` count. ``EventWindowFamily`` is
shared with ``lead_web_features`` (same kernel, another table and prefix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .arrow import category_codes, floats
from .errors import InputError
from .event_windows import WindowCounts, window_counts
from .family import Frame, MakeFrame

__all__ = ["INTERACTIONS", "EventWindowFamily"]

ALL = "*"
MAX_DAYS = 36_500


class EventWindowFamily:
    """Windowed counts, weight sums and recency of one event table's events, by category.

    ``features`` maps a feature kind (the part after the prefix) to ``"count"``, ``"sum"`` or
    ``"recency"``; count and sum names end in ``:<days>``.
    """

    def __init__(
        self, table: str, category_column: str, prefix: str, features: Mapping[str, str], weight_column: str | None = None
    ) -> None:
        self.table = table
        self.category_column = category_column
        self.prefix = prefix
        self.features = dict(features)
        self.weight_column = weight_column
        self.patterns = tuple(
            f"{prefix}{kind}:<{category_column}>" + (":<days>" if what != "recency" else "")
            for kind, what in self.features.items()
        )

    def _parse(self, name: str) -> tuple[str, str, int | None] | None:
        """(what, category, days) of one of our names; None if not ours."""
        if not name.startswith(self.prefix):
            return None
        kind, sep, rest = name[len(self.prefix) :].partition(":")
        what = self.features.get(kind)
        if not sep or what is None:
            return None
        if what == "recency":
            return (what, rest, None) if rest else None
        category, sep, days = rest.rpartition(":")
        if not sep or not category or not days.isdigit() or not 0 < int(days) <= MAX_DAYS:
            return None
        return what, category, int(days)

    def knows(self, name: str) -> bool:
        return self._parse(name) is not None

    def columns(self, name: str) -> set[str]:
        what, category, _ = self._parse(name)  # type: ignore[misc]
        cols = {f"{self.table}.contact_id", f"{self.table}.ts"}
        if category != ALL:
            cols.add(f"{self.table}.{self.category_column}")
        if what == "sum":
            cols.add(f"{self.table}.{self.weight_column}")
        return cols

    def compute(self, frame: Frame, names: Sequence[str], params: Mapping[str, Any]) -> list[np.ndarray]:
        parsed = [self._parse(name) for name in names]
        categories = tuple(dict.fromkeys(c for _, c, _ in parsed if c != ALL))  # type: ignore[misc]
        days = tuple(sorted({d for _, _, d in parsed if d is not None}))  # type: ignore[misc]
        weighted = any(w == "sum" for w, _, _ in parsed)  # type: ignore[misc]
        summary, categories, days = self._summary(frame, categories, days or (1,), weighted)
        out = []
        for what, category, d in parsed:  # type: ignore[misc]
            slot = len(categories) if category == ALL else categories.index(category)
            if what == "recency":
                out.append(summary.recency_days[:, slot])
            else:
                table = summary.counts if what == "count" else summary.sums
                out.append(table[:, slot, days.index(d)])
        return out

    def _summary(
        self, frame: Frame, categories: tuple[str, ...], days: tuple[int, ...], weighted: bool
    ) -> tuple[WindowCounts, tuple[str, ...], tuple[int, ...]]:
        """The kernel's result covering these categories and windows, computed again only if not."""
        key = f"{self.table}.{self.prefix}windows"
        done = frame.cache.get(key)
        if done is not None:
            summary, done_cats, done_days, done_weighted = done
            if set(categories) <= set(done_cats) and set(days) <= set(done_days) and (done_weighted or not weighted):
                return summary, done_cats, done_days
            categories = tuple(dict.fromkeys(done_cats + categories))
            days = tuple(sorted(set(done_days) | set(days)))
            weighted = weighted or done_weighted
        n = len(frame)
        codes = frame.codes(self.table)
        if codes is None:
            empty = np.empty(0, np.int64)
            summary = window_counts(empty, n, empty, empty, len(categories), frame.as_of_us, np.array(days), None)
        else:
            ts = frame.timestamps(self.table)
            if categories:
                column = frame.column(self.table, self.category_column, f"{self.prefix} features")
                cats = category_codes(column, categories, f"{self.table}.{self.category_column}")
            else:
                cats = np.full(len(codes), -1, np.int32)
            weights = None
            if weighted:
                assert self.weight_column is not None
                weights = floats(
                    frame.column(self.table, self.weight_column, f"{self.prefix} sums"), f"{self.table}.{self.weight_column}"
                )
                if (weights < 0).any():
                    raise InputError(f"{self.table}.{self.weight_column}", f"negative value {float(weights[weights < 0][0])!r}")
            summary = window_counts(codes, n, ts, cats, len(categories), frame.as_of_us, np.array(days), weights)
        frame.cache[key] = (summary, categories, days, weighted)
        return summary, categories, days

    def warm_up(self, make_frame: MakeFrame) -> None:
        columns = {
            "contact_id": pa.array([2, 1, 2], pa.int64()),
            "ts": pa.array([1, 2, 3], pa.timestamp("us", "UTC")),
            self.category_column: pa.array(["a", None, "b"]),
        }
        if self.weight_column:
            columns[self.weight_column] = pa.array([1.0, None, 2.0])
        names = [f"{self.prefix}{kind}:a" + (":7" if what != "recency" else "") for kind, what in self.features.items()]
        make_frame({self.table: pa.table(columns)}, 2).matrix(names)


INTERACTIONS = EventWindowFamily("interactions", "kind", "lead_int_", {"count": "count", "recency_days": "recency"})
