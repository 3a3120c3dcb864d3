"""The ``recommendations`` score: the K SKUs each contact is most likely to buy next.

Method: repeat + explore (``training/recommendations/model.py``), blended per base on a time
holdout (``selection.py``), served as one ONNX graph (``graph.py``). Where the base has
``web_events`` on product pages (the web config's ``product_page`` pattern), the contact's
``VIEW_SLOTS`` most viewed SKUs feed it too (``sku_viewed:<slot>``, ``sku_view_weight:<slot>``).
The history is the ``history_slots`` most recent distinct SKUs (``sku_history:<slot>``);
training and serving compute every input with the one feature pipeline (``FeatureFrame``).
Cold contacts get the prior (and their views) alone, flagged by the ``cold`` output.
``request:exclude_bought`` masks the history (default learned, stored in ``request_defaults``).
A model whose view weight is 0 (no product-page views in the base, or views that did not help)
has no view inputs and reads no web_events.

Holdout: orders up to ``as_of - holdout_days`` train a model, the holdout chooses its blend,
or the best simple baseline the graph can serve (a warning says so, ``params["served"]``), and
reports recall@K and NDCG@K of what is served and of every baseline on the half of its
contacts none of these choices saw, with ``holdout_repeat_share`` (the share of holdout
purchases the contact had bought before) and ``beats_best_baseline``; the selection half's
NDCG@K of the blend and of the best baseline are ``ndcg_at_<K>_selection`` and
``best_baseline_ndcg_at_<K>_selection``. The served model is then refitted on every order up
to ``as_of``. The promotion gate scores both versions on the report half's contacts, their
features as of the cutoff, against the SKUs each bought after it (``holdout_``, metric NDCG@K).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels import category_codes, contact_codes, timestamps_us
from scorecast.kernels.sku_features import sku_strings
from scorecast.kernels.sku_view_features import product_page_skus
from scorecast.kernels.time_units import US_PER_DAY

from ..recommendations.model import MAX_SKUS, Orders, RecommendationModel, vocabulary
from ..recommendations.selection import Holdout, select
from ..run import Fitted, TrainingRun
from ..run import Holdout as GateHoldout

__all__ = ["HISTORY_SLOTS_RANGE", "VIEW_SLOTS", "fit", "fit_recommendations"]

HISTORY_SLOTS_RANGE = (50, 400)
"""Fewest and most history slots ``fit_recommendations`` picks (``_history_slots``)."""
VIEW_SLOTS = 20
"""Most-viewed SKUs a contact's score reads, when the base has product-page views."""


def fit_recommendations(
    tables: dict[str, pa.Table],
    as_of: Any,
    *,
    holdout_days: int = 30,
    max_eval_contacts: int = 20_000,
    max_select_contacts: int = 2_000,
    max_skus: int = MAX_SKUS,
    product_page: str | None = None,
    **params: Any,
) -> tuple[RecommendationModel, dict[str, float]]:
    """Holdout metrics and the blend (``selection``, with views when ``tables["web_events"]``
    holds views of ``product_page``), then the served model fitted on every order up to
    ``as_of``: the blend, or the best simple baseline the graph can serve when that beats it
    (``params["served"]``, logged). The served model reads web_events only when its view
    weight is above 0."""
    as_of_us = int(as_of.timestamp() * 1_000_000)
    cutoff = as_of_us - holdout_days * US_PER_DAY
    contact, names, ts, ids = _orders(tables)
    metrics: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    served = "model"
    gate: GateHoldout | None = None
    skus = vocabulary(names, ts, cutoff, max_skus)
    if len(skus) >= 2:
        sku = category_codes(names, skus, "orders.sku")
        if "history_slots" not in params:
            params = {**params, "history_slots": _history_slots(contact, sku, ts <= cutoff)}
        views: dict[str, Any] = {}
        if _has_views(tables, product_page, skus, cutoff):
            views = {"view_slots": VIEW_SLOTS, "product_page": product_page}
        orders = Orders(contact, sku, ts, len(ids))
        model = RecommendationModel(**params, **views).fit(skus, orders, cutoff)
        holdout = Holdout.split(
            tables,
            orders,
            ids,
            len(skus),
            cutoff,
            as_of_us,
            max_eval=max_eval_contacts,
            max_select=max_select_contacts,
            seed=model.random_state,
        )
        if holdout is not None:
            selection = select(model, holdout, params)
            chosen, served = selection.settings, selection.served
            metrics = {**selection.metrics, "holdout_days": float(holdout_days)}
            report = holdout.warm[holdout.report]
            bought = _bought(contact, names, (ts > cutoff) & (ts <= as_of_us), report)
            gate = GateHoldout(dict(tables), cutoff, ids.take(pa.array(report)), {"rec": bought}, metric="ndcg")
    skus = vocabulary(names, ts, as_of_us, max_skus)
    if len(skus) < 2:
        raise ValueError(f"recommendations: only {len(skus)} distinct SKUs in orders up to {as_of}; need at least 2")
    sku = category_codes(names, skus, "orders.sku")
    settings = {**params, **chosen}
    if settings.get("view_boost", 0.0) > 0:  # else the model reads no web_events at all
        settings |= {"view_slots": VIEW_SLOTS, "product_page": product_page}
    else:
        settings |= {"view_slots": 0, "product_page": None, "view_boost": 0.0}
    model = RecommendationModel(**settings).fit(skus, Orders(contact, sku, ts, len(ids)), as_of_us)
    model.served_ = served
    model.holdout_ = gate
    return model, metrics


def _bought(contact: np.ndarray, names: pa.Array, window: np.ndarray, who: np.ndarray) -> list[np.ndarray]:
    """The distinct SKU names each contact of ``who`` (codes) bought in the ``window`` rows, in
    any vocabulary: the truth both versions' recommendations are judged against."""
    rows = np.flatnonzero(window & names.is_valid().to_numpy(zero_copy_only=False) & np.isin(contact, who))
    at = np.full(int(contact.max()) + 1, -1, np.int64)
    at[who] = np.arange(len(who))
    # one unique over (contact, name rank) keys instead of a Python loop over the rows
    encoded = pc.dictionary_encode(names.take(pa.array(rows)))
    distinct = np.asarray(encoded.dictionary.to_pylist(), object)
    order = np.argsort(distinct)  # name ranks: each contact's names come out sorted, as np.unique
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    width = max(len(distinct), 1)
    keys = np.unique(at[contact[rows]] * width + rank[encoded.indices.to_numpy(zero_copy_only=False)])
    owner, sku = keys // width, distinct[order][keys % width]
    return np.split(sku, np.searchsorted(owner, np.arange(1, len(who)))) if len(who) else []


def _orders(tables: dict[str, pa.Table]) -> tuple[np.ndarray, pa.Array, np.ndarray, pa.Array]:
    """The orders' contact codes, SKU names, µs times and the contact ids the codes index."""
    orders = tables["orders"]
    if "sku" not in orders.column_names:
        raise ValueError("recommendations needs orders.sku, which this base does not have")
    names = sku_strings(orders.column("sku"), "orders.sku")
    codes, ids = contact_codes(orders.column("contact_id"), field="orders.contact_id")
    ts = timestamps_us(orders.column("ts"), "orders.ts")
    return codes, names, ts, ids


def _history_slots(contact: np.ndarray, sku: np.ndarray, mask: np.ndarray) -> int:
    """History slots covering the distinct SKUs of 95 % of the buyers, within
    ``HISTORY_SLOTS_RANGE``: an exclusion that masks only the 50 latest of 200 films seen
    would recommend the 150 others again."""
    keep = mask & (sku >= 0)
    pairs = np.unique(contact[keep].astype(np.int64) * (int(sku.max()) + 1) + sku[keep])
    per_contact = np.bincount(pairs // (int(sku.max()) + 1))
    per_contact = per_contact[per_contact > 0]
    wanted = int(np.ceil(np.quantile(per_contact, 0.95))) if per_contact.size else 0
    return int(np.clip(wanted, *HISTORY_SLOTS_RANGE))


def _has_views(tables: dict[str, pa.Table], product_page: str | None, skus: list[str], as_of_us: int) -> bool:
    """Whether the base has product-page views of vocabulary SKUs up to ``as_of_us``."""
    web = tables.get("web_events")
    if product_page is None or web is None or "page" not in web.column_names or web.num_rows == 0:
        return False
    codes = product_page_skus(web.column("page"), product_page, skus)
    return bool(((codes >= 0) & (timestamps_us(web.column("ts"), "web_events.ts") <= as_of_us)).any())


def fit(run: TrainingRun, version: str) -> Fitted:
    """``recommendations`` for ``scorecast train``, with its holdout metrics; product-page
    views feed it where the base has web_events and the web config a ``product_page``."""
    model, metrics = fit_recommendations(run.tables, run.as_of, product_page=run.web_config.get("product_page"))
    return Fitted(model.to_onnx(**run.times(version, run.as_of), metrics=metrics), run.tables, run.as_of, model.holdout_)
