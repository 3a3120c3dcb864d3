"""Choosing the recommendations blend on a time holdout, and the figures reported for it.

Orders up to the cutoff (``as_of - holdout_days``) train a model; the contacts who bought
before and in ``(cutoff, as_of]`` are split in two halves (``Holdout``). On the selection half,
by NDCG@K: the blend (``HALF_LIVES`` x ``GRID``: personal-frequency half-life, explore weight,
prior weight and decay, repeat weight, exclusion), then its view weight and half-life
(``VIEW_GRID``, with views), then the blend or the best simple baseline the graph can serve
(``BASELINE_SETTINGS``; a warning says so). On the report half, which none of these choices
saw: recall@K and NDCG@K of what is served, of every simple baseline (``baselines``) and, with
views, of the blend without them (``no_views_*``). Every setting is scored by a copy of the
fitted model: the model given is never changed.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from scorecast.kernels import FeatureFrame

from ..evaluation import ranking_metrics
from . import baselines
from .baselines import top_k
from .model import SCORE_ELEMENTS, Orders, RecommendationModel, popularity_prior

__all__ = ["BASELINE_SETTINGS", "GRID", "HALF_LIVES", "VIEW_GRID", "Holdout", "Selection", "blend_grid", "select", "view_grid"]

GRID = {
    "prior_half_life_days": (None, 30.0),
    "explore": (0.0, 1.0),
    "beta": (0.1, 0.3, 1.0),
    "exclude_bought": (False, True),
    "repeat_boost": (0.0, 0.3, 1.0, 3.0),
}
"""The blend tried on the time holdout (``repeat_boost`` is moot when the history is excluded)."""
HALF_LIVES = (30.0, 365.0)
"""The personal frequency half-lives tried (days)."""
VIEW_GRID = {"view_half_life_days": (7.0, 30.0), "view_boost": (0.0, 0.1, 0.3, 1.0, 3.0)}
"""The view weights tried on top of the chosen blend, when the base has product-page views."""
BASELINE_SETTINGS: dict[str, dict[str, Any]] = {
    "popularity": {
        "prior_half_life_days": None,
        "explore": 0.0,
        "beta": 1.0,
        "repeat_boost": 0.0,
        "exclude_bought": False,
        "view_boost": 0.0,
    },
    "popularity_unseen": {
        "prior_half_life_days": None,
        "explore": 0.0,
        "beta": 1.0,
        "repeat_boost": 0.0,
        "exclude_bought": True,
        "view_boost": 0.0,
    },
    # undecayed counts, the most-bought first, popularity (monotone in the prior) breaking ties
    "personal_frequency": {
        "prior_half_life_days": None,
        "explore": 0.0,
        "beta": 1e-3,
        "repeat_boost": 1.0,
        "exclude_bought": False,
        "half_life_days": 1e9,
        "view_boost": 0.0,
    },
}
"""The baselines the graph can serve itself, when one beats the blend on the holdout."""

_FEATURE_SETTINGS = ("half_life_days", "view_half_life_days")  # change the features, not only the scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holdout:
    """The holdout purchases of the ``warm`` contacts (codes among ``ids``, who bought before the
    cutoff and after it), split in a selection half and a report half (boolean masks over ``warm``)."""

    tables: Mapping[str, pa.Table]
    orders: Orders
    ids: pa.Array
    cutoff: int
    counts: sp.csr_matrix
    """Contacts x SKUs purchase counts up to the cutoff (what the baselines read)."""
    warm: np.ndarray
    relevant: list[np.ndarray]
    """Each warm contact's distinct SKU codes bought in the holdout."""
    select: np.ndarray
    report: np.ndarray

    @classmethod
    def split(
        cls,
        tables: Mapping[str, pa.Table],
        orders: Orders,
        ids: pa.Array,
        n_items: int,
        cutoff: int,
        as_of_us: int,
        *,
        max_eval: int,
        max_select: int,
        seed: int,
    ) -> Holdout | None:
        """The holdout of the purchases in ``(cutoff, as_of_us]``, at most ``max_eval`` contacts
        (a seeded sample) of whom at most ``max_select`` select; None when no contact bought on
        both sides of the cutoff."""
        contact, sku, ts, n = orders.contact, orders.sku, orders.ts, orders.n_contacts
        later = (ts > cutoff) & (ts <= as_of_us) & (sku >= 0)
        earlier = (ts <= cutoff) & (sku >= 0)
        before = np.zeros(n, bool)
        before[contact[earlier]] = True
        buyers = np.unique(contact[later])
        warm = buyers[before[buyers]]
        if warm.size > max_eval:
            warm = np.sort(np.random.default_rng(seed).choice(warm, max_eval, replace=False))
        if not warm.size:
            return None
        bought = sp.csr_matrix((np.ones(int(later.sum())), (contact[later], sku[later])), shape=(n, n_items))
        bought = bought[warm]
        bought.sum_duplicates()  # each row's codes sorted and distinct
        relevant = np.split(bought.indices, bought.indptr[1:-1])
        counts = sp.csr_matrix((np.ones(int(earlier.sum())), (contact[earlier], sku[earlier])), shape=(n, n_items))
        counts.sum_duplicates()
        # selection on even positions (at most max_select), report on odd ones: neither the blend
        # nor the choice of blend or baseline is made on the reported figures
        select = np.arange(warm.size) % 2 == 0 if warm.size >= 2 else np.ones(warm.size, bool)
        report = ~select if warm.size >= 2 else select
        select &= np.cumsum(select) <= max_select
        return cls(tables, orders, ids, cutoff, counts, warm, relevant, select, report)

    def contact_ids(self, half: np.ndarray) -> pa.Array:
        """The contact ids of a half."""
        return self.ids.take(pa.array(self.warm[half]))

    def relevant_of(self, half: np.ndarray) -> list[np.ndarray]:
        """The holdout purchases of a half's contacts."""
        return [r for r, s in zip(self.relevant, half, strict=True) if s]

    def repeat_share(self) -> float:
        """The share of holdout purchases the contact had bought before the cutoff."""
        # one isin over (contact, code) keys instead of one per contact
        before = self.counts[self.warm]
        sizes = np.fromiter(map(len, self.relevant), np.int64, len(self.relevant))
        width = before.shape[1]
        rows = np.arange(len(sizes), dtype=np.int64)
        bought = np.repeat(rows, sizes) * width + np.concatenate([np.zeros(0, np.int64), *self.relevant])
        repeats = np.isin(bought, np.repeat(rows, np.diff(before.indptr)) * width + before.indices).sum()
        return float(repeats / max(int(sizes.sum()), 1))


@dataclass(frozen=True)
class Selection:
    """What the holdout chose: the settings to refit the served model with, what they serve
    (``"model"``: the blend, else a ``BASELINE_SETTINGS`` name) and the holdout figures."""

    settings: dict[str, Any]
    served: str
    metrics: dict[str, float]


def blend_grid(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The blends tried, ties going to the first: ``HALF_LIVES`` x ``GRID``, a setting in
    ``params`` tried alone; with exclusion only the first ``repeat_boost`` (moot), unless fixed."""
    axes = {"half_life_days": HALF_LIVES, **GRID}
    tried = {name: (params[name],) if name in params else values for name, values in axes.items()}
    grid = [dict(zip(tried, values, strict=True), view_boost=0.0) for values in itertools.product(*tried.values())]
    if "repeat_boost" in params:
        return grid
    return [g for g in grid if not (g["exclude_bought"] and g["repeat_boost"] != GRID["repeat_boost"][0])]


def view_grid(blend: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``blend`` with each view half-life and weight of ``VIEW_GRID`` (a setting in ``params`` alone)."""
    tried = {name: (params[name],) if name in params else values for name, values in VIEW_GRID.items()}
    return [{**blend, **dict(zip(tried, values, strict=True))} for values in itertools.product(*tried.values())]


def select(model: RecommendationModel, holdout: Holdout, params: Mapping[str, Any]) -> Selection:
    """Choose the blend (``blend_grid``, then ``view_grid`` with view slots) and blend or
    servable baseline on the selection half; report what is served, every baseline and (with
    view slots) the blend without views on the report half. ``model``: fitted up to the cutoff."""
    k = model.k_
    blend, blend_ndcg = _choose_blend(model, holdout, params)
    metrics: dict[str, float] = {}
    rel_report = holdout.relevant_of(holdout.report)

    def put(prefix: str, top: np.ndarray) -> None:
        m = ranking_metrics(top, rel_report, k)
        metrics[f"{prefix}recall_at_{k}"] = m["recall"]
        metrics[f"{prefix}ndcg_at_{k}"] = m["ndcg"]

    report_grid = [blend, {**blend, "view_boost": 0.0}] if model.view_slots else [blend]
    report_tops = grid_tops(model, holdout, holdout.contact_ids(holdout.report), report_grid)
    put("", report_tops[0])
    if model.view_slots:
        put("no_views_", report_tops[1])
    baseline_top = _baseline_tops(holdout, k)
    rel_select = holdout.relevant_of(holdout.select)
    select_ndcgs = {name: ranking_metrics(baseline_top(name, holdout.select), rel_select, k)["ndcg"] for name in baselines.BASELINES}
    for name in baselines.BASELINES:
        put(f"{name}_", baseline_top(name, holdout.report))
    settings, served = dict(blend), "model"
    # blend or baseline: chosen on the selection half, as the blend was
    servable = max(BASELINE_SETTINGS, key=lambda b: (select_ndcgs[b], -list(BASELINE_SETTINGS).index(b)))
    metrics[f"ndcg_at_{k}_selection"] = blend_ndcg
    metrics[f"best_baseline_ndcg_at_{k}_selection"] = max(select_ndcgs.values())
    if select_ndcgs[servable] > blend_ndcg:
        log.warning(
            "recommendations: on the selection half the blend (NDCG@%d %.4f) does not beat %s (%.4f); serving %s",
            k,
            blend_ndcg,
            servable,
            select_ndcgs[servable],
            servable,
        )
        settings, served = settings | BASELINE_SETTINGS[servable], servable
        metrics[f"blend_recall_at_{k}"], metrics[f"blend_ndcg_at_{k}"] = metrics[f"recall_at_{k}"], metrics[f"ndcg_at_{k}"]
        metrics[f"recall_at_{k}"] = metrics[f"{servable}_recall_at_{k}"]
        metrics[f"ndcg_at_{k}"] = metrics[f"{servable}_ndcg_at_{k}"]
    best, best_ndcg = baselines.best_baseline(metrics, k)
    if best_ndcg >= metrics[f"ndcg_at_{k}"] and best != served:
        log.warning(
            "recommendations: the served %s (NDCG@%d %.4f) does not beat %s (%.4f) on the report half of the holdout",
            "blend" if served == "model" else served,
            k,
            metrics[f"ndcg_at_{k}"],
            best,
            best_ndcg,
        )
    metrics["beats_best_baseline"] = float(metrics[f"ndcg_at_{k}"] > best_ndcg)
    metrics["holdout_repeat_share"] = holdout.repeat_share()
    metrics["n_eval_contacts"] = float(holdout.report.sum())
    metrics["n_select_contacts"] = float(holdout.select.sum())
    return Selection(settings, served, metrics)


def _choose_blend(model: RecommendationModel, holdout: Holdout, params: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """The best blend on the selection half and its NDCG@K: ``blend_grid``, then (with view
    slots) its ``view_grid`` when a view weight above 0 does better."""
    k = model.k_
    ids, relevant = holdout.contact_ids(holdout.select), holdout.relevant_of(holdout.select)
    grid = blend_grid(params)
    ndcgs = [ranking_metrics(top, relevant, k)["ndcg"] for top in grid_tops(model, holdout, ids, grid)]
    blend = grid[max(range(len(grid)), key=lambda i: (ndcgs[i], -i))]
    blend_ndcg = max(ndcgs)
    if model.view_slots:
        views = view_grid(blend, params)
        view_ndcgs = [ranking_metrics(top, relevant, k)["ndcg"] for top in grid_tops(model, holdout, ids, views)]
        at = max(range(len(views)), key=lambda i: (view_ndcgs[i], -views[i]["view_boost"], -i))  # ties: fewer views
        if views[at]["view_boost"] > 0 and view_ndcgs[at] > blend_ndcg:
            blend, blend_ndcg = views[at], view_ndcgs[at]
    return blend, blend_ndcg


def grid_tops(model: RecommendationModel, holdout: Holdout, contact_ids: pa.Array, grid: list[dict[str, Any]]) -> list[np.ndarray]:
    """Top-K codes of every setting in ``grid`` for ``contact_ids``, each scored by a copy of
    ``model`` with those settings, in score-sized chunks; the features are computed once per
    pair of half-lives and the factor scores once per chunk."""
    n_items, k = len(model.skus_), model.k_
    step = max(1, SCORE_ELEMENTS // n_items)
    out: list[list[np.ndarray]] = [[] for _ in grid]
    by_features: dict[tuple[float, float], list[int]] = {}
    for i, g in enumerate(grid):
        by_features.setdefault((g["half_life_days"], g.get("view_half_life_days", model.view_half_life_days)), []).append(i)
    priors = {p: popularity_prior(holdout.orders, n_items, holdout.cutoff, p) for p in {g["prior_half_life_days"] for g in grid}}
    chunk = _rows_of(holdout.tables, contact_ids, model.view_slots)  # once, whatever the half-lives
    for (half_life, view_half_life), members in by_features.items():
        featured = _variant(model, half_life_days=half_life, view_half_life_days=view_half_life)
        variants = [
            _variant(
                featured,
                prior_=priors[grid[i]["prior_half_life_days"]],
                **{name: value for name, value in grid[i].items() if name not in _FEATURE_SETTINGS},
            )
            for i in members
        ]
        history, weights, viewed, view_weights = _features(chunk, contact_ids, holdout.cutoff, featured)
        for lo in range(0, len(history), step):
            part, w = history[lo : lo + step], weights[lo : lo + step]
            v = vw = None
            if viewed is not None and view_weights is not None:
                v, vw = viewed[lo : lo + step], view_weights[lo : lo + step]
            factor_scores = featured.parts(part)[0]
            for i, variant in zip(members, variants, strict=True):
                out[i].append(top_k(variant.scores(part, w, v, vw, factor_scores=factor_scores), k))
    return [np.concatenate(t) if t else np.zeros((0, k), np.int64) for t in out]


def _variant(model: RecommendationModel, **settings: Any) -> RecommendationModel:
    """A copy of the fitted ``model`` with other settings; the fitted arrays are shared (scoring
    never writes them)."""
    unknown = set(settings) - set(vars(model))
    if unknown:
        raise ValueError(f"not settings of the model: {sorted(unknown)}")
    variant = copy.copy(model)
    vars(variant).update(settings)
    return variant


def _baseline_tops(holdout: Holdout, k: int) -> Callable[[str, np.ndarray], np.ndarray]:
    """``top(name, half)``: the top-K codes of baseline ``name`` for a half's contacts, in
    score-sized chunks as the model's (dense rows x SKUs scores)."""
    counts = holdout.counts
    similarity = baselines.cosine(counts)
    step = max(1, SCORE_ELEMENTS // counts.shape[1])

    def top(name: str, half: np.ndarray) -> np.ndarray:
        rows = counts[holdout.warm[half]]
        fn = baselines.BASELINES[name]
        extra = (similarity,) if name == "item_item" else ()
        return np.concatenate([fn(rows[lo : lo + step], k, *extra) for lo in range(0, rows.shape[0], step)])

    return top


def _rows_of(tables: Mapping[str, pa.Table], contact_ids: pa.Array, view_slots: int) -> dict[str, pa.Table]:
    """The orders (and with view slots the web_events) rows of ``contact_ids``."""
    chunk = {}
    for name in ("orders", "web_events") if view_slots else ("orders",):
        if name in tables:
            table = tables[name]
            chunk[name] = table.filter(pc.is_in(table.column("contact_id"), value_set=contact_ids))
    return chunk


def _features(
    chunk: Mapping[str, pa.Table], contact_ids: pa.Array, as_of_us: int, model: RecommendationModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The history codes, their ``sku_weight``, and (with view slots, else None) the viewed
    codes and their ``sku_view_weight`` of ``contact_ids`` as of ``as_of_us``: the serving
    pipeline's ``FeatureFrame`` over those contacts' rows (``_rows_of``)."""
    frame = FeatureFrame(dict(chunk), as_of_us, contact_ids=contact_ids)
    x = frame.matrix(model.data_features(), model.feature_params())
    h, v = model.history_slots, model.view_slots
    if not v:
        return x[:, :h], x[:, h:], None, None
    return x[:, :h], x[:, h : 2 * h], x[:, 2 * h : 2 * h + v], x[:, 2 * h + v :]
