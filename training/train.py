"""``scorecast train``: fit every model of a base and write them into a model repository.

The features come from the one feature pipeline (``scorecast.kernels.FeatureFrame``), the
same the server runs. For a score with a horizon H (affinity), features are computed as of
``as_of - H`` and labels are what each contact bought in ``(as_of - H, as_of]``; the served
model is then applied to features as of the request's time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from scorecast.base import read_table, table_names
from scorecast.kernels import FeatureFrame, order_feature_names
from scorecast.kernels.web_config import load_web_config
from scorecast.metadata import REQUEST_PREFIX
from scorecast.model_store import next_version, store_model

from .email_scores import EMAIL_SCORES, email_tables, fit_email_score
from .onnx_export import PROBE_ROWS, add_probe, read_metadata
from .product_scores import fit_product_score
from .scores.affinity import fit_affinity
from .scores.customer_value import CustomerValueModels, fit_customer_value
from .scores.rfm import RFM_FEATURES, fit_rfm
from .scores.segments import SEGMENT_INPUTS, fit_segments
from .scores.web_heat import WEB_HEAT_FEATURES, fit_web_heat

__all__ = ["MIN_BUYERS", "MIN_POSITIVES", "SCORES", "train"]

log = logging.getLogger(__name__)

PRODUCT_SCORES = ("recommendations", "cross_sell", "promo_appetence")
"""Trained when named (``--scores``); not by default, so bases without SKUs or campaigns train."""
SCORES = ("rfm", "affinity", "clv", "churn", "web_heat", "segments", *EMAIL_SCORES, *PRODUCT_SCORES, "lead")
RETAIL_SCORES = ("rfm", "affinity", "clv", "churn", "segments")  # the scores that read orders
WEB_SCORES = ("web_heat",)  # trained by default only when the base has web_events (and orders)
DEFAULT_WEB_CONFIG = Path(__file__).with_name("web_config.json")
AFFINITY_HORIZON_DAYS = 90
# Fewer buyers than this and quintiles / a holdout AUC are mostly noise (a 20 % holdout of
# 500 buyers leaves ~100 for the metrics).
MIN_BUYERS = 500
# A group needs this many buyers in the label window, and as many non-buyers, for a
# classifier and a holdout AUC worth serving (the holdout then sees >= 10 of each).
MIN_POSITIVES = 50
MAX_GROUPS = 50


def _as_us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def train(
    data: Path,
    out: Path,
    scores: Sequence[str] | None = None,
    as_of: datetime | None = None,
    progress: bool = False,
    lead_rules: Path | None = None,
    tier_thresholds: Sequence[int] | None = None,
    web_config: Path | None = None,
    interest_k: int = 3,
) -> list[Path]:
    """Fit the requested scores on the base in ``data``; return the files written.

    Default scores: the retail ones where the base has orders, ``web_heat`` where it also has
    web_events, the e-mail scores where it has email_events, ``lead`` where it has
    interactions; the product scores (``PRODUCT_SCORES``) only when named. ``lead_rules``: a
    rules file (JSON, see ``lead_rules``) served beside the lead model; ``tier_thresholds``:
    the lead tiers' two score cuts (default 34, 67).
    ``web_config``: the page points and categories (JSON, see ``kernels.web_config``) of the
    web scores, stored in their metadata; default ``training/web_config.json``.
    ``interest_k``: how many top keywords the interests score gives.
    """
    scores = list(scores or _default_scores(data))
    unknown = sorted(set(scores) - set(SCORES))
    if unknown:
        raise ValueError(f"unknown scores {unknown}; train knows {list(SCORES)}")
    web_cfg = load_web_config(web_config or DEFAULT_WEB_CONFIG)  # before any data: fail fast
    lead = None
    if "lead" in scores:
        from .lead.training import fit_lead_base

        fitted, lead_as_of, lead_tables = fit_lead_base(data, as_of, lead_rules, tier_thresholds)
        when = {"trained_at": datetime.now(UTC).isoformat(timespec="seconds"), "data_as_of": lead_as_of.isoformat()}
        lead = fitted.to_onnx(version=next_version(out, "lead"), **when)
        lead = add_probe(lead, _probe_rows(lead_tables, lead_as_of, lead))
        scores = [s for s in scores if s != "lead"]
        if not scores:
            return _write(out, [("lead", next_version(out, "lead"), lead)])
    extra = ["sku", "promo"] if set(scores) & set(PRODUCT_SCORES) else []
    orders = read_table(data, "orders", ["ts", "amount", "product_group", *extra])  # only what features read
    if orders is None or orders.num_rows == 0:
        raise ValueError(f"base {data} has no orders (orders.parquet missing or empty): every score needs them")
    contacts = read_table(data, "contacts", [])
    tables = {"orders": orders} if contacts is None else {"orders": orders, "contacts": contacts}
    web = read_table(data, "web_events", ["ts", "page", "duration_s"]) if {"web_heat", "segments"} & set(scores) else None
    if web is not None:
        tables["web_events"] = web
    if as_of is None:
        as_of = pc.max(orders["ts"]).as_py()
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(data, tables, as_of, web_cfg, interest_k)
    # fit everything before writing anything: a refusal leaves the repository as it was
    built = []
    steps = tqdm(scores, desc="train", unit="score", disable=not progress)
    for score in steps:
        steps.set_postfix_str(score)
        version = next_version(out, score)
        times = {"version": version, "trained_at": trained_at, "data_as_of": as_of.isoformat()}
        onnx_model = _FITTERS[score](run, times)
        probe_from = run.email_tables() if score in EMAIL_SCORES else tables
        built.append((score, version, add_probe(onnx_model, _probe_rows(probe_from, as_of, onnx_model))))
    if lead is not None:
        built.append(("lead", next_version(out, "lead"), lead))
    return _write(out, built)


def _default_scores(data: Path) -> list[str]:
    has = set(table_names(data)) if data.is_dir() else set()  # a missing folder: the orders error names it
    retail = list(RETAIL_SCORES) if "orders" in has or "interactions" not in has else []
    web = list(WEB_SCORES) if retail and "web_events" in has else []
    email = list(EMAIL_SCORES) if retail and "email_events" in has else []
    return retail + web + email + (["lead"] if "interactions" in has else [])


def _write(out: Path, built: list) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [store_model(out, score, version, onnx_model) for score, version, onnx_model in built]


def _probe_rows(tables: dict[str, pa.Table], as_of: datetime, model: onnx.ModelProto) -> np.ndarray:
    """Feature rows of a few contacts spread over the base (buyers and, where there are, prospects),
    computed by the serving pipeline, request options at the model's defaults: the parity probe."""
    meta = read_metadata(model)
    ids = FeatureFrame(tables, _as_us(as_of)).contact_ids
    picked = ids.take(pa.array(np.linspace(0, len(ids) - 1, min(PROBE_ROWS, len(ids))).astype(np.int64)))
    subset = {
        name: table.filter(pc.is_in(table["contact_id"], picked)) if "contact_id" in table.column_names else table
        for name, table in tables.items()
    }
    frame = FeatureFrame(subset, _as_us(as_of), contact_ids=picked)
    x = np.empty((len(picked), len(meta.features)), np.float32)
    data = [i for i, f in enumerate(meta.features) if not f.startswith(REQUEST_PREFIX)]
    if data:
        x[:, data] = frame.matrix([meta.features[i] for i in data], meta.params.get("feature_params"))
    for i, name in enumerate(meta.features):
        if name.startswith(REQUEST_PREFIX):
            option = name.removeprefix(REQUEST_PREFIX)
            default = meta.params.get("request_defaults", {}).get(option)
            x[:, i] = meta.horizon_days if default is None and option == "horizon_days" else default
    return x


def _buyers(frame_matrix: np.ndarray, what: str) -> int:
    n = int((frame_matrix > 0).sum())
    if n < MIN_BUYERS:
        raise ValueError(f"{what}: only {n} contacts with orders, need at least {MIN_BUYERS} to fit and validate")
    return n


def _fit_rfm(tables: dict[str, pa.Table], as_of: datetime):  # noqa: ANN202
    frame = FeatureFrame(tables, _as_us(as_of))
    X = frame.matrix(RFM_FEATURES)
    _buyers(X[:, RFM_FEATURES.index("frequency")], f"rfm as of {as_of.date()}")
    return fit_rfm(X, RFM_FEATURES)


def _fit_affinity(tables: dict[str, pa.Table], as_of: datetime):  # noqa: ANN202
    orders = tables["orders"]
    if "product_group" not in orders.column_names:
        raise ValueError("affinity needs orders.product_group, which this base does not have")
    cutoff = as_of - timedelta(days=AFFINITY_HORIZON_DAYS)
    before = FeatureFrame(tables, _as_us(cutoff))
    n_buyers = _buyers(before.matrix(["frequency"])[:, 0], f"affinity: orders up to {cutoff.date()} (as_of - {AFFINITY_HORIZON_DAYS} days)")
    counts = pc.value_counts(orders["product_group"].combine_chunks().drop_null())
    by_volume = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    candidates = [g for g, _ in by_volume[:MAX_GROUPS]]
    # labels: did the contact buy in G in (cutoff, as_of]? Same kernel, two reference times.
    after = FeatureFrame(tables, _as_us(as_of), contact_ids=before.contact_ids)
    count_names = [f"group_count:{g}" for g in candidates]
    bought = (after.matrix(count_names) - before.matrix(count_names)) > 0
    n = bought.shape[0]
    positives = bought.sum(axis=0)
    groups = [g for g, k in zip(candidates, positives, strict=True) if MIN_POSITIVES <= k <= n - MIN_POSITIVES]
    skipped = sorted(set(candidates) - set(groups))
    if skipped:
        log.warning("affinity: groups %s have fewer than %d buyers (or non-buyers) in the label window; not modelled", skipped, MIN_POSITIVES)
    if not groups:
        raise ValueError(
            f"affinity: no product group has {MIN_POSITIVES}+ buyers in ({cutoff.date()}, {as_of.date()}] "
            f"among {n_buyers} buyers; a longer or larger base is needed"
        )
    names = order_feature_names(groups)
    labels = {g: bought[:, candidates.index(g)] for g in groups}
    return fit_affinity(before.matrix(names), names, labels, horizon_days=AFFINITY_HORIZON_DAYS)


def _fit_web_heat(tables: dict[str, pa.Table], as_of: datetime, web_cfg: dict):  # noqa: ANN202
    if "web_events" not in tables:
        raise ValueError("web_heat needs web_events, which this base does not have")
    X = FeatureFrame(tables, _as_us(as_of)).matrix(WEB_HEAT_FEATURES, {"web": web_cfg})
    return fit_web_heat(X, WEB_HEAT_FEATURES, web_cfg)


def _fit_segments(tables: dict[str, pa.Table], as_of: datetime, web_cfg: dict):  # noqa: ANN202
    names = [i[0] for i in SEGMENT_INPUTS]
    X = FeatureFrame(tables, _as_us(as_of)).matrix(names, {"web": web_cfg})
    return fit_segments(X, names, feature_params={"web": web_cfg})


@dataclass
class _Run:
    """One training run of the orders-based scores: the base's tables, its as-of time, and
    what several scores share (the clv/churn fit, the e-mail tables), made on first use."""

    data: Path
    tables: dict[str, pa.Table]
    as_of: datetime
    web_cfg: dict
    interest_k: int
    _value_models: CustomerValueModels | None = None
    _email: dict[str, pa.Table] | None = None

    def value_models(self) -> CustomerValueModels:
        if self._value_models is None:
            self._value_models = fit_customer_value(self.tables, self.as_of)
        return self._value_models

    def email_tables(self) -> dict[str, pa.Table]:
        if self._email is None:
            self._email = email_tables(self.data, self.tables)
        return self._email


def _product(score: str) -> Callable[[_Run, dict[str, str]], onnx.ModelProto]:
    def fit(run: _Run, times: dict[str, str]) -> onnx.ModelProto:
        return fit_product_score(score, run.data, run.tables, run.as_of, times)

    return fit


def _email(score: str) -> Callable[[_Run, dict[str, str]], onnx.ModelProto]:
    def fit(run: _Run, times: dict[str, str]) -> onnx.ModelProto:
        return fit_email_score(score, run.email_tables(), run.as_of, interest_k=run.interest_k).to_onnx(**times)

    return fit


_FITTERS: dict[str, Callable[[_Run, dict[str, str]], onnx.ModelProto]] = {
    "rfm": lambda run, times: _fit_rfm(run.tables, run.as_of).to_onnx(**times),
    "affinity": lambda run, times: _fit_affinity(run.tables, run.as_of).to_onnx(**times),
    "clv": lambda run, times: run.value_models().clv_onnx(**times),
    "churn": lambda run, times: run.value_models().churn_onnx(**times),
    "web_heat": lambda run, times: _fit_web_heat(run.tables, run.as_of, run.web_cfg).to_onnx(**times),
    "segments": lambda run, times: _fit_segments(run.tables, run.as_of, run.web_cfg).to_onnx(**times),
    **{score: _email(score) for score in EMAIL_SCORES},
    **{score: _product(score) for score in PRODUCT_SCORES},
}
"""How each orders-based score is fitted (``lead`` is fitted on its own base before them)."""
