"""The ``interests`` score: a contact's top-K campaign keywords and their time-decayed weights.

The weights are the e-mail family's ``keyword_weight:<keyword>`` features: opened campaigns
weigh 1 and clicked ones ``click_weight``, halved every ``half_life_days`` (feature params the
model carries, so serving computes the same weights). The graph is a TopK over them.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from onnx import TensorProto, helper, numpy_helper

from scorecast.kernels.email_features import DEFAULT_CLICK_WEIGHT, DEFAULT_HALF_LIFE_DAYS, KEYWORD_PREFIX
from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, TrainingRun, as_us

__all__ = ["MAX_KEYWORDS", "InterestsModel", "fit", "fit_from_tables", "fit_interests", "keyword_features", "keyword_vocabulary"]

INTERESTS = "interests"  # int32 [N, K]: keyword codes, -1 where the weight is 0
WEIGHTS = "weights"  # float32 [N, K]


def keyword_features(keywords: Sequence[str]) -> list[str]:
    """The feature names of these keywords' weights."""
    return [f"{KEYWORD_PREFIX}{k}" for k in keywords]


class InterestsModel:
    """Top-K keywords per contact by time-decayed open/click weight.

    ``interest_k`` is the k-th heaviest keyword (ties: the earlier keyword of the vocabulary),
    null when its weight is 0 (fewer than k keywords ever opened or clicked);
    ``interest_k_weight`` its weight.
    """

    model_type = "interests-topk"
    score = "interests"

    def __init__(
        self,
        keywords: Sequence[str],
        *,
        k: int = 3,
        half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
        click_weight: float = DEFAULT_CLICK_WEIGHT,
    ) -> None:
        if not keywords or len(set(keywords)) != len(keywords):
            raise ValueError(f"interests: keywords must be distinct and not empty, got {list(keywords)!r}")
        if not 1 <= k:
            raise ValueError(f"interests: k must be >= 1, got {k!r}")
        if not half_life_days > 0 or not click_weight >= 0:
            raise ValueError(
                f"interests: half_life_days must be > 0 and click_weight >= 0, got {half_life_days!r}, {click_weight!r}"
            )
        self.keywords = tuple(keywords)
        self.k = min(k, len(self.keywords))
        self.half_life_days = float(half_life_days)
        self.click_weight = float(click_weight)
        self.features = tuple(keyword_features(self.keywords))

    @property
    def feature_params(self) -> dict[str, float]:
        """What ``FeatureFrame.matrix`` needs to compute this model's features."""
        return {"keyword_half_life_days": self.half_life_days, "keyword_click_weight": self.click_weight}

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> InterestsModel:
        """Record the shares of contacts with an interest and of each top keyword on ``X``."""
        codes, _ = self._predict(X, feature_names)
        self.with_interest_ = float((codes[:, 0] >= 0).mean()) if len(codes) else 0.0
        tops = np.bincount(codes[codes[:, 0] >= 0, 0], minlength=len(self.keywords)) / max(len(codes), 1)
        self.top_shares_ = {kw: float(s) for kw, s in zip(self.keywords, tops, strict=True)}
        return self

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The NumPy reference of the graph: int32 codes [N, K] (-1: none) and float32 weights [N, K]."""
        self._check_fitted()
        return self._predict(X, feature_names)

    def _predict(self, X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        w = feature_matrix(X, feature_names, self.features).astype(np.float32)
        order = np.argsort(-w, axis=1, kind="stable")[:, : self.k]
        weights = np.take_along_axis(w, order, axis=1)
        return np.where(weights > 0, order, -1).astype(np.int32), weights

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; times are ISO 8601 strings."""
        self._check_fitted()
        outputs = []
        for i in range(self.k):
            outputs += [
                OutputSpec(
                    f"interest_{i + 1}",
                    "category",
                    f"keyword of rank {i + 1}; null if none",
                    INTERESTS,
                    i,
                    null_value=-1,
                    categories=self.keywords,
                ),
                OutputSpec(f"interest_{i + 1}_weight", "float32", f"time-decayed weight of keyword {i + 1}", WEIGHTS, i),
            ]
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=self.features,
            outputs=tuple(outputs),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"Top {self.k} campaign keywords by time-decayed opens (1) and clicks ({self.click_weight:g}), half-life {self.half_life_days:g} days",
            metrics={"with_interest": self.with_interest_, **{f"top_share:{k}": s for k, s in self.top_shares_.items()}},
            params={"keywords": list(self.keywords), "k": self.k, "feature_params": self.feature_params},
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph of :meth:`predict`, metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        init = {"k": np.array([self.k], np.int64), "zero": np.array(0, np.float32), "none": np.array(-1, np.int32)}
        node = helper.make_node
        nodes = [
            node("TopK", [INPUT_NAME, "k"], [WEIGHTS, "top_index"], axis=1, largest=1, sorted=1),
            node("Cast", ["top_index"], ["top_index_i"], to=TensorProto.INT32),
            node("Greater", [WEIGHTS, "zero"], ["some"]),
            node("Where", ["some", "top_index_i", "none"], [INTERESTS]),
        ]
        graph = helper.make_graph(
            nodes,
            "interests",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(self.features)])],
            [
                helper.make_tensor_value_info(INTERESTS, TensorProto.INT32, [None, self.k]),
                helper.make_tensor_value_info(WEIGHTS, TensorProto.FLOAT, [None, self.k]),
            ],
            initializer=[numpy_helper.from_array(v, k) for k, v in init.items()],
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "with_interest_"):
            raise ValueError("InterestsModel is not fitted: call fit() first")


def fit_interests(
    X: np.ndarray,
    feature_names: Sequence[str],
    keywords: Sequence[str],
    *,
    k: int = 3,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    click_weight: float = DEFAULT_CLICK_WEIGHT,
) -> InterestsModel:
    """Fit an :class:`InterestsModel` on the keyword weights ``X`` (computed with its feature params)."""
    return InterestsModel(keywords, k=k, half_life_days=half_life_days, click_weight=click_weight).fit(X, feature_names)


MAX_KEYWORDS = 50


def keyword_vocabulary(campaigns: pa.Table | None, limit: int = MAX_KEYWORDS) -> list[str]:
    """The campaigns' keywords, most frequent first (ties by name), at most ``limit``."""
    if campaigns is None or "keywords" not in campaigns.column_names:
        raise ValueError("interests need campaigns.keywords, which this base does not have")
    counts = pc.value_counts(pc.list_flatten(campaigns["keywords"].combine_chunks()).drop_null())
    ranked = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda vc: (-vc[1], vc[0]))
    if not ranked:
        raise ValueError("interests: no campaign has a keyword")
    return [k for k, _ in ranked[:limit]]


def fit_from_tables(tables: dict[str, pa.Table], as_of: datetime, *, k: int = 3) -> InterestsModel:
    """Keyword weights as of ``as_of`` over the campaigns' vocabulary; top ``k`` served."""
    keywords = keyword_vocabulary(tables.get("campaigns"))
    model = InterestsModel(keywords, k=k)
    names = keyword_features(keywords)
    return fit_interests(FeatureFrame(tables, as_us(as_of)).matrix(names, model.feature_params), names, keywords, k=k)


def fit(run: TrainingRun, version: str) -> Fitted:
    """``interests`` for ``scorecast train`` (``run.interest_k`` keywords per contact)."""
    tables = run.email_tables()
    model = fit_from_tables(tables, run.as_of, k=run.interest_k)
    return Fitted(model.to_onnx(**run.times(version, run.as_of)), tables, run.as_of)
