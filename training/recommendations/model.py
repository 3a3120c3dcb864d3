"""The recommendations model: repeat + explore, fitted on orders as codes, scored in NumPy as the
reference of its served graph (``graph``).

Explore: PureSVD item factors (the contact x SKU bought matrix, each column scaled by
``count^-popularity_damping``, truncated SVD); the contact's vector is the sum of its history's
factor rows weighted ``decay^slot``. Repeat: a time-decayed personal frequency (each order of a
history SKU weighted ``0.5 ** (age / half_life_days)``, ``sku_weight:<slot>``), normalised by
the contact's largest, as TIFU-KNN's personal vector (Hu et al., SIGIR 2020). Plus a popularity
prior ``beta * log(1 + sales_j) / log(1 + max sales)``, sales optionally time-decayed (what
sells now). Viewed: the contact's most viewed SKUs (product pages), each view weighted
``0.5 ** (age / view_half_life_days)``, normalised by the contact's largest, times
``view_boost``. SKU codes are in descending popularity order (``vocabulary``), so a tie goes
to the more popular SKU.
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
from sklearn.utils.extmath import randomized_svd

from scorecast.kernels.sku_features import sku_history_names, sku_weight_names
from scorecast.kernels.sku_view_features import sku_view_weight_names, sku_viewed_names
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.metadata import REQUEST_PREFIX, ModelMetadata, OutputSpec

from ..onnx_export import attach_metadata
from .baselines import top_k
from .graph import TINY, recommendations_graph

__all__ = [
    "EXCLUDE_OPTION",
    "MAX_K",
    "MAX_SKUS",
    "SCORE_ELEMENTS",
    "Orders",
    "RecommendationModel",
    "popularity_prior",
    "vocabulary",
]

MAX_K = 50
MAX_SKUS = 50_000
EXCLUDE_OPTION = "exclude_bought"
SCORE_ELEMENTS = 8_000_000
"""Rows x SKUs of one ONNX run (and of one chunk of holdout scoring): ~32 MB of scores, whatever the catalogue."""


@dataclass
class Orders:
    """Orders as codes: contact code, SKU code (-1: not in the vocabulary), µs time."""

    contact: np.ndarray
    sku: np.ndarray
    ts: np.ndarray
    n_contacts: int


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

    def fit(self, skus: list[str], orders: Orders, as_of_us: int) -> RecommendationModel:
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
        self.prior_ = popularity_prior(orders, n_items, as_of_us, self.prior_half_life_days)
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
            top = np.maximum(view_weights.max(axis=1, initial=0.0), np.float32(TINY))
            codes = viewed[rows, cols].astype(np.int64)
            scores[rows, codes] += np.float32(view_boost) * (view_weights[rows, cols] / top[rows])  # distinct per row
        valid = history >= 0
        rows, cols = np.nonzero(valid)
        codes = history[rows, cols].astype(np.int64)
        if exclude:
            scores[rows, codes] = -np.inf
        else:
            top = np.maximum(weights.max(axis=1, initial=0.0), np.float32(TINY))
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
        rows = max(64, SCORE_ELEMENTS // max(len(self.skus_), 1))
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
        """The serving graph (``graph``) with the model's metadata; input ``features`` = history
        slots, their weights, the viewed slots and their weights (with view slots), the exclusion flag."""
        graph = recommendations_graph(
            item_factors=self.item_factors_,
            prior=self.prior_,
            slot_weights=self.slot_weights_,
            explore=self.explore,
            beta=self.beta,
            repeat_boost=self.repeat_boost,
            view_boost=self.view_boost,
            history_slots=self.history_slots,
            view_slots=self.view_slots,
            k=self.k_,
        )
        return attach_metadata(
            graph, self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of, metrics=metrics)
        )


def vocabulary(names: pa.Array, ts: np.ndarray, as_of_us: int, max_skus: int) -> list[str]:
    """SKUs bought up to ``as_of_us`` by descending count, ties by name; the ``max_skus`` first."""
    seen = names.filter(pa.array((ts <= as_of_us) & names.is_valid().to_numpy(zero_copy_only=False)))
    counts = pc.value_counts(seen)
    values = counts.field("values").to_pylist()
    n = counts.field("counts").to_numpy()
    order = sorted(range(len(values)), key=lambda i: (-n[i], values[i]))
    return [values[i] for i in order[:max_skus]]


def popularity_prior(orders: Orders, n_items: int, as_of_us: int, half_life_days: float | None) -> np.ndarray:
    """float32 popularity prior in [0, 1]: ``log(1 + sales_j) / log(1 + max sales)``, each sale
    up to ``as_of_us`` weighted ``0.5 ** (age / half_life_days)`` (1 when None)."""
    mask = (orders.ts <= as_of_us) & (orders.sku >= 0)
    weight = None
    if half_life_days is not None:
        weight = 0.5 ** ((as_of_us - orders.ts[mask]) / (half_life_days * US_PER_DAY))
    counts = np.bincount(orders.sku[mask], weights=weight, minlength=n_items).astype(np.float64)
    return (np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)).astype(np.float32)


