"""Read a B2B base folder and fit the lead score on it (what ``scorecast train`` calls); put
new rules into a trained lead model (``scorecast lead-rules``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import onnx
import pyarrow.compute as pc

from scorecast.base import read_table
from scorecast.model_store import find_model, next_version, store_model

from ..onnx_export import read_metadata
from ..run import Fitted, Holdout, TrainingRun, as_us
from .rules import RuleSet, load_rules
from .scorecard import DEFAULT_TIER_THRESHOLDS, HORIZON_DAYS, LeadTraining, fit_lead, rule_vocabulary, scorecard_from_onnx

__all__ = ["fit", "fit_lead_base", "read_lead_tables", "replace_rules"]


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
) -> tuple[LeadTraining, datetime, dict]:
    """The fitted lead model of the base in ``data``, the as-of time used (default: the last
    interaction) and the tables read; the rules file is checked against the base before
    anything is fitted."""
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
        vocab = rule_vocabulary(tables)
        rules = load_rules(rules_path, vocab["attributes"], vocab["kinds"], vocab["pages"])  # type: ignore[arg-type]
    fitted = fit_lead(tables, as_of, rules, tier_thresholds=tuple(tier_thresholds or DEFAULT_TIER_THRESHOLDS))
    return fitted, as_of, tables


def fit(run: TrainingRun, version: str) -> Fitted:
    """``lead`` for ``scorecast train``: fitted on the run's B2B tables and as-of (default: the
    last interaction), with the run's rules file and tier cuts; the gate's holdout is the
    scorecard's held-out leads, as of the label window's start, converted or not."""
    fitted, as_of, tables = fit_lead_base(run.data, run.as_of_given, run.lead_rules, run.tier_thresholds)
    cutoff = as_us(as_of - timedelta(days=HORIZON_DAYS))
    holdout = Holdout(tables, cutoff, fitted.holdout_contact_ids, {"probability": fitted.holdout_labels})
    return Fitted(fitted.to_onnx(**run.times(version, as_of)), tables, as_of, holdout)


def replace_rules(models: Path, rules_path: Path, version: str | None = None) -> Path:
    """Write a new version of the lead model (newest, or ``version``) with the rules of
    ``rules_path`` (checked against the vocabulary stored in the model); no refit: the
    scorecard, its validation and its training dates are kept."""
    source = find_model(models, "lead", version)
    model = onnx.load(source)
    meta = read_metadata(model)
    vocab = meta.params.get("vocabulary")
    if not isinstance(vocab, dict) or "n_model_features" not in meta.params:
        raise ValueError(f"{source} predates replaceable rules (no vocabulary in its metadata): retrain it with --lead-rules")
    rules = load_rules(rules_path, vocab["attributes"], vocab["kinds"], vocab["pages"])
    scorecard = scorecard_from_onnx(model, meta)
    features = list(scorecard.features) + [f for f in rules.features if f not in scorecard.features]
    new_version = next_version(models, "lead")
    params = {
        k: v
        for k, v in meta.params.items()
        # the parity probe goes too: other rules change the outputs (and maybe the features),
        # and its rows cannot be recomputed without the base
        if k not in ("intercept", "factors", "tier_thresholds", "score_thresholds", "c_penalty", "rules", "probe")
    }
    params["rules"] = {"names": list(rules.names), "points": list(rules.points), "config": rules.config}
    params["rules_replaced_from_version"] = meta.version
    new_meta = scorecard.metadata(
        version=new_version,
        trained_at=meta.trained_at,
        data_as_of=meta.data_as_of,
        all_features=features,
        rules=rules,
        metrics={k: v for k, v in meta.metrics.items() if k != "auc:rules"},
        params=params,
    )
    return store_model(models, "lead", new_version, scorecard.to_onnx(new_meta, rules))
