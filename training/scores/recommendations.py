"""The ``recommendations`` score: the K SKUs each contact is most likely to buy next.

Method: repeat + explore (see ``RecommendationModel``), blended per base on a time holdout.
Explore: PureSVD item factors (the contact x SKU bought matrix, each column scaled by
``count^-popularity_damping``, truncated SVD); the contact's vector is the sum of its history's
factor rows weighted ``decay^slot``. Repeat: a time-decayed personal frequency (each order of a
history SKU weighted ``0.5 ** (age / half_life_days)``, ``sku_weight:<slot>``), normalised by
the contact's largest, as TIFU-KNN's personal vector (Hu et al., SIGIR 2020). Plus a popularity
prior ``beta * log(1 + sales_j) / log(1 + max sales)``, sales optionally time-decayed (what
sells now). Viewed: where the base has ``web_events`` on product pages (the web config's
``product_page`` pattern), the contact's ``VIEW_SLOTS`` most viewed SKUs, each view weighted
``0.5 ** (age / view_half_life_days)`` (``sku_viewed:<slot>``, ``sku_view_weight:<slot>``),
normalised by the contact's largest, times ``view_boost``. The history is the
``history_slots`` most recent distinct SKUs (``sku_history:<slot>``); training and serving
compute every input with the one feature pipeline (``FeatureFrame``). Cold contacts get the
prior (and their views) alone, flagged by the ``cold`` output.

The served graph (ONNX, CPU or CUDA): Gather the history's factor rows, weighted ReduceSum,
MatMul with the item factors (an initializer, O(SKUs x factors)), add the prior; with view
slots, one ScatterElements adds the view weight onto the viewed SKUs; then one
ScatterElements onto the history's SKUs: the repeat weight, or -inf when
``request:exclude_bought`` (default learned, stored in ``request_defaults``), TopK. Memory per
run: the rows x SKUs scores of ``max_batch_rows`` rows, never a SKUs x SKUs matrix. Ties go
to the lower SKU code, and SKU codes are in descending popularity order, so a tie goes to the
more popular SKU, in ONNX and in :meth:`RecommendationModel.recommend` alike. A model whose
view weight is 0 (no product-page views in the base, or views that did not help) has no view
inputs and reads no web_events.

Holdout: orders up to ``as_of - holdout_days`` train a model; the contacts who bought before and
in ``(as_of - holdout_days, as_of]`` are split in two halves. On the selection half, by NDCG@K:
the blend (``GRID`` x ``HALF_LIVES``: explore weight, prior weight and decay, repeat weight,
exclusion), then its view weight and half-life (``VIEW_GRID``, with views), then the blend or
the best simple baseline the graph can serve (``BASELINE_SETTINGS``; a warning says so,
``params["served"]``). On the report half, which none of these choices saw: recall@K and
NDCG@K of what is served, of every simple baseline (``recommendation_baselines``:
popularity, popularity among unseen items, personal frequency, item-item) and, with views, of
the blend without them (``no_views_*``), with ``holdout_repeat_share`` (the share of holdout
purchases the contact had bought before) and ``beats_best_baseline``; the selection half's
NDCG@K of the blend and of the best baseline are ``ndcg_at_<K>_selection`` and
``best_baseline_ndcg_at_<K>_selection``. The served model is
then refitted on every order up to ``as_of``.
"""

from __future__ import annotations

import logging
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
from scorecast.kernels.sku_features import sku_history_names, sku_strings, sku_weight_names
from scorecast.kernels.sku_view_features import product_page_skus, sku_view_weight_names, sku_viewed_names
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.metadata import INPUT_NAME, REQUEST_PREFIX, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata
from ..run import Fitted, TrainingRun
from . import recommendation_baselines
from .recommendation_baselines import top_k

__all__ = ["MAX_K", "MAX_SKUS", "RecommendationModel", "fit", "fit_recommendations", "ranking_metrics"]

MAX_K = 50
MAX_SKUS = 50_000
EXCLUDE_OPTION = "exclude_bought"
_SCORE_ELEMENTS = 8_000_000  # rows x SKUs of one ONNX run: ~32 MB of scores, whatever the catalogue
_TINY = 1e-12
HISTORY_SLOTS_RANGE = (50, 400)
"""Fewest and most history slots ``fit_recommendations`` picks (``_history_slots``)."""
VIEW_SLOTS = 20
"""Most-viewed SKUs a contact's score reads, when the base has product-page views."""


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
    """Repeat + explore: a time-decayed personal frequency plus PureSVD item factors and a
    popularity prior, served as Gather + MatMul + ScatterElements + TopK.

    A contact's score for SKU j is ``explore * u . V_j + beta * prior_j`` (``u``: its history's
    factor rows, weighted ``decay^slot``), plus, for each SKU of its history,
    ``repeat_boost * w_j / max(w)`` where ``w_j`` counts its orders of j, each weighted
    ``0.5 ** (age / half_life_days)`` (``sku_weight:<slot>``): TIFU-KNN's personal vector
    (Hu et al. 2020) next to the factors' neighbours. ``exclude_bought`` (the default of the
    request option) masks the history instead.

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
        Weight of the i-th most recent SKU in ``u``: ``decay^i``.
    half_life_days : float, default=90.0
        Half-life of an order's weight in the personal frequency.
    explore : float, default=1.0
        Weight of the factor scores (0: popularity and personal frequency only).
    beta : float, default=0.2
        Weight of the popularity prior.
    repeat_boost : float, default=0.3
        Weight of the normalised personal frequency.
    exclude_bought : bool, default=False
        Default of ``request:exclude_bought``.
    prior_half_life_days : float or None, default=None
        Half-life of a sale in the popularity prior (None: every sale counts 1): what sells
        now, for catalogues whose new titles take over.
    view_slots : int, default=0
        Most-viewed SKUs (product-page views, ``sku_viewed:<slot>``) a contact's score reads;
        0: none, and the model reads no web_events.
    view_boost : float, default=0.0
        Weight of the normalised viewed counts ``v_j / max(v)`` added to each viewed SKU.
    view_half_life_days : float, default=14.0
        Half-life of a view in those counts.
    product_page : str or None, default=None
        The product-page pattern (``/products/{sku}``, the web config's) the views come from.
    """

    model_type = "repeat-explore"
    score = "recommendations"

    def __init__(
        self,
        *,
        k: int = 10,
        factors: int = 64,
        history_slots: int = 50,
        popularity_damping: float = 0.5,
        recency_decay: float = 0.9,
        half_life_days: float = 90.0,
        explore: float = 1.0,
        beta: float = 0.2,
        repeat_boost: float = 0.3,
        exclude_bought: bool = False,
        prior_half_life_days: float | None = None,
        view_slots: int = 0,
        view_boost: float = 0.0,
        view_half_life_days: float = 14.0,
        product_page: str | None = None,
        random_state: int = 0,
    ) -> None:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
        if factors < 1 or history_slots < 1:
            raise ValueError(f"factors and history_slots must be >= 1, got {factors}, {history_slots}")
        if not half_life_days > 0 or not view_half_life_days > 0:
            raise ValueError(f"half_life_days and view_half_life_days must be > 0, got {half_life_days}, {view_half_life_days}")
        if view_slots < 0 or (view_slots and product_page is None):
            raise ValueError(
                f"view_slots must be >= 0, and > 0 only with a product_page pattern; got {view_slots}, {product_page!r}"
            )
        self.k = k
        self.factors = factors
        self.history_slots = history_slots
        self.popularity_damping = popularity_damping
        self.recency_decay = recency_decay
        self.half_life_days = half_life_days
        self.explore = explore
        self.beta = beta
        self.repeat_boost = repeat_boost
        self.exclude_bought = exclude_bought
        self.prior_half_life_days = prior_half_life_days
        self.view_slots = view_slots
        self.view_boost = view_boost
        self.view_half_life_days = view_half_life_days
        self.product_page = product_page
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
        self.prior_ = _prior(orders, n_items, as_of_us, self.prior_half_life_days)
        self.slot_weights_ = (self.recency_decay ** np.arange(self.history_slots)).astype(np.float32)
        self.k_ = min(self.k, n_items)
        self.served_ = "model"
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def parts(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``[n, n_skus]`` factor scores ``u . V_j`` and the history's valid mask."""
        valid = history >= 0
        codes = np.where(valid, history, 0).astype(np.int64)
        weights = (valid * self.slot_weights_[: history.shape[1]]).astype(np.float32)
        user = np.einsum("nh,nhd->nd", weights, self.item_factors_[codes], dtype=np.float32)
        return user @ self.item_factors_.T, valid

    def scores(
        self,
        history: np.ndarray,
        weights: np.ndarray,
        viewed: np.ndarray | None = None,
        view_weights: np.ndarray | None = None,
        *,
        explore: float | None = None,
        beta: float | None = None,
        repeat_boost: float | None = None,
        exclude_bought: bool | None = None,
        view_boost: float | None = None,
        factor_scores: np.ndarray | None = None,
    ) -> np.ndarray:
        """float32 ``[n, n_skus]``: every SKU's score for each row (history codes, -1 = none, and
        their ``sku_weight``; the viewed codes and their ``sku_view_weight``, None: no views),
        -inf where excluded; the settings default to the model's."""
        explore = self.explore if explore is None else explore
        beta = self.beta if beta is None else beta
        repeat_boost = self.repeat_boost if repeat_boost is None else repeat_boost
        exclude = self.exclude_bought if exclude_bought is None else exclude_bought
        view_boost = self.view_boost if view_boost is None else view_boost
        if factor_scores is None:
            factor_scores = self.parts(history)[0]
        scores = np.float32(explore) * factor_scores + np.float32(beta) * self.prior_
        if viewed is not None and view_weights is not None and view_boost:
            # before the history, as in the graph: exclusion masks a viewed SKU bought since
            rows, cols = np.nonzero(viewed >= 0)
            top = np.maximum(view_weights.max(axis=1, initial=0.0), np.float32(_TINY))
            codes = viewed[rows, cols].astype(np.int64)
            scores[rows, codes] += np.float32(view_boost) * (view_weights[rows, cols] / top[rows])  # distinct per row
        valid = history >= 0
        rows, cols = np.nonzero(valid)
        codes = history[rows, cols].astype(np.int64)
        if exclude:
            scores[rows, codes] = -np.inf
        else:
            top = np.maximum(weights.max(axis=1, initial=0.0), np.float32(_TINY))
            scores[rows, codes] += np.float32(repeat_boost) * (weights[rows, cols] / top[rows])  # distinct per row
        return scores

    def recommend(
        self,
        history: np.ndarray,
        weights: np.ndarray,
        viewed: np.ndarray | None = None,
        view_weights: np.ndarray | None = None,
        exclude_bought: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reference top-K: (SKU codes, scores), ties to the lower code; -inf for excluded."""
        scores = self.scores(history, weights, viewed, view_weights, exclude_bought=exclude_bought)
        top = top_k(scores, self.k_)  # equal scores: the lower code first, as ONNX TopK
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
            features=(*self.data_features(), f"{REQUEST_PREFIX}{EXCLUDE_OPTION}"),
            outputs=tuple(outputs),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=(
                f"the {k} SKUs each contact is most likely to buy next (time-decayed personal frequency + PureSVD item "
                f"factors + popularity, blended on a time holdout; popularity for cold contacts); served: {self.served_}"
            ),
            metrics=metrics,
            params={
                "feature_params": self.feature_params(),
                "request_defaults": {EXCLUDE_OPTION: float(self.exclude_bought)},
                "served": self.served_,
                "k": k,
                "factors": int(self.item_factors_.shape[1]),
                "history_slots": self.history_slots,
                "popularity_damping": self.popularity_damping,
                "recency_decay": self.recency_decay,
                "half_life_days": self.half_life_days,
                "explore": self.explore,
                "beta": self.beta,
                "exclude_bought": bool(self.exclude_bought),
                "prior_half_life_days": self.prior_half_life_days,
                "repeat_boost": self.repeat_boost,
                "view_slots": self.view_slots,
                "view_boost": self.view_boost,
                "view_half_life_days": self.view_half_life_days,
                "max_batch_rows": rows,
                "fit_seconds": round(self.fit_seconds_, 3),
            },
        )

    def data_features(self) -> list[str]:
        """The kernel features the model reads, in input order (the views only with view slots)."""
        h, v = self.history_slots, self.view_slots
        return [*sku_history_names(h), *sku_weight_names(h), *sku_viewed_names(v), *sku_view_weight_names(v)]

    def feature_params(self) -> dict[str, Any]:
        """The ``feature_params`` of those features (vocabulary, half-lives, product-page pattern)."""
        params: dict[str, Any] = {"skus": list(self.skus_), "half_life_days": float(self.half_life_days)}
        if self.view_slots:
            params |= {"product_page": self.product_page, "view_half_life_days": float(self.view_half_life_days)}
        return params

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str, metrics: dict[str, float]) -> onnx.ModelProto:
        """The serving graph (module docstring); input ``features`` = history slots, their
        weights, the viewed slots and their weights (with view slots), the exclusion flag."""
        h, v, n_items, k = self.history_slots, self.view_slots, len(self.skus_), self.k_
        before_history = "scores_viewed" if v else "scores_all"
        c = helper.make_tensor

        def const(name: str, array: np.ndarray) -> onnx.TensorProto:
            return numpy_helper.from_array(np.asarray(array), name)

        inits = [
            # one zero row appended for "no SKU": Gather needs no masking
            const("factors_padded", np.vstack([self.item_factors_, np.zeros((1, self.item_factors_.shape[1]), np.float32)])),
            const("item_factors_t", np.ascontiguousarray(np.float32(self.explore) * self.item_factors_.T)),
            const("prior", (np.float32(self.beta) * self.prior_)[None, :]),
            const("slot_weights", self.slot_weights_[None, :]),
            c("repeat_boost", TensorProto.FLOAT, [], [float(self.repeat_boost)]),
            c("tiny", TensorProto.FLOAT, [], [_TINY]),
            c("h_start", TensorProto.INT64, [1], [0]),
            c("h_end", TensorProto.INT64, [1], [h]),
            c("w_end", TensorProto.INT64, [1], [2 * h]),
            c("flag_start", TensorProto.INT64, [1], [2 * h + 2 * v]),
            c("flag_end", TensorProto.INT64, [1], [2 * h + 2 * v + 1]),
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
        if v:
            inits += [
                c("v_end", TensorProto.INT64, [1], [2 * h + v]),
                c("view_boost", TensorProto.FLOAT, [], [float(self.view_boost)]),
            ]
        nodes = [
            helper.make_node("Slice", [INPUT_NAME, "h_start", "h_end", "axis1"], ["history"]),
            helper.make_node("Slice", [INPUT_NAME, "h_end", "w_end", "axis1"], ["history_w"]),
            helper.make_node("Slice", [INPUT_NAME, "flag_start", "flag_end", "axis1"], ["flag"]),
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
            *(_view_nodes("scores_all", "scores_viewed") if v else []),
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
            # personal frequency normalised by the row's largest: repeat_boost * w / max(w)
            helper.make_node("ReduceMax", ["history_w", "axis1"], ["w_max_raw"], keepdims=1),
            helper.make_node("Max", ["w_max_raw", "tiny"], ["w_max"]),
            helper.make_node("Div", ["history_w", "w_max"], ["w_norm"]),
            helper.make_node("Mul", ["w_norm", "repeat_boost"], ["boost_weights"]),
            helper.make_node("Mul", ["valid_f", "boost_weights"], ["boost_valid"]),
            helper.make_node("Slice", ["boost_valid", "h_start", "first_end", "axis1"], ["boost_first"]),
            helper.make_node("Where", ["valid", "boost_valid", "boost_first"], ["boost"]),
            helper.make_node("GatherElements", [before_history, "codes_safe"], ["at_history"], axis=1),
            helper.make_node("Add", ["at_history", "boost"], ["boosted"]),
            helper.make_node("Where", ["masked", "minus_inf", "boosted"], ["updates"]),
            helper.make_node("ScatterElements", [before_history, "codes_safe", "updates"], ["scores_final"], axis=1),
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
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, 2 * h + 2 * v + 1])],
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


def _view_nodes(scores: str, out: str) -> list[onnx.NodeProto]:
    """The view boost: ``view_boost * v / max(v)`` added at the viewed SKUs by one
    ScatterElements, empty slots pointing at slot 0's SKU with slot 0's update (as the history's)."""
    node = helper.make_node
    return [
        node("Slice", [INPUT_NAME, "w_end", "v_end", "axis1"], ["viewed"]),
        node("Slice", [INPUT_NAME, "v_end", "flag_start", "axis1"], ["viewed_w"]),
        node("GreaterOrEqual", ["viewed", "zero"], ["v_valid"]),
        node("Cast", ["v_valid"], ["v_valid_f"], to=TensorProto.FLOAT),
        node("Cast", ["viewed"], ["viewed_i"], to=TensorProto.INT64),
        node("Slice", ["v_valid", "h_start", "first_end", "axis1"], ["v_first_valid"]),
        node("Slice", ["viewed_i", "h_start", "first_end", "axis1"], ["v_first_raw"]),
        node("Where", ["v_first_valid", "v_first_raw", "zero_i"], ["v_first_code"]),
        node("Where", ["v_valid", "viewed_i", "v_first_code"], ["v_codes"]),
        node("ReduceMax", ["viewed_w", "axis1"], ["vw_max_raw"], keepdims=1),
        node("Max", ["vw_max_raw", "tiny"], ["vw_max"]),
        node("Div", ["viewed_w", "vw_max"], ["vw_norm"]),
        node("Mul", ["vw_norm", "view_boost"], ["v_boost_weights"]),
        node("Mul", ["v_valid_f", "v_boost_weights"], ["v_boost_valid"]),
        node("Slice", ["v_boost_valid", "h_start", "first_end", "axis1"], ["v_boost_first"]),
        node("Where", ["v_valid", "v_boost_valid", "v_boost_first"], ["v_boost"]),
        node("GatherElements", [scores, "v_codes"], ["at_viewed"], axis=1),
        node("Add", ["at_viewed", "v_boost"], ["viewed_scores"]),
        node("ScatterElements", [scores, "v_codes", "viewed_scores"], [out], axis=1),
    ]


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


def _prior(orders: _Orders, n_items: int, as_of_us: int, half_life_days: float | None) -> np.ndarray:
    """float32 popularity prior in [0, 1]: ``log(1 + sales_j) / log(1 + max sales)``, each sale
    up to ``as_of_us`` weighted ``0.5 ** (age / half_life_days)`` (1 when None)."""
    mask = (orders.ts <= as_of_us) & (orders.sku >= 0)
    weight = None
    if half_life_days is not None:
        weight = 0.5 ** ((as_of_us - orders.ts[mask]) / (half_life_days * US_PER_DAY))
    counts = np.bincount(orders.sku[mask], weights=weight, minlength=n_items).astype(np.float64)
    return (np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)).astype(np.float32)


def _features(
    tables: dict[str, pa.Table], contact_ids: pa.Array, as_of_us: int, model: RecommendationModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The history codes, their ``sku_weight``, and (with view slots, else None) the viewed
    codes and their ``sku_view_weight`` of ``contact_ids`` as of ``as_of_us``: the serving
    pipeline's ``FeatureFrame`` over those contacts' rows."""
    chunk = {}
    for name in ("orders", "web_events") if model.view_slots else ("orders",):
        if name in tables:
            table = tables[name]
            chunk[name] = table.filter(pc.is_in(table.column("contact_id"), value_set=contact_ids))
    frame = FeatureFrame(chunk, as_of_us, contact_ids=contact_ids)
    x = frame.matrix(model.data_features(), model.feature_params())
    h, v = model.history_slots, model.view_slots
    if not v:
        return x[:, :h], x[:, h:], None, None
    return x[:, :h], x[:, h : 2 * h], x[:, 2 * h : 2 * h + v], x[:, 2 * h + v :]


def _has_views(tables: dict[str, pa.Table], product_page: str | None, skus: list[str], as_of_us: int) -> bool:
    """Whether the base has product-page views of vocabulary SKUs up to ``as_of_us``."""
    web = tables.get("web_events")
    if product_page is None or web is None or "page" not in web.column_names or web.num_rows == 0:
        return False
    codes = product_page_skus(web.column("page"), product_page, skus)
    return bool(((codes >= 0) & (timestamps_us(web.column("ts"), "web_events.ts") <= as_of_us)).any())


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

log = logging.getLogger(__name__)


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
    """Holdout metrics and the blend (``GRID`` x ``HALF_LIVES``, then ``VIEW_GRID`` when
    ``tables["web_events"]`` holds views of ``product_page``, module docstring), then the
    served model fitted on every order up to ``as_of``: the blend, or the best simple baseline
    the graph can serve when that beats it (``params["served"]``, logged). The served model
    reads web_events only when its view weight is above 0."""
    from scorecast.kernels import category_codes

    as_of_us = int(as_of.timestamp() * 1_000_000)
    cutoff = as_of_us - holdout_days * US_PER_DAY
    _, contact, names, ts, ids = _orders(tables)
    metrics: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    skus = _vocabulary(names, ts, cutoff, max_skus)
    if len(skus) >= 2:
        sku = category_codes(names, skus, "orders.sku")
        if "history_slots" not in params:
            params = {**params, "history_slots": _history_slots(contact, sku, ts <= cutoff)}
        views: dict[str, Any] = {}
        if _has_views(tables, product_page, skus, cutoff):
            views = {"view_slots": VIEW_SLOTS, "product_page": product_page}
        model = RecommendationModel(**params, **views).fit(skus, _Orders(contact, sku, ts, len(ids)), cutoff)
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
            orders = _Orders(contact, sku, ts, len(ids))
            metrics.update(
                _holdout(tables, model, orders, ids, earlier, later, warm, cutoff, chosen, params, max_select_contacts)
            )
            metrics["holdout_days"] = float(holdout_days)
    skus = _vocabulary(names, ts, as_of_us, max_skus)
    if len(skus) < 2:
        raise ValueError(f"recommendations: only {len(skus)} distinct SKUs in orders up to {as_of}; need at least 2")
    sku = category_codes(names, skus, "orders.sku")
    served = chosen.pop("served", "model")
    settings = {**params, **chosen}
    if settings.get("view_boost", 0.0) > 0:  # else the model reads no web_events at all
        settings |= {"view_slots": VIEW_SLOTS, "product_page": product_page}
    else:
        settings |= {"view_slots": 0, "product_page": None, "view_boost": 0.0}
    model = RecommendationModel(**settings).fit(skus, _Orders(contact, sku, ts, len(ids)), as_of_us)
    model.served_ = served
    return model, metrics


def _holdout(
    tables: dict[str, pa.Table],
    model: RecommendationModel,
    orders: _Orders,
    ids: pa.Array,
    earlier: np.ndarray,
    later: np.ndarray,
    warm: np.ndarray,
    cutoff: int,
    chosen: dict[str, Any],
    params: dict[str, Any],
    max_select: int,
) -> dict[str, float]:
    """recall@K and NDCG@K on the holdout purchases of the ``warm`` contacts, split in two
    halves: on the selection half, the blend (``GRID`` x ``HALF_LIVES`` unless fixed by
    ``params``), then its view weight (``VIEW_GRID``, with view slots), then blend or the best
    simple baseline; on the report half, the figures of the chosen blend, of every
    ``recommendation_baselines`` baseline and (with view slots) of the blend without views.
    Fills ``chosen`` with the blend, or with a servable baseline's settings when one beats it."""
    n, n_items, k = len(ids), len(model.skus_), model.k_
    contact, sku = orders.contact, orders.sku
    relevant_rows = sp.csr_matrix((np.ones(int(later.sum())), (contact[later], sku[later])), shape=(n, n_items))
    relevant = [np.unique(relevant_rows.indices[relevant_rows.indptr[c] : relevant_rows.indptr[c + 1]]) for c in warm]
    counts = sp.csr_matrix((np.ones(int(earlier.sum())), (contact[earlier], sku[earlier])), shape=(n, n_items))
    counts.sum_duplicates()
    repeats = sum(
        np.isin(rel, counts.indices[counts.indptr[c] : counts.indptr[c + 1]]).sum() for c, rel in zip(warm, relevant, strict=True)
    )
    # selection on even positions (at most max_select), report on odd ones: neither the blend
    # nor the choice of blend or baseline was made on the reported figures
    select = np.arange(warm.size) % 2 == 0 if warm.size >= 2 else np.ones(warm.size, bool)
    report = ~select if warm.size >= 2 else select
    select &= np.cumsum(select) <= max_select
    half_lives = [params["half_life_days"]] if "half_life_days" in params else HALF_LIVES
    fixed = {name: params[name] for name in GRID if name in params}
    grid = [
        {
            "half_life_days": hl,
            "prior_half_life_days": p,
            "explore": e,
            "beta": b,
            "repeat_boost": r,
            "exclude_bought": x,
            "view_boost": 0.0,
        }
        for hl in half_lives
        for p in ([fixed["prior_half_life_days"]] if "prior_half_life_days" in fixed else GRID["prior_half_life_days"])
        for e in ([fixed["explore"]] if "explore" in fixed else GRID["explore"])
        for b in ([fixed["beta"]] if "beta" in fixed else GRID["beta"])
        for x in ([fixed["exclude_bought"]] if "exclude_bought" in fixed else GRID["exclude_bought"])
        for r in ([fixed["repeat_boost"]] if "repeat_boost" in fixed else GRID["repeat_boost"])
        if not (x and r != GRID["repeat_boost"][0] and "repeat_boost" not in fixed)
    ]
    rel_select = [r for r, s in zip(relevant, select, strict=True) if s]
    rel_report = [r for r, s in zip(relevant, report, strict=True) if s]
    select_ids = ids.take(pa.array(warm[select]))
    tops = _grid_tops(tables, model, orders, select_ids, cutoff, grid)
    ndcgs = [ranking_metrics(top, rel_select, k)["ndcg"] for top in tops]
    blend = grid[max(range(len(grid)), key=lambda i: (ndcgs[i], -i))]
    blend_ndcg = max(ndcgs)
    if model.view_slots:
        view_grid = [
            {**blend, "view_half_life_days": vh, "view_boost": b}
            for vh in ([params["view_half_life_days"]] if "view_half_life_days" in params else VIEW_GRID["view_half_life_days"])
            for b in ([params["view_boost"]] if "view_boost" in params else VIEW_GRID["view_boost"])
        ]
        view_tops = _grid_tops(tables, model, orders, select_ids, cutoff, view_grid)
        view_ndcgs = [ranking_metrics(top, rel_select, k)["ndcg"] for top in view_tops]
        at = max(range(len(view_grid)), key=lambda i: (view_ndcgs[i], -view_grid[i]["view_boost"], -i))  # ties: fewer views
        if view_grid[at]["view_boost"] > 0 and view_ndcgs[at] > blend_ndcg:
            blend, blend_ndcg = view_grid[at], view_ndcgs[at]
    report_grid = [blend]
    if model.view_slots:
        report_grid.append({**blend, "view_boost": 0.0})
    report_tops = _grid_tops(tables, model, orders, ids.take(pa.array(warm[report])), cutoff, report_grid)
    metrics: dict[str, float] = {}

    def put(prefix: str, top: np.ndarray) -> None:
        m = ranking_metrics(top, rel_report, k)
        metrics[f"{prefix}recall_at_{k}"] = m["recall"]
        metrics[f"{prefix}ndcg_at_{k}"] = m["ndcg"]

    put("", report_tops[0])
    if model.view_slots:
        put("no_views_", report_tops[1])
    similarity = recommendation_baselines.cosine(counts)
    step = max(1, _SCORE_ELEMENTS // n_items)  # dense rows x SKUs scores, chunked as the model's

    def baseline_top(name: str, rows: sp.csr_matrix) -> np.ndarray:
        fn = recommendation_baselines.BASELINES[name]
        extra = (similarity,) if name == "item_item" else ()
        return np.concatenate([fn(rows[lo : lo + step], k, *extra) for lo in range(0, rows.shape[0], step)])

    select_baselines = {
        name: ranking_metrics(baseline_top(name, counts[warm[select]]), rel_select, k)["ndcg"]
        for name in recommendation_baselines.BASELINES
    }
    for name in recommendation_baselines.BASELINES:
        put(f"{name}_", baseline_top(name, counts[warm[report]]))
    chosen.update(blend)
    # blend or baseline: chosen on the selection half, as the blend was
    servable = max(BASELINE_SETTINGS, key=lambda b: (select_baselines[b], -list(BASELINE_SETTINGS).index(b)))
    metrics[f"ndcg_at_{k}_selection"] = blend_ndcg
    metrics[f"best_baseline_ndcg_at_{k}_selection"] = max(select_baselines.values())
    if select_baselines[servable] > blend_ndcg:
        log.warning(
            "recommendations: on the selection half the blend (NDCG@%d %.4f) does not beat %s (%.4f); serving %s",
            k,
            blend_ndcg,
            servable,
            select_baselines[servable],
            servable,
        )
        chosen.update(BASELINE_SETTINGS[servable], served=servable)
        metrics[f"blend_recall_at_{k}"], metrics[f"blend_ndcg_at_{k}"] = metrics[f"recall_at_{k}"], metrics[f"ndcg_at_{k}"]
        metrics[f"recall_at_{k}"] = metrics[f"{servable}_recall_at_{k}"]
        metrics[f"ndcg_at_{k}"] = metrics[f"{servable}_ndcg_at_{k}"]
    best, best_ndcg = recommendation_baselines.best_baseline(metrics, k)
    if best_ndcg >= metrics[f"ndcg_at_{k}"] and best != chosen.get("served"):
        log.warning(
            "recommendations: the served %s (NDCG@%d %.4f) does not beat %s (%.4f) on the report half of the holdout",
            chosen.get("served", "blend"),
            k,
            metrics[f"ndcg_at_{k}"],
            best,
            best_ndcg,
        )
    metrics["beats_best_baseline"] = float(metrics[f"ndcg_at_{k}"] > best_ndcg)
    metrics["holdout_repeat_share"] = float(repeats / max(sum(r.size for r in relevant), 1))
    metrics["n_eval_contacts"] = float(report.sum())
    metrics["n_select_contacts"] = float(select.sum())
    return metrics


def _grid_tops(
    tables: dict[str, pa.Table],
    model: RecommendationModel,
    orders: _Orders,
    contact_ids: pa.Array,
    cutoff: int,
    grid: list[dict[str, Any]],
) -> list[np.ndarray]:
    """Top-K codes of every setting in ``grid`` for ``contact_ids``, in score-sized chunks."""
    n_items, k = len(model.skus_), model.k_
    step = max(1, _SCORE_ELEMENTS // n_items)
    out: list[list[np.ndarray]] = [[] for _ in grid]
    by_features: dict[tuple[float, float], list[int]] = {}
    for i, g in enumerate(grid):
        by_features.setdefault((g["half_life_days"], g.get("view_half_life_days", model.view_half_life_days)), []).append(i)
    priors = {p: _prior(orders, n_items, cutoff, p) for p in {g["prior_half_life_days"] for g in grid}}
    feature_keys = ("half_life_days", "prior_half_life_days", "view_half_life_days")
    for (half_life, view_half_life), members in by_features.items():
        model.half_life_days, model.view_half_life_days = half_life, view_half_life
        history, weights, viewed, view_weights = _features(tables, contact_ids, cutoff, model)
        for lo in range(0, len(history), step):
            part, w = history[lo : lo + step], weights[lo : lo + step]
            v = vw = None
            if viewed is not None and view_weights is not None:
                v, vw = viewed[lo : lo + step], view_weights[lo : lo + step]
            factor_scores = model.parts(part)[0]
            for i in members:
                g = {key: value for key, value in grid[i].items() if key not in feature_keys}
                model.prior_ = priors[grid[i]["prior_half_life_days"]]
                out[i].append(top_k(model.scores(part, w, v, vw, factor_scores=factor_scores, **g), k))
    return [np.concatenate(t) if t else np.zeros((0, k), np.int64) for t in out]


def fit(run: TrainingRun, version: str) -> Fitted:
    """``recommendations`` for ``scorecast train``, with its holdout metrics; product-page
    views feed it where the base has web_events and the web config a ``product_page``."""
    model, metrics = fit_recommendations(run.tables, run.as_of, product_page=run.web_config.get("product_page"))
    return Fitted(model.to_onnx(**run.times(version, run.as_of), metrics=metrics), run.tables, run.as_of)
