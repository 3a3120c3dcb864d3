"""The ``recommendations`` score: the K SKUs each contact is most likely to buy next.

Method (chosen by measurement, see ``RecommendationModel``): PureSVD item factors. The
contact x SKU purchase matrix (binary, each SKU column scaled by ``count^-popularity_damping``
so that best-sellers do not fill every factor) is factorised by a truncated SVD; a contact's
score for SKU j is ``sum over its history h of w_slot(h) * V_h . V_j`` plus a popularity prior
``beta * log(1 + count_j) / log(1 + max count)``, its history being its ``history_slots`` most
recent distinct SKUs (``sku_history:<slot>``, the one feature pipeline). Cold contacts (no
history) get the prior alone: the most popular SKUs, flagged by the ``cold`` output.

The served graph (ONNX, CPU or CUDA): Gather the history's factor rows, weighted ReduceSum,
MatMul with the item factors (an initializer), add the prior, optionally mask the history
(``request:exclude_bought``), TopK. Ties go to the lower SKU code, and SKU codes are in
descending popularity order, so a tie goes to the more popular SKU, in ONNX and in
:meth:`RecommendationModel.recommend` alike.

Holdout: orders up to ``as_of - holdout_days`` train a model whose top K is compared with
what each contact bought in ``(as_of - holdout_days, as_of]`` (recall@K, NDCG@K), next to
global popularity and item-item co-occurrence (cosine) on the same histories; the served
model is then refitted on every order up to ``as_of``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from onnx import TensorProto, helper, numpy_helper
from sklearn.utils.extmath import randomized_svd

from scorecast.kernels import FeatureFrame, contact_codes, timestamps_us
from scorecast.kernels.sku_features import sku_history_names, sku_strings
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.metadata import INPUT_NAME, REQUEST_PREFIX, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata
from ..run import Fitted, TrainingRun

__all__ = ["MAX_K", "MAX_SKUS", "RecommendationModel", "fit", "fit_recommendations", "ranking_metrics"]

MAX_K = 50
MAX_SKUS = 50_000
EXCLUDE_OPTION = "exclude_bought"
_SCORE_ELEMENTS = 8_000_000  # rows x SKUs of one ONNX run: ~32 MB of scores, whatever the catalogue


@dataclass
class _Orders:
    """Orders as codes: contact code, SKU code (-1: not in the vocabulary), µs time."""

    contact: np.ndarray
    sku: np.ndarray
    ts: np.ndarray
    n_contacts: int


def ranking_metrics(top: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean recall@k (hits / relevant) and NDCG@k (binary gains) over rows with a relevant item."""
    recalls, ndcgs = [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row, rel in zip(top, relevant, strict=True):
        if rel.size == 0:
            continue
        hit = np.isin(row[:k], rel)
        recalls.append(hit.sum() / rel.size)
        ideal = discounts[: min(rel.size, k)].sum()
        ndcgs.append(float((hit * discounts[: hit.size]).sum() / ideal))
    return {
        "recall": float(np.mean(recalls)) if recalls else float("nan"),
        "ndcg": float(np.mean(ndcgs)) if ndcgs else float("nan"),
    }


class RecommendationModel:
    """PureSVD item factors with a popularity prior, served as Gather + MatMul + TopK.

    Parameters
    ----------
    k : int, default=10
        Recommendations per contact (rec_1 … rec_k), at most ``MAX_K``.
    factors : int, default=64
        SVD rank (capped below the catalogue size).
    history_slots : int, default=50
        Most recent distinct SKUs a contact's score reads (and the most the exclusion masks).
    popularity_damping : float, default=0.5
        Column scaling ``count^-damping`` before the SVD.
    recency_decay : float, default=0.9
        Weight of the i-th most recent SKU: ``decay^i``.
    beta : float, default=0.2
        Weight of the popularity prior relative to the history's scores.
    repeat_boost : float, default=0.3
        Added to a SKU's score for each time it is in the history, times its slot weight:
        people re-buy (the low-rank factors alone under-rate a SKU's similarity to itself).
    """

    model_type = "pure-svd"
    score = "recommendations"

    def __init__(
        self,
        *,
        k: int = 10,
        factors: int = 64,
        history_slots: int = 50,
        popularity_damping: float = 0.5,
        recency_decay: float = 0.9,
        beta: float = 0.2,
        repeat_boost: float = 0.3,
        random_state: int = 0,
    ) -> None:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
        if factors < 1 or history_slots < 1:
            raise ValueError(f"factors and history_slots must be >= 1, got {factors}, {history_slots}")
        self.k = k
        self.factors = factors
        self.history_slots = history_slots
        self.popularity_damping = popularity_damping
        self.recency_decay = recency_decay
        self.beta = beta
        self.repeat_boost = repeat_boost
        self.random_state = random_state

    def fit(self, skus: list[str], orders: _Orders, as_of_us: int) -> RecommendationModel:
        """Factorise the purchases up to ``as_of_us`` over the vocabulary ``skus`` (popularity order)."""
        start = time.perf_counter()
        n_items = len(skus)
        mask = (orders.ts <= as_of_us) & (orders.sku >= 0)
        counts = np.bincount(orders.sku[mask], minlength=n_items).astype(np.float64)
        matrix = sp.csr_matrix(
            (np.ones(int(mask.sum())), (orders.contact[mask], orders.sku[mask])), shape=(orders.n_contacts, n_items)
        )
        matrix.data[:] = 1.0  # duplicates summed by the constructor: back to bought / not bought
        scale = np.maximum(counts, 1.0) ** -self.popularity_damping
        matrix = matrix @ sp.diags(scale)
        rank = max(1, min(self.factors, n_items - 1, orders.n_contacts - 1))
        if rank >= 1 and matrix.nnz:
            # randomized SVD (Halko et al. 2011): ARPACK's svds took 60 s on 20k contacts x
            # 10k SKUs, this a few seconds, with the same holdout metrics
            _, _, vt = randomized_svd(matrix.astype(np.float32), rank, n_iter=5, random_state=self.random_state)
            item = vt.T.astype(np.float32)  # (n_items, rank)
        else:
            item = np.zeros((n_items, 1), np.float32)
        self.skus_ = list(skus)
        self.item_factors_ = np.ascontiguousarray(item)
        self.prior_ = (np.log1p(counts) / max(np.log1p(counts.max()), 1.0)).astype(np.float32)
        self.slot_weights_ = (self.recency_decay ** np.arange(self.history_slots)).astype(np.float32)
        self.k_ = min(self.k, n_items)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def scores(self, history: np.ndarray, beta: float | None = None, repeat_boost: float | None = None) -> np.ndarray:
        """float32 ``[n, n_skus]``: every SKU's score for each history row (codes, -1 = none)."""
        beta = self.beta if beta is None else beta
        repeat_boost = self.repeat_boost if repeat_boost is None else repeat_boost
        valid = history >= 0
        codes = np.where(valid, history, 0).astype(np.int64)
        weights = (valid * self.slot_weights_[: history.shape[1]]).astype(np.float32)
        user = np.einsum("nh,nhd->nd", weights, self.item_factors_[codes], dtype=np.float32)
        scores = user @ self.item_factors_.T + np.float32(beta) * self.prior_
        rows, cols = np.nonzero(valid)
        scores[rows, codes[rows, cols]] += np.float32(repeat_boost) * weights[rows, cols]  # distinct codes per row
        return scores

    def recommend(self, history: np.ndarray, exclude_bought: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The reference top-K: (SKU codes, scores), ties to the lower code; -inf for excluded."""
        scores = self.scores(history)
        if exclude_bought:
            rows, cols = np.nonzero(history >= 0)
            scores[rows, history[rows, cols].astype(np.int64)] = -np.inf
        top = _top(scores, self.k_)  # equal scores: the lower code first, as ONNX TopK
        return top, np.take_along_axis(scores, top, axis=1)

    def metadata(self, *, version: str, trained_at: str, data_as_of: str, metrics: dict[str, float]) -> ModelMetadata:
        k = self.k_
        outputs = [
            OutputSpec(
                "cold", "int32", "1: the contact has no purchase history, its recommendations are the most popular SKUs", "cold"
            )
        ]
        for i in range(k):
            outputs.append(
                OutputSpec(f"rec_{i + 1}", "category", f"SKU ranked {i + 1}", "items", i, categories=tuple(self.skus_))
            )
            outputs.append(
                OutputSpec(
                    f"rec_{i + 1}_score", "float32", f"score of rec_{i + 1} (higher: more likely; not a probability)", "scores", i
                )
            )
        rows = max(64, _SCORE_ELEMENTS // max(len(self.skus_), 1))
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=(*sku_history_names(self.history_slots), f"{REQUEST_PREFIX}{EXCLUDE_OPTION}"),
            outputs=tuple(outputs),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"the {k} SKUs each contact is most likely to buy next (PureSVD item factors, popularity for cold contacts)",
            metrics=metrics,
            params={
                "feature_params": {"skus": list(self.skus_)},
                "request_defaults": {EXCLUDE_OPTION: 0.0},
                "k": k,
                "factors": int(self.item_factors_.shape[1]),
                "history_slots": self.history_slots,
                "popularity_damping": self.popularity_damping,
                "recency_decay": self.recency_decay,
                "beta": self.beta,
                "repeat_boost": self.repeat_boost,
                "max_batch_rows": rows,
                "fit_seconds": round(self.fit_seconds_, 3),
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str, metrics: dict[str, float]) -> onnx.ModelProto:
        """The serving graph (module docstring); input ``features`` = history slots + exclusion flag."""
        h, n_items, k = self.history_slots, len(self.skus_), self.k_
        c = helper.make_tensor

        def const(name: str, array: np.ndarray) -> onnx.TensorProto:
            return numpy_helper.from_array(np.asarray(array), name)

        inits = [
            # one zero row appended for "no SKU": Gather needs no masking
            const("factors_padded", np.vstack([self.item_factors_, np.zeros((1, self.item_factors_.shape[1]), np.float32)])),
            const("item_factors_t", np.ascontiguousarray(self.item_factors_.T)),
            const("prior", (np.float32(self.beta) * self.prior_)[None, :]),
            const("slot_weights", self.slot_weights_[None, :]),
            const("boost_weights", (np.float32(self.repeat_boost) * self.slot_weights_)[None, :]),
            c("h_start", TensorProto.INT64, [1], [0]),
            c("h_end", TensorProto.INT64, [1], [h]),
            c("flag_end", TensorProto.INT64, [1], [h + 1]),
            c("axis1", TensorProto.INT64, [1], [1]),
            c("axis_last", TensorProto.INT64, [1], [-1]),
            c("zero", TensorProto.FLOAT, [], [0.0]),
            c("half", TensorProto.FLOAT, [], [0.5]),
            c("minus_inf", TensorProto.FLOAT, [], [-np.inf]),
            c("nan", TensorProto.FLOAT, [], [np.nan]),
            c("dummy", TensorProto.INT64, [], [n_items]),
            c("zero_i", TensorProto.INT64, [], [0]),
            c("k", TensorProto.INT64, [1], [k]),
            c("first_end", TensorProto.INT64, [1], [1]),
        ]
        nodes = [
            helper.make_node("Slice", [INPUT_NAME, "h_start", "h_end", "axis1"], ["history"]),
            helper.make_node("Slice", [INPUT_NAME, "h_end", "flag_end", "axis1"], ["flag"]),
            helper.make_node("GreaterOrEqual", ["history", "zero"], ["valid"]),
            helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["history"], ["history_i"], to=TensorProto.INT64),
            helper.make_node("Where", ["valid", "history_i", "dummy"], ["codes"]),  # -1 -> the dummy row
            helper.make_node("Gather", ["factors_padded", "codes"], ["embedded"], axis=0),  # (N, h, rank)
            helper.make_node("Unsqueeze", ["slot_weights", "axis_last"], ["slot_weights_3d"]),
            helper.make_node("Mul", ["embedded", "slot_weights_3d"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis1"], ["user"], keepdims=0),  # (N, rank)
            helper.make_node("MatMul", ["user", "item_factors_t"], ["raw"]),
            helper.make_node("Add", ["raw", "prior"], ["scores_all"]),  # (N, n_items)
            # Repeat boost and exclusion: one ScatterElements onto the history's SKUs, in place
            # of the scores (no padded copy). Empty slots point at slot 0's SKU with slot 0's
            # update, so duplicate indices always write the same value; for a cold contact
            # slot 0 is empty too and every slot rewrites SKU 0's own score.
            helper.make_node("Greater", ["flag", "half"], ["exclude"]),
            helper.make_node("Slice", ["valid", "h_start", "first_end", "axis1"], ["first_valid"]),
            helper.make_node("Slice", ["history_i", "h_start", "first_end", "axis1"], ["first_code_raw"]),
            helper.make_node("Where", ["first_valid", "first_code_raw", "zero_i"], ["first_code"]),
            helper.make_node("Where", ["valid", "history_i", "first_code"], ["codes_safe"]),
            helper.make_node("Or", ["valid", "first_valid"], ["valid_eff"]),  # empty slot: slot 0's
            helper.make_node("And", ["valid_eff", "exclude"], ["masked"]),
            helper.make_node("Mul", ["valid_f", "boost_weights"], ["boost_valid"]),
            helper.make_node("Slice", ["boost_valid", "h_start", "first_end", "axis1"], ["boost_first"]),
            helper.make_node("Where", ["valid", "boost_valid", "boost_first"], ["boost"]),
            helper.make_node("GatherElements", ["scores_all", "codes_safe"], ["at_history"], axis=1),
            helper.make_node("Add", ["at_history", "boost"], ["boosted"]),
            helper.make_node("Where", ["masked", "minus_inf", "boosted"], ["updates"]),
            helper.make_node("ScatterElements", ["scores_all", "codes_safe", "updates"], ["scores_final"], axis=1),
            helper.make_node("TopK", ["scores_final", "k"], ["scores", "top"], axis=1, largest=1, sorted=1),
            helper.make_node("Cast", ["top"], ["top_f"], to=TensorProto.FLOAT),
            helper.make_node("IsInf", ["scores"], ["excluded"]),
            helper.make_node("Where", ["excluded", "nan", "top_f"], ["items"]),
            helper.make_node("Not", ["first_valid"], ["is_cold"]),
            helper.make_node("Cast", ["is_cold"], ["cold"], to=TensorProto.INT32),
        ]
        graph = helper.make_graph(
            nodes,
            "recommendations",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, h + 1])],
            [
                helper.make_tensor_value_info("items", TensorProto.FLOAT, [None, k]),
                helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, k]),
                helper.make_tensor_value_info("cold", TensorProto.INT32, [None, 1]),
            ],
            initializer=inits,
        )
        model = make_model(graph)
        return attach_metadata(
            model, self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of, metrics=metrics)
        )


def _orders(tables: dict[str, pa.Table]) -> tuple[pa.Table, np.ndarray, pa.Array, np.ndarray]:
    orders = tables["orders"]
    if "sku" not in orders.column_names:
        raise ValueError("recommendations needs orders.sku, which this base does not have")
    names = sku_strings(orders.column("sku"), "orders.sku")
    codes, ids = contact_codes(orders.column("contact_id"), field="orders.contact_id")
    ts = timestamps_us(orders.column("ts"), "orders.ts")
    return orders, codes, names, ts, ids  # type: ignore[return-value]


def _vocabulary(names: pa.Array, ts: np.ndarray, as_of_us: int, max_skus: int) -> list[str]:
    """SKUs bought up to ``as_of_us`` by descending count, ties by name; the ``max_skus`` first."""
    seen = names.filter(pa.array((ts <= as_of_us) & names.is_valid().to_numpy(zero_copy_only=False)))
    counts = pc.value_counts(seen)
    values = counts.field("values").to_pylist()
    n = counts.field("counts").to_numpy()
    order = sorted(range(len(values)), key=lambda i: (-n[i], values[i]))
    return [values[i] for i in order[:max_skus]]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Codes of the k highest scores per row, by descending score then ascending code (as a
    stable argsort of -scores, and as ONNX TopK), without sorting whole rows."""
    n, width = scores.shape
    k = min(k, width)
    if k == width:
        return np.argsort(-scores, axis=1, kind="stable")
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    rows, cols = np.nonzero(scores >= kth)  # the top k and every tie at the boundary
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(n))
    take = starts[:, None] + np.arange(k)[None, :]
    return cols[take]


def _history(tables: dict[str, pa.Table], contact_ids: pa.Array, as_of_us: int, model: RecommendationModel) -> np.ndarray:
    orders = tables["orders"]
    mine = orders.filter(pc.is_in(orders.column("contact_id"), value_set=contact_ids))
    frame = FeatureFrame({"orders": mine}, as_of_us, contact_ids=contact_ids)
    return frame.matrix(sku_history_names(model.history_slots), {"skus": model.skus_})


def _cooccurrence_top(history: np.ndarray, item_item: sp.csr_matrix, prior: np.ndarray, k: int) -> np.ndarray:
    """Item-item cosine baseline: sum of the history's similarity rows (+ a tiny popularity tie-break)."""
    rows, cols = np.nonzero(history >= 0)
    x = sp.csr_matrix(
        (np.ones(rows.size), (rows, history[rows, cols].astype(np.int64))), shape=(history.shape[0], item_item.shape[0])
    )
    scores = np.asarray((x @ item_item).todense()) + 1e-6 * prior
    return _top(scores, k)


GRID = {"beta": (0.05, 0.2, 0.5), "repeat_boost": (0.0, 0.3, 1.0)}
"""The prior and repeat weights tried on the holdout; the best NDCG is served."""


def fit_recommendations(
    tables: dict[str, pa.Table],
    as_of: Any,
    *,
    holdout_days: int = 30,
    max_eval_contacts: int = 20_000,
    max_skus: int = MAX_SKUS,
    **params: Any,
) -> tuple[RecommendationModel, dict[str, float]]:
    """Holdout metrics and the choice of ``beta`` / ``repeat_boost`` (module docstring), then
    the served model fitted on every order up to ``as_of``."""
    from scorecast.kernels import category_codes

    as_of_us = int(as_of.timestamp() * 1_000_000)
    cutoff = as_of_us - holdout_days * US_PER_DAY
    _, contact, names, ts, ids = _orders(tables)
    metrics: dict[str, float] = {}
    chosen: dict[str, float] = {}
    skus = _vocabulary(names, ts, cutoff, max_skus)
    if len(skus) >= 2:
        sku = category_codes(names, skus, "orders.sku")
        model = RecommendationModel(**params).fit(skus, _Orders(contact, sku, ts, len(ids)), cutoff)
        later = (ts > cutoff) & (ts <= as_of_us) & (sku >= 0)
        earlier = (ts <= cutoff) & (sku >= 0)
        before = np.zeros(len(ids), bool)
        before[contact[earlier]] = True
        buyers = np.unique(contact[later])
        warm = buyers[before[buyers]]
        if warm.size > max_eval_contacts:
            rng = np.random.default_rng(model.random_state)
            warm = np.sort(rng.choice(warm, max_eval_contacts, replace=False))
        if warm.size:
            metrics.update(_holdout(tables, model, ids, contact, sku, earlier, later, warm, cutoff, chosen, params))
            metrics["holdout_days"] = float(holdout_days)
    skus = _vocabulary(names, ts, as_of_us, max_skus)
    if len(skus) < 2:
        raise ValueError(f"recommendations: only {len(skus)} distinct SKUs in orders up to {as_of}; need at least 2")
    sku = category_codes(names, skus, "orders.sku")
    model = RecommendationModel(**{**params, **chosen}).fit(skus, _Orders(contact, sku, ts, len(ids)), as_of_us)
    return model, metrics


def _holdout(
    tables: dict[str, pa.Table],
    model: RecommendationModel,
    ids: pa.Array,
    contact: np.ndarray,
    sku: np.ndarray,
    earlier: np.ndarray,
    later: np.ndarray,
    warm: np.ndarray,
    cutoff: int,
    chosen: dict[str, float],
    params: dict[str, Any],
) -> dict[str, float]:
    """recall@K and NDCG@K of the model (over ``GRID`` unless fixed by ``params``), popularity
    and item-item co-occurrence, on the holdout purchases of the ``warm`` contacts."""
    n, n_items, k = len(ids), len(model.skus_), model.k_
    relevant_rows = sp.csr_matrix((np.ones(int(later.sum())), (contact[later], sku[later])), shape=(n, n_items))
    relevant = [np.unique(relevant_rows.indices[relevant_rows.indptr[c] : relevant_rows.indptr[c + 1]]) for c in warm]
    history = _history(tables, ids.take(pa.array(warm)), cutoff, model)
    bought = sp.csr_matrix((np.ones(int(earlier.sum())), (contact[earlier], sku[earlier])), shape=(n, n_items))
    bought.data[:] = 1.0
    co = (bought.T @ bought).tocsr().astype(np.float64)
    norms = np.sqrt(np.maximum(co.diagonal(), 1.0))
    item_item = (sp.diags(1 / norms) @ co @ sp.diags(1 / norms)).tocsr()
    grid = [
        (b, r)
        for b in ([params["beta"]] if "beta" in params else GRID["beta"])
        for r in ([params["repeat_boost"]] if "repeat_boost" in params else GRID["repeat_boost"])
    ]
    tops: dict[tuple[float, float], list[np.ndarray]] = {g: [] for g in grid}
    cooc = []
    step = max(1, _SCORE_ELEMENTS // n_items)
    for lo in range(0, warm.size, step):
        part = history[lo : lo + step]
        for b, r in grid:
            tops[(b, r)].append(_top(model.scores(part, b, r), k))
        cooc.append(_cooccurrence_top(part, item_item, model.prior_, k))
    results = {g: ranking_metrics(np.concatenate(t), relevant, k) for g, t in tops.items()}
    best = max(grid, key=lambda g: (results[g]["ndcg"], -grid.index(g)))
    chosen.update(beta=best[0], repeat_boost=best[1])
    metrics: dict[str, float] = {}
    popular = np.tile(np.arange(k), (warm.size, 1))  # codes are in popularity order
    for name, m in (
        ("", results[best]),
        ("popularity_", ranking_metrics(popular, relevant, k)),
        ("cooccurrence_", ranking_metrics(np.concatenate(cooc), relevant, k)),
    ):
        metrics[f"{name}recall_at_{k}"] = m["recall"]
        metrics[f"{name}ndcg_at_{k}"] = m["ndcg"]
    metrics["n_eval_contacts"] = float(warm.size)
    return metrics


def fit(run: TrainingRun, version: str) -> Fitted:
    """``recommendations`` for ``scorecast train``, with its holdout metrics."""
    model, metrics = fit_recommendations(run.tables, run.as_of)
    return Fitted(model.to_onnx(**run.times(version, run.as_of), metrics=metrics), run.tables, run.as_of)
