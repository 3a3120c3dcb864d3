"""``scorecast train``: fit every requested score of a base and write them into a model repository.

Every score is one entry of ``SCORES``: its ``fit(run, version) -> Fitted`` (a module of
``scores/``, or ``lead/training``) reads what it needs from the shared ``TrainingRun``. The
features come from the one feature pipeline (``scorecast.kernels.FeatureFrame``), the same the
server runs. Everything is fitted before anything is written: a refusal leaves the repository
as it was. Each model carries a parity probe (``onnx_export.add_probe``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from scorecast.base import table_names
from scorecast.kernels import FeatureFrame
from scorecast.kernels.web_config import load_web_config
from scorecast.metadata import REQUEST_PREFIX
from scorecast.model_store import next_version, store_model
from scorecast.options import request_columns

from .lead import training as lead
from .onnx_export import PROBE_ROWS, add_probe, optimize_graph, read_metadata
from .run import Fitted, Holdout, TrainingRun, as_us
from .scores import (
    affinity,
    cross_sell,
    customer_value,
    engagement,
    interests,
    pressure,
    promo_appetence,
    recommendations,
    rfm,
    segments,
    web_heat,
)

__all__ = ["SCORES", "Built", "feature_rows", "fit_models", "train"]

Fitter = Callable[[TrainingRun, str], Fitted]

SCORES: dict[str, Fitter] = {
    "rfm": rfm.fit,
    "affinity": affinity.fit,
    "clv": customer_value.fit_clv,
    "churn": customer_value.fit_churn,
    "web_heat": web_heat.fit,
    "segments": segments.fit,
    "engagement": engagement.fit,
    "pressure": pressure.fit,
    "interests": interests.fit,
    "recommendations": recommendations.fit,
    "cross_sell": cross_sell.fit,
    "promo_appetence": promo_appetence.fit,
    "lead": lead.fit,
}
"""Every score ``scorecast train`` fits: name -> ``fit(run, version)``. Adding a score is a
module with that function and one entry here (see README, "Adding a score")."""

RETAIL_SCORES = ("rfm", "affinity", "clv", "churn", "segments")  # trained by default on a base with orders
WEB_SCORES = ("web_heat",)  # by default only when the base has web_events (and orders)
EMAIL_SCORES = ("engagement", "pressure", "interests")  # by default only when it has email_events
DEFAULT_WEB_CONFIG = Path(__file__).with_name("web_config.json")


@dataclass(frozen=True)
class Built:
    """A fitted version ready to store: its score, version, ONNX model (probe attached) and holdout."""

    score: str
    version: str
    model: onnx.ModelProto
    holdout: Holdout | None


def train(data: Path, out: Path, **options: Any) -> list[Path]:
    """Fit the requested scores on the base in ``data`` and store them in ``out``; return the
    files written. ``options``: ``fit_models``' keywords (scores, as_of, progress, …)."""
    built = fit_models(data, out, **options)
    out.mkdir(parents=True, exist_ok=True)
    return [store_model(out, b.score, b.version, b.model) for b in built]


def fit_models(
    data: Path,
    out: Path,
    scores: Sequence[str] | None = None,
    as_of: datetime | None = None,
    progress: bool = False,
    lead_rules: Path | None = None,
    tier_thresholds: Sequence[int] | None = None,
    web_config: Path | None = None,
    interest_k: int = 3,
    promo_outcome: str = "order",
    promo_window_days: int = 30,
    fitters: Mapping[str, Fitter] | None = None,
) -> list[Built]:
    """Fit the requested scores on the base in ``data``, each as the next version of the
    repository ``out``, writing nothing.

    Default scores: the retail ones where the base has orders, ``web_heat`` where it also has
    web_events, the e-mail scores where it has email_events, ``lead`` where it has
    interactions; the product scores (``PRODUCT_SCORES``) only when named. ``lead_rules``: a
    rules file (JSON, see ``lead.rules``) served beside the lead model; ``tier_thresholds``:
    the lead tiers' two score cuts (default 34, 67).
    ``web_config``: the page points and categories (JSON, see ``kernels.web_config``) of the
    web scores, stored in their metadata; default ``training/web_config.json``.
    ``interest_k``: how many top keywords the interests score gives.
    ``promo_outcome``, ``promo_window_days``: promo_appetence's outcome ("order" or "visit")
    and the days after a campaign it is counted. ``fitters``: fitters to use instead of
    ``SCORES``' for some scores (a planted regression in the tests).
    """
    fitters = {**SCORES, **(fitters or {})}
    scores = list(scores or _default_scores(data))
    unknown = sorted(set(scores) - set(SCORES))
    if unknown:
        raise ValueError(f"unknown scores {unknown}; train knows {list(SCORES)}")
    run = TrainingRun(
        data=data,
        scores=scores,
        as_of_given=as_of,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        web_config=load_web_config(web_config or DEFAULT_WEB_CONFIG),  # before any data: fail fast
        interest_k=interest_k,
        lead_rules=lead_rules,
        tier_thresholds=tier_thresholds,
        promo_outcome=promo_outcome,
        promo_window_days=promo_window_days,
    )
    built: list[Built] = []

    def fit(score: str) -> None:
        version = next_version(out, score)
        fitted = fitters[score](run, version)
        probe = _probe_rows(fitted.tables, fitted.as_of, fitted.model)
        built.append(Built(score, version, add_probe(optimize_graph(fitted.model), probe), fitted.holdout))

    # lead first, before any progress output: its rules file is checked against its base
    # before the long fits, and a refusal is one line
    if "lead" in scores:
        fit("lead")
    rest = [s for s in scores if s != "lead"]
    if rest:
        _ = run.as_of  # reads the orders: a base without them fails before any fit
    steps = tqdm(rest, desc="train", unit="score", disable=not progress)
    for score in steps:
        steps.set_postfix_str(score)
        fit(score)
    return built


def _default_scores(data: Path) -> list[str]:
    has = set(table_names(data)) if data.is_dir() else set()  # a missing folder: the orders error names it
    retail = list(RETAIL_SCORES) if "orders" in has or "interactions" not in has else []
    web = list(WEB_SCORES) if retail and "web_events" in has else []
    email = list(EMAIL_SCORES) if retail and "email_events" in has else []
    return retail + web + email + (["lead"] if "interactions" in has else [])


def _probe_rows(tables: dict[str, pa.Table], as_of: datetime, model: onnx.ModelProto) -> np.ndarray:
    """Feature rows of a few contacts spread over the base (buyers and, where there are, prospects),
    computed by the serving pipeline, request options at the model's defaults (filled as the
    server fills them, ``scorecast.options.request_columns``): the parity probe."""
    ids = FeatureFrame(tables, as_us(as_of)).contact_ids
    picked = ids.take(pa.array(np.linspace(0, len(ids) - 1, min(PROBE_ROWS, len(ids))).astype(np.int64)))
    return feature_rows(tables, as_us(as_of), model, picked)


def feature_rows(tables: dict[str, pa.Table], as_of_us: int, model: onnx.ModelProto, contact_ids: pa.Array) -> np.ndarray:
    """The ``features`` input of ``model`` for ``contact_ids``, computed by the serving pipeline
    from ``tables`` as of ``as_of_us``, request options at the model's defaults."""
    meta = read_metadata(model)
    picked = contact_ids.combine_chunks() if isinstance(contact_ids, pa.ChunkedArray) else contact_ids
    subset = {
        name: table.filter(pc.is_in(table["contact_id"], picked)) if "contact_id" in table.column_names else table
        for name, table in tables.items()
    }
    frame = FeatureFrame(subset, as_of_us, contact_ids=picked)
    x = np.empty((len(picked), len(meta.features)), np.float32)
    data = [i for i, f in enumerate(meta.features) if not f.startswith(REQUEST_PREFIX)]
    if data:
        x[:, data] = frame.matrix([meta.features[i] for i in data], meta.params.feature_params)
    for i, value in request_columns(meta).items():
        x[:, i] = value
    return x
