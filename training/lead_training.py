"""Read a B2B base folder and fit the lead score on it (what ``scorecast train`` calls)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc

from scorecast.base import read_table

from .lead import DEFAULT_TIER_THRESHOLDS, LeadTraining, base_vocabulary, fit_lead
from .lead_rules import RuleSet, load_rules

__all__ = ["fit_lead_base", "read_lead_tables"]


def read_lead_tables(data: Path) -> dict:
    """contacts (every column), interactions and web_events (what the lead features read)."""
    tables = {}
    for name, columns in (("contacts", None), ("interactions", ["ts", "kind"]), ("web_events", ["ts", "page", "duration_s"])):
        table = read_table(data, name, None if columns is None else ["contact_id", *columns])
        if table is not None:
            tables[name] = table
    return tables


def fit_lead_base(
    data: Path, as_of: datetime | None, rules_path: Path | None, tier_thresholds: Sequence[int] | None
) -> tuple[LeadTraining, datetime]:
    """The fitted lead model of the base in ``data`` and the as-of time used (default: the
    last interaction); the rules file is checked against the base before anything is fitted."""
    tables = read_lead_tables(data)
    interactions = tables.get("interactions")
    if interactions is None or interactions.num_rows == 0:
        raise ValueError(f"lead: base {data} has no interactions (interactions.parquet missing or empty)")
    if as_of is None:
        as_of = pc.max(interactions["ts"]).as_py()
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
    rules: RuleSet | None = None
    if rules_path is not None:
        vocab = base_vocabulary(tables)
        rules = load_rules(
            rules_path, vocab.attributes, _all_values(tables, "interactions", "kind"), _all_values(tables, "web_events", "page")
        )
    fitted = fit_lead(tables, as_of, rules, tier_thresholds=tuple(tier_thresholds or DEFAULT_TIER_THRESHOLDS))
    return fitted, as_of


def _all_values(tables: dict, table: str, column: str) -> list[str]:
    if table not in tables or column not in tables[table].column_names:
        return []
    return [v for v in pc.unique(tables[table][column].combine_chunks().drop_null()).to_pylist() if isinstance(v, str)]
